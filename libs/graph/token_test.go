package graph

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/graphsim"
)

// fakeSleep records the waits asked for and returns at once.
type fakeSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *fakeSleep) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *fakeSleep) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// tokenRequests counts the fixture tenant's token requests.
func (f *fixture) tokenRequests() int {
	n := 0
	for _, r := range f.sim.Requests() {
		if strings.HasSuffix(r.Path, "/oauth2/v2.0/token") && strings.EqualFold(r.Tenant, f.tenant) {
			n++
		}
	}
	return n
}

// unauthorized counts Graph's 401s; a refused token names no tenant, so
// every one of the fixture's own simulator counts.
func (f *fixture) unauthorized() int {
	n := 0
	for _, r := range f.sim.Requests() {
		if strings.HasPrefix(r.Path, "/v1.0/") && r.Status == http.StatusUnauthorized {
			n++
		}
	}
	return n
}

// newClockedFixture is a fixture whose simulator issues hour-long tokens
// and runs its clock offset by what the test stores in offset.
func newClockedFixture(t *testing.T) (f *fixture, offset *atomic.Int64) {
	t.Helper()
	offset = new(atomic.Int64)
	sim, err := graphsim.New(graphsim.Options{
		TokenLifetime: time.Hour,
		Clock:         func() time.Time { return time.Now().Add(time.Duration(offset.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	f = &fixture{sim: sim, dir: graphsim.Generate(smallSpec), tenant: guid(), client: guid(), secret: "s3cret-" + guid()}
	sim.AddTenant(f.tenant, f.client, f.secret, f.dir)
	return f, offset
}

// TestExpiredTokenIsRenewedOnce: the simulator's clock moves past the
// token's lifetime mid-listing, as during a long Retry-After; Graph
// answers 401 and the client gets a new token from the authority and
// carries on, once.
func TestExpiredTokenIsRenewedOnce(t *testing.T) {
	t.Parallel()
	f, offset := newClockedFixture(t)
	cfg := f.config(t)
	cfg.PageSize = 2
	c := f.newClient(t, cfg)

	var got []User
	pages := 0
	for page, err := range c.Users(t.Context(), "") {
		if err != nil {
			t.Fatalf("after %d pages: %v", pages, err)
		}
		got = append(got, page...)
		if pages++; pages == 1 {
			offset.Store(int64(2 * time.Hour)) // the token is an hour past its end
		}
	}
	if len(got) != len(f.dir.Users()) {
		t.Errorf("got %d users, want %d", len(got), len(f.dir.Users()))
	}
	if n := f.tokenRequests(); n != 2 {
		t.Errorf("%d token requests, want 2 (the first and one renewal)", n)
	}
	if n := f.unauthorized(); n != 1 {
		t.Errorf("%d 401s from Graph, want 1", n)
	}
}

// TestTokenCacheSharesTokensBetweenClients: Clients built with one
// TokenCache for the same app and secret ask the authority once between
// them, also after Graph refused the token one of them held; a Client
// with another secret gets no token from the others'.
func TestTokenCacheSharesTokensBetweenClients(t *testing.T) {
	t.Parallel()
	f, offset := newClockedFixture(t)
	cfg := f.config(t)
	cfg.Tokens = NewTokenCache()
	list := func(c *Client) error {
		for _, err := range c.Users(t.Context(), "") {
			if err != nil {
				return err
			}
		}
		return nil
	}
	first, second := f.newClient(t, cfg), f.newClient(t, cfg)
	for i, c := range []*Client{first, second} {
		if err := list(c); err != nil {
			t.Fatalf("client %d: %v", i+1, err)
		}
	}
	if n := f.tokenRequests(); n != 1 {
		t.Errorf("%d token requests for two clients of one cache, want 1", n)
	}

	wrong, err := New(cfg, Credentials{TenantID: f.tenant, ClientID: f.client, ClientSecret: "not-" + f.secret})
	if err != nil {
		t.Fatal(err)
	}
	if err := list(wrong); !errors.Is(err, ErrAuth) {
		t.Errorf("a client with another secret listed with %v, want ErrAuth", err)
	}
	if n := f.tokenRequests(); n != 2 {
		t.Errorf("%d token requests after the wrong secret's client, want 2", n)
	}

	// The shared token expires: the first client to hear Graph's 401
	// renews it for both.
	offset.Store(int64(2 * time.Hour))
	for i, c := range []*Client{second, first} {
		if err := list(c); err != nil {
			t.Fatalf("client %d after the token expired: %v", 2-i, err)
		}
	}
	if n := f.tokenRequests(); n != 3 {
		t.Errorf("%d token requests, want 3 (one renewal for both clients)", n)
	}
	if n := f.unauthorized(); n != 1 {
		t.Errorf("%d 401s from Graph, want 1", n)
	}
}

func TestSecondUnauthorizedIsFinal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		fail   []int
		wantOK bool
	}{
		{"one 401 is retried with a new token", []int{401}, true},
		{"a second 401 is final", []int{401, 401}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, smallSpec)
			f.sim.SetFaults(f.tenant, graphsim.Faults{FailNext: tc.fail})
			c := f.newClient(t, f.config(t))
			_, _, err := collect(t, c.Groups(t.Context()), DefaultPageSize)
			if tc.wantOK {
				if err != nil {
					t.Fatal(err)
				}
			} else if !errors.Is(err, ErrAuth) || !IsPermanent(err) {
				t.Fatalf("got %v, want a permanent ErrAuth after the second 401", err)
			}
			if n := len(f.graphRequests()); n != 2 {
				t.Errorf("%d Graph requests, want 2", n)
			}
			if n := f.tokenRequests(); n != 2 {
				t.Errorf("%d token requests, want 2", n)
			}
		})
	}
}

// TestAuthorityThatDoesNotAnswerIsRetried: an authority that does not
// answer in time, or cannot be reached, has not refused the credentials:
// the token request is retried with backoff like a Graph 503, and the
// error at the end is transient, not ErrAuth.
func TestAuthorityThatDoesNotAnswerIsRetried(t *testing.T) {
	t.Parallel()
	t.Run("slow twice, then answers", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, smallSpec)
		f.sim.SetFaults(f.tenant, graphsim.Faults{StallAuthority: 2})
		rec := &fakeSleep{}
		cfg := f.config(t)
		cfg.RequestTimeout = 500 * time.Millisecond
		cfg.Sleep = rec.sleep
		c := f.newClient(t, cfg)
		// Bounds the test should the client wait for the authority forever.
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		users, _, err := collect(t, c.Users(ctx, ""), DefaultPageSize)
		if err != nil {
			t.Fatalf("authority slow twice: %v", err)
		}
		if len(users) != len(f.dir.Users()) {
			t.Errorf("got %d users, want %d", len(users), len(f.dir.Users()))
		}
		if w := rec.got(); len(w) != 2 || w[0] < 250*time.Millisecond || w[0] > 750*time.Millisecond {
			t.Errorf("waits %v, want two backoff waits, the first in [250ms, 750ms]", w)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := "https://" + ln.Addr().String() + "/"
		_ = ln.Close() // nothing listens there now: connections are refused
		f := newFixture(t, smallSpec)
		rec := &fakeSleep{}
		cfg := f.config(t)
		cfg.AuthorityHost = closed
		cfg.MaxAttempts = 3
		cfg.Sleep = rec.sleep
		c := f.newClient(t, cfg)
		_, _, err = collect(t, c.Users(t.Context(), ""), DefaultPageSize)
		if err == nil {
			t.Fatal("a token came from an authority nobody runs")
		}
		if errors.Is(err, ErrAuth) || IsPermanent(err) {
			t.Errorf("an unreachable authority read as a refusal (ErrAuth %v, permanent %v): %v", errors.Is(err, ErrAuth), IsPermanent(err), err)
		}
		if !strings.Contains(err.Error(), "token authority did not answer") {
			t.Errorf("error does not say the authority did not answer: %v", err)
		}
		if w := rec.got(); len(w) != 2 {
			t.Errorf("waits %v, want 2 (3 attempts)", w)
		}
	})
}
