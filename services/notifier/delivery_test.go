package notifier_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
	"github.com/entrasync/entrasync/services/notifier"
)

func TestMain(m *testing.M) { os.Exit(devenv.RunTests(m)) }

// clock is a hand-moved clock: the notifier never sleeps in these tests,
// each pass is a Tick at a chosen time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// bench is a store with one tenant whose synced run wrote a
// sync_completed task at start, a receiver answering with answer, and a
// notifier on a hand-moved clock.
type bench struct {
	t      *testing.T
	st     *store.Store
	tenant string
	start  time.Time
	clock  *clock
	n      *notifier.Notifier
	mu     sync.Mutex
	hits   int
}

func newBench(t *testing.T, answer func(hit int, w http.ResponseWriter)) *bench {
	t.Helper()
	ctx := context.Background()
	b := &bench{t: t, st: storetest.New(t), start: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	b.clock = &clock{now: b.start}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		b.mu.Lock()
		b.hits++
		hit := b.hits
		b.mu.Unlock()
		answer(hit, w)
	}))
	t.Cleanup(srv.Close)
	set := plan.DefaultSettings()
	set.Notify = plan.Notify{WebhookURL: srv.URL, OnCompletion: true, CompletionRecipients: []string{}}
	tn, err := b.st.CreateTenant(ctx, store.NewTenant{Name: "Contoso", EntraTenantID: "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00",
		ClientID: "3b9d2f64-1c8e-4a7b-b5d0-6e2f8a9c4d11", ClientSecret: "s3cret value", Seats: 5, Settings: &set})
	if err != nil {
		t.Fatal(err)
	}
	b.tenant = tn.ID
	if _, err := b.st.NewNotifySecret(ctx, b.tenant); err != nil {
		t.Fatal(err)
	}
	b.sync()
	b.n, err = notifier.New(notifier.Config{Clock: b.clock.Now, InitialBackoff: time.Minute, MaxBackoff: time.Hour,
		MaxRetryAfter: 10 * time.Minute, Recheck: 5 * time.Minute},
		notifier.Deps{Store: b.st, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sync runs one sync of one user straight through the store.
func (b *bench) sync() {
	b.t.Helper()
	ctx := context.Background()
	r, err := b.st.CreateRun(ctx, store.NewRun{TenantID: b.tenant, Kind: store.KindFull, Trigger: store.TriggerManual})
	if err != nil {
		b.t.Fatal(err)
	}
	ref := store.PageRef{TenantID: b.tenant, RunID: r.ID, RunSeq: r.Seq}
	user := store.DirUser{ID: "00000001-0000-4000-8000-000000000001", DisplayName: "Ada", Mail: "ada@contoso.com",
		UserPrincipalName: "ada@contoso.com", UserType: "Member", AccountEnabled: true}
	if err := b.st.ApplyUsersPage(ctx, ref, []store.DirUser{user}, b.start); err != nil {
		b.t.Fatal(err)
	}
	ref.Page = 1
	if err := b.st.ApplyGroupsPage(ctx, ref, nil, b.start); err != nil {
		b.t.Fatal(err)
	}
	if err := b.st.MarkRunFetched(ctx, ref, store.Fetched{Pages: 2}, b.start); err != nil {
		b.t.Fatal(err)
	}
	if done, err := b.st.TryFinalize(ctx, b.tenant, r.ID, b.start); err != nil || !done {
		b.t.Fatalf("finalize: %v %v", done, err)
	}
}

// tick makes one pass at start+at and returns the task as it is then.
func (b *bench) tick(at time.Duration) store.Notification {
	b.t.Helper()
	b.clock.Set(b.start.Add(at))
	if err := b.n.Tick(context.Background()); err != nil {
		b.t.Fatal(err)
	}
	ns, _, err := b.st.ListNotifications(context.Background(), b.tenant, nil, 10)
	if err != nil || len(ns) != 1 {
		b.t.Fatalf("notifications %+v %v, want the one task", ns, err)
	}
	return ns[0]
}

func (b *bench) sent() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits
}

func TestRetryAfterIsHonouredAndBounded(t *testing.T) {
	t.Parallel()
	b := newBench(t, func(hit int, w http.ResponseWriter) {
		switch hit {
		case 1:
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "86400") // more than MaxRetryAfter
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	n := b.tick(0)
	if n.Status != store.NotificationPending || n.Attempts != 1 || !n.NextAttemptAt.Equal(b.start.Add(2*time.Minute)) ||
		!strings.Contains(n.LastError, "HTTP 503") {
		t.Fatalf("after a 503 with Retry-After 120: %+v", n)
	}
	if b.tick(119 * time.Second); b.sent() != 1 {
		t.Fatalf("sent again before Retry-After: %d", b.sent())
	}
	n = b.tick(2 * time.Minute)
	if b.sent() != 2 || !n.NextAttemptAt.Equal(b.start.Add(12*time.Minute)) || !strings.Contains(n.LastError, "HTTP 429") {
		t.Fatalf("after a 429 asking a day: %+v (sent %d), want the 10 minute bound", n, b.sent())
	}
	n = b.tick(12 * time.Minute)
	if n.Status != store.NotificationDelivered || n.Attempts != 3 || n.DeliveredAt == nil || n.LastError != "" {
		t.Fatalf("after a 204: %+v", n)
	}
	if b.tick(24 * time.Hour); b.sent() != 3 {
		t.Fatalf("a delivered task was sent again: %d", b.sent())
	}
}

func TestATaskIsGivenUpAfterMaxAge(t *testing.T) {
	t.Parallel()
	b := newBench(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) })
	at := time.Duration(0)
	for range 100 {
		n := b.tick(at)
		if n.Status == store.NotificationFailed {
			if !strings.Contains(n.LastError, "given up 24h0m0s after it was written") || !strings.Contains(n.LastError, "HTTP 502") ||
				n.FailedAt == nil || at > 24*time.Hour {
				t.Fatalf("given up at %v: %+v", at, n)
			}
			// Backoff doubles from a minute (±50%) up to an hour: about
			// 30 tries in a day.
			if n.Attempts < 20 || n.Attempts > 40 {
				t.Fatalf("%d attempts in a day", n.Attempts)
			}
			return
		}
		if n.Status != store.NotificationPending || n.NextAttemptAt.Before(b.start.Add(at)) {
			t.Fatalf("at %v: %+v", at, n)
		}
		at = n.NextAttemptAt.Sub(b.start)
	}
	t.Fatal("never given up")
}

func TestATenantWithoutAWebhookKeepsItsTasks(t *testing.T) {
	t.Parallel()
	b := newBench(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusOK) })
	_, _, err := b.st.ChangeSettings(context.Background(), b.tenant, func(s plan.Settings) (plan.Settings, error) {
		s.Notify.WebhookURL = ""
		return s, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n := b.tick(0)
	if n.Status != store.NotificationPending || n.Attempts != 0 || !strings.Contains(n.LastError, "no webhook configured") ||
		!n.NextAttemptAt.Equal(b.start.Add(5*time.Minute)) {
		t.Fatalf("without a webhook: %+v", n)
	}
	n = b.tick(24*time.Hour - time.Minute)
	if n.Status != store.NotificationFailed || !strings.Contains(n.LastError, "no webhook configured") || b.sent() != 0 {
		t.Fatalf("a day without a webhook: %+v (sent %d)", n, b.sent())
	}
}
