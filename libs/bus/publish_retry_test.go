package bus_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
)

// TestPublishOutlastsAnUnansweredAck cuts the bus off from NATS while it
// publishes a job: the ack cannot come, and the bus sends the message
// again until NATS is back, instead of failing the publish (and with it
// whatever the publisher read to make the message). The stream ends with
// one job however many copies were sent.
func TestPublishOutlastsAnUnansweredAck(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := t.Context()
		// The proxy forwards bytes; NATS's protocol passes as Postgres's does.
		proxy, proxied := devenv.NewPGProxy(t, url)
		logs := &syncBuffer{}
		opts := fast
		opts.PublishTimeout, opts.PublishRetryFor = 200*time.Millisecond, 45*time.Second
		b, err := bus.ConnectWith(ctx, proxied, opts, zerolog.New(logs))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		js := raw(t, url)
		before := streamMsgs(t, js, bus.StreamJobs)

		proxy.SetDown(true)
		published := make(chan error, 1)
		go func() { published <- b.PublishJob(ctx, newJob(uuid.NewString())) }()
		devenv.WaitFor(t, 20*time.Second, "the publish to be sent again", func() bool {
			return strings.Contains(logs.String(), "sending it again")
		})
		select {
		case err := <-published:
			t.Fatalf("the publish ended while NATS was out of reach: %v", err)
		default:
		}
		proxy.SetDown(false)
		select {
		case err := <-published:
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
		case <-time.After(40 * time.Second):
			t.Fatal("the publish did not end once NATS was back")
		}
		if n := streamMsgs(t, js, bus.StreamJobs) - before; n != 1 {
			t.Fatalf("SYNC_JOBS gained %d messages, want 1", n)
		}
	})
}

// TestPublishRetryStaysInsideTheDedupWindow: a bus whose dedup window
// leaves no time to send a message again sends it once.
func TestPublishRetryStaysInsideTheDedupWindow(t *testing.T) {
	forEachServer(t, func(t *testing.T, url string) {
		ctx := t.Context()
		proxy, proxied := devenv.NewPGProxy(t, url)
		opts := fast
		opts.Duplicates, opts.PublishTimeout = 100*time.Millisecond, 200*time.Millisecond
		b, err := bus.ConnectWith(ctx, proxied, opts, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		proxy.SetDown(true)
		start := time.Now()
		if err := b.PublishJob(ctx, newJob(uuid.NewString())); err == nil {
			t.Fatal("a publish NATS never acknowledged succeeded")
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("the publish took %s to give up: it was sent again past the dedup window", took)
		}
	})
}

// syncBuffer is a log sink the test reads while the bus writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
