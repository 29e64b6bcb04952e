// Package notifier delivers notification tasks (the outbox the plan step
// writes: seats_exhausted, sync_failed, run_held, sync_completed) to each
// tenant's webhook.
//
// Every pass claims the tasks that are due (store.ClaimNotifications: FOR
// UPDATE SKIP LOCKED, and a lease, so replicas never send one task at
// once and a crashed replica's claim runs out by itself) and POSTs each as
// a CloudEvents 1.0 event in structured JSON, signed with the tenant's
// secret in the Entrasync-Signature header (see Sign). A 2xx answer
// delivers the task; 408, 429, 5xx and network errors are tried again
// after an exponential backoff with jitter (or the receiver's Retry-After,
// bounded) until MaxAge after the task was written; any other answer
// fails it for good, with the reason recorded.
//
// Delivery is at least once: a replica that dies after the receiver took
// an event, before it recorded so, leaves the task to be sent again when
// its lease ends. The event id is the task id on every attempt, so a
// receiver that drops ids it has seen sees each notification once.
//
// A tenant without a webhook URL, or without a signing secret, keeps its
// tasks pending, with a last error that says what is missing; they are
// looked at again every Recheck and sent once both exist, or failed when
// MaxAge passes first.
package notifier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
)

// Defaults of Config.
const (
	DefaultPollEvery      = 5 * time.Second
	DefaultBatch          = 50
	DefaultConcurrency    = 8
	DefaultTimeout        = 10 * time.Second
	DefaultLease          = 2 * time.Minute
	DefaultMaxAge         = 24 * time.Hour
	DefaultInitialBackoff = 30 * time.Second
	DefaultMaxBackoff     = time.Hour
	DefaultMaxRetryAfter  = time.Hour
	DefaultRecheck        = 5 * time.Minute
)

// maxBody bounds how much of a webhook's answer is read: it is only
// drained, and a snippet kept for the reason.
const maxBody = 64 << 10

// Config tunes the notifier.
type Config struct {
	// PollEvery is the time between two passes.
	PollEvery time.Duration
	// Batch is how many tasks a pass claims at a time.
	Batch int
	// Concurrency is how many events are sent at once, so one slow
	// webhook does not hold up the other tenants'.
	Concurrency int
	// Timeout bounds one POST, connection to last byte.
	Timeout time.Duration
	// Lease is how long a claim holds a task; it must outlast Timeout.
	Lease time.Duration
	// MaxAge is how long after a task was written it is still tried.
	MaxAge time.Duration
	// InitialBackoff and MaxBackoff shape the exponential backoff between
	// tries (doubling, ±50% jitter).
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxRetryAfter bounds the wait a receiver asks for with Retry-After.
	MaxRetryAfter time.Duration
	// Recheck is when a task that could not be sent (no webhook URL or no
	// signing secret) is looked at again.
	Recheck time.Duration
	// Clock tells the time; default time.Now.
	Clock func() time.Time
	// Transport sends the requests; nil means a transport of its own
	// (proxy from the environment, system roots).
	Transport http.RoundTripper
}

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	for _, d := range []struct {
		to  *time.Duration
		def time.Duration
	}{
		{&c.PollEvery, DefaultPollEvery}, {&c.Timeout, DefaultTimeout}, {&c.Lease, DefaultLease},
		{&c.MaxAge, DefaultMaxAge}, {&c.InitialBackoff, DefaultInitialBackoff}, {&c.MaxBackoff, DefaultMaxBackoff},
		{&c.MaxRetryAfter, DefaultMaxRetryAfter}, {&c.Recheck, DefaultRecheck},
	} {
		if *d.to == 0 {
			*d.to = d.def
		}
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate reports every bad field in one error.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"PollEvery", c.PollEvery}, {"Timeout", c.Timeout}, {"Lease", c.Lease}, {"MaxAge", c.MaxAge},
		{"InitialBackoff", c.InitialBackoff}, {"MaxBackoff", c.MaxBackoff}, {"MaxRetryAfter", c.MaxRetryAfter},
		{"Recheck", c.Recheck},
	} {
		if f.d <= 0 {
			errs = append(errs, fmt.Errorf("notifier: %s %s: want more than 0", f.name, f.d))
		}
	}
	if c.Lease <= c.Timeout {
		errs = append(errs, fmt.Errorf("notifier: Lease %s must outlast Timeout %s, or a slow send is sent twice", c.Lease, c.Timeout))
	}
	if c.MaxBackoff < c.InitialBackoff {
		errs = append(errs, fmt.Errorf("notifier: MaxBackoff %s is less than InitialBackoff %s", c.MaxBackoff, c.InitialBackoff))
	}
	if c.Batch < 1 || c.Batch > 1000 {
		errs = append(errs, fmt.Errorf("notifier: Batch %d: want 1 to 1000", c.Batch))
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		errs = append(errs, fmt.Errorf("notifier: Concurrency %d: want 1 to 256", c.Concurrency))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("notifier: Clock is nil"))
	}
	return errors.Join(errs...)
}

