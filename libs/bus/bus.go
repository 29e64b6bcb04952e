package bus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

// Names of the streams and durable consumers the bus declares. Operators
// and autoscalers (KEDA's nats-jetstream scaler) refer to them by name.
const (
	StreamJobs   = "SYNC_JOBS"
	StreamEvents = "SYNC_EVENTS"
	StreamDLQ    = "SYNC_DLQ"
	// StreamStranded keeps JetStream's MAX_DELIVERIES advisories of the
	// two work queues (see rescue.go).
	StreamStranded = "SYNC_STRANDED"

	ConsumerFetchers    = "fetchers"
	ConsumerReconcilers = "reconcilers"
)

// Subject prefixes; a tenant id follows each (sync.jobs.<tenant>).
const (
	SubjectJobs      = "sync.jobs."
	SubjectEvents    = "sync.events."
	SubjectDLQJobs   = "sync.dlq.jobs."
	SubjectDLQEvents = "sync.dlq.events."
)

// Defaults of Options.
const (
	DefaultJobsAckWait      = 60 * time.Second
	DefaultEventsAckWait    = 30 * time.Second
	DefaultJobsMaxDeliver   = 20
	DefaultEventsMaxDeliver = 10
	DefaultDuplicates       = 2 * time.Minute
	DefaultDLQMaxAge        = 14 * 24 * time.Hour
	DefaultRetryBase        = 2 * time.Second
	DefaultRetryMax         = 2 * time.Minute
	DefaultPollWait         = 10 * time.Second
	DefaultTransientFor     = time.Hour
	DefaultMaxStrandings    = 3
	DefaultPublishTimeout   = 5 * time.Second
	DefaultPublishRetryFor  = time.Minute
)

// Options tunes a Bus. The zero value gives production settings; tests
// shorten the waits so redelivery can be observed in seconds.
type Options struct {
	// Name identifies the connection in the server's monitoring pages;
	// default "entrasync-<program name>".
	Name string

	// JobsAckWait and EventsAckWait are how long JetStream waits for an
	// ack before handing a message to another replica. The bus extends
	// them while a handler runs (InProgress every third of the wait).
	JobsAckWait, EventsAckWait time.Duration
	// JobsMaxDeliver and EventsMaxDeliver bound deliveries per message;
	// a message still failing on its last delivery is dead-lettered.
	JobsMaxDeliver, EventsMaxDeliver int

	// Duplicates is the dedup window of every stream.
	Duplicates time.Duration
	// DLQMaxAge is how long dead letters are kept.
	DLQMaxAge time.Duration
	// Replicas is the stream replication factor (1 on a single server).
	Replicas int

	// RetryBase and RetryMax shape the delay before a failed message is
	// redelivered: RetryBase doubled per delivery, capped at RetryMax,
	// with ±20% jitter.
	RetryBase, RetryMax time.Duration

	// TransientFor is how long a handler failing with Transient is called
	// again in process, per delivery, before the failure counts against
	// the message's deliveries. The default outlasts a database restart
	// or failover by far; with JobsMaxDeliver or EventsMaxDeliver
	// deliveries it bounds how long a message that only ever fails
	// "transiently" (a bug that looks like an outage) is kept.
	TransientFor time.Duration

	// PollWait is how long one pull request waits for messages.
	PollWait time.Duration

	// PublishTimeout is how long a publish waits for JetStream's ack
	// before it sends the message again; PublishRetryFor is how long it
	// keeps sending it before it gives up. Both stay well inside the
	// dedup window (Duplicates), so the copies are one message.
	PublishTimeout, PublishRetryFor time.Duration

	// MaxStrandings is how often a message whose last delivery was never
	// answered (its process died) is published again before it is
	// dead-lettered instead (see rescue.go).
	MaxStrandings int
}

