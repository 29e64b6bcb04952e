package graph

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/services/graphsim"
)

// smallSpec is a tenant with every shape the sync meets, small enough to
// page through one object at a time.
var smallSpec = graphsim.Spec{
	Seed: 7, Users: 6, Guests: 2, Disabled: 2, NoMail: 2,
	Groups: 7, NestingDepth: 3, Devices: 2, Contacts: 1, Cycle: true,
}

// fixture is a simulator with one tenant and the app registration that
// may read it.
type fixture struct {
	sim                    *graphsim.Server
	dir                    *graphsim.Directory
	tenant, client, secret string
}

func newFixture(t testing.TB, spec graphsim.Spec) *fixture {
	t.Helper()
	sim, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	f := &fixture{sim: sim, dir: graphsim.Generate(spec), tenant: guid(), client: guid(), secret: "s3cret-" + guid()}
	sim.AddTenant(f.tenant, f.client, f.secret, f.dir)
	return f
}

// config points at the simulator, trusting its CA, with sleeps recorded.
func (f *fixture) config(t testing.TB) Config {
	return Config{
		BaseURL:       f.sim.GraphURL(),
		AuthorityHost: f.sim.AuthorityURL(),
		Transport:     f.sim.HTTPClient().Transport,
		Logger:        zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
	}
}

func (f *fixture) newClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg, Credentials{TenantID: f.tenant, ClientID: f.client, ClientSecret: f.secret})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// graphRequests is the simulator's log of this tenant's Graph requests
// (not token requests).
func (f *fixture) graphRequests() []graphsim.Request {
	var out []graphsim.Request
	for _, r := range f.sim.Requests() {
		if strings.HasPrefix(r.Path, "/v1.0/") && strings.EqualFold(r.Tenant, f.tenant) {
			out = append(out, r)
		}
	}
	return out
}

// sleeps records every wait the retrier asks for, then really waits.
type sleeps struct {
	mu     sync.Mutex
	waits  []time.Duration
	onWait func()
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	on := s.onWait
	s.mu.Unlock()
	if on != nil {
		on()
	}
	return sleep(ctx, d)
}

func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.waits)
}

func guid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// collect drains an iterator, checking that no page exceeds the page size.
func collect[T any](t *testing.T, seq func(func([]T, error) bool), pageSize int) (items []T, pages int, err error) {
	t.Helper()
	for page, err := range seq {
		if err != nil {
			return items, pages, err
		}
		if len(page) > pageSize {
			t.Errorf("page %d has %d items, page size is %d", pages, len(page), pageSize)
		}
		pages++
		items = append(items, page...)
	}
	return items, pages, nil
}

