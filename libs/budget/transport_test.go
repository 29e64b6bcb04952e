package budget

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// graphStub answers like Graph as each request's query asks: ru=N sets
// x-ms-resource-unit, throttle=S answers 429 with Retry-After S (and
// scope=... its x-ms-throttle-scope; throttle=none no Retry-After). It
// records when each request arrived, by now.
type graphStub struct {
	srv *httptest.Server
	now func() time.Time

	mu       sync.Mutex
	arrivals []arrival
}

type arrival struct {
	client string // the X-Client header: which replica and tenant
	at     time.Time
}

func newGraphStub(t *testing.T, now func() time.Time) *graphStub {
	g := &graphStub{now: now}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.arrivals = append(g.arrivals, arrival{client: r.Header.Get("X-Client"), at: g.now()})
		g.mu.Unlock()
		q := r.URL.Query()
		if ra := q.Get("throttle"); ra != "" {
			if ra != "none" {
				w.Header().Set("Retry-After", ra)
			}
			if s := q.Get("scope"); s != "" {
				w.Header().Set(HeaderThrottleScope, s)
			}
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		if ru := q.Get("ru"); ru != "" {
			w.Header().Set(HeaderResourceUnit, ru)
		}
		w.Write([]byte(`{"value":[]}`))
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *graphStub) log() []arrival {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]arrival(nil), g.arrivals...)
}

// client is one replica's HTTP client for one tenant, budgeted.
func (g *graphStub) client(b *Budget, key Key) *http.Client {
	u, _ := url.Parse(g.srv.URL)
	return &http.Client{Transport: &Transport{Budget: b, KeyFor: ForHost(u.Host, key)}}
}

func get(ctx context.Context, c *http.Client, rawURL, who string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Client", who)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return resp, nil
}

func mustGet(t *testing.T, c *http.Client, rawURL, who string, want int) {
	t.Helper()
	resp, err := get(t.Context(), c, rawURL, who)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d", who, rawURL, resp.StatusCode, want)
	}
}

// lastArrival is when the newest request reached the stub.
func (g *graphStub) lastArrival(t *testing.T, who string) time.Time {
	t.Helper()
	log := g.log()
	if len(log) == 0 || log[len(log)-1].client != who {
		t.Fatalf("the last request is not %s's: %+v", who, log)
	}
	return log[len(log)-1].at
}

// Through the Transport: the estimate is corrected by x-ms-resource-unit;
// after a 429 with Retry-After no request for that tenant reaches Graph,
// from any replica, before the Retry-After instant, and another tenant's
// requests go on at once; an Application-scoped 429 holds every tenant.
// The clock jumps to each instant a Take sleeps until, so the arrival
// times show exactly which waits the Transport asked for.
func TestTransport(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	clock.auto = true
	rs := replicas(t, 2, Config{Limits: smallLimits}, clock, clock) // capacity 90, 9 units/s
	g := newGraphStub(t, clock.Now)
	r0A, r1A, r1B := g.client(rs[0], keyA), g.client(rs[1], keyA), g.client(rs[1], keyB)
	base := g.srv.URL + "/v1.0"

	// Estimated 1 ($select), Graph says 3: both buckets pay 3.
	mustGet(t, r0A, base+"/users?$select=id&ru=3", "r0A", 200)
	if tenant, app := available(t, rs[1], keyA); tenant != 87 || app != 90000-3 {
		t.Fatalf("after a request of 3 units: tenant %v app %v, want 87 and %d", tenant, app, 90000-3)
	}
	// Estimated 2, Graph says 1: one comes back.
	mustGet(t, r0A, base+"/users?ru=1", "r0A", 200)
	if tenant, _ := available(t, rs[1], keyA); tenant != 86 {
		t.Fatalf("after a request of 1 unit: tenant %v, want 86", tenant)
	}

	mustGet(t, r0A, base+"/groups?throttle=1.5", "r0A", 429)
	throttled := g.lastArrival(t, "r0A")
	until := throttled.Add(1500 * time.Millisecond)

	mustGet(t, r1B, base+"/groups", "r1B", 200)
	if at := g.lastArrival(t, "r1B"); !at.Equal(throttled) {
		t.Fatalf("tenant B waited %s after tenant A's 429", at.Sub(throttled))
	}
	mustGet(t, r1A, base+"/groups", "r1A", 200)
	at := g.lastArrival(t, "r1A")
	if at.Before(until) {
		t.Fatalf("replica 1 sent tenant A's request %s before the Retry-After ended", until.Sub(at))
	}
	// The pause emptied the bucket: 1 unit is 1/9 s of refill after it.
	if at.After(until.Add(112 * time.Millisecond)) {
		t.Fatalf("tenant A's request came %s after the Retry-After, want at most 1/9 s", at.Sub(until))
	}

	// Application scope: every tenant of the app waits.
	mustGet(t, r0A, base+"/groups?throttle=2&scope=Application/ReadWrite/"+keyA.App+"/"+keyA.Tenant, "r0A", 429)
	appThrottled := g.lastArrival(t, "r0A")
	mustGet(t, r1B, base+"/groups", "r1B", 200)
	if at := g.lastArrival(t, "r1B"); at.Before(appThrottled.Add(2 * time.Second)) {
		t.Fatalf("tenant B went %s before the app's Retry-After ended", appThrottled.Add(2*time.Second).Sub(at))
	}

	// A 429 without Retry-After empties the tenant's bucket, pauses nothing.
	mustGet(t, r1B, base+"/groups?throttle=none", "r1B", 429)
	if tenant, _, p, err := rs[0].Available(t.Context(), keyB); err != nil || tenant > 0 || !p.IsZero() {
		t.Fatalf("after a 429 without Retry-After: %v units, paused until %s, %v; want 0, not paused", tenant, p, err)
	}

	// A host the KeyFor does not budget is sent as is.
	before, _ := available(t, rs[0], keyA)
	other := &http.Client{Transport: &Transport{Budget: rs[0], KeyFor: ForHost("graph.microsoft.com", keyA)}}
	mustGet(t, other, base+"/users", "other", 200)
	if after, _ := available(t, rs[0], keyA); after < before {
		t.Fatalf("an unbudgeted host took %v units", before-after)
	}
}