func (o *Options) setDefaults() {
	if o.Name == "" {
		o.Name = "entrasync-" + filepath.Base(os.Args[0])
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.JobsAckWait, DefaultJobsAckWait)
	def(&o.EventsAckWait, DefaultEventsAckWait)
	defInt(&o.JobsMaxDeliver, DefaultJobsMaxDeliver)
	defInt(&o.EventsMaxDeliver, DefaultEventsMaxDeliver)
	def(&o.Duplicates, DefaultDuplicates)
	def(&o.DLQMaxAge, DefaultDLQMaxAge)
	defInt(&o.Replicas, 1)
	def(&o.RetryBase, DefaultRetryBase)
	def(&o.RetryMax, DefaultRetryMax)
	def(&o.PollWait, DefaultPollWait)
	def(&o.TransientFor, DefaultTransientFor)
	defInt(&o.MaxStrandings, DefaultMaxStrandings)
	def(&o.PublishTimeout, DefaultPublishTimeout)
	def(&o.PublishRetryFor, DefaultPublishRetryFor)
	// A message sent again after the dedup window would be a second
	// message.
	if o.PublishTimeout+o.PublishRetryFor > o.Duplicates/2 {
		o.PublishRetryFor = max(0, o.Duplicates/2-o.PublishTimeout)
	}
	if o.RetryMax < o.RetryBase {
		o.RetryMax = o.RetryBase
	}
}

// Bus is one NATS connection with entrasync's streams and consumers
// declared on it. It is safe for concurrent use.
type Bus struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts Options
	log  zerolog.Logger

	jobs        jetstream.Stream
	events      jetstream.Stream
	fetchers    jetstream.Consumer
	reconcilers jetstream.Consumer
	// strandedJobs and strandedEvents read SYNC_STRANDED's advisories of
	// the fetchers and of the reconcilers.
	strandedJobs, strandedEvents jetstream.Consumer

	mu        sync.Mutex
	consumers map[*consumer]struct{}
	closed    bool
}

// Connect connects to NATS at url (comma-separated for a cluster) with
// production settings and makes sure the streams and consumers exist.
func Connect(ctx context.Context, url string, log zerolog.Logger) (*Bus, error) {
	return ConnectWith(ctx, url, Options{}, log)
}

