package fleet_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/entrasync/entrasync/libs/store/storetest"
	"github.com/entrasync/entrasync/services/graphsim"
)

// bigSpec is a tenant with every shape the sync must handle: enough users
// that the api pages, nesting three deep, a cycle, guests, disabled users,
// users without mail, devices and contacts as members.
var bigSpec = graphsim.Spec{
	Seed: 7, Users: 2500, Guests: 40, Disabled: 30, NoMail: 25,
	Groups: 60, NestingDepth: 3, Devices: 6, Contacts: 2, Cycle: true,
}

// checkShapes fails when the generated directory lacks a shape the test
// relies on, so that a passing test means the shape was exercised.
func checkShapes(t *testing.T, dir *graphsim.Directory) {
	t.Helper()
	if n := len(dir.NestedChain()); n < 3 {
		t.Fatalf("nested chain is %d deep, want ≥ 3", n)
	}
	if len(dir.CycleGroups()) < 2 {
		t.Fatal("directory has no membership cycle")
	}
	types := map[graphsim.ObjectType]int{}
	for _, g := range dir.Groups() {
		for _, m := range dir.DirectMembers(g.ID) {
			types[m.Type]++
		}
	}
	for _, typ := range []graphsim.ObjectType{"user", "group", "device", "orgContact"} {
		if types[typ] == 0 {
			t.Fatalf("no %s is a member of any group: %v", typ, types)
		}
	}
	kinds := map[string]int{}
	for _, u := range dir.Users() {
		switch {
		case u.UserType == "Guest":
			kinds["guest"]++
		case !u.AccountEnabled:
			kinds["disabled"]++
		case u.Mail == "":
			kinds["nomail"]++
		}
	}
	if kinds["guest"] == 0 || kinds["disabled"] == 0 || kinds["nomail"] == 0 {
		t.Fatalf("directory lacks guests, disabled or mail-less users: %v", kinds)
	}
}

func TestFullSyncMatchesGraph(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	e := h.addEntraTenant(bigSpec)
	checkShapes(t, e.Dir)
	const seats = 2000 // fewer than the enabled members: the pool runs out
	tenant := h.connect(e, seats)

	run := h.sync(tenant)

	users, pages := list[userView](h, "/v1/tenants/"+tenant+"/users")
	if pages < 3 {
		t.Errorf("/users took %d pages, want several", pages)
	}
	want := expectedUsers(e.Dir, seats)
	if d := diff(users, want, userKey); d != "" {
		t.Fatalf("users differ from Graph:\n%s", d)
	}
	if d := diff(h.groups(tenant), expectedGroups(e.Dir), groupKey); d != "" {
		t.Fatalf("groups differ from Graph:\n%s", d)
	}
	if got := run.Counts["usersCreated"]; got != int64(len(want)) {
		t.Errorf("usersCreated = %d, want %d", got, len(want))
	}
	if got := run.Counts["licensesAssigned"]; got != seats {
		t.Errorf("licensesAssigned = %d, want %d", got, seats)
	}
	if run.GraphRequests == 0 || run.StartedAt == nil || run.FinishedAt == nil {
		t.Errorf("run lacks Graph stats or times: %+v", run)
	}
}

