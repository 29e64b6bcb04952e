package graphsim_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/graphsim"
)

func TestOpenIDConfiguration(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 31, Users: 3}))
	for _, key := range []string{tc.id, strings.ToUpper(tc.id), tc.dir.Domain(), "organizations"} {
		resp, err := s.client.Get(s.srv.AuthorityURL() + key + "/v2.0/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		body := decode(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", key, resp.StatusCode, body)
		}
		for _, field := range []string{"issuer", "token_endpoint", "authorization_endpoint", "jwks_uri"} {
			v, _ := body[field].(string)
			// MSAL checks that the issuer shares scheme and host with the authority.
			if !strings.HasPrefix(v, strings.TrimSuffix(s.srv.AuthorityURL(), "/")+"/") {
				t.Errorf("%s: %s = %q is not on the authority's host", key, field, v)
			}
		}
		if te := body["token_endpoint"].(string); te != s.srv.AuthorityURL()+key+"/oauth2/v2.0/token" {
			t.Errorf("%s: token_endpoint %s", key, te)
		}
	}
	resp, err := s.client.Get(s.srv.AuthorityURL() + "9e9e9e9e-0000-4000-8000-000000000000/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	body := decode(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(body["error_description"].(string), "AADSTS90002: Tenant '9e9e9e9e-0000-4000-8000-000000000000' not found.") {
		t.Errorf("unknown tenant: %d %v", resp.StatusCode, body)
	}
}