func TestEnumerationMatchesGroundTruth(t *testing.T) {
	t.Parallel()
	big := graphsim.Spec{Seed: 11, Users: 2400, Guests: 40, Disabled: 30, NoMail: 30,
		Groups: 30, NestingDepth: 3, Devices: 5, Contacts: 2, Cycle: true}
	for _, tc := range []struct {
		name     string
		spec     graphsim.Spec
		pageSize int
	}{
		{"page size 1", smallSpec, 1},
		{"page size 999", big, 999},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			f := newFixture(t, tc.spec)
			cfg := f.config(t)
			cfg.PageSize = tc.pageSize
			c := f.newClient(t, cfg)

			users, pages, err := collect(t, c.Users(ctx, ""), tc.pageSize)
			if err != nil {
				t.Fatal(err)
			}
			want := f.dir.Users()
			if wantPages := (len(want) + tc.pageSize - 1) / tc.pageSize; pages != wantPages {
				t.Errorf("users: %d pages, want %d", pages, wantPages)
			}
			checkUsers(t, f.dir, users)

			groups, _, err := collect(t, c.Groups(ctx), tc.pageSize)
			if err != nil {
				t.Fatal(err)
			}
			wantGroups := f.dir.Groups()
			if len(groups) != len(wantGroups) {
				t.Fatalf("groups: got %d, want %d", len(groups), len(wantGroups))
			}
			slices.SortFunc(groups, func(a, b Group) int { return strings.Compare(a.ID, b.ID) })
			kinds := map[MemberType]int{}
			for i, w := range wantGroups {
				g := groups[i]
				if g.ID != w.ID || g.DisplayName != w.DisplayName || g.Description != w.Description || g.Mail != w.Mail ||
					!slices.Equal(nilIfEmpty(g.GroupTypes), nilIfEmpty(w.GroupTypes)) || g.SecurityEnabled != w.SecurityEnabled ||
					g.MailEnabled != w.MailEnabled || g.MembershipRule != w.MembershipRule {
					t.Errorf("group %d:\n got %+v\nwant %+v", i, g, w)
				}

				checkMemberLists(t, c, f.dir, g.ID, tc.pageSize, kinds)
			}
			// The spec puts every kind of member somewhere: make sure the
			// @odata.type mapping saw them all.
			checkEveryKind(t, kinds)

			reqs := f.graphRequests()
			if len(reqs) == 0 {
				t.Fatal("the simulator saw no Graph request")
			}
			for _, r := range reqs {
				if !r.Authorized {
					t.Errorf("%s %s?%s went without an accepted bearer token", r.Method, r.Path, r.RawQuery)
				}
			}
			if s := c.Stats(); s.Requests != int64(len(reqs)) || s.Throttled != 0 || s.Retries != 0 {
				t.Errorf("stats %+v, want %d requests and no throttling or retries", s, len(reqs))
			}
		})
	}
}

// An app without Device.Read.All or OrgContact.Read.All still gets
// devices and contacts in member lists, with limited information
// (@odata.type and id, the rest null; concepts/permissions-overview.md).
// The adapter needs nothing more than those two, so direct edges, users
// and transitive users must come out exactly as with full access.
func TestMembersOfUnreadableTypes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	f := newFixture(t, smallSpec)
	if err := f.sim.SetPermissions(f.tenant, graphsim.Permissions{
		Unreadable: []graphsim.ObjectType{graphsim.TypeDevice, graphsim.TypeOrgContact},
	}); err != nil {
		t.Fatal(err)
	}
	const pageSize = 2
	cfg := f.config(t)
	cfg.PageSize = pageSize
	c := f.newClient(t, cfg)

	users, _, err := collect(t, c.Users(ctx, ""), pageSize)
	if err != nil {
		t.Fatal(err)
	}
	checkUsers(t, f.dir, users)

	kinds := map[MemberType]int{}
	for _, g := range f.dir.Groups() {
		checkMemberLists(t, c, f.dir, g.ID, pageSize, kinds)
	}
	// The limited objects were there to be read: devices and contacts
	// are direct members of some group in smallSpec.
	checkEveryKind(t, kinds)
}

// checkUsers compares listed users with the directory's, every field
// the adapter reads.
func checkUsers(t *testing.T, dir *graphsim.Directory, users []User) {
	t.Helper()
	want := dir.Users()
	if len(users) != len(want) {
		t.Fatalf("users: got %d, want %d", len(users), len(want))
	}
	users = slices.Clone(users)
	slices.SortFunc(users, func(a, b User) int { return strings.Compare(a.ID, b.ID) })
	for i, w := range want {
		exp := User{ID: w.ID, DisplayName: w.DisplayName, Mail: w.Mail, UserPrincipalName: w.UserPrincipalName,
			GivenName: w.GivenName, Surname: w.Surname, JobTitle: w.JobTitle, Department: w.Department,
			UserType: w.UserType, AccountEnabled: w.AccountEnabled}
		if users[i] != exp {
			t.Errorf("user %d:\n got %+v\nwant %+v", i, users[i], exp)
		}
	}
}