func TestSecondRunShowsExactlyTheChanges(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	spec := bigSpec
	spec.Users, spec.Seed = 300, 11
	e := h.addEntraTenant(spec)
	tenant := h.connect(e, 100000)
	h.sync(tenant)

	// Pick the objects to change: two plain enabled members, and a user
	// member of the innermost group of the nesting chain.
	chain := e.Dir.NestedChain()
	inner := chain[len(chain)-1]
	var nestedUser string
	for _, m := range e.Dir.DirectMembers(inner) {
		if u, ok := e.Dir.User(m.ID); ok && m.Type == "user" && u.UserType == "Member" {
			nestedUser = m.ID
			break
		}
	}
	if nestedUser == "" {
		t.Fatal("innermost nested group has no member user")
	}
	var toDisable, toDelete string
	for _, u := range e.Dir.Users() {
		if u.UserType != "Member" || !u.AccountEnabled || u.ID == nestedUser {
			continue
		}
		if toDisable == "" {
			toDisable = u.ID
		} else {
			toDelete = u.ID
			break
		}
	}
	beforeApp := h.rowVersions(`SELECT entra_id, xmin::text::bigint FROM app_users WHERE tenant_id = $1`, tenant)
	// The mirror's rows by content (their versions advance on every run
	// that sees them, so that a late older page cannot win).
	const dirContent = `SELECT entra_id, ('x' || left(md5((to_jsonb(t) - 'v_run_seq' - 'v_page' - 'v_idx')::text), 7))::bit(28)::int::bigint
		FROM dir_users t WHERE tenant_id = $1`
	beforeDir := h.rowVersions(dirContent, tenant)
	beforeGroups := h.groups(tenant)

	must(t, e.Dir.DisableUser(toDisable))
	must(t, e.Dir.DeleteUser(toDelete))
	added := e.Dir.AddUser(graphsim.User{DisplayName: "Ada Newcomer", GivenName: "Ada", Surname: "Newcomer",
		Mail: "ada.newcomer@" + e.Dir.Domain(), UserPrincipalName: "ada.newcomer@" + e.Dir.Domain(),
		UserType: "Member", AccountEnabled: true})
	must(t, e.Dir.RemoveMember(inner, nestedUser))

	run := h.sync(tenant)

	if d := diff(h.users(tenant), expectedUsers(e.Dir, 100000), userKey); d != "" {
		t.Fatalf("users differ from Graph after changes:\n%s", d)
	}
	afterGroups := h.groups(tenant)
	if d := diff(afterGroups, expectedGroups(e.Dir), groupKey); d != "" {
		t.Fatalf("groups differ from Graph after changes:\n%s", d)
	}
	for k, want := range map[string]int64{"usersCreated": 1, "usersDisabled": 1, "usersRemoved": 1, "usersUpdated": 0} {
		if got := run.Counts[k]; got != want {
			t.Errorf("counts[%s] = %d, want %d (counts %v)", k, got, want, run.Counts)
		}
	}
	if run.Counts["membershipsRemoved"] == 0 {
		t.Errorf("membershipsRemoved = 0 after removing a nested member (counts %v)", run.Counts)
	}
	// Only the changed groups' counts may move.
	changed := 0
	for i := range beforeGroups {
		if beforeGroups[i] != afterGroups[i] {
			changed++
		}
	}
	if changed == 0 || changed == len(beforeGroups) {
		t.Errorf("%d of %d groups changed; want some but not all", changed, len(beforeGroups))
	}

	// Rows that did not change were not written again.
	afterApp := h.rowVersions(`SELECT entra_id, xmin::text::bigint FROM app_users WHERE tenant_id = $1`, tenant)
	afterDir := h.rowVersions(dirContent, tenant)
	checkRewrites(t, "app_users", beforeApp, afterApp, map[string]bool{toDisable: true, toDelete: true, added.ID: true})
	checkRewrites(t, "dir_users (content)", beforeDir, afterDir, map[string]bool{toDisable: true, toDelete: true, added.ID: true})
}

// checkRewrites fails when a row outside `changed` was written again, or a
// row in it was not.
func checkRewrites(t *testing.T, table string, before, after map[string]uint32, changed map[string]bool) {
	t.Helper()
	rewritten := 0
	for k, x := range after {
		old, existed := before[k]
		switch {
		case changed[k]:
			if existed && old == x {
				t.Errorf("%s: changed row %s was not written", table, k)
			}
		case !existed:
			t.Errorf("%s: unexpected new row %s", table, k)
		case old != x:
			rewritten++
		}
	}
	if rewritten > 0 {
		t.Errorf("%s: %d unchanged rows were rewritten", table, rewritten)
	}
}

func TestReplayedEventsLeaveDatabaseEqual(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	spec := bigSpec
	spec.Users, spec.Seed = 400, 13
	e := h.addEntraTenant(spec)
	tenant := h.connect(e, 250)

	// Tap the event subjects with a plain subscription: it sees every
	// message the fetchers publish to the stream.
	nc, err := nats.Connect(h.natsURL)
	must(t, err)
	defer nc.Close()
	type captured struct {
		subject, id string
		data        []byte
	}
	ch := make(chan captured, 10000)
	sub, err := nc.Subscribe("sync.events.>", func(m *nats.Msg) {
		ch <- captured{m.Subject, m.Header.Get(nats.MsgIdHdr), m.Data}
	})
	must(t, err)
	must(t, nc.Flush())

	h.sync(tenant)
	must(t, sub.Unsubscribe())
	close(ch)
	seen := map[string]bool{}
	var events []captured
	for c := range ch {
		if !seen[c.id] { // a publish retried by the fetcher is one event
			seen[c.id] = true
			events = append(events, c)
		}
	}
	if len(events) < 5 {
		t.Fatalf("captured only %d events", len(events))
	}
	before := h.tableHashes()

	js, err := jetstream.New(nc)
	must(t, err)
	ctx := context.Background()
	replay := append(append([]captured{}, events...), events...)
	rand.Shuffle(len(replay), func(i, j int) { replay[i], replay[j] = replay[j], replay[i] })
	for i, c := range replay {
		_, err := js.Publish(ctx, c.subject, c.data, jetstream.WithMsgID(c.id+"/replay/"+itoa(i)))
		must(t, err)
	}
	waitIdle(t, js, "SYNC_EVENTS", "reconcilers")

	storetest.DiffHashes(t, fmt.Sprintf("after replaying %d events", len(replay)), h.tableHashes(), before)
}