// ConnectWith is Connect with explicit options.
func ConnectWith(ctx context.Context, url string, opts Options, log zerolog.Logger) (*Bus, error) {
	opts.setDefaults()
	log = log.With().Str("component", "bus").Logger()
	nc, err := nats.Connect(url,
		nats.Name(opts.Name),
		// Keep trying for ever: a NATS restart must delay work, not end
		// the process. Publishes meanwhile wait for their acks, and send
		// their message again, for PublishRetryFor (see publish).
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, 2*time.Second),
		nats.PingInterval(20*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(err).Msg("disconnected from NATS; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info().Str("server", c.ConnectedUrlRedacted()).Msg("reconnected to NATS")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Error().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS asynchronous error")
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("bus: connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b := &Bus{nc: nc, js: js, opts: opts, log: log, consumers: map[*consumer]struct{}{}}
	if err := b.declare(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

// declare creates or updates the streams and durable consumers. Every
// replica of every service runs it at start-up; the calls are idempotent.
func (b *Bus) declare(ctx context.Context) error {
	streams := []jetstream.StreamConfig{
		{
			Name:        StreamJobs,
			Description: "entrasync sync jobs, one per run, taken by the fetchers",
			Subjects:    []string{SubjectJobs + ">"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Duplicates:  b.opts.Duplicates,
			Replicas:    b.opts.Replicas,
		},
		{
			Name:        StreamEvents,
			Description: "entrasync sync events, one per Graph page, applied by the reconcilers",
			Subjects:    []string{SubjectEvents + ">"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Duplicates:  b.opts.Duplicates,
			Replicas:    b.opts.Replicas,
		},
		{
			Name:        StreamDLQ,
			Description: "entrasync dead letters: jobs and events no service could handle",
			Subjects:    []string{"sync.dlq.>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Duplicates:  b.opts.Duplicates,
			MaxAge:      b.opts.DLQMaxAge,
			Replicas:    b.opts.Replicas,
		},
		{
			Name:        StreamStranded,
			Description: "entrasync: JetStream's notices of jobs and events whose last delivery was never answered",
			Subjects:    []string{advisoryMaxDeliveries(StreamJobs, ConsumerFetchers), advisoryMaxDeliveries(StreamEvents, ConsumerReconcilers)},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    b.opts.Replicas,
		},
	}
	for _, cfg := range streams {
		s, err := b.js.CreateOrUpdateStream(ctx, cfg)
		if err != nil {
			return fmt.Errorf("bus: declare stream %s: %w", cfg.Name, err)
		}
		switch cfg.Name {
		case StreamJobs:
			b.jobs = s
		case StreamEvents:
			b.events = s
		}
	}
	var err error
	b.fetchers, err = b.js.CreateOrUpdateConsumer(ctx, StreamJobs, jetstream.ConsumerConfig{
		Durable:       ConsumerFetchers,
		Description:   "fetcher replicas share this consumer",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.opts.JobsAckWait,
		MaxDeliver:    b.opts.JobsMaxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("bus: declare consumer %s on %s: %w", ConsumerFetchers, StreamJobs, err)
	}
	b.reconcilers, err = b.js.CreateOrUpdateConsumer(ctx, StreamEvents, jetstream.ConsumerConfig{
		Durable:       ConsumerReconcilers,
		Description:   "reconciler replicas share this consumer",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.opts.EventsAckWait,
		MaxDeliver:    b.opts.EventsMaxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("bus: declare consumer %s on %s: %w", ConsumerReconcilers, StreamEvents, err)
	}
	for _, c := range []struct {
		stream, consumer string
		dst              *jetstream.Consumer
	}{{StreamJobs, ConsumerFetchers, &b.strandedJobs}, {StreamEvents, ConsumerReconcilers, &b.strandedEvents}} {
		name := c.consumer + "-stranded"
		*c.dst, err = b.js.CreateOrUpdateConsumer(ctx, StreamStranded, jetstream.ConsumerConfig{
			Durable:       name,
			Description:   "the " + c.consumer + " replicas rescue their stranded messages through this consumer",
			FilterSubject: advisoryMaxDeliveries(c.stream, c.consumer),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		if err != nil {
			return fmt.Errorf("bus: declare consumer %s on %s: %w", name, StreamStranded, err)
		}
	}
	return nil
}

// Connected reports an error unless the connection to NATS is up. While
// NATS is away the client reconnects by itself; publishes fail meanwhile.
func (b *Bus) Connected() error {
	if st := b.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("bus: NATS connection is %s", strings.ToLower(st.String()))
	}
	return nil
}

// Close stops every consumer started on this bus (waiting for their
// handlers), flushes pending acks and closes the connection.
func (b *Bus) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	cs := make([]*consumer, 0, len(b.consumers))
	for c := range b.consumers {
		cs = append(cs, c)
	}
	b.mu.Unlock()
	for _, c := range cs {
		_ = c.Stop(context.Background())
	}
	if b.nc.IsConnected() {
		// Acks are fire-and-forget: push them out before the socket goes.
		if err := b.nc.FlushTimeout(2 * time.Second); err != nil {
			b.log.Warn().Err(err).Msg("flush before close")
		}
	}
	b.nc.Close()
}

// ConsumerLag is how far one durable consumer is behind: what autoscaling
// watches (KEDA's nats-jetstream scaler uses Pending + AckPending).
type ConsumerLag struct {
	Stream   string
	Consumer string
	// Pending is the number of messages not yet delivered to anyone.
	Pending uint64
	// AckPending is the number delivered but not yet acknowledged.
	AckPending int
	// Redelivered is the number of unacknowledged messages delivered
	// more than once.
	Redelivered int
}

// Total is Pending + AckPending.
func (l ConsumerLag) Total() uint64 { return l.Pending + uint64(l.AckPending) }

// Lag reports the lag of the fetchers and the reconcilers consumers.
func (b *Bus) Lag(ctx context.Context) ([]ConsumerLag, error) {
	var out []ConsumerLag
	for _, c := range []jetstream.Consumer{b.fetchers, b.reconcilers} {
		info, err := c.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("bus: consumer info: %w", err)
		}
		out = append(out, ConsumerLag{
			Stream:      info.Stream,
			Consumer:    info.Name,
			Pending:     info.NumPending,
			AckPending:  info.NumAckPending,
			Redelivered: info.NumRedelivered,
		})
	}
	return out, nil
}

// DeadLetters counts the messages SYNC_DLQ holds, by the stream they were
// dead-lettered from (StreamJobs, StreamEvents). Dead letters are kept
// for Options.DLQMaxAge, so the count falls as old ones expire; alerts
// watch its increase.
func (b *Bus) DeadLetters(ctx context.Context) (map[string]uint64, error) {
	dlq, err := b.js.Stream(ctx, StreamDLQ)
	if err != nil {
		return nil, fmt.Errorf("bus: dead letters: %w", err)
	}
	info, err := dlq.Info(ctx, jetstream.WithSubjectFilter("sync.dlq.>"))
	if err != nil {
		return nil, fmt.Errorf("bus: dead letters: %w", err)
	}
	out := map[string]uint64{StreamJobs: 0, StreamEvents: 0}
	for subject, n := range info.State.Subjects {
		switch {
		case strings.HasPrefix(subject, SubjectDLQJobs):
			out[StreamJobs] += n
		case strings.HasPrefix(subject, SubjectDLQEvents):
			out[StreamEvents] += n
		}
	}
	return out, nil
}

// JobQueued reports whether SYNC_JOBS still holds a job of the run:
// waiting for a fetcher, or taken by one and not yet acknowledged. The
// scheduler asks before publishing a run's job again, because the dedup
// window is shorter than the time a job may wait when fetchers lag.
func (b *Bus) JobQueued(ctx context.Context, tenantID, runID string) (bool, error) {
	if err := validToken("tenant id", tenantID); err != nil {
		return false, err
	}
	subject := SubjectJobs + tenantID
	// A tenant has few jobs in the work queue (normally one at most), so
	// walking them is cheap.
	for seq := uint64(1); ; {
		m, err := b.jobs.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("bus: look for the job of run %s: %w", runID, err)
		}
		job := &syncv1.SyncJob{}
		if proto.Unmarshal(m.Data, job) == nil && job.GetRunId() == runID {
			return true, nil
		}
		seq = m.Sequence + 1
	}
}

// TenantInFlight returns how many of the tenant's jobs and events are
// still in their work queues: waiting for a replica, being handled, or
// coming back after a retry delay. Acknowledged and dead-lettered
// messages have left. The scheduler gives up a run that stopped moving
// only when nothing of its tenant is in flight.
func (b *Bus) TenantInFlight(ctx context.Context, tenantID string) (jobs, events uint64, err error) {
	if err := validToken("tenant id", tenantID); err != nil {
		return 0, 0, err
	}
	count := func(s jetstream.Stream, subject string) (uint64, error) {
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return 0, fmt.Errorf("bus: count messages on %s: %w", subject, err)
		}
		return info.State.Subjects[subject], nil
	}
	if jobs, err = count(b.jobs, SubjectJobs+tenantID); err != nil {
		return 0, 0, err
	}
	if events, err = count(b.events, SubjectEvents+tenantID); err != nil {
		return 0, 0, err
	}
	return jobs, events, nil
}

// register records a running consumer so Close can stop it; it fails
// once the bus is closed.
func (b *Bus) register(c *consumer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("bus: closed")
	}
	b.consumers[c] = struct{}{}
	return nil
}

func (b *Bus) unregister(c *consumer) {
	b.mu.Lock()
	delete(b.consumers, c)
	b.mu.Unlock()
}
