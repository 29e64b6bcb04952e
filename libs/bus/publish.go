package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

// ErrInvalid marks a job or event the bus refuses to publish because it
// lacks what its subject or message id is made of.
var ErrInvalid = errors.New("bus: invalid message")

// ErrTooLarge marks a job or event larger than the NATS server accepts
// (its max_payload, 1 MiB by default). Publishing it again cannot work:
// the publisher must split its content (a fetcher, its page) or fail.
var ErrTooLarge = errors.New("bus: message too large")

// MaxPayload is the largest job or event, encoded, that the connected
// NATS server accepts (headers included, the bus's few hundred bytes of
// them left out). Publishers size what they put in one message by it.
func (b *Bus) MaxPayload() int64 { return b.nc.MaxPayload() - headerAllowance }

// headerAllowance is what the bus keeps free in a message for its
// headers (message id, requeue and dead-letter headers).
const headerAllowance = 4096

// NewJob is a run's job as fetchers take it from SYNC_JOBS: the api and the
// scheduler publish one for each run they create, from what the store says
// of the run. Every run reads the whole directory (JOB_KIND_FULL);
// delta says the run reads a delta round (else the whole directory);
// scheduled tells a run the scheduler created for a slot from one an admin
// triggered, and requestedAt is when the run was created.
func NewJob(tenantID, runID string, runSeq int64, delta, scheduled bool, requestedAt time.Time) *syncv1.SyncJob {
	trigger := syncv1.Trigger_TRIGGER_MANUAL
	if scheduled {
		trigger = syncv1.Trigger_TRIGGER_SCHEDULE
	}
	kind := syncv1.JobKind_JOB_KIND_FULL
	if delta {
		kind = syncv1.JobKind_JOB_KIND_DELTA
	}
	return &syncv1.SyncJob{
		TenantId:    tenantID,
		RunId:       runID,
		RunSeq:      runSeq,
		Kind:        kind,
		Trigger:     trigger,
		RequestedAt: timestamppb.New(requestedAt),
	}
}

// PublishJob publishes a run's job on sync.jobs.<tenant> with the run id
// as message id, so publishing the same run twice yields one job.
func (b *Bus) PublishJob(ctx context.Context, job *syncv1.SyncJob) error {
	return b.PublishJobWithID(ctx, job, job.GetRunId())
}

// PublishJobWithID publishes a job with an explicit message id. The
// scheduler uses one per (tenant, slot) so that its replicas, racing for
// the same slot, leave a single job in the stream.
func (b *Bus) PublishJobWithID(ctx context.Context, job *syncv1.SyncJob, msgID string) error {
	if err := validToken("tenant id", job.GetTenantId()); err != nil {
		return err
	}
	if job.GetRunId() == "" {
		return fmt.Errorf("%w: job of tenant %s has no run id", ErrInvalid, job.GetTenantId())
	}
	if msgID == "" {
		return fmt.Errorf("%w: empty message id", ErrInvalid)
	}
	return b.publish(ctx, StreamJobs, SubjectJobs+job.GetTenantId(), msgID, job)
}

// PublishEvent publishes an event on sync.events.<tenant> with the message
// id EventMsgID gives it, so a fetcher that publishes a page again after
// a lost ack does not make a second event.
func (b *Bus) PublishEvent(ctx context.Context, ev *syncv1.SyncEvent) error {
	if err := validToken("tenant id", ev.GetTenantId()); err != nil {
		return err
	}
	id, err := EventMsgID(ev)
	if err != nil {
		return err
	}
	return b.publish(ctx, StreamEvents, SubjectEvents+ev.GetTenantId(), id, ev)
}

// EventMsgID returns an event's Nats-Msg-Id: "<run>/<page>" for data
// pages, "<run>/started/<attempt>", "<run>/fetched/<first page>" and
// "<run>/failed" for the events that frame a run. A second fetch attempt
// of a run (its job came back after a lost ack) frames its pages with
// events of its own, which the dedup window must not drop as repeats of
// the first attempt's.
func EventMsgID(ev *syncv1.SyncEvent) (string, error) {
	run := ev.GetRunId()
	if run == "" {
		return "", fmt.Errorf("%w: event of tenant %s has no run id", ErrInvalid, ev.GetTenantId())
	}
	var step string
	switch ev.GetBody().(type) {
	case *syncv1.SyncEvent_Started:
		step = "started/" + strconv.Itoa(int(ev.GetStarted().GetAttempt()))
	case *syncv1.SyncEvent_Fetched:
		step = "fetched/" + strconv.FormatInt(int64(ev.GetFetched().GetFirstPage()), 10)
	case *syncv1.SyncEvent_Failed:
		step = "failed"
	case nil:
		return "", fmt.Errorf("%w: event of run %s has no body", ErrInvalid, run)
	default:
		if ev.GetPage() < 0 {
			return "", fmt.Errorf("%w: data event of run %s has page %d", ErrInvalid, run, ev.GetPage())
		}
		step = strconv.Itoa(int(ev.GetPage()))
	}
	return run + "/" + step, nil
}

func (b *Bus) publish(ctx context.Context, stream, subject, msgID string, m proto.Message) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("bus: encode %s: %w", subject, err)
	}
	// Refused here with a clear error, not by the server with a vague one
	// after a round trip. The allowance leaves room for the headers a dead
	// letter or a requeued copy adds: a message that fits now must still
	// fit then.
	if limit := b.MaxPayload(); int64(len(data)) > limit {
		return fmt.Errorf("%w: %s (id %s) is %d bytes encoded; the NATS server takes at most %d: split it",
			ErrTooLarge, subject, msgID, len(data), limit)
	}
	// JetStream acks a message once it stored it. An ack that does not
	// come in time (a NATS restart or failover, a server too busy to
	// answer) says nothing about whether the message was stored: it is
	// sent again with the same id, which JetStream keeps once, until
	// PublishRetryFor has passed. A publisher that gave up at once would
	// throw away what it read to make the message (a fetcher, its run's
	// pages so far).
	send := func() error {
		actx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
		defer cancel()
		msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
		_, err := b.js.PublishMsg(actx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(stream))
		if err != nil && (ctx.Err() != nil || !unanswered(err)) {
			return backoff.Permanent(err)
		}
		return err
	}
	var again backoff.BackOff = &backoff.StopBackOff{} // a dedup window too short to send again in
	if b.opts.PublishRetryFor > 0 {
		bo := backoff.NewExponentialBackOff()
		bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = 100*time.Millisecond, 5*time.Second, b.opts.PublishRetryFor
		again = bo
	}
	err = backoff.RetryNotify(send, backoff.WithContext(again, ctx), func(err error, wait time.Duration) {
		b.log.Warn().Err(err).Str("subject", subject).Str("msg_id", msgID).Dur("wait", wait).
			Msg("bus: publish not acknowledged in time; sending it again")
	})
	if err != nil {
		return fmt.Errorf("bus: publish %s (id %s): %w", subject, msgID, err)
	}
	return nil
}

// unanswered tells a publish whose ack did not come in time from one
// JetStream refused.
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}

// validToken checks that s can be one token of a NATS subject.
func validToken(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	if strings.ContainsAny(s, ".*> \t\r\n") {
		return fmt.Errorf("%w: %s %q cannot be a subject token", ErrInvalid, what, s)
	}
	return nil
}