// waitIdle waits until a consumer has nothing pending and nothing unacked.
func waitIdle(t *testing.T, js jetstream.JetStream, stream, consumer string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := js.Consumer(ctx, stream, consumer)
		must(t, err)
		info, err := c.Info(ctx)
		must(t, err)
		if info.NumPending == 0 && info.NumAckPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s still busy: pending %d, unacked %d", stream, consumer, info.NumPending, info.NumAckPending)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTwoFetchersTwoReconcilersMatchOne(t *testing.T) {
	t.Parallel()
	specs := []graphsim.Spec{bigSpec, bigSpec, bigSpec}
	for i := range specs {
		specs[i].Seed = int64(100 + i)
		specs[i].Users = 700
	}
	type result struct {
		users  [][]userView
		groups [][]groupView
	}
	runFleet := func(fetchers, reconcilers int) result {
		h := newHarness(t, fetchers, reconcilers)
		var res result
		var tenants []string
		var dirs []entraTenant
		for _, s := range specs {
			e := h.addEntraTenant(s)
			dirs = append(dirs, e)
			tenants = append(tenants, h.connect(e, 500))
		}
		parallel(tenants, func(id string) { h.sync(id) })
		for i, id := range tenants {
			u, g := h.users(id), h.groups(id)
			if d := diff(u, expectedUsers(dirs[i].Dir, 500), userKey); d != "" {
				t.Errorf("%d fetchers, %d reconcilers: tenant %d users differ:\n%s", fetchers, reconcilers, i, d)
			}
			if d := diff(g, expectedGroups(dirs[i].Dir), groupKey); d != "" {
				t.Errorf("%d fetchers, %d reconcilers: tenant %d groups differ:\n%s", fetchers, reconcilers, i, d)
			}
			res.users = append(res.users, u)
			res.groups = append(res.groups, g)
		}
		return res
	}
	one := runFleet(1, 1)
	two := runFleet(2, 2)
	for i := range specs {
		if d := diff(two.users[i], one.users[i], userKey); d != "" {
			t.Errorf("tenant %d: 2+2 users differ from 1+1:\n%s", i, d)
		}
		if d := diff(two.groups[i], one.groups[i], groupKey); d != "" {
			t.Errorf("tenant %d: 2+2 groups differ from 1+1:\n%s", i, d)
		}
	}
}

func TestThrottledRunSucceedsAndHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	spec := bigSpec
	spec.Users, spec.Groups, spec.Seed = 200, 12, 17
	e := h.addEntraTenant(spec)
	tenant := h.connect(e, 1000)
	h.sim.SetFaults(e.ID, graphsim.Faults{ThrottleEvery: 6, RetryAfter: "1.5", FailNext: []int{503}})

	run := h.sync(tenant)

	if d := diff(h.users(tenant), expectedUsers(e.Dir, 1000), userKey); d != "" {
		t.Fatalf("users differ from Graph:\n%s", d)
	}
	reqs := h.sim.Requests()
	throttled, unavailable := 0, 0
	for i, r := range reqs {
		if r.Tenant != e.ID {
			continue
		}
		switch r.Status {
		case http.StatusServiceUnavailable:
			unavailable++
		case http.StatusTooManyRequests:
			throttled++
			if r.RetryAfter != "1.5" {
				t.Errorf("429 carried Retry-After %q", r.RetryAfter)
			}
			// The same request must not come back before 1.5 s have passed.
			for _, next := range reqs[i+1:] {
				if next.Tenant == r.Tenant && next.Path == r.Path && next.RawQuery == r.RawQuery {
					if gap := next.At.Sub(r.At); gap < 1500*time.Millisecond {
						t.Errorf("%s retried after %v, before its Retry-After of 1.5s", r.Path, gap)
					}
					break
				}
			}
		}
	}
	if throttled == 0 || unavailable == 0 {
		t.Fatalf("faults were not exercised: %d throttled, %d unavailable", throttled, unavailable)
	}
	if run.Throttled != int64(throttled) {
		t.Errorf("run reports %d throttled responses, the simulator sent %d", run.Throttled, throttled)
	}
}

