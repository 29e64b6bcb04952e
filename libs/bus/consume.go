package bus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

// Headers of a dead letter. The payload is the original message's, byte
// for byte; these say where it came from and why it was given up.
const (
	HeaderDLQReason     = "Entrasync-Dlq-Reason"     // why, for people
	HeaderDLQSubject    = "Entrasync-Dlq-Subject"    // original subject
	HeaderDLQStream     = "Entrasync-Dlq-Stream"     // original stream
	HeaderDLQConsumer   = "Entrasync-Dlq-Consumer"   // consumer that gave up
	HeaderDLQStreamSeq  = "Entrasync-Dlq-Stream-Seq" // sequence in the original stream
	HeaderDLQDeliveries = "Entrasync-Dlq-Deliveries" // deliveries so far
	HeaderDLQMsgID      = "Entrasync-Dlq-Msg-Id"     // original Nats-Msg-Id
	HeaderDLQTime       = "Entrasync-Dlq-Time"       // when, RFC 3339 UTC
)

// Headers of a message the bus published again because its handler kept
// returning Retry until the consumer's deliveries ran out.
const (
	HeaderRequeues      = "Entrasync-Requeues"        // how often so far
	HeaderOriginalMsgID = "Entrasync-Original-Msg-Id" // the first copy's Nats-Msg-Id
)

// Delivery says where a message stands in its deliveries. Handlers find
// it in their context (DeliveryFromContext) when they must act differently
// on the last delivery, before the bus gives the message up.
type Delivery struct {
	// Num counts the message's deliveries, this one included, from 1. A
	// copy requeued after a Retry on the last delivery counts afresh.
	Num uint64
	// Max is the consumer's limit on deliveries; 0 or less means none.
	Max int
}

// Last reports whether this is the last delivery the consumer allows: if
// the handler fails now with anything but a Retry, the message is
// dead-lettered.
func (d Delivery) Last() bool { return d.Max > 0 && d.Num >= uint64(d.Max) }

type deliveryKey struct{}

// DeliveryFromContext returns the delivery of the message a handler was
// called for; false outside a handler.
func DeliveryFromContext(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}

// ConsumeOptions tunes one consumer.
type ConsumeOptions struct {
	// Concurrency is how many handlers run at once in this process
	// (default 1). The bus never pulls more messages than it has free
	// handlers, so no message waits in a local buffer while its ack
	// timer runs.
	Concurrency int

	// OnDeadLetter, when set, is called with a message about to be
	// dead-lettered and the reason, so that the service can record the
	// failure where people look (the reconciler fails the run). When it
	// returns an error, the message is not dead-lettered now but tried
	// again later.
	OnDeadLetter func(ctx context.Context, m proto.Message, reason string) error
}

// Consumer is a running consumer started by ConsumeJobs or ConsumeEvents.
type Consumer interface {
	// Stop stops taking messages and waits for the handlers in flight to
	// return, until ctx ends. When ctx ends first, it cancels the
	// handlers' context, so that their messages are handed back for
	// redelivery at once (to another replica, not after an ack wait),
	// waits for them to return, and returns ctx's error. A ctx already
	// done hands back at once whatever is in flight.
	Stop(ctx context.Context) error
	// Running reports whether the consumer is taking messages in this
	// process: false once Stop was called, or once it gave up on its own
	// (the NATS connection was closed). It is cheap: readiness probes
	// call it.
	Running() bool
}

// ErrNotConsuming is Consuming's answer for a consumer that was never
// started, was stopped, or gave up.
var ErrNotConsuming = errors.New("bus: not consuming")

// Consuming reports ErrNotConsuming unless c is running: what a worker's
// readiness says of its consumer. c may be nil (not started yet).
func Consuming(c Consumer) error {
	if c == nil || !c.Running() {
		return ErrNotConsuming
	}
	return nil
}

// ConsumeJobs runs h for each job on the fetchers consumer until Stop.
// ctx bounds only the start: handlers run in a context that carries ctx's
// values and that only Stop cancels.
func (b *Bus) ConsumeJobs(ctx context.Context, opts ConsumeOptions, h func(ctx context.Context, job *syncv1.SyncJob) error) (Consumer, error) {
	return b.consume(ctx, b.fetchers, b.jobs, b.strandedJobs, SubjectJobs, SubjectDLQJobs, opts, decodeJob,
		func(ctx context.Context, m proto.Message) error { return h(ctx, m.(*syncv1.SyncJob)) })
}