var traceRe = regexp.MustCompile(` Trace ID: [0-9a-f-]{36} Correlation ID: [0-9a-f-]{36} Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$`)

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{TokenLifetime: 30 * time.Minute})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 32, Users: 3}))
	good := func(change func(url.Values)) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}, "client_id": {tc.clientID}, "client_secret": {tc.secret},
			"scope": {"https://graph.microsoft.com/.default openid offline_access profile"}}
		if change != nil {
			change(v)
		}
		return v
	}
	cases := []struct {
		name   string
		tenant string
		form   url.Values
		status int
		err    string
		code   float64
		desc   string
	}{
		{"ok, with the scopes MSAL adds", tc.id, good(nil), 200, "", 0, ""},
		{"ok, tenant by domain", tc.dir.Domain(), good(nil), 200, "", 0, ""},
		{"ok, scope by Graph's app id", tc.id, good(func(v url.Values) { v.Set("scope", "00000003-0000-0000-c000-000000000000/.default") }), 200, "", 0, ""},
		{"unknown tenant", "9e9e9e9e-0000-4000-8000-000000000000", good(nil), 400, "invalid_request", 90002, "AADSTS90002: Tenant '9e9e9e9e-0000-4000-8000-000000000000' not found."},
		{"wrong client id", tc.id, good(func(v url.Values) { v.Set("client_id", "0badc11e-0000-4000-8000-000000000000") }), 400, "unauthorized_client", 700016,
			"AADSTS700016: Application with identifier '0badc11e-0000-4000-8000-000000000000' was not found in the directory"},
		{"wrong secret", tc.id, good(func(v url.Values) { v.Set("client_secret", "nope") }), 401, "invalid_client", 7000215,
			"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" + tc.clientID + "'."},
		{"no secret", tc.id, good(func(v url.Values) { v.Del("client_secret") }), 401, "invalid_client", 7000218, "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'."},
		{"no grant type", tc.id, good(func(v url.Values) { v.Del("grant_type") }), 400, "invalid_request", 900144, "AADSTS900144: The request body must contain the following parameter: 'grant_type'."},
		{"other grant type", tc.id, good(func(v url.Values) { v.Set("grant_type", "password") }), 400, "unsupported_grant_type", 70003, "AADSTS70003:"},
		{"scope without /.default", tc.id, good(func(v url.Values) { v.Set("scope", "User.Read.All") }), 400, "invalid_scope", 1002012, "AADSTS1002012: The provided value for scope User.Read.All is not valid."},
		{"unknown resource", tc.id, good(func(v url.Values) { v.Set("scope", "https://vault.azure.net/.default") }), 400, "invalid_resource", 500011, "AADSTS500011: The resource principal named https://vault.azure.net was not found"},
		// The URL Graph is reached by is not Graph's resource: Entra ID
		// knows no principal by the simulator's (or a gateway's) origin.
		{"scope on the simulator's host", tc.id, good(func(v url.Values) { v.Set("scope", strings.TrimSuffix(s.srv.GraphURL(), "/v1.0")+"/.default") }), 400, "invalid_resource", 500011,
			"AADSTS500011: The resource principal named " + strings.TrimSuffix(s.srv.GraphURL(), "/v1.0") + " was not found in the tenant named " + strings.TrimSuffix(tc.dir.Domain(), ".onmicrosoft.com") + ". This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."},
		{"national cloud's Graph in the public cloud", tc.id, good(func(v url.Values) { v.Set("scope", "https://graph.microsoft.us/.default") }), 400, "invalid_resource", 500011, "AADSTS500011: The resource principal named https://graph.microsoft.us was not found"},
		{"no scope", tc.id, good(func(v url.Values) { v.Del("scope") }), 400, "invalid_request", 900144, "AADSTS900144: The request body must contain the following parameter: 'scope'."},
	}
	for _, c := range cases {
		status, body := s.tokenRequest(c.tenant, c.form)
		if status != c.status {
			t.Errorf("%s: %d %v, want %d", c.name, status, body, c.status)
			continue
		}
		if c.status == 200 {
			if body["token_type"] != "Bearer" || body["expires_in"] != float64(1800) || body["access_token"] == "" {
				t.Errorf("%s: %v", c.name, body)
			}
			if r := s.get(body["access_token"].(string), "/users?$top=1"); r.status != 200 {
				t.Errorf("%s: the token does not open Graph: %d %s", c.name, r.status, r.raw)
			}
			continue
		}
		desc, _ := body["error_description"].(string)
		codes, _ := body["error_codes"].([]any)
		if body["error"] != c.err || len(codes) != 1 || codes[0] != c.code || !strings.HasPrefix(desc, c.desc) || !traceRe.MatchString(desc) ||
			body["trace_id"] == "" || body["correlation_id"] == "" || body["timestamp"] == "" {
			t.Errorf("%s: %v; want error %s, code %v, description starting %q and ending with trace, correlation and timestamp", c.name, body, c.err, c.code, c.desc)
		}
	}

	// The authority echoes the client's request id as correlation id.
	req, _ := http.NewRequest(http.MethodPost, s.srv.AuthorityURL()+tc.id+"/oauth2/v2.0/token", strings.NewReader(good(func(v url.Values) { v.Set("client_secret", "x") }).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("client-request-id", "11111111-2222-4333-8444-555555555555")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := decode(t, resp.Body)
	resp.Body.Close()
	if body["correlation_id"] != "11111111-2222-4333-8444-555555555555" {
		t.Errorf("correlation_id = %v", body["correlation_id"])
	}
	// GET is refused the way the authority refuses it.
	resp, err = s.client.Get(s.srv.AuthorityURL() + tc.id + "/oauth2/v2.0/token")
	if err != nil {
		t.Fatal(err)
	}
	body = decode(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.HasPrefix(body["error_description"].(string), "AADSTS900561:") {
		t.Errorf("GET token: %d %v", resp.StatusCode, body)
	}
	// Token requests are in the log, attributed to their tenant.
	var sawFailure bool
	for _, r := range s.srv.Requests() {
		if r.Tenant == tc.id && strings.HasSuffix(r.Path, "/oauth2/v2.0/token") && r.Status == 401 && !r.Authorized {
			sawFailure = true
		}
	}
	if !sawFailure {
		t.Error("the failed token request is not in the request log")
	}
}

func TestBearerChecks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := newSim(t, graphsim.Options{Clock: clock, TokenLifetime: time.Hour})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 33, Users: 3}))
	other := newSim(t, graphsim.Options{})
	foreign := other.addTenant(graphsim.Generate(graphsim.Spec{Seed: 33, Users: 3}))
	parts := strings.Split(tc.token, ".")
	tampered := parts[0] + "." + parts[1] + "x." + parts[2]

	cases := []struct {
		name, token, message string
	}{
		{"no token", "", "Access token is empty."},
		{"not a JWT", "opaque-garbage", "IDX14100: JWT is not well formed"},
		{"tampered", tampered, "Access token validation failure"},
		{"another simulator's token", foreign.token, "Access token validation failure"},
	}
	for _, c := range cases {
		r := s.get(c.token, "/users")
		code, msg := r.graphErr()
		if r.status != 401 || code != "InvalidAuthenticationToken" || !strings.HasPrefix(msg, c.message) {
			t.Errorf("%s: %d %s %q", c.name, r.status, code, msg)
		}
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
			t.Errorf("%s: no WWW-Authenticate header", c.name)
		}
	}
	if r := s.get(tc.token, "/users"); r.status != 200 {
		t.Fatalf("valid token: %d %s", r.status, r.raw)
	}
	mu.Lock()
	now = now.Add(61 * time.Minute)
	mu.Unlock()
	r := s.get(tc.token, "/users")
	if code, msg := r.graphErr(); r.status != 401 || code != "InvalidAuthenticationToken" || msg != "Lifetime validation failed, the token is expired." {
		t.Errorf("expired token: %d %s %q", r.status, code, msg)
	}
	fresh := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 34, Users: 3}))
	s.srv.RemoveTenant(fresh.id)
	if r := s.get(fresh.token, "/users"); r.status != 401 {
		t.Errorf("token of a removed tenant: %d", r.status)
	}
	var unauthorized int
	for _, rq := range s.srv.Requests() {
		if strings.HasPrefix(rq.Path, "/v1.0/") && rq.Status == 401 {
			unauthorized++
			if rq.Authorized {
				t.Errorf("401 logged as authorized: %+v", rq)
			}
		}
	}
	if unauthorized < len(cases)+1 {
		t.Errorf("%d unauthorized requests logged, want at least %d", unauthorized, len(cases)+1)
	}
}