// Deps are the notifier's collaborators.
type Deps struct {
	Store  *store.Store
	Logger zerolog.Logger
}

// Notifier delivers notification tasks to webhooks.
type Notifier struct {
	cfg   Config
	store *store.Store
	log   zerolog.Logger
	http  *http.Client

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks the configuration and builds a notifier.
func New(cfg Config, deps Deps) (*Notifier, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, errors.New("notifier: a store is required")
	}
	tr := cfg.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   cfg.Timeout,
			ResponseHeaderTimeout: cfg.Timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	client := &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		// A redirect is answered as it is (Classify fails the task): an
		// event is never carried to a host the tenant did not name, nor
		// turned into a GET.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Notifier{cfg: cfg, store: deps.Store, log: deps.Logger, http: client}, nil
}

// Start runs a first pass at once, then one every PollEvery, in the
// background, until Stop. ctx bounds only the start.
func (n *Notifier) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done != nil {
		return errors.New("notifier: already started")
	}
	ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	n.done = make(chan struct{})
	go n.loop(ctx, n.done)
	n.log.Info().Dur("poll_every", n.cfg.PollEvery).Dur("max_age", n.cfg.MaxAge).Msg("notifier started")
	return nil
}

func (n *Notifier) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(n.cfg.PollEvery)
	defer t.Stop()
	for {
		if err := n.Tick(ctx); err != nil && ctx.Err() == nil {
			n.log.Error().Err(err).Msg("notifier pass incomplete; the next pass tries again")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Stop ends the passes: no more tasks are claimed, and the sends in
// flight finish (each within Timeout) and are recorded, until ctx is
// done. A task claimed but not recorded is sent again after its lease.
func (n *Notifier) Stop(ctx context.Context) error {
	n.mu.Lock()
	cancel, done := n.cancel, n.done
	n.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		n.log.Info().Msg("notifier stopped")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("notifier: stop: %w", ctx.Err())
	}
}

// Tick makes one pass: it claims due tasks a batch at a time and delivers
// them, until none is due or ctx ends.
func (n *Notifier) Tick(ctx context.Context) error {
	for ctx.Err() == nil {
		ds, err := n.store.ClaimNotifications(ctx, n.cfg.Clock(), n.cfg.Lease, n.cfg.Batch)
		if err != nil {
			return fmt.Errorf("notifier: %w", err)
		}
		// Sends outlive a Stop (so that what was sent is recorded), each
		// bounded by Timeout.
		sctx := context.WithoutCancel(ctx)
		sem := make(chan struct{}, n.cfg.Concurrency)
		var wg sync.WaitGroup
		for _, d := range ds {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				n.deliver(sctx, d)
			})
		}
		wg.Wait()
		if len(ds) < n.cfg.Batch {
			return nil
		}
	}
	return nil
}

// deliver sends one claimed task and records how it went.
func (n *Notifier) deliver(ctx context.Context, d store.Delivery) {
	log := n.log.With().Str("tenant", d.TenantID).Str("notification", d.ID).Str("kind", d.Kind).
		Int("attempt", d.Attempts).Logger()
	if d.RunID != "" {
		log = log.With().Str("run", d.RunID).Logger()
	}
	if missing := n.unsendable(d); missing != "" {
		n.record(ctx, log, d, Outcome{Verdict: Retry, Reason: missing}, false)
		return
	}
	out := n.send(ctx, d)
	n.record(ctx, log, d, out, true)
}