// ConsumeEvents runs h for each event on the reconcilers consumer until
// Stop. ctx bounds only the start, as for ConsumeJobs.
func (b *Bus) ConsumeEvents(ctx context.Context, opts ConsumeOptions, h func(ctx context.Context, ev *syncv1.SyncEvent) error) (Consumer, error) {
	return b.consume(ctx, b.reconcilers, b.events, b.strandedEvents, SubjectEvents, SubjectDLQEvents, opts, decodeEvent,
		func(ctx context.Context, m proto.Message) error { return h(ctx, m.(*syncv1.SyncEvent)) })
}

// envelope is a decoded message with what the logs say about it.
type envelope struct {
	tenant, run string
	page        int32
	event       bool
	msg         proto.Message
}

func decodeJob(subject string, data []byte) (envelope, error) {
	job := &syncv1.SyncJob{}
	if err := proto.Unmarshal(data, job); err != nil {
		return envelope{}, fmt.Errorf("not a SyncJob: %w", err)
	}
	if err := checkTenant(subject, SubjectJobs, job.GetTenantId()); err != nil {
		return envelope{}, err
	}
	if job.GetRunId() == "" {
		return envelope{}, errors.New("job has no run id")
	}
	return envelope{tenant: job.GetTenantId(), run: job.GetRunId(), msg: job}, nil
}

func decodeEvent(subject string, data []byte) (envelope, error) {
	ev := &syncv1.SyncEvent{}
	if err := proto.Unmarshal(data, ev); err != nil {
		return envelope{}, fmt.Errorf("not a SyncEvent: %w", err)
	}
	if err := checkTenant(subject, SubjectEvents, ev.GetTenantId()); err != nil {
		return envelope{}, err
	}
	if ev.GetRunId() == "" {
		return envelope{}, errors.New("event has no run id")
	}
	if ev.GetBody() == nil {
		return envelope{}, errors.New("event has no body")
	}
	return envelope{tenant: ev.GetTenantId(), run: ev.GetRunId(), page: ev.GetPage(), event: true, msg: ev}, nil
}

// checkTenant makes sure a payload is about the tenant its subject names:
// a message filed under one tenant must never change another's data.
func checkTenant(subject, prefix, tenant string) error {
	if st := strings.TrimPrefix(subject, prefix); st != tenant {
		return fmt.Errorf("tenant mismatch: subject names %q, payload %q", st, tenant)
	}
	return nil
}

// consumer pulls from one durable JetStream consumer and runs handlers.
type consumer struct {
	b        *Bus
	jc       jetstream.Consumer
	stream   jetstream.Stream   // the stream jc reads
	stranded jetstream.Consumer // jc's MAX_DELIVERIES advisories (rescue.go)
	// onDeadLetter is ConsumeOptions.OnDeadLetter.
	onDeadLetter func(ctx context.Context, m proto.Message, reason string) error
	rescueDone   chan struct{}
	prefix       string // subject prefix of the messages, before the tenant
	dlqPrefix    string
	decode       func(subject string, data []byte) (envelope, error)
	handle       func(context.Context, proto.Message) error
	log          zerolog.Logger

	ackWait    time.Duration
	maxDeliver int // ≤ 0: unlimited

	// ctx is the handlers' context: the caller's values, cancelled only
	// by a Stop whose own ctx ended before the handlers returned.
	ctx            context.Context
	cancelHandlers context.CancelFunc
	loopCtx        context.Context // done when Stop is called
	stopLoop       context.CancelFunc
	sem            chan struct{} // one token per running or reserved handler
	loopDone       chan struct{}
	// pullsGone is closed once the server can no longer deliver to a
	// pull request of this consumer: only then may a message be handed
	// back, or it could go to our own dead request (see endPulls).
	pullsGone chan struct{}
	handlers  sync.WaitGroup
	stopOnce  sync.Once
	stopped   chan struct{} // closed once Stop has nothing left to wait for
}