// On the real clock: a 429 with a fractional Retry-After from one replica,
// then requests from both replicas at once; none reaches the server before
// the Retry-After has passed.
func TestTransportRetryAfterOnTheRealClock(t *testing.T) {
	t.Parallel()
	rs := replicas(t, 2, Config{})
	g := newGraphStub(t, time.Now)
	base := g.srv.URL + "/v1.0"
	mustGet(t, g.client(rs[0], keyA), base+"/users?throttle=0.25", "first", 429)
	throttled := g.lastArrival(t, "first")

	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := g.client(rs[i%2], keyA)
			resp, err := get(t.Context(), c, base+"/users?$select=id", "next")
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("request %d: %v %v", i, resp, err)
			}
		}()
	}
	wg.Wait()
	for _, a := range g.log()[1:] {
		if d := a.at.Sub(throttled); d < 250*time.Millisecond {
			t.Errorf("a request arrived %s after the 429 asked for 250ms", d)
		}
	}
}

// A request whose context ends while it waits for units is never sent.
func TestTransportGivesUpWithTheContext(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := replicas(t, 1, Config{Limits: smallLimits}, clock)[0]
	g := newGraphStub(t, clock.Now)
	if err := b.Pause(t.Context(), keyA, epoch.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := returns(func() error {
		_, err := get(ctx, g.client(b, keyA), g.srv.URL+"/v1.0/users", "waiting")
		return err
	})
	clock.Sleepers(t, 1)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("request after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the request ignored its context")
	}
	if n := len(g.log()); n != 0 {
		t.Fatalf("%d requests reached the server during the pause", n)
	}
}

func TestResourceUnitsHeader(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"3": 3, " 1 ": 1, "0": -1, "-2": -1, "x": -1, "": -1, "2.5": -1} {
		h := http.Header{}
		h.Set(HeaderResourceUnit, in)
		n, ok := resourceUnits(h)
		if (want < 0 && ok) || (want >= 0 && (!ok || n != want)) {
			t.Errorf("%q: %d %v, want %d", in, n, ok, want)
		}
	}
}

// batchStub answers a JSON batch like Graph: each request its own
// status and headers inside a 200. A request whose url asks throttle=S is
// a 429 with Retry-After S (and scope=... its x-ms-throttle-scope), else a
// 200 stating ru=N units.
func batchStub(t *testing.T, now func() time.Time) (*httptest.Server, *[]time.Time) {
	var mu sync.Mutex
	var arrivals []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, now())
		mu.Unlock()
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				t.Error(err)
				return
			}
			body = zr
		}
		var req struct {
			Requests []struct{ ID, URL string } `json:"requests"`
		}
		if err := json.NewDecoder(body).Decode(&req); err != nil {
			t.Error(err)
			return
		}
		type answer struct {
			ID      string            `json:"id"`
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
		}
		var out []answer
		for _, it := range req.Requests {
			u, _ := url.Parse(it.URL)
			a := answer{ID: it.ID, Status: 200, Headers: map[string]string{}}
			if ra := u.Query().Get("throttle"); ra != "" {
				a.Status, a.Headers["Retry-After"] = 429, ra
				if sc := u.Query().Get("scope"); sc != "" {
					a.Headers[HeaderThrottleScope] = sc
				}
			} else if ru := u.Query().Get("ru"); ru != "" {
				a.Headers[HeaderResourceUnit] = ru
			}
			out = append(out, a)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"responses": out})
	}))
	t.Cleanup(srv.Close)
	return srv, &arrivals
}