func TestFaultInjection(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	a := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 35, Users: 3}))
	b := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 36, Users: 3}))
	s.srv.SetFaults(a.id, graphsim.Faults{ThrottleEvery: 3, RetryAfter: "1.5", FailNext: []int{503, 429, 504}})
	s.srv.ResetRequests()

	var statuses []int
	for range 9 {
		r := s.get(a.token, "/users?$select=id")
		statuses = append(statuses, r.status)
		switch r.status {
		case 429:
			code, msg := r.graphErr()
			inner := r.body["error"].(map[string]any)["innerError"].(map[string]any)
			if r.header.Get("Retry-After") != "1.5" || code != "TooManyRequests" || msg != "Please retry again later." || inner["status"] != "429" {
				t.Errorf("429: Retry-After %q, %s %q %v", r.header.Get("Retry-After"), code, msg, inner)
			}
		case 503, 504:
			if ra := r.header.Get("Retry-After"); ra != "" {
				t.Errorf("%d carried Retry-After %q", r.status, ra)
			}
		}
	}
	// FailNext first (503, 429, 504); requests 3, 6 and 9 are throttled, but
	// request 3 already failed with 504 from FailNext.
	want := []int{503, 429, 504, 200, 200, 429, 200, 200, 429}
	if !equalInts(statuses, want) {
		t.Errorf("statuses %v, want %v", statuses, want)
	}
	// The other tenant is untouched.
	for range 4 {
		if r := s.get(b.token, "/users"); r.status != 200 {
			t.Errorf("tenant without faults got %d", r.status)
		}
	}
	reqs := s.srv.Requests()
	if len(reqs) != 13 {
		t.Fatalf("%d requests logged, want 13", len(reqs))
	}
	for i, r := range reqs[:9] {
		if r.Tenant != a.id || r.Status != want[i] || !r.Authorized || r.Method != "GET" || r.Path != "/v1.0/users" || r.RawQuery != "$select=id" {
			t.Errorf("log entry %d: %+v", i, r)
		}
		if (r.Status == 429) != (r.RetryAfter == "1.5") {
			t.Errorf("log entry %d: status %d, RetryAfter %q", i, r.Status, r.RetryAfter)
		}
		if i > 0 && r.At.Before(reqs[i-1].At) {
			t.Error("log out of order")
		}
	}

	// Faults for "" apply to tenants without their own; a zero Faults clears.
	s.srv.SetFaults(a.id, graphsim.Faults{})
	s.srv.SetFaults("", graphsim.Faults{ServiceUnavailableEvery: 2})
	if got := []int{s.get(b.token, "/users").status, s.get(b.token, "/users").status, s.get(a.token, "/users").status, s.get(a.token, "/users").status}; !equalInts(got, []int{200, 503, 200, 503}) {
		t.Errorf("global faults: %v, want [200 503 200 503]", got)
	}
	s.srv.SetFaults(a.id, graphsim.Faults{Latency: time.Nanosecond}) // faults of its own shield a from ""
	if got := []int{s.get(a.token, "/users").status, s.get(a.token, "/users").status}; !equalInts(got, []int{200, 200}) {
		t.Errorf("tenant with faults of its own under global faults: %v", got)
	}
	s.srv.SetFaults("", graphsim.Faults{})

	// Latency delays every answer by at least its amount.
	s.srv.SetFaults(b.id, graphsim.Faults{Latency: 150 * time.Millisecond})
	if r := s.get(b.token, "/users"); r.status != 200 || r.took < 150*time.Millisecond {
		t.Errorf("latency: %d after %v", r.status, r.took)
	}
	// Token requests are never faulted.
	s.srv.SetFaults(a.id, graphsim.Faults{ThrottleEvery: 1})
	status, _ := s.tokenRequest(a.id, url.Values{"grant_type": {"client_credentials"}, "client_id": {a.clientID}, "client_secret": {a.secret}, "scope": {"https://graph.microsoft.com/.default"}})
	if status != 200 {
		t.Errorf("token request under Graph faults: %d", status)
	}
	s.srv.ResetRequests()
	if n := len(s.srv.Requests()); n != 0 {
		t.Errorf("%d requests after ResetRequests", n)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestServerLifecycleAndCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := graphsim.New(graphsim.Options{CertDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.GraphURL(), "https://127.0.0.1:") || !strings.HasSuffix(srv.GraphURL(), "/v1.0") ||
		srv.AuthorityURL() != strings.TrimSuffix(srv.GraphURL(), "v1.0") {
		t.Errorf("urls %s %s", srv.GraphURL(), srv.AuthorityURL())
	}
	pem, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil || string(pem) != string(srv.CAPEM()) || !strings.Contains(string(pem), "BEGIN CERTIFICATE") {
		t.Fatalf("ca.pem: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	// The default client does not trust the simulator; its own client does.
	if _, err := http.Get(srv.GraphURL() + "/users"); err == nil {
		t.Error("a client without the CA trusted the simulator")
	}
	resp, err := srv.HTTPClient().Get(srv.GraphURL() + "/users")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("unauthenticated request: %d", resp.StatusCode)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := srv.HTTPClient().Get(srv.GraphURL() + "/users"); err == nil {
		t.Error("closed server still answers")
	}

	// A server closed without being started releases its port.
	unused, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unused.Close(); err != nil {
		t.Fatal(err)
	}
	if d := srv.Directory("nope"); d != nil {
		t.Error("Directory of an unknown tenant is not nil")
	}
}

// TestRefusedRequestsAreMetered: a request Graph refuses costs a unit
// and says so (json-batching.md's refused directory requests carry
// x-ms-resource-unit 1; throttling.md: "all requests accrue against your
// usage limits"). A client that keeps retrying a refused request is
// throttled as Graph would throttle it.
func TestRefusedRequestsAreMetered(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{Clock: func() time.Time { return time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC) }})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 37, Users: 5}))
	s.srv.SetFaults(tc.id, graphsim.Faults{EnforceBudget: true, Budget: 3})
	missing := "/groups/00000000-0000-4000-8000-000000000001/members"
	for i := 1; i <= 3; i++ {
		r := s.get(tc.token, missing)
		if r.status != 404 || r.header.Get("x-ms-resource-unit") != "1" {
			t.Errorf("refused request %d: %d, x-ms-resource-unit %q; want 404 and 1", i, r.status, r.header.Get("x-ms-resource-unit"))
		}
	}
	if r := s.get(tc.token, missing); r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Errorf("a refused request past the budget: %d, Retry-After %q; want 429", r.status, r.header.Get("Retry-After"))
	}
	if r := s.get(tc.token, "/users?$select=id"); r.status != 429 {
		t.Errorf("a good request after the refused ones spent the budget: %d, want 429", r.status)
	}
}