func (b *Bus) consume(ctx context.Context, jc jetstream.Consumer, stream jetstream.Stream, stranded jetstream.Consumer,
	prefix, dlqPrefix string, opts ConsumeOptions,
	decode func(string, []byte) (envelope, error), handle func(context.Context, proto.Message) error) (Consumer, error) {
	info, err := jc.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("bus: consumer info: %w", err)
	}
	conc := max(opts.Concurrency, 1)
	c := &consumer{
		b: b, jc: jc, stream: stream, stranded: stranded, onDeadLetter: opts.OnDeadLetter, rescueDone: make(chan struct{}),
		prefix: prefix, dlqPrefix: dlqPrefix, decode: decode, handle: handle,
		log:        b.log.With().Str("stream", info.Stream).Str("consumer", info.Name).Logger(),
		ackWait:    info.Config.AckWait,
		maxDeliver: info.Config.MaxDeliver,
		sem:        make(chan struct{}, conc),
		loopDone:   make(chan struct{}),
		pullsGone:  make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	if c.ackWait <= 0 {
		c.ackWait = 30 * time.Second // the server's default
	}
	// Handlers outlive ctx: only Stop ends them.
	c.ctx, c.cancelHandlers = context.WithCancel(context.WithoutCancel(ctx))
	c.loopCtx, c.stopLoop = context.WithCancel(c.ctx)
	if err := b.register(c); err != nil {
		c.stopLoop()
		c.cancelHandlers()
		return nil, err
	}
	go c.run()
	go c.rescueLoop()
	c.log.Info().Int("concurrency", conc).Dur("ack_wait", c.ackWait).Int("max_deliver", c.maxDeliver).Msg("consuming")
	return c, nil
}

// Stop implements Consumer.
func (c *consumer) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		c.stopLoop()
		go func() {
			<-c.loopDone
			<-c.pullsGone
			<-c.rescueDone
			c.handlers.Wait()
			c.b.unregister(c)
			c.cancelHandlers()
			c.log.Info().Msg("consumer stopped")
			close(c.stopped)
		}()
	})
	select {
	case <-c.stopped:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-c.stopped:
		return nil // both at once: nothing was cut short
	default:
	}
	c.log.Info().Err(ctx.Err()).Msg("handlers still running; handing their messages back")
	c.cancelHandlers()
	<-c.stopped
	return fmt.Errorf("bus: stop: %w", ctx.Err())
}

// Running implements Consumer.
func (c *consumer) Running() bool {
	if c.loopCtx.Err() != nil {
		return false
	}
	select {
	case <-c.loopDone:
		return false
	default:
		return true
	}
}

// run pulls as many messages as there are free handler slots, one pull
// request at a time, and starts a handler for each.
func (c *consumer) run() {
	var (
		late      []jetstream.Msg // arrived while stopping
		abandoned bool            // the last pull request was cut short
	)
	defer func() {
		close(c.loopDone)
		c.endPulls(abandoned, late)
	}()
	for {
		n := c.reserve()
		if n == 0 {
			return // stopping
		}
		fctx, cancel := context.WithTimeout(c.loopCtx, c.b.opts.PollWait)
		batch, err := c.jc.Fetch(n, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			c.release(n)
			if c.loopCtx.Err() != nil {
				return
			}
			if errors.Is(err, nats.ErrConnectionClosed) {
				c.log.Error().Err(err).Msg("connection closed; consumer ends")
				return
			}
			c.log.Warn().Err(err).Msg("pull request failed; trying again")
			c.pause(time.Second)
			continue
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			if c.loopCtx.Err() != nil {
				// Arrived while stopping: handed back once the pull is gone.
				late = append(late, msg)
				c.release(1)
				continue
			}
			c.handlers.Add(1)
			go func() {
				defer c.handlers.Done()
				defer c.release(1)
				c.process(msg)
			}()
		}
		cancel()
		c.release(n - got)
		if c.loopCtx.Err() != nil {
			abandoned = true
			return
		}
		if err := batch.Error(); err != nil &&
			!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoHeartbeat) {
			if errors.Is(err, nats.ErrConnectionClosed) {
				c.log.Error().Err(err).Msg("connection closed; consumer ends")
				return
			}
			c.log.Warn().Err(err).Msg("pull request ended with an error")
			c.pause(time.Second)
		}
	}
}

// pullGoneGrace is how long endPulls gives the jetstream client to
// unsubscribe the inbox of a pull request cut short by Stop.
const pullGoneGrace = 250 * time.Millisecond