// checkMemberLists reads a group's direct members and transitive users
// and compares them with the directory's; kinds counts the member types
// seen.
func checkMemberLists(t *testing.T, c *Client, dir *graphsim.Directory, groupID string, pageSize int, kinds map[MemberType]int) {
	t.Helper()
	ctx := t.Context()
	members, _, err := collect(t, c.Members(ctx, groupID), pageSize)
	if err != nil {
		t.Fatalf("members of %s: %v", groupID, err)
	}
	var got, want []string
	for _, m := range members {
		got = append(got, string(m.Type)+":"+m.ID)
		kinds[m.Type]++
	}
	for _, m := range dir.DirectMembers(groupID) {
		want = append(want, string(m.Type)+":"+m.ID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("direct members of %s:\n got %v\nwant %v", groupID, got, want)
	}

	users, _, err := collect(t, c.TransitiveUsers(ctx, groupID), pageSize)
	if err != nil {
		t.Fatalf("transitive users of %s: %v", groupID, err)
	}
	var ids []string
	for _, u := range users {
		ids = append(ids, u.ID)
		if u.UserPrincipalName == "" || u.UserType == "" {
			t.Errorf("transitive user %s of %s came without its selected properties: %+v", u.ID, groupID, u)
		}
	}
	var wantIDs []string
	for _, u := range dir.TransitiveUsers(groupID) {
		wantIDs = append(wantIDs, u.ID)
	}
	slices.Sort(ids)
	slices.Sort(wantIDs)
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("transitive users of %s:\n got %v\nwant %v", groupID, ids, wantIDs)
	}
}