func postBatch(t *testing.T, c *http.Client, base string, zip bool, urls ...string) {
	t.Helper()
	var reqs []map[string]string
	for i, u := range urls {
		reqs = append(reqs, map[string]string{"id": strconv.Itoa(i + 1), "method": "GET", "url": u})
	}
	raw, _ := json.Marshal(map[string]any{"requests": reqs})
	var body io.Reader = bytes.NewReader(raw)
	if zip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(raw)
		_ = zw.Close()
		// Not a bytes.Reader: the request gets no GetBody, as from the SDK's
		// compression middleware, and the Transport must keep its body.
		body = io.MultiReader(&buf)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/$batch", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if zip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct{ Responses []json.RawMessage }
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || len(answer.Responses) != len(urls) {
		t.Fatalf("batch answer %v, %v: the caller must still read every answer", answer, err)
	}
}

// TestTransportBatch: a JSON batch pays what its requests cost, each by
// its own path and query (members 3, $select -1), is corrected by what
// their answers say, and a 429 inside the batch's 200 pauses the tenant
// until its Retry-After, like one sent alone.
func TestTransportBatch(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	clock.auto = true
	rs := replicas(t, 1, Config{Limits: smallLimits}, clock) // capacity 90
	srv, arrivals := batchStub(t, clock.Now)
	u, _ := url.Parse(srv.URL)
	c := &http.Client{Transport: &Transport{Budget: rs[0], KeyFor: ForHost(u.Host, keyA)}}
	base := srv.URL + "/v1.0"

	// Estimated 2 + 3 + 2 = 7; the answers say 2, 3 and nothing (kept at
	// its estimate): 7, no correction.
	postBatch(t, c, base, false, "/groups/g1/members?$select=id&ru=2", "/groups/g2/members?ru=3", "/groups/g3/members?$select=id")
	if tenant, app := available(t, rs[0], keyA); tenant != 83 || app != 90000-7 {
		t.Fatalf("after a batch of 7 units: tenant %v app %v, want 83 and %d", tenant, app, 90000-7)
	}
	// Gzipped, as the SDK sends it: estimated 2 + 2, Graph says 1 + 1.
	postBatch(t, c, base, true, "/groups/g1/members?$select=id&ru=1", "/groups/g2/members?$select=id&ru=1")
	if tenant, _ := available(t, rs[0], keyA); tenant != 81 {
		t.Fatalf("after a gzipped batch of 2 units: tenant %v, want 81", tenant)
	}

	postBatch(t, c, base, false, "/groups/g1/members?$select=id&throttle=1.5", "/groups/g2/members?$select=id&ru=2")
	throttled := (*arrivals)[len(*arrivals)-1]
	postBatch(t, c, base, false, "/groups/g1/members?$select=id")
	if at := (*arrivals)[len(*arrivals)-1]; at.Before(throttled.Add(1500 * time.Millisecond)) {
		t.Fatalf("the next batch went %s after a 429 inside a batch with Retry-After 1.5", at.Sub(throttled))
	}
}

// TestTransportBatchPausesEachScope: one batch can hold 429s of both
// limits, a tenant-scoped one (Tenant_Application) and an app-scoped one
// (Application, x-ms-throttle-scope's documented format
// <Scope>/<Limit>/<ApplicationId>/<TenantId>), each with its own
// Retry-After. Each pauses its own bucket until its own Retry-After: the
// app's shorter wait is not lost behind the tenant's longer one, so
// another tenant of the app waits too; and the tenant waits its own.
func TestTransportBatchPausesEachScope(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	clock.auto = true
	rs := replicas(t, 1, Config{Limits: smallLimits}, clock)
	srv, arrivals := batchStub(t, clock.Now)
	u, _ := url.Parse(srv.URL)
	cA := &http.Client{Transport: &Transport{Budget: rs[0], KeyFor: ForHost(u.Host, keyA)}}
	cB := &http.Client{Transport: &Transport{Budget: rs[0], KeyFor: ForHost(u.Host, keyB)}}
	base := srv.URL + "/v1.0"
	last := func() time.Time { return (*arrivals)[len(*arrivals)-1] }

	postBatch(t, cA, base, false,
		"/groups/g1/members?$select=id&throttle=3&scope=Tenant_Application/ReadWrite/"+keyA.App+"/"+keyA.Tenant,
		"/groups/g2/members?$select=id&throttle=2&scope=Application/ReadWrite/"+keyA.App+"/"+keyA.Tenant,
		"/groups/g3/members?$select=id&ru=2")
	throttled := last()
	postBatch(t, cB, base, false, "/groups/g1/members?$select=id")
	if at := last(); at.Before(throttled.Add(2 * time.Second)) {
		t.Errorf("tenant B of the same app went %s after an Application-scoped 429 with Retry-After 2 inside tenant A's batch",
			at.Sub(throttled))
	}
	postBatch(t, cA, base, false, "/groups/g1/members?$select=id")
	if at := last(); at.Before(throttled.Add(3 * time.Second)) {
		t.Errorf("tenant A went %s after a Tenant_Application-scoped 429 with Retry-After 3 inside its batch", at.Sub(throttled))
	}
}