// endPulls makes sure the server has forgotten this consumer's last pull
// request before anything is handed back, then hands back the messages
// that arrived while stopping, and closes pullsGone.
//
// A pull request cut short lives on in the server until the client's
// unsubscribe of its inbox arrives; the jetstream client sends that from
// its own goroutine just after the request ends. A nak that overtook it
// would have the server redeliver the message to the dead request, where
// nobody reads it, and the message would sit out a whole ack wait
// instead of going to another replica. So: give the client a moment to
// unsubscribe, then flush, which returns once the server has processed
// everything this connection sent before.
func (c *consumer) endPulls(abandoned bool, late []jetstream.Msg) {
	defer close(c.pullsGone)
	if abandoned {
		time.Sleep(pullGoneGrace)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.b.nc.FlushWithContext(ctx); err != nil {
			c.log.Warn().Err(err).Msg("flush after the last pull failed")
		}
		cancel()
	}
	for _, msg := range late {
		_ = msg.Nak()
	}
	if len(late) > 0 {
		c.log.Info().Int("messages", len(late)).Msg("handed back messages that arrived while stopping")
	}
}

// reserve waits for at least one free handler slot and takes all the free
// ones; it returns 0 when the consumer is stopping.
func (c *consumer) reserve() int {
	select {
	case c.sem <- struct{}{}:
	case <-c.loopCtx.Done():
		return 0
	}
	n := 1
	for n < cap(c.sem) {
		select {
		case c.sem <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

func (c *consumer) release(n int) {
	for range n {
		<-c.sem
	}
}

func (c *consumer) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.loopCtx.Done():
	}
}

// process decodes one message, runs the handler and settles the message.
func (c *consumer) process(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		// Only JetStream deliveries reach a pull consumer; this is a bug.
		c.log.Error().Err(err).Str("subject", msg.Subject()).Msg("message without JetStream metadata")
		_ = msg.Term()
		return
	}
	log := c.log.With().Str("subject", msg.Subject()).
		Uint64("stream_seq", meta.Sequence.Stream).Uint64("delivery", meta.NumDelivered).Logger()
	keep := c.keepAlive(msg, log)
	defer keep.stop()

	env, err := c.decode(msg.Subject(), msg.Data())
	if err != nil {
		c.deadLetter(msg, meta, log, keep, "undecodable: "+err.Error())
		return
	}
	lc := log.With().Str("tenant", env.tenant).Str("run", env.run)
	if env.event {
		lc = lc.Int32("page", env.page)
	}
	log = lc.Logger()

	d := Delivery{Num: meta.NumDelivered, Max: c.maxDeliver}
	herr := c.call(log, d, env.msg)
	if IsTransient(herr) {
		herr = c.retryTransient(log, d, env.msg, herr)
	}
	var perm *permanentError
	var retry *retryError
	last := d.Last()
	// Shutting down: the handlers' context was cancelled (whatever they
	// returned then is no verdict on the message), or the consumer is
	// stopping while the handler still waited out an outage.
	shutdown := c.ctx.Err() != nil || (c.loopCtx.Err() != nil && IsTransient(herr))
	switch {
	case herr == nil:
		keep.stop()
		if err := msg.Ack(); err != nil {
			log.Warn().Err(err).Msg("ack failed; the message will be redelivered")
		}
	case errors.As(herr, &perm):
		c.deadLetterDecoded(msg, meta, log, keep, env, "permanent: "+herr.Error())
	case shutdown || errors.As(herr, &retry):
		// Hand the message back: "not now" is not "failed". A job waiting
		// for a long run of its tenant must not be dead-lettered for its
		// patience, nor a message for the process's shutdown. Wait until
		// our own abandoned pull request is gone, so the message goes to
		// another replica and not to it.
		delay := time.Duration(0)
		if retry != nil && !shutdown {
			delay = retry.delay
		}
		if shutdown {
			<-c.pullsGone
		}
		if last {
			// A nak on the last delivery would leave the message in its
			// stream, never delivered again: publish a fresh copy.
			c.requeue(msg, meta, log, keep, herr, delay)
			return
		}
		keep.stop()
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn().Err(err).Msg("nak failed; the message comes back after its ack wait")
		}
		if shutdown {
			log.Info().Err(herr).Msg("handed back on shutdown")
		} else {
			log.Debug().Err(herr).Dur("retry_in", delay).Msg("handler asked to retry")
		}
	case last:
		c.deadLetterDecoded(msg, meta, log, keep, env, fmt.Sprintf("failed on its last allowed delivery (%d): %v", meta.NumDelivered, herr))
	default:
		delay := c.backoff(meta.NumDelivered)
		keep.stop()
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn().Err(err).Msg("nak failed; the message comes back after its ack wait")
		}
		log.Warn().Err(herr).Dur("retry_in", delay).Msg("handler failed; will retry")
	}
}