// checkEveryKind fails unless members of every type were seen.
func checkEveryKind(t *testing.T, kinds map[MemberType]int) {
	t.Helper()
	for _, k := range []MemberType{MemberUser, MemberGroup, MemberDevice, MemberOrgContact} {
		if kinds[k] == 0 {
			t.Errorf("no member of type %s seen; kinds: %v", k, kinds)
		}
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestWrongSecretIsPermanentAuthError(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	c, err := New(f.config(t), Credentials{TenantID: f.tenant, ClientID: f.client, ClientSecret: "not-the-secret"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = collect(t, c.Users(t.Context(), ""), DefaultPageSize)
	if err == nil {
		t.Fatal("listing users with a wrong secret succeeded")
	}
	if !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Errorf("error does not carry the authority's message: %v", err)
	}
	if !errors.Is(err, ErrAuth) || !IsPermanent(err) || IsThrottled(err) {
		t.Errorf("error misclassified (ErrAuth %v, permanent %v, throttled %v): %v",
			errors.Is(err, ErrAuth), IsPermanent(err), IsThrottled(err), err)
	}
	if reqs := f.graphRequests(); len(reqs) != 0 {
		t.Errorf("%d Graph requests sent without a token", len(reqs))
	}
}

func TestThrottlingWaitsExactlyRetryAfter(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	f.sim.SetFaults(f.tenant, graphsim.Faults{FailNext: []int{429, 429}, RetryAfter: "1.5"})
	rec := &sleeps{}
	cfg := f.config(t)
	cfg.Sleep = rec.sleep
	c := f.newClient(t, cfg)

	users, _, err := collect(t, c.Users(t.Context(), ""), DefaultPageSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != len(f.dir.Users()) {
		t.Errorf("got %d users, want %d", len(users), len(f.dir.Users()))
	}
	if got, want := rec.got(), []time.Duration{1500 * time.Millisecond, 1500 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("waits %v, want %v (Retry-After exactly, fraction kept)", got, want)
	}
	reqs := f.graphRequests()
	// One request per fault plus the one that succeeds: no retry of the
	// SDK's own on top of ours.
	if len(reqs) != 3 {
		t.Fatalf("%d Graph requests, want 3: %+v", len(reqs), reqs)
	}
	for i := range 2 {
		if reqs[i].Status != http.StatusTooManyRequests || reqs[i].RetryAfter != "1.5" {
			t.Fatalf("request %d: status %d Retry-After %q, want 429 with 1.5", i, reqs[i].Status, reqs[i].RetryAfter)
		}
		if gap := reqs[i+1].At.Sub(reqs[i].At); gap < 1500*time.Millisecond {
			t.Errorf("request %d sent %v after the 429, before its Retry-After of 1.5s", i+1, gap)
		}
		if reqs[i+1].RawQuery != reqs[0].RawQuery || reqs[i+1].Path != reqs[0].Path {
			t.Errorf("retry %d asked for %s?%s, not the throttled %s?%s", i+1, reqs[i+1].Path, reqs[i+1].RawQuery, reqs[0].Path, reqs[0].RawQuery)
		}
	}
	if s := c.Stats(); s != (Stats{Requests: 3, Throttled: 2, Retries: 2}) {
		t.Errorf("stats %+v, want 3 requests, 2 throttled, 2 retries", s)
	}
}

func TestThrottlingEveryNthRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	f.sim.SetFaults(f.tenant, graphsim.Faults{ThrottleEvery: 4, RetryAfter: "0.25"})
	cfg := f.config(t)
	cfg.PageSize = 2
	obs := &observer{codes: map[int]int{}}
	cfg.Observer = obs
	c := f.newClient(t, cfg)

	users, pages, err := collect(t, c.Users(t.Context(), ""), cfg.PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != len(f.dir.Users()) {
		t.Errorf("got %d users, want %d", len(users), len(f.dir.Users()))
	}
	reqs := f.graphRequests()
	throttled := 0
	for i, r := range reqs {
		if r.Status != http.StatusTooManyRequests {
			continue
		}
		throttled++
		if i+1 >= len(reqs) {
			t.Fatalf("the last request was throttled and never retried")
		}
		if gap := reqs[i+1].At.Sub(r.At); gap < 250*time.Millisecond {
			t.Errorf("request %d sent %v after a 429 with Retry-After 0.25", i+1, gap)
		}
	}
	if throttled == 0 || len(reqs) != pages+throttled {
		t.Errorf("%d requests for %d pages and %d throttles: each fault must cost exactly one extra request", len(reqs), pages, throttled)
	}
	if s := c.Stats(); s.Requests != int64(len(reqs)) || s.Throttled != int64(throttled) || s.Retries != int64(throttled) {
		t.Errorf("stats %+v, want %d requests, %d throttled and retried", s, len(reqs), throttled)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.codes[http.StatusTooManyRequests] != throttled || obs.codes[http.StatusOK] != pages ||
		obs.throttled != throttled || obs.waited != time.Duration(throttled)*250*time.Millisecond || obs.backoff != 0 {
		t.Errorf("observer heard %+v; want %d 429s, %d 200s, %d throttles waiting %v", obs, throttled, pages, throttled,
			time.Duration(throttled)*250*time.Millisecond)
	}
}

// observer counts what a client tells its Observer.
type observer struct {
	mu        sync.Mutex
	codes     map[int]int
	throttled int
	waited    time.Duration
	backoff   time.Duration
}

func (o *observer) GraphRequest(code int) { o.mu.Lock(); o.codes[code]++; o.mu.Unlock() }
func (o *observer) GraphThrottled(wait time.Duration) {
	o.mu.Lock()
	o.throttled++
	o.waited += wait
	o.mu.Unlock()
}
func (o *observer) GraphRetryWait(wait time.Duration) { o.mu.Lock(); o.backoff += wait; o.mu.Unlock() }

func TestTransientStatusBacksOff(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, smallSpec)
			f.sim.SetFaults(f.tenant, graphsim.Faults{FailNext: []int{status, status}})
			rec := &sleeps{}
			cfg := f.config(t)
			cfg.Sleep = rec.sleep
			c := f.newClient(t, cfg)

			if _, _, err := collect(t, c.Groups(t.Context()), DefaultPageSize); err != nil {
				t.Fatal(err)
			}
			waits := rec.got()
			if len(waits) != 2 {
				t.Fatalf("waits %v, want 2", waits)
			}
			// Exponential backoff from 500ms with ±50% jitter.
			if waits[0] < 250*time.Millisecond || waits[0] > 750*time.Millisecond {
				t.Errorf("first wait %v outside the first backoff interval [250ms, 750ms]", waits[0])
			}
			if waits[1] < 375*time.Millisecond || waits[1] > 1125*time.Millisecond {
				t.Errorf("second wait %v outside the second backoff interval [375ms, 1125ms]", waits[1])
			}
			if n := len(f.graphRequests()); n != 3 {
				t.Errorf("%d Graph requests, want 3", n)
			}
			if s := c.Stats(); s != (Stats{Requests: 3, Retries: 2}) {
				t.Errorf("stats %+v, want 3 requests and 2 retries", s)
			}
		})
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	f.sim.SetFaults(f.tenant, graphsim.Faults{FailNext: []int{503, 503, 503}})
	cfg := f.config(t)
	cfg.MaxAttempts = 2
	cfg.Sleep = func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	c := f.newClient(t, cfg)

	_, _, err := collect(t, c.Users(t.Context(), ""), DefaultPageSize)
	var ge *Error
	if !errors.As(err, &ge) || ge.Status != http.StatusServiceUnavailable {
		t.Fatalf("got %v, want a *graph.Error with status 503", err)
	}
	if IsPermanent(err) {
		t.Errorf("a 503 is transient, but IsPermanent says permanent: %v", err)
	}
	if n := len(f.graphRequests()); n != 2 {
		t.Errorf("%d Graph requests, want MaxAttempts = 2", n)
	}
}

func TestCancelStopsWaiting(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	f.sim.SetFaults(f.tenant, graphsim.Faults{FailNext: []int{429}, RetryAfter: "600"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := &sleeps{onWait: cancel} // cancel as soon as the wait begins
	cfg := f.config(t)
	cfg.Sleep = rec.sleep
	cfg.MaxRetryAfter = time.Hour
	c := f.newClient(t, cfg)

	done := make(chan error, 1)
	go func() {
		_, _, err := collect(t, c.Users(ctx, ""), DefaultPageSize)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
		if IsPermanent(err) {
			t.Errorf("cancellation classified as permanent: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("listing still waiting for a 600s Retry-After after its context was cancelled")
	}
	if got := rec.got(); !slices.Equal(got, []time.Duration{600 * time.Second}) {
		t.Errorf("waits %v, want one of 600s", got)
	}
	if n := len(f.graphRequests()); n != 1 {
		t.Errorf("%d Graph requests, want only the throttled one", n)
	}
}

func TestLaterPageErrorIsTyped(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	cfg := f.config(t)
	cfg.PageSize = 1
	c := f.newClient(t, cfg)

	pages := 0
	var err error
	for _, perr := range c.Users(t.Context(), "") {
		if perr != nil {
			err = perr
			break
		}
		pages++
		if pages == 2 {
			// Refuse the third page only.
			f.sim.SetFaults(f.tenant, graphsim.Faults{FailNext: []int{http.StatusForbidden}})
		}
	}
	var ge *Error
	if !errors.As(err, &ge) || ge.Status != http.StatusForbidden || ge.Code == "" {
		t.Fatalf("after %d pages got %v, want a *graph.Error with status 403 and Graph's code", pages, err)
	}
	if pages != 2 {
		t.Errorf("error after %d pages, want after 2", pages)
	}
	if !IsPermanent(err) || errors.Is(err, ErrAuth) {
		t.Errorf("a 403 must be permanent and not an authentication failure: %v", err)
	}
	if !strings.Contains(err.Error(), "page 2") {
		t.Errorf("error does not say which page failed: %v", err)
	}
}

func TestMalformedResponsesGiveClearErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        string
		want        string // in the error text
		wantStatus  int    // a *graph.Error with this status; 0: ErrMalformed
	}{
		{"truncated JSON", 200, "application/json", `{"value":[{"id":"a","accountEnabled":tr`, "", 0},
		{"HTML instead of JSON", 200, "text/html", `<html><body>Service Unavailable</body></html>`, "", 0},
		{"empty body", 200, "application/json", ``, "empty body", 0},
		{"no value array", 200, "application/json", `{"@odata.context":"x"}`, "no value array", 0},
		{"user without id", 200, "application/json", `{"value":[{"displayName":"A","accountEnabled":true}]}`, "without id", 0},
		{"user without accountEnabled", 200, "application/json", `{"value":[{"id":"u1","displayName":"A"}]}`, "accountEnabled", 0},
		{"nextLink to itself", 200, "application/json", `{"value":[],"@odata.nextLink":"SELF"}`, "same page", 0},
		{"HTML error body", 400, "text/html", `<html>Bad Request</html>`, "HTTP 400", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ts *httptest.Server
			ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
					http.Error(w, `{"error":{"code":"InvalidAuthenticationToken","message":"no token"}}`, http.StatusUnauthorized)
					return
				}
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, strings.ReplaceAll(tc.body, "SELF", ts.URL+"/v1.0/users?$skiptoken=x"))
			}))
			t.Cleanup(ts.Close)
			roots := f.sim.CAPool()
			roots.AddCert(ts.Certificate())
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
			cfg := f.config(t)
			cfg.BaseURL = ts.URL + "/v1.0"
			cfg.Transport = tr
			cfg.MaxAttempts = 1
			c := f.newClient(t, cfg)

			_, _, err := collect(t, c.Users(t.Context(), ""), DefaultPageSize)
			if err == nil {
				t.Fatal("a malformed response was accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.wantStatus == 0 && !errors.Is(err, ErrMalformed) {
				t.Errorf("error is not ErrMalformed: %v", err)
			}
			var ge *Error
			if tc.wantStatus != 0 && (!errors.As(err, &ge) || ge.Status != tc.wantStatus) {
				t.Errorf("error is not a *graph.Error with status %d: %v", tc.wantStatus, err)
			}
			if !IsPermanent(err) {
				t.Errorf("a malformed response must be permanent: %v", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"http on loopback", func(c *Config) { c.BaseURL = "http://127.0.0.1:8080/v1.0" }, ""},
		{"http elsewhere", func(c *Config) { c.BaseURL = "http://graph.example.com/v1.0" }, "want https"},
		{"relative base", func(c *Config) { c.BaseURL = "/v1.0" }, "absolute URL"},
		{"base with query", func(c *Config) { c.BaseURL = "https://graph.example.com/v1.0?x=1" }, "query"},
		{"http authority", func(c *Config) { c.AuthorityHost = "http://login.example.com/" }, "https"},
		{"page size 0 after defaults", func(c *Config) { c.PageSize = -1 }, "page size"},
		{"page size 1000", func(c *Config) { c.PageSize = 1000 }, "page size"},
		{"no attempts", func(c *Config) { c.MaxAttempts = -1 }, "max attempts"},
		{"bad scope", func(c *Config) { c.Scope = "https://graph.microsoft.com" }, "scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var c Config
			tc.mod(&c)
			c.SetDefaults()
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
	if _, err := New(Config{}, Credentials{TenantID: "a/b", ClientID: "c"}); err == nil ||
		!strings.Contains(err.Error(), "tenant id") || !strings.Contains(err.Error(), "client secret is empty") {
		t.Errorf("bad credentials: got %v, want errors naming the tenant id and the empty secret", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1.5", 1500 * time.Millisecond, true},
		{"2.128", 2128 * time.Millisecond, true},
		{"0.9", 900 * time.Millisecond, true},
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
		{"NaN", 0, false},
	} {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestTokenScopeIsGraphsResource reaches Graph by a URL whose host is not
// Graph's (the simulator's, as a gateway's or a proxy's would be): the
// token is still asked for Graph's resource, which the authority knows,
// and never for the base URL's host, which it refuses with AADSTS500011.
func TestTokenScopeIsGraphsResource(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	c := f.newClient(t, f.config(t))
	users, _, err := collect(t, c.Users(t.Context(), ""), DefaultPageSize)
	if err != nil {
		t.Fatalf("listing users through %s: %v", f.sim.GraphURL(), err)
	}
	if len(users) != len(f.dir.Users()) {
		t.Errorf("got %d users, want %d", len(users), len(f.dir.Users()))
	}
}

func TestScopeFor(t *testing.T) {
	t.Parallel()
	for base, want := range map[string]string{
		"https://graph.microsoft.com/v1.0":             "https://graph.microsoft.com/.default",
		"https://GRAPH.microsoft.com:443/v1.0":         "https://graph.microsoft.com/.default",
		"https://graph.microsoft.us/v1.0":              "https://graph.microsoft.us/.default",
		"https://dod-graph.microsoft.us/v1.0":          "https://dod-graph.microsoft.us/.default",
		"https://microsoftgraph.chinacloudapi.cn/v1.0": "https://microsoftgraph.chinacloudapi.cn/.default",
		"https://graph-gateway.example.com/v1.0":       "https://graph.microsoft.com/.default",
		"http://127.0.0.1:8443/v1.0":                   "https://graph.microsoft.com/.default",
	} {
		if got := ScopeFor(base); got != want {
			t.Errorf("ScopeFor(%s) = %s, want %s", base, got, want)
		}
	}
	c := Config{BaseURL: "https://graph-gateway.example.com/v1.0", Scope: "https://graph.microsoft.us/.default"}
	c.SetDefaults()
	if c.Scope != "https://graph.microsoft.us/.default" {
		t.Errorf("a set scope was replaced by %s", c.Scope)
	}
}

// TestRetryAfterHasACeiling: a Retry-After up to MaxRetryAfter is waited
// out exactly, in seconds or as a date read on the injected clock; a
// longer one ends the request at once with a retryable error that says
// so, instead of holding the caller (and its tenant lease) for hours.
func TestRetryAfterHasACeiling(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, tc := range []struct {
		name, retryAfter string
		wait             time.Duration // waited out; 0: refused
	}{
		{"seconds under the cap", "240.5", 240500 * time.Millisecond},
		{"seconds at the cap", "300", 5 * time.Minute},
		{"date under the cap", now.Add(4 * time.Minute).Format(http.TimeFormat), 4 * time.Minute},
		{"an hour", "3600", 0},
		{"date past the cap", now.Add(6 * time.Minute).Format(http.TimeFormat), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, smallSpec)
			f.sim.SetFaults(f.tenant, graphsim.Faults{FailNext: []int{429}, RetryAfter: tc.retryAfter})
			var waits []time.Duration
			cfg := f.config(t)
			cfg.MaxRetryAfter = 5 * time.Minute
			cfg.Clock = func() time.Time { return now }
			cfg.Sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return ctx.Err() }
			c := f.newClient(t, cfg)

			_, _, err := collect(t, c.Users(t.Context(), ""), DefaultPageSize)
			if tc.wait != 0 {
				if err != nil || !slices.Equal(waits, []time.Duration{tc.wait}) {
					t.Fatalf("err %v, waits %v; want success after one wait of %v", err, waits, tc.wait)
				}
				return
			}
			if err == nil {
				t.Fatalf("a Retry-After of %s past the 5m cap was waited out (waits %v)", tc.retryAfter, waits)
			}
			if len(waits) != 0 {
				t.Errorf("waits %v, want none", waits)
			}
			var ge *Error
			if !errors.Is(err, ErrWaitTooLong) || !errors.As(err, &ge) || ge.Status != http.StatusTooManyRequests || ge.RetryAfter <= 5*time.Minute {
				t.Errorf("got %v, want ErrWaitTooLong with Graph's 429 and its Retry-After", err)
			}
			if IsPermanent(err) || !IsThrottled(err) {
				t.Errorf("must be throttled and retryable (permanent %v, throttled %v): %v", IsPermanent(err), IsThrottled(err), err)
			}
			if !strings.Contains(err.Error(), "longer than the 5m0s") {
				t.Errorf("error does not say the wait was past the cap: %v", err)
			}
			if n := len(f.graphRequests()); n != 1 {
				t.Errorf("%d Graph requests, want only the throttled one", n)
			}
		})
	}
}
