package bus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

// EventWindow keeps one tenant's events in SYNC_EVENTS to a limit: its
// PublishEvent waits until fewer than the limit of the tenant's events
// are still in the work queue (waiting, being applied, or coming back
// after a retry) before it publishes one more.
//
// It is what makes the shared work queue fair between tenants. SYNC_EVENTS
// is one FIFO queue: without a window, a large tenant's full sync puts
// thousands of pages in front of a small tenant's three, which then wait
// for all of them. With one, a tenant's events ahead of anyone else's are
// at most the limit, so a run waits behind at most limit × (tenants
// syncing at the same moment) events, however large the others are. The
// large tenant loses nothing: its fetcher reads ahead of the reconcilers
// by the limit, which keeps them busy, instead of by its whole directory.
//
// Ordering, leases and idempotence are untouched: events are published
// exactly as before, only later.
//
// One run publishes a tenant's events at a time (the fetcher holds the
// tenant's lease), so the window counts what the queue holds once and then
// lets that many publishes through without asking again. It is safe for
// concurrent use by the goroutines of one run.
type EventWindow struct {
	b      *Bus
	tenant string
	limit  int

	mu   sync.Mutex
	room int // publishes allowed before the queue is counted again
}

// Backoff between two counts while a window is full.
const (
	windowPollMin = 20 * time.Millisecond
	windowPollMax = time.Second
)

// EventWindow returns the window of a tenant's events; a limit of 0 or
// less means no limit (Wait returns at once).
func (b *Bus) EventWindow(tenantID string, limit int) (*EventWindow, error) {
	if err := validToken("tenant id", tenantID); err != nil {
		return nil, err
	}
	return &EventWindow{b: b, tenant: tenantID, limit: limit}, nil
}

// PublishEvent publishes one of the tenant's events (Bus.PublishEvent)
// once fewer than the limit of them are in SYNC_EVENTS. It returns how
// long it waited for the queue to drain, and ends early with ctx's error
// or the error of counting the queue (NATS unreachable: a publish would
// fail too). Publishes through one window are one at a time, so that a
// count never misses a publish that was let through before it.
func (w *EventWindow) PublishEvent(ctx context.Context, ev *syncv1.SyncEvent) (time.Duration, error) {
	if ev.GetTenantId() != w.tenant {
		return 0, fmt.Errorf("%w: event of tenant %s through the window of tenant %s", ErrInvalid, ev.GetTenantId(), w.tenant)
	}
	if w.limit <= 0 {
		return 0, w.b.PublishEvent(ctx, ev)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	waited, err := w.wait(ctx)
	if err != nil {
		return waited, err
	}
	if err := w.b.PublishEvent(ctx, ev); err != nil {
		return waited, err
	}
	w.room--
	return waited, nil
}

// wait returns once the window has room; w.mu is held.
func (w *EventWindow) wait(ctx context.Context) (time.Duration, error) {
	var (
		start   time.Time
		pause   = windowPollMin
		subject = SubjectEvents + w.tenant
	)
	for w.room <= 0 {
		info, err := w.b.events.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return waited(start), fmt.Errorf("bus: count the events of tenant %s: %w", w.tenant, err)
		}
		w.room = w.limit - int(info.State.Subjects[subject])
		if w.room > 0 {
			break
		}
		if start.IsZero() {
			start = time.Now()
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return waited(start), ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, windowPollMax)
	}
	return waited(start), nil
}

func waited(since time.Time) time.Duration {
	if since.IsZero() {
		return 0
	}
	return time.Since(since)
}