// retryTransient calls the handler again after growing delays while it
// fails with Transient (see there), for up to TransientFor, and returns
// its last answer. It gives up early when the consumer stops: the caller
// then hands the message back.
func (c *consumer) retryTransient(log zerolog.Logger, d Delivery, m proto.Message, herr error) error {
	deadline := time.Now().Add(c.b.opts.TransientFor)
	for n := uint64(1); IsTransient(herr); n++ {
		wait := c.backoff(n)
		if time.Now().Add(wait).After(deadline) {
			log.Warn().Err(herr).Dur("for", c.b.opts.TransientFor).
				Msg("still failing transiently; the failure now counts as a delivery")
			// An ordinary failure from here on: it spends a delivery.
			return fmt.Errorf("failing transiently for %s: %s", c.b.opts.TransientFor, herr)
		}
		if n == 1 || n%10 == 0 {
			log.Warn().Err(herr).Uint64("tries", n).Dur("retry_in", wait).Msg("transient failure; retrying in process")
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.loopCtx.Done():
			t.Stop()
			return herr
		}
		herr = c.call(log, d, m)
	}
	return herr
}

// call runs the handler, turning a panic into an error so one bad message
// cannot take the process down. The handler's context carries the logger
// and the delivery.
func (c *consumer) call(log zerolog.Logger, d Delivery, m proto.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error().Str("stack", string(debug.Stack())).Msgf("handler panicked: %v", r)
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return c.handle(context.WithValue(log.WithContext(c.ctx), deliveryKey{}, d), m)
}

// backoff is the redelivery delay after the n-th failed delivery.
func (c *consumer) backoff(n uint64) time.Duration {
	d := c.b.opts.RetryBase
	for i := uint64(1); i < n && d < c.b.opts.RetryMax; i++ {
		d *= 2
	}
	d = min(d, c.b.opts.RetryMax)
	// Jitter spreads out replicas that failed together (a database blip).
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// keeper tells JetStream a message is still being worked on.
type keeper struct {
	once sync.Once
	done chan struct{}
	wg   sync.WaitGroup
}

// keepAlive calls InProgress every third of the ack wait until stop, so a
// slow handler keeps its message instead of seeing it redelivered.
func (c *consumer) keepAlive(msg jetstream.Msg, log zerolog.Logger) *keeper {
	k := &keeper{done: make(chan struct{})}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		t := time.NewTicker(max(c.ackWait/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-k.done:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Warn().Err(err).Msg("in-progress signal failed")
				}
			}
		}
	}()
	return k
}

// stop ends the in-progress signals and waits until none is being sent,
// so the final ack, nak or term is the last word on the message.
func (k *keeper) stop() {
	k.once.Do(func() { close(k.done) })
	k.wg.Wait()
}

// requeue publishes a copy of a message whose deliveries ran out while
// its handler kept asking for a retry, so the copy starts with a fresh
// delivery count, and terminates the original.
func (c *consumer) requeue(msg jetstream.Msg, meta *jetstream.MsgMetadata, log zerolog.Logger, keep *keeper, why error, delay time.Duration) {
	hdr := nats.Header{}
	for k, v := range msg.Headers() {
		if !strings.HasPrefix(k, "Nats-") {
			hdr[k] = v
		}
	}
	n, _ := strconv.Atoi(hdr.Get(HeaderRequeues))
	hdr.Set(HeaderRequeues, strconv.Itoa(n+1))
	origID := msg.Headers().Get(nats.MsgIdHdr)
	if origID != "" && hdr.Get(HeaderOriginalMsgID) == "" {
		hdr.Set(HeaderOriginalMsgID, origID)
	}
	cp := &nats.Msg{Subject: msg.Subject(), Data: msg.Data(), Header: hdr}
	// A fresh id (the original's would be dropped as a duplicate) that is
	// the same if this very delivery is requeued twice.
	id := fmt.Sprintf("requeue/%s/%d", meta.Stream, meta.Sequence.Stream)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 5*time.Second)
	_, err := c.b.js.PublishMsg(ctx, cp, jetstream.WithMsgID(id), jetstream.WithExpectStream(meta.Stream))
	cancel()
	keep.stop()
	if err != nil {
		// Without a copy the original must stay: it is kept in its stream
		// (the server stops delivering it) rather than lost.
		_ = msg.NakWithDelay(delay)
		log.Error().Err(err).Msg("could not requeue a message out of deliveries; it stays in its stream")
		return
	}
	if err := msg.Term(); err != nil {
		log.Warn().Err(err).Msg("term after requeue failed")
	}
	log.Info().Err(why).Int("requeues", n+1).Msg("out of deliveries while waiting; requeued")
}