func TestWrongSecretFailsRunWithAuthorityError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	e := h.addEntraTenant(graphsim.Spec{Seed: 3, Users: 5, Groups: 2})
	e.Secret = "not-the-secret"
	tenant := h.connect(e, 10)
	run := h.wait(tenant, h.trigger(tenant))
	if run.Status != "failed" || !strings.Contains(run.Error, "AADSTS7000215") {
		t.Fatalf("run = %s %q; want failed with AADSTS7000215", run.Status, run.Error)
	}
	if users := h.users(tenant); len(users) != 0 {
		t.Fatalf("failed run created %d users", len(users))
	}
}

func TestMalformedEventsAreDeadLettered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	e := h.addEntraTenant(graphsim.Spec{Seed: 5, Users: 20, Groups: 3})
	tenant := h.connect(e, 10)
	before := h.tableHashes()

	nc, err := nats.Connect(h.natsURL)
	must(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	must(t, err)
	ctx := context.Background()
	for i, payload := range [][]byte{
		[]byte("this is not protobuf"),
		{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, // a truncated field
	} {
		_, err := js.Publish(ctx, "sync.events."+tenant, payload, jetstream.WithMsgID("garbage/"+itoa(i)))
		must(t, err)
	}
	waitIdle(t, js, "SYNC_EVENTS", "reconcilers")
	dlq, err := js.Stream(ctx, "SYNC_DLQ")
	must(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := dlq.Info(ctx, jetstream.WithSubjectFilter("sync.dlq.events."+tenant))
		must(t, err)
		if n := info.State.Subjects["sync.dlq.events."+tenant]; n == 2 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("dead letters for the tenant: %d, want 2", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	storetest.DiffHashes(t, "after malformed events", h.tableHashes(), before)
}

func TestBadPayloadsAreRejectedWithTheField(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	good := map[string]any{"name": "Acme", "entraTenantId": "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00",
		"clientId": "3b9d2f64-1c8e-4a7b-b5d0-6e2f8a9c4d11", "clientSecret": "x", "seats": 5}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range good {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		body  any
		field string
	}{
		{with("seats", -1), "seats"},
		{with("seats", "ten"), "seats"},
		{with("entraTenantId", "contoso"), "entraTenantId"},
		{with("clientId", nil), "clientId"},
		{with("clientSecret", ""), "clientSecret"},
		{with("name", nil), "name"},
	}
	for _, c := range cases {
		var out struct {
			Error struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"error"`
		}
		code := h.do("POST", "/v1/tenants", c.body, &out)
		if code != http.StatusBadRequest || out.Error.Field != c.field || !strings.Contains(out.Error.Message, c.field) {
			t.Errorf("%v: %d %+v; want 400 naming %s", c.body, code, out.Error, c.field)
		}
	}
	var n int
	must(t, h.db.QueryRow(context.Background(), `SELECT count(*) FROM tenants`).Scan(&n))
	if n != 0 {
		t.Fatalf("bad payloads created %d tenants", n)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestUnreadableMemberTypesSyncTheSame: an app registration without
// Device.Read.All and OrgContact.Read.All sees devices and contacts among
// group members with only their type and id (graphsim.SetPermissions);
// the app side comes out exactly as with full read access.
func TestUnreadableMemberTypesSyncTheSame(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	spec := graphsim.Spec{Seed: 11, Users: 120, Guests: 5, Disabled: 5, NoMail: 5,
		Groups: 12, NestingDepth: 3, Devices: 6, Contacts: 3, Cycle: true}
	e := h.addEntraTenant(spec)
	checkShapes(t, e.Dir)
	must(t, h.sim.SetPermissions(e.ID, graphsim.Permissions{
		Unreadable: []graphsim.ObjectType{graphsim.TypeDevice, graphsim.TypeOrgContact}}))
	const seats = 100
	tenant := h.connect(e, seats)
	if run := h.sync(tenant); run.Status != "succeeded" {
		t.Fatalf("run %s: %s", run.Status, run.Error)
	}
	if d := diff(h.users(tenant), expectedUsers(e.Dir, seats), userKey); d != "" {
		t.Fatalf("users differ from Graph:\n%s", d)
	}
	if d := diff(h.groups(tenant), expectedGroups(e.Dir), groupKey); d != "" {
		t.Fatalf("groups differ from Graph:\n%s", d)
	}
}
