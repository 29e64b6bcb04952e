package budget

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Graph's headers about resource units (throttling-limits.md).
const (
	// HeaderResourceUnit is what a request actually cost.
	HeaderResourceUnit = "x-ms-resource-unit"
	// HeaderThrottleScope says on a 429 which limit was hit:
	// <Scope>/<Limit>/<ApplicationId>/<TenantId>, Scope being
	// Tenant_Application, Tenant or Application.
	HeaderThrottleScope = "x-ms-throttle-scope"
)

// Transport is an http.RoundTripper that makes every request to Graph
// pay its resource units to a Budget before it is sent: it estimates the
// cost (Cost), takes it (waiting as long as the budget says), sends the
// request, corrects the estimate with Graph's x-ms-resource-unit, and on a
// 429 pauses the tenant (or, for an Application-scoped 429, the app) until
// Retry-After has passed, for every replica.
//
// It does not retry: whatever sits above it (libs/graph's retrier) does,
// and each attempt then pays again, as it does at Graph. Put it below the
// retry loop, as the transport of the HTTP client.
type Transport struct {
	// Base sends the requests; nil is http.DefaultTransport.
	Base http.RoundTripper
	// Budget is where the units come from.
	Budget *Budget
	// KeyFor says which budget a request pays from; false sends it
	// unbudgeted (a token request to the authority, another host).
	KeyFor func(*http.Request) (Key, bool)
	// Cost estimates a request's units; nil is CostOf.
	Cost func(*http.Request) int
	// Log hears of corrections and pauses that could not be recorded;
	// the zero value logs nothing.
	Log zerolog.Logger
}

// ForHost is a KeyFor that budgets every request to host (Graph's host,
// e.g. "graph.microsoft.com", with the port if the URL has one) under key.
// A fetcher builds one Graph client per tenant, so one key per client.
func ForHost(host string, key Key) func(*http.Request) (Key, bool) {
	return func(r *http.Request) (Key, bool) {
		return key, strings.EqualFold(r.URL.Host, host)
	}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	key, ok := t.KeyFor(req)
	if !ok {
		return base.RoundTrip(req)
	}
	ctx := req.Context()
	var costs map[string]int // a batch's requests
	if isBatch(req) {
		r, err := withBody(req)
		if err != nil {
			return nil, err
		}
		req = r
		costs, _ = batchCosts(req)
	}
	costOf := t.Cost
	if costOf == nil {
		costOf = CostOf
	}
	estimated := costOf(req)
	if err := t.Budget.Take(ctx, key, estimated); err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		// Whether Graph counted it is unknown: the units stay spent.
		return nil, err
	}
	// The answer is in: record what it says even if the caller gives up
	// now, so no other replica runs into the same wall.
	bctx := context.WithoutCancel(ctx)
	actual, ok := resourceUnits(resp.Header)
	var throttles []throttle
	if resp.StatusCode == http.StatusTooManyRequests {
		throttles = []throttle{{retryAfter: resp.Header.Get("Retry-After"), scope: resp.Header.Get(HeaderThrottleScope)}}
	}
	if costs != nil && resp.StatusCode == http.StatusOK {
		// A batch's answers each say what they cost and whether Graph
		// throttled them.
		if out, read := readBatchOutcome(resp, costs, t.Budget.clock.Now()); read {
			actual, ok = out.units, true
			throttles = out.throttles
		}
	}
	if ok && actual != estimated {
		if err := t.Budget.Settle(bctx, key, estimated, actual); err != nil {
			t.Log.Warn().Err(err).Str("tenant", key.Tenant).Msg("budget: correction not recorded")
		}
	}
	for _, th := range throttles {
		now := t.Budget.clock.Now()
		wait, _ := parseRetryAfter(th.retryAfter, now)
		// A pause longer than a bucket is kept would be dropped with it.
		until := now.Add(min(wait, t.Budget.cfg.TTL))
		var perr error
		if th.appScoped() {
			perr = t.Budget.PauseApp(bctx, key.App, until)
		} else {
			perr = t.Budget.Pause(bctx, key, until)
		}
		if perr != nil {
			t.Log.Warn().Err(perr).Str("tenant", key.Tenant).Msg("budget: Retry-After not recorded")
		}
	}
	return resp, nil
}

// throttle is what a 429 says: its Retry-After and x-ms-throttle-scope.
type throttle struct {
	retryAfter, scope string
}

// appScoped reports whether the 429 names the app's limit across all
// tenants: x-ms-throttle-scope is <Scope>/<Limit>/<ApplicationId>/<TenantId>
// (throttling-limits.md, "Throttled responses requests"), and Scope
// Application is "All requests for the current application". Any other
// scope (Tenant_Application, or a 429 without the header) holds the
// tenant.
func (th throttle) appScoped() bool {
	scope, _, _ := strings.Cut(strings.TrimSpace(th.scope), "/")
	return strings.EqualFold(scope, "Application")
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// resourceUnits reads x-ms-resource-unit: a positive integer.
func resourceUnits(h http.Header) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get(HeaderResourceUnit)))
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// parseRetryAfter reads a Retry-After value: delay-seconds, which Graph
// sends with a fraction ("1.5"), or an HTTP-date. ok is false when v is
// empty or unreadable.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(s) || math.IsInf(s, 0) || s < 0 {
			return 0, false
		}
		// Rounded up: a pause never ends before Graph's.
		ns := math.Ceil(s * float64(time.Second))
		if ns >= math.MaxInt64 {
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(ns), true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}