// deadLetterDecoded is deadLetter for a message its handler saw: the
// service is told first (OnDeadLetter). If it cannot take note now, the
// message is not dead-lettered but comes back later; on its last delivery
// that strands it, and its rescue (rescue.go) asks the service again.
func (c *consumer) deadLetterDecoded(msg jetstream.Msg, meta *jetstream.MsgMetadata, log zerolog.Logger, keep *keeper,
	env envelope, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 30*time.Second)
	err := c.tellDeadLetter(ctx, env, reason)
	cancel()
	if err != nil {
		keep.stop()
		delay := c.backoff(meta.NumDelivered)
		_ = msg.NakWithDelay(delay)
		log.Warn().Err(err).Str("reason", reason).Dur("retry_in", delay).
			Msg("the service could not take note of a dead letter; the message stays")
		return
	}
	c.deadLetter(msg, meta, log, keep, reason)
}

// dlqMessage is the dead letter of a message: its payload, its headers
// (but JetStream's own) and where it came from and why.
func (c *consumer) dlqMessage(subject string, data []byte, orig nats.Header, stream, consumer string,
	seq, deliveries uint64, reason string) *nats.Msg {
	hdr := nats.Header{}
	for k, v := range orig {
		if !strings.HasPrefix(k, "Nats-") {
			hdr[k] = v
		}
	}
	hdr.Set(HeaderDLQReason, headerValue(reason))
	hdr.Set(HeaderDLQSubject, subject)
	hdr.Set(HeaderDLQStream, stream)
	hdr.Set(HeaderDLQConsumer, consumer)
	hdr.Set(HeaderDLQStreamSeq, strconv.FormatUint(seq, 10))
	hdr.Set(HeaderDLQDeliveries, strconv.FormatUint(deliveries, 10))
	hdr.Set(HeaderDLQTime, time.Now().UTC().Format(time.RFC3339Nano))
	if id := orig.Get(nats.MsgIdHdr); id != "" {
		hdr.Set(HeaderDLQMsgID, id)
	}
	return &nats.Msg{Subject: c.dlqPrefix + strings.TrimPrefix(subject, c.prefix), Data: data, Header: hdr}
}

// deadLetter copies a message to SYNC_DLQ and terminates the original. If
// the copy cannot be stored the original is not terminated: a lost dead
// letter would be a lost change.
func (c *consumer) deadLetter(msg jetstream.Msg, meta *jetstream.MsgMetadata, log zerolog.Logger, keep *keeper, reason string) {
	dl := c.dlqMessage(msg.Subject(), msg.Data(), msg.Headers(), meta.Stream, meta.Consumer,
		meta.Sequence.Stream, meta.NumDelivered, reason)
	// The id makes a repeated dead-lettering of the same message (after a
	// lost Term) land once.
	id := fmt.Sprintf("%s/%d", meta.Stream, meta.Sequence.Stream)

	// Shutdown must not stop a dead letter half-way.
	ctx := context.WithoutCancel(c.ctx)
	var err error
	for attempt, wait := 1, 200*time.Millisecond; attempt <= 5; attempt, wait = attempt+1, wait*2 {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = c.b.js.PublishMsg(pctx, dl, jetstream.WithMsgID(id), jetstream.WithExpectStream(StreamDLQ))
		cancel()
		if err == nil || attempt == 5 {
			break
		}
		time.Sleep(wait)
	}
	keep.stop()
	if err != nil {
		delay := c.backoff(meta.NumDelivered)
		_ = msg.NakWithDelay(delay)
		log.Error().Err(err).Str("reason", reason).Msg("could not dead-letter; the message stays in its stream")
		return
	}
	if err := msg.Term(); err != nil {
		log.Warn().Err(err).Msg("term after dead-lettering failed; a redelivery will be dead-lettered again")
	}
	log.Warn().Str("reason", reason).Str("dlq_subject", dl.Subject).Msg("dead-lettered")
}

// headerValue makes s fit in a NATS header: one line, bounded length.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	const limit = 1024
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "") + "…"
	}
	return s
}