func TestResourceUnitBudget(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := newSim(t, graphsim.Options{Clock: clock})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 37, Users: 5}))
	s.srv.SetFaults(tc.id, graphsim.Faults{EnforceBudget: true, Budget: 10})

	// /users costs 2: five fit in a budget of 10; the fifth reaches 100%.
	for i := 1; i <= 5; i++ {
		r := s.get(tc.token, "/users")
		pct := r.header.Get("x-ms-throttle-limit-percentage")
		if r.status != 200 || (i == 5) != (pct == "1.00") {
			t.Errorf("request %d: %d, x-ms-throttle-limit-percentage %q", i, r.status, pct)
		}
	}
	// The bucket refills at 1 unit a second. A request it cannot pay for
	// answers 429 until it could, and still counts: retrying early only
	// pushes the wait out.
	r := s.get(tc.token, "/users")
	if code, _ := r.graphErr(); r.status != 429 || code != "TooManyRequests" || r.header.Get("Retry-After") != "4.000" ||
		r.header.Get("x-ms-throttle-limit-percentage") != "1.20" {
		t.Errorf("over budget: %d %s, Retry-After %q, percentage %q", r.status, code, r.header.Get("Retry-After"),
			r.header.Get("x-ms-throttle-limit-percentage"))
	}
	advance(2500 * time.Millisecond)
	if r := s.get(tc.token, "/users?$select=id"); r.status != 429 || r.header.Get("Retry-After") != "1.500" {
		t.Errorf("retried early: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	advance(1500 * time.Millisecond)
	if r := s.get(tc.token, "/users?$select=id"); r.status != 200 || r.header.Get("x-ms-resource-unit") != "1" {
		t.Errorf("after waiting as told: %d, x-ms-resource-unit %q", r.status, r.header.Get("x-ms-resource-unit"))
	}
	// Hammering piles up debt, to 180% of the budget at most.
	for range 50 {
		r = s.get(tc.token, "/users")
	}
	if r.status != 429 || r.header.Get("x-ms-throttle-limit-percentage") != "1.80" || r.header.Get("Retry-After") != "10.000" {
		t.Errorf("hammered: %d, percentage %q, Retry-After %q", r.status, r.header.Get("x-ms-throttle-limit-percentage"),
			r.header.Get("Retry-After"))
	}
	// Full again after ten quiet seconds (and no fuller).
	advance(time.Minute)
	for i := 1; i <= 6; i++ {
		if r := s.get(tc.token, "/users"); (r.status == 200) != (i <= 5) {
			t.Errorf("request %d after a quiet minute: %d", i, r.status)
		}
	}
	advance(time.Minute)
	// $top below 20 costs one unit less, like $select; never below 1.
	for _, c := range []struct{ query, cost string }{
		{"/users?$top=5", "1"}, {"/users?$top=20", "2"}, {"/users?$top=5&$select=id", "1"},
	} {
		if r := s.get(tc.token, c.query); r.status != 200 || r.header.Get("x-ms-resource-unit") != c.cost {
			t.Errorf("%s: %d, x-ms-resource-unit %q, want %s", c.query, r.status, r.header.Get("x-ms-resource-unit"), c.cost)
		}
	}

	// Without an explicit budget, a small tenant gets Graph's 3,500.
	s.srv.SetFaults(tc.id, graphsim.Faults{EnforceBudget: true})
	served := 0
	for range 1800 {
		if s.get(tc.token, "/users").status != 200 {
			break
		}
		served++
	}
	if served != 1750 {
		t.Errorf("%d requests of 2 RU fit in the default budget, want 1750", served)
	}
}

// TestStallAuthorityLeavesTokenRequestsUnanswered: the next
// StallAuthority requests of the tenant to its authority get no answer
// until the client gives up; then the authority answers as before.
func TestStallAuthorityLeavesTokenRequestsUnanswered(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 3, Users: 3}))
	s.srv.SetFaults(tc.id, graphsim.Faults{StallAuthority: 1})
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {tc.clientID},
		"client_secret": {tc.secret}, "scope": {"https://graph.microsoft.com/.default"}}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.srv.AuthorityURL()+tc.id+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a stalled authority answered %d", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the client's own deadline", err)
	}
	if status, body := s.tokenRequest(tc.id, form); status != http.StatusOK {
		t.Errorf("after the stall: %d %v, want a token", status, body)
	}
}