// unsendable says what keeps a task from being sent, or "".
func (n *Notifier) unsendable(d store.Delivery) string {
	switch {
	case d.Notify.WebhookURL == "":
		return "no webhook configured (notify.webhookUrl)"
	case d.SecretErr != nil:
		return "the webhook signing secret cannot be opened; make a new one (POST /v1/tenants/" + d.TenantID + "/notify/secret)"
	case d.Secret == nil:
		return "no webhook signing secret; make one (POST /v1/tenants/" + d.TenantID + "/notify/secret)"
	case plan.CheckWebhookURL(d.Notify.WebhookURL) != nil:
		return "notify.webhookUrl is not an https URL"
	}
	return ""
}

// send POSTs the task's event and classifies the answer.
func (n *Notifier) send(ctx context.Context, d store.Delivery) Outcome {
	body, err := NewEvent(d).Marshal()
	if err != nil {
		return Outcome{Verdict: Failed, Reason: "the event cannot be encoded: " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Notify.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return Outcome{Verdict: Failed, Reason: "notify.webhookUrl cannot be requested: " + err.Error()}
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("User-Agent", "entrasync-notifier")
	req.Header.Set(SignatureHeader, Sign(d.Secret, n.cfg.Clock(), body))
	resp, err := n.http.Do(req)
	if err != nil {
		return Classify(nil, err, "", n.cfg.Clock(), n.cfg.MaxRetryAfter)
	}
	defer resp.Body.Close()
	snippet := make([]byte, maxReason)
	k, _ := io.ReadFull(resp.Body, snippet)
	// Drained (bounded) so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	return Classify(resp, nil, string(snippet[:k]), n.cfg.Clock(), n.cfg.MaxRetryAfter)
}

// record writes an attempt's outcome. sent says whether the receiver was
// reached out to; a retry that would fall past MaxAge fails the task.
func (n *Notifier) record(ctx context.Context, log zerolog.Logger, d store.Delivery, out Outcome, sent bool) {
	now := n.cfg.Clock()
	var ok bool
	var err error
	switch out.Verdict {
	case Delivered:
		ok, err = n.store.MarkDelivered(ctx, d, now)
		log.Info().Msg("notification delivered")
	case Failed:
		ok, err = n.store.MarkFailed(ctx, d, now, out.Reason)
		log.Warn().Str("reason", out.Reason).Msg("notification failed for good")
	case Retry:
		wait := n.cfg.Recheck
		if sent {
			wait = out.RetryAfter
			if wait == 0 {
				wait = n.backoff(d.Attempts)
			}
		}
		next := now.Add(wait)
		if deadline := d.CreatedAt.Add(n.cfg.MaxAge); next.After(deadline) {
			reason := fmt.Sprintf("given up %s after it was written: %s", n.cfg.MaxAge, out.Reason)
			ok, err = n.store.MarkFailed(ctx, d, now, reason)
			log.Warn().Str("reason", out.Reason).Msg("notification given up")
			break
		}
		ok, err = n.store.RetryNotification(ctx, d, next, out.Reason, sent)
		if sent {
			log.Info().Str("reason", out.Reason).Time("next_attempt", next).Msg("notification not delivered; tried again later")
		}
	}
	switch {
	case err != nil:
		log.Error().Err(err).Msg("outcome not recorded; the task is sent again when its claim runs out")
	case !ok:
		log.Warn().Msg("claim ran out before the outcome was recorded; another attempt owns the task")
	}
}

// backoff is the wait after the attempt-th failed try: InitialBackoff
// doubling up to MaxBackoff, each with ±50% jitter (backoff/v4).
func (n *Notifier) backoff(attempt int) time.Duration {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     n.cfg.InitialBackoff,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         n.cfg.MaxBackoff,
		MaxElapsedTime:      0, // MaxAge, from the task's creation, bounds the tries
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	d := b.NextBackOff()
	for i := 1; i < min(attempt, 64); i++ {
		d = b.NextBackOff()
	}
	return d
}
