package reconciler_test

import (
	"context"
	"fmt"
	"google.golang.org/protobuf/types/known/timestamppb"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

func TestFirstRunBuildsTheAppSide(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const seats = 6 // fewer than the 10 enabled members
	tenant := e.tenant(seats)
	d := testDirectory()
	run := e.sync(tenant, d, 3)

	if got, want := e.users(tenant), expectedUsers(d, firstSeats(d, seats)); !reflect.DeepEqual(got, want) {
		t.Fatalf("app users:\n%s\nwant:\n%s", describeUsers(got), describeUsers(want))
	}
	if got, want := e.groups(tenant), expectedGroups(d); !reflect.DeepEqual(got, want) {
		t.Fatalf("app groups:\n%+v\nwant:\n%+v", got, want)
	}
	// The shapes the directory was built for, spelled out.
	wantMembers := map[string][]string{
		groupA:     {uid(1), uid(2), uid(3), uid(4)}, // three deep, the guest left out
		groupB:     {uid(2), uid(3), uid(4)},
		groupC:     {uid(3), uid(4)},
		groupX:     {uid(5), uid(6), uid(11)}, // the cycle ends; a disabled user is still an app user
		groupY:     {uid(5), uid(6), uid(11)},
		groupLarge: {uid(1), uid(2), uid(3), uid(4), uid(5), uid(6), uid(7), uid(8), uid(9), uid(10), uid(11), uid(12)},
	}
	if got := e.members(tenant); !reflect.DeepEqual(got, wantMembers) {
		t.Fatalf("memberships:\n%v\nwant:\n%v", got, wantMembers)
	}
	if !reflect.DeepEqual(expectedMembers(d), wantMembers) {
		t.Fatal("the test's own answer disagrees with the spelled-out memberships")
	}

	memberships := int64(0)
	for _, ms := range wantMembers {
		memberships += int64(len(ms))
	}
	want := map[string]int64{
		"usersCreated": 12, "usersUpdated": 0, "usersDisabled": 0, "usersEnabled": 0, "usersRemoved": 0,
		"licensesAssigned": seats, "licensesRevoked": 0, "unlicensed": 10 - seats, "usersInScope": 12,
		"rolesGranted": 0, "rolesRevoked": 0, "sharingGranted": 0, "sharingRevoked": 0,
		"groupsCreated": 7, "groupsUpdated": 0, "groupsRemoved": 0, "groupsUnreadable": 0,
		"membershipsAdded": memberships, "membershipsRemoved": 0, "pages": int64(*run.PagesTotal),
	}
	if !reflect.DeepEqual(run.Counts, want) {
		t.Errorf("counts = %v\nwant     %v", run.Counts, want)
	}
	if run.StartedAt == nil || run.FinishedAt == nil || !run.FinishedAt.Equal(fixedNow) || run.PagesApplied != *run.PagesTotal {
		t.Errorf("run = %+v", run)
	}
	if run.GraphRequests != int64(*run.PagesTotal)+1 {
		t.Errorf("graph requests = %d, want %d", run.GraphRequests, *run.PagesTotal+1)
	}
	var pagesLeft int
	must(t, e.db.QueryRow(context.Background(), `SELECT count(*) FROM sync_run_pages`).Scan(&pagesLeft))
	if pagesLeft != 0 {
		t.Errorf("%d page records left after the run", pagesLeft)
	}
}

func TestSecondRunShowsExactlyTheChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := e.tenant(1000)
	before := testDirectory()
	e.sync(tenant, before, 4)

	const (
		userKeys   = `SELECT entra_id, xmin::text::bigint FROM %s WHERE tenant_id = '` + "7e57e57e-0000-4000-8000-000000000001" + `'`
		edgeKeys   = `SELECT group_id || '/' || member_id, xmin::text::bigint FROM dir_members`
		memberKeys = `SELECT group_id || '/' || user_id, xmin::text::bigint FROM app_group_members`
	)
	// The mirror's rows are compared by content: a hash of the row
	// without its version, in the place of xmin.
	const (
		userContent = `SELECT entra_id, ('x' || left(md5((to_jsonb(t) - 'v_run_seq' - 'v_page' - 'v_idx')::text), 7))::bit(28)::int::bigint
			FROM %s t WHERE tenant_id = '` + "7e57e57e-0000-4000-8000-000000000001" + `'`
		edgeContent = `SELECT group_id || '/' || member_id, ('x' || left(md5((to_jsonb(t) - 'v_run_seq' - 'v_page' - 'v_idx')::text), 7))::bit(28)::int::bigint
			FROM dir_members t`
	)
	appBefore := e.xmins(fmt.Sprintf(userKeys, "app_users"))
	dirBefore := e.xmins(fmt.Sprintf(userContent, "dir_users"))
	groupsBefore := e.xmins(fmt.Sprintf(userKeys, "app_groups"))
	edgesBefore := e.xmins(edgeContent)
	membersBefore := e.xmins(memberKeys)

	// One user disabled, one deleted, one added, one member removed from
	// the innermost nested group.
	after := before.clone()
	disabled, deleted, added := uid(5), uid(8), uid(15)
	after.users[disabled].AccountEnabled = false
	after.deleteUser(deleted)
	after.users[added] = &syncv1.User{Id: added, DisplayName: "Ada Newcomer", Mail: "ada@contoso.example",
		UserPrincipalName: "ada@contoso.example", UserType: "Member", AccountEnabled: true}
	after.removeMember(groupC, uid(4))

	run := e.sync(tenant, after, 4)

	if got, want := e.users(tenant), expectedUsers(after, func(string) bool { return true }); !reflect.DeepEqual(got, want) {
		t.Fatalf("app users:\n%s\nwant:\n%s", describeUsers(got), describeUsers(want))
	}
	if got, want := e.groups(tenant), expectedGroups(after); !reflect.DeepEqual(got, want) {
		t.Fatalf("app groups:\n%+v\nwant:\n%+v", got, want)
	}
	wantMembers := expectedMembers(after)
	if got := e.members(tenant); !reflect.DeepEqual(got, wantMembers) {
		t.Fatalf("memberships:\n%v\nwant:\n%v", got, wantMembers)
	}
	// u4 left C and so B and A; the deleted user left Everyone.
	removedMemberships := []string{groupA + "/" + uid(4), groupB + "/" + uid(4), groupC + "/" + uid(4), groupLarge + "/" + deleted}
	want := map[string]int64{
		"usersCreated": 1, "usersUpdated": 0, "usersDisabled": 1, "usersEnabled": 0, "usersRemoved": 1,
		"licensesAssigned": 1, "licensesRevoked": 2, "unlicensed": 0, "usersInScope": 12,
		"rolesGranted": 0, "rolesRevoked": 0, "sharingGranted": 0, "sharingRevoked": 0,
		"groupsCreated": 0, "groupsUpdated": 0, "groupsRemoved": 0, "groupsUnreadable": 0,
		"membershipsAdded": 0, "membershipsRemoved": int64(len(removedMemberships)), "pages": int64(*run.PagesTotal),
	}
	if !reflect.DeepEqual(run.Counts, want) {
		t.Errorf("counts = %v\nwant     %v", run.Counts, want)
	}

	// Application rows that did not change were not written again; the
	// changed ones were. The mirror's rows that the run saw all carry its
	// version (the version must advance, or a late older page would win),
	// but only the changed ones say something new.
	checkRewrites(t, "app_users", appBefore, e.xmins(fmt.Sprintf(userKeys, "app_users")), set(disabled, deleted, added))
	checkRewrites(t, "app_groups", groupsBefore, e.xmins(fmt.Sprintf(userKeys, "app_groups")), set(groupA, groupB, groupC, groupLarge))
	checkRewrites(t, "app_group_members", membersBefore, e.xmins(memberKeys), set(removedMemberships...))
	checkRewrites(t, "dir_users (content)", dirBefore, e.xmins(fmt.Sprintf(userContent, "dir_users")), set(disabled, deleted, added))
	checkRewrites(t, "dir_members (content)", edgesBefore, e.xmins(edgeContent), set(groupC+"/"+uid(4), groupLarge+"/"+deleted))
	var stale int
	must(t, e.db.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM dir_users WHERE v_run_seq <> $1)
		+ (SELECT count(*) FROM dir_members WHERE v_run_seq <> $1)`, run.Seq).Scan(&stale))
	if stale != 0 {
		t.Errorf("%d mirror rows kept an older run's version after run %d saw them", stale, run.Seq)
	}

	// The deleted user stays in the mirror as a tombstone.
	var tomb bool
	must(t, e.db.QueryRow(context.Background(), `SELECT deleted FROM dir_users WHERE entra_id = $1`, deleted).Scan(&tomb))
	if !tomb {
		t.Error("deleted user is not a tombstone")
	}

	// A third run over the same directory writes nothing on the
	// application side, and changes nothing in the mirror but versions.
	hashes := e.hashes()
	dirAgain, edgesAgain := e.xmins(fmt.Sprintf(userContent, "dir_users")), e.xmins(edgeContent)
	appAgain := e.xmins(fmt.Sprintf(userKeys, "app_users"))
	run3 := e.sync(tenant, after, 4)
	for k, v := range run3.Counts {
		if k != "usersInScope" && k != "pages" && v != 0 {
			t.Errorf("unchanged directory: counts[%s] = %d", k, v)
		}
	}
	checkRewrites(t, "app_users (third run)", appAgain, e.xmins(fmt.Sprintf(userKeys, "app_users")), nil)
	now := e.hashes()
	for _, tbl := range []string{"app_users", "app_groups", "app_group_members"} {
		if now[tbl] != hashes[tbl] {
			t.Errorf("a run over an unchanged directory changed %s", tbl)
		}
	}
	checkRewrites(t, "dir_users (third run)", dirAgain, e.xmins(fmt.Sprintf(userContent, "dir_users")), nil)
	checkRewrites(t, "dir_members (third run)", edgesAgain, e.xmins(edgeContent), nil)
}

func set(keys ...string) map[string]bool {
	m := map[string]bool{}
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// checkRewrites fails when a row outside changed was written again (or
// appeared, or vanished), or a row in changed was left as it was.
func checkRewrites(t *testing.T, table string, before, after map[string]uint32, changed map[string]bool) {
	t.Helper()
	for k := range changed {
		old, existed := before[k]
		x, exists := after[k]
		if existed && exists && old == x {
			t.Errorf("%s: changed row %s was not written", table, k)
		}
	}
	for k, x := range after {
		if changed[k] {
			continue
		}
		if old, existed := before[k]; !existed {
			t.Errorf("%s: unexpected new row %s", table, k)
		} else if old != x {
			t.Errorf("%s: unchanged row %s was written again", table, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok && !changed[k] {
			t.Errorf("%s: row %s vanished", table, k)
		}
	}
}

// TestOrderAndConcurrencyDoNotMatter feeds two runs into fresh databases
// in wire order, twice over in a shuffled order, and twice over from
// several goroutines at once: all end byte-for-byte equal.
func TestOrderAndConcurrencyDoNotMatter(t *testing.T) {
	t.Parallel()
	first := testDirectory()
	second := first.clone()
	second.users[uid(2)].AccountEnabled = false
	second.users[uid(9)].DisplayName = "Renamed"
	second.deleteUser(uid(10))
	second.removeMember(groupB, groupC) // C leaves the nesting
	second.addMember(groupEmpty, uid(1), syncv1.MemberType_MEMBER_TYPE_USER)
	delete(second.groups, groupX)
	delete(second.members, groupX)
	second.removeMember(groupY, groupX)
	runs := []*directory{first, second}
	const seats = 7

	reference := newEnv(t)
	reference.tenant(seats)
	var want []map[string]string
	var wantEvents [][]*syncv1.SyncEvent
	for i, d := range runs {
		r := reference.newRun(tenantID)
		evs := events(d, tenantID, r.ID, r.Seq, 2)
		wantEvents = append(wantEvents, evs)
		reference.apply(evs)
		reference.finished(tenantID, r.ID)
		want = append(want, reference.hashes())
		if got := reference.users(tenantID); i == 0 && !reflect.DeepEqual(got, expectedUsers(d, firstSeats(d, seats))) {
			t.Fatalf("reference run: app users:\n%s", describeUsers(got))
		}
	}

	feeds := map[string]func(e *env, evs []*syncv1.SyncEvent, seed uint64){
		"shuffled twice": func(e *env, evs []*syncv1.SyncEvent, seed uint64) { e.apply(twiceShuffled(evs, seed)) },
		"concurrent twice": func(e *env, evs []*syncv1.SyncEvent, seed uint64) {
			e.applyConcurrently(twiceShuffled(evs, seed), 6)
		},
	}
	for name, feed := range feeds {
		for seed := uint64(1); seed <= 2; seed++ {
			t.Run(fmt.Sprintf("%s/%d", name, seed), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				e.tenant(seats)
				for i, evs := range wantEvents {
					r := e.newRun(tenantID)
					feed(e, evs, seed*10+uint64(i))
					e.finished(tenantID, r.ID)
					storetest.DiffHashes(t, fmt.Sprintf("after run %d", i+1), e.hashes(), want[i])
				}
			})
		}
	}
}

// TestInterleavedRunsConverge mixes the events of two runs of one tenant:
// whichever way they interleave, the app side ends as the second run saw
// the directory.
func TestInterleavedRunsConverge(t *testing.T) {
	t.Parallel()
	first := testDirectory()
	second := first.clone()
	second.users[uid(3)].AccountEnabled = false
	second.deleteUser(uid(4))
	second.removeMember(groupA, groupB)

	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.tenant(100)
			r1, r2 := e.newRun(tenantID), e.newRun(tenantID)
			evs := append(events(first, tenantID, r1.ID, r1.Seq, 3), events(second, tenantID, r2.ID, r2.Seq, 3)...)
			e.apply(twiceShuffled(evs, seed))

			e.finished(tenantID, r2.ID)
			if got, want := e.users(tenantID), expectedUsers(second, func(string) bool { return true }); !reflect.DeepEqual(got, want) {
				t.Fatalf("app users:\n%s\nwant:\n%s", describeUsers(got), describeUsers(want))
			}
			if got, want := e.groups(tenantID), expectedGroups(second); !reflect.DeepEqual(got, want) {
				t.Fatalf("app groups:\n%+v\nwant:\n%+v", got, want)
			}
			if got, want := e.members(tenantID), expectedMembers(second); !reflect.DeepEqual(got, want) {
				t.Fatalf("memberships:\n%v\nwant:\n%v", got, want)
			}
			old, err := e.st.GetRun(context.Background(), tenantID, r1.ID)
			must(t, err)
			if !old.Terminal() {
				t.Fatalf("the older run was left %s", old.Status)
			}
		})
	}
}

func TestSeatsGoBackNewestGrantFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := e.tenant(3)
	ctx := context.Background()

	// Four enabled members u2..u5.
	d := &directory{users: map[string]*syncv1.User{}, groups: map[string]*syncv1.Group{}, members: map[string][]*syncv1.Member{}}
	for n := 2; n <= 5; n++ {
		d.users[uid(n)] = &syncv1.User{Id: uid(n), DisplayName: fmt.Sprint(n), UserPrincipalName: fmt.Sprintf("u%d@x", n),
			UserType: "Member", AccountEnabled: true}
	}
	holders := func() []string {
		var out []string
		for _, u := range e.users(tenant) {
			if u.License == store.LicenseAssigned {
				out = append(out, u.EntraID)
			}
		}
		return out
	}
	check := func(step string, run store.Run, want []string, assigned, revoked, unlicensed int64) {
		t.Helper()
		if got := holders(); !slices.Equal(got, want) {
			t.Fatalf("%s: holders %v, want %v", step, got, want)
		}
		if run.Counts["licensesAssigned"] != assigned || run.Counts["licensesRevoked"] != revoked || run.Counts["unlicensed"] != unlicensed {
			t.Fatalf("%s: counts %v", step, run.Counts)
		}
	}

	run := e.sync(tenant, d, 10)
	check("3 seats", run, []string{uid(2), uid(3), uid(4)}, 3, 0, 1)

	// u1 arrives, ahead of everybody in id order; the pool grows to 5:
	// u1 and u5 get the new seats.
	d.users[uid(1)] = &syncv1.User{Id: uid(1), DisplayName: "1", UserPrincipalName: "u1@x", UserType: "Member", AccountEnabled: true}
	must(t, e.st.SetTenantSeats(ctx, tenant, 5))
	run = e.sync(tenant, d, 10)
	check("5 seats", run, []string{uid(1), uid(2), uid(3), uid(4), uid(5)}, 2, 0, 0)

	// Back to 3: the newest grants (u1, u5) go back, not the first ids.
	must(t, e.st.SetTenantSeats(ctx, tenant, 3))
	run = e.sync(tenant, d, 10)
	check("3 seats again", run, []string{uid(2), uid(3), uid(4)}, 0, 2, 2)

	// Down to 2: among grants of the same run, the highest id goes first.
	must(t, e.st.SetTenantSeats(ctx, tenant, 2))
	run = e.sync(tenant, d, 10)
	check("2 seats", run, []string{uid(2), uid(3)}, 0, 1, 3)

	// A holder disabled in Entra frees the seat, which goes to the first
	// waiting user by id.
	d.users[uid(2)].AccountEnabled = false
	run = e.sync(tenant, d, 10)
	check("holder disabled", run, []string{uid(1), uid(3)}, 1, 1, 2)
	if run.Counts["usersDisabled"] != 1 {
		t.Fatalf("counts %v", run.Counts)
	}
}

// An event that names no run of its tenant is dead-lettered and changes
// nothing at all; an event of a run that can never be applied fails that
// run at once, with the reason, and changes nothing else.
func TestInvalidEventsArePermanentAndChangeNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := e.tenant(5)
	d := testDirectory()
	e.sync(tenant, d, 5) // run 1 is over
	other := "0be00000-0000-4000-8000-000000000000"
	_, err := e.st.CreateTenant(context.Background(), store.NewTenant{ID: other, Name: "Other", EntraTenantID: "e", ClientID: "c", ClientSecret: "s"})
	must(t, err)

	edit := func(ev *syncv1.SyncEvent, f func(*syncv1.SyncEvent)) *syncv1.SyncEvent {
		c := proto.CloneOf(ev)
		f(c)
		return c
	}
	// Each case picks the event to spoil from a run's good events.
	type spoil func(good []*syncv1.SyncEvent) *syncv1.SyncEvent
	users := func(f func(*syncv1.SyncEvent)) spoil {
		return func(good []*syncv1.SyncEvent) *syncv1.SyncEvent { return edit(good[1], f) }
	}
	find := func(has func(*syncv1.SyncEvent) bool, f func(*syncv1.SyncEvent)) spoil {
		return func(good []*syncv1.SyncEvent) *syncv1.SyncEvent {
			for _, ev := range good {
				if has(ev) {
					return edit(ev, f)
				}
			}
			t.Fatal("no such page")
			return nil
		}
	}
	members := func(f func(*syncv1.SyncEvent)) spoil {
		return find(func(ev *syncv1.SyncEvent) bool { return len(ev.GetMembers().GetMembers()) > 0 }, f)
	}
	transitive := func(f func(*syncv1.SyncEvent)) spoil {
		return find(func(ev *syncv1.SyncEvent) bool { return len(ev.GetTransitiveMembers().GetUserIds()) > 0 }, f)
	}
	groups := func(f func(*syncv1.SyncEvent)) spoil {
		return find(func(ev *syncv1.SyncEvent) bool { return len(ev.GetGroups().GetGroups()) > 0 }, f)
	}
	started := func(f func(*syncv1.SyncEvent)) spoil {
		return func(good []*syncv1.SyncEvent) *syncv1.SyncEvent { return edit(good[0], f) }
	}
	fetched := func(f func(*syncv1.SyncEvent)) spoil {
		return func(good []*syncv1.SyncEvent) *syncv1.SyncEvent { return edit(good[len(good)-1], f) }
	}
	// delta puts a delta page body on a page of the run not applied yet.
	delta := func(body func(*syncv1.SyncEvent)) spoil {
		return func(good []*syncv1.SyncEvent) *syncv1.SyncEvent { return edit(good[3], body) }
	}
	usersDelta := func(p *syncv1.UsersDeltaPage) func(*syncv1.SyncEvent) {
		return func(ev *syncv1.SyncEvent) { ev.Body = &syncv1.SyncEvent_UsersDelta{UsersDelta: p} }
	}
	groupsDelta := func(p *syncv1.GroupsDeltaPage) func(*syncv1.SyncEvent) {
		return func(ev *syncv1.SyncEvent) { ev.Body = &syncv1.SyncEvent_GroupsDelta{GroupsDelta: p} }
	}

	t.Run("naming no run", func(t *testing.T) {
		run := e.newRun(tenant)
		good := events(d, tenant, run.ID, run.Seq, 5)
		e.apply(good[:3])
		e.apply(good[len(good)-1:])
		before := e.hashes()
		cases := map[string]spoil{
			"nil event":             func([]*syncv1.SyncEvent) *syncv1.SyncEvent { return nil },
			"tenant not a uuid":     users(func(ev *syncv1.SyncEvent) { ev.TenantId = "contoso" }),
			"run not a uuid":        users(func(ev *syncv1.SyncEvent) { ev.RunId = "run-1" }),
			"seq zero":              users(func(ev *syncv1.SyncEvent) { ev.RunSeq = 0 }),
			"seq mismatch":          users(func(ev *syncv1.SyncEvent) { ev.RunSeq = 7 }),
			"unknown tenant":        users(func(ev *syncv1.SyncEvent) { ev.TenantId = "0be00000-0000-4000-8000-00000000ffff" }),
			"run of another tenant": users(func(ev *syncv1.SyncEvent) { ev.TenantId = other }),
			"unknown run":           users(func(ev *syncv1.SyncEvent) { ev.RunId = "1d000000-0000-4000-8000-00000000ffff" }),
			"failed for another run": func([]*syncv1.SyncEvent) *syncv1.SyncEvent {
				return &syncv1.SyncEvent{TenantId: tenant, RunId: "1d000000-0000-4000-8000-00000000ffff", RunSeq: 2, Page: -1,
					Body: &syncv1.SyncEvent_Failed{Failed: &syncv1.RunFailed{Error: "x"}}}
			},
		}
		for name, c := range cases {
			if err := e.r.Apply(context.Background(), c(good)); !bus.IsPermanent(err) {
				t.Errorf("%s: err = %v, want a permanent error", name, err)
			}
		}
		storetest.DiffHashes(t, "after invalid events", e.hashes(), before)
		// The run still completes with the good events.
		e.apply(good)
		e.finished(tenant, run.ID)
	})

	t.Run("of a run", func(t *testing.T) {
		// want is part of the reason the run must end with.
		cases := []struct {
			name  string
			spoil spoil
			want  string
		}{
			{"no body", users(func(ev *syncv1.SyncEvent) { ev.Body = nil }), "event has no body"},
			{"negative data page", users(func(ev *syncv1.SyncEvent) { ev.Page = -1 }), "page -1 of a data page is negative"},
			{"page beyond the run", users(func(ev *syncv1.SyncEvent) { ev.Page = 10000 }), "users page 10000 could not be applied"},
			{"started with a page", started(func(ev *syncv1.SyncEvent) { ev.Page = 3 }), "page of RunStarted is 3"},
			{"user without id", users(func(ev *syncv1.SyncEvent) { ev.GetUsers().Users[1].Id = "" }), "users[1] has no id"},
			{"user id with NUL", users(func(ev *syncv1.SyncEvent) { ev.GetUsers().Users[1].Id += "\x00" }), "contains a NUL character"},
			{"page applied as users", users(func(ev *syncv1.SyncEvent) {
				ev.Body = &syncv1.SyncEvent_Groups{Groups: &syncv1.GroupsPage{Groups: []*syncv1.Group{{Id: gid(99)}}}}
			}), "was applied as users page"},
			{"group renewed at no time", groups(func(ev *syncv1.SyncEvent) {
				ev.GetGroups().Groups[0].RenewedDateTime = &timestamppb.Timestamp{Seconds: 1, Nanos: -5}
			}), "has renewed_date_time"},
			{"member type unset", members(func(ev *syncv1.SyncEvent) { ev.GetMembers().Members[0].Type = 0 }), "has type"},
			{"member type unknown", members(func(ev *syncv1.SyncEvent) { ev.GetMembers().Members[0].Type = 42 }), "has type 42"},
			{"member without id", members(func(ev *syncv1.SyncEvent) { ev.GetMembers().Members[0].Id = " " }), "members[0] has no id"},
			{"members without group", members(func(ev *syncv1.SyncEvent) { ev.GetMembers().GroupId = "" }), "has no group_id"},
			{"negative part", members(func(ev *syncv1.SyncEvent) { ev.GetMembers().Part = -1 }), "part -1 is negative"},
			{"transitive empty id", transitive(func(ev *syncv1.SyncEvent) { ev.GetTransitiveMembers().UserIds[0] = "" }), "user_ids[0] is empty"},
			{"negative page count", fetched(func(ev *syncv1.SyncEvent) { ev.GetFetched().Pages = -1 }), "RunFetched.pages -1"},
			{"another page count", fetched(func(ev *syncv1.SyncEvent) { ev.GetFetched().Pages = 1 }), ", now 1"},
			{"negative graph stats", fetched(func(ev *syncv1.SyncEvent) { ev.GetFetched().Stats.Requests = -1 }), "negative count"},
			{"first page mid-attempt", fetched(func(ev *syncv1.SyncEvent) { ev.GetFetched().FirstPage = syncv1.AttemptPageSpan + 1 }), "first_page"},
			{"negative first page", fetched(func(ev *syncv1.SyncEvent) { ev.GetFetched().FirstPage = -syncv1.AttemptPageSpan }), "first_page"},
			{"first page of no attempt", fetched(func(ev *syncv1.SyncEvent) {
				ev.GetFetched().FirstPage = syncv1.MaxFetchAttempts * syncv1.AttemptPageSpan
			}), "first_page"},
			{"more pages than a span", fetched(func(ev *syncv1.SyncEvent) { ev.GetFetched().Pages = syncv1.AttemptPageSpan + 1 }), "RunFetched.pages"},
			{"negative attempt", started(func(ev *syncv1.SyncEvent) { ev.GetStarted().Attempt = -1 }), "attempt -1"},
			{"attempt out of range", started(func(ev *syncv1.SyncEvent) { ev.GetStarted().Attempt = syncv1.MaxFetchAttempts + 1 }), "out of range"},
			{"users delta user without id", delta(usersDelta(&syncv1.UsersDeltaPage{Users: []*syncv1.User{{Id: ""}}})), "users[0] has no id"},
			{"users delta removal without id", delta(usersDelta(&syncv1.UsersDeltaPage{Removed: []*syncv1.Removed{{Id: " "}}})), "removed[0] has no id"},
			{"users delta removal id with NUL", delta(usersDelta(&syncv1.UsersDeltaPage{Removed: []*syncv1.Removed{{Id: "u\x00"}}})),
				"contains a NUL character"},
			{"users delta user changed and removed", delta(usersDelta(&syncv1.UsersDeltaPage{Users: []*syncv1.User{{Id: uid(1)}},
				Removed: []*syncv1.Removed{{Id: uid(1), Restorable: true}}})), "both changed and removed"},
			{"users delta negative page", func(good []*syncv1.SyncEvent) *syncv1.SyncEvent {
				ev := delta(usersDelta(&syncv1.UsersDeltaPage{}))(good)
				ev.Page = -2
				return ev
			}, "page -2 of a data page is negative"},
			{"groups delta group without id", delta(groupsDelta(&syncv1.GroupsDeltaPage{Groups: []*syncv1.Group{{Id: ""}}})), "groups[0] has no id"},
			{"groups delta removal without id", delta(groupsDelta(&syncv1.GroupsDeltaPage{Removed: []*syncv1.Removed{{}}})), "removed[0] has no id"},
			{"groups delta member changes without group", delta(groupsDelta(&syncv1.GroupsDeltaPage{
				Members: []*syncv1.GroupMembersDelta{{Removed: []string{uid(1)}}}})), "has no group_id"},
			{"groups delta member type unknown", delta(groupsDelta(&syncv1.GroupsDeltaPage{
				Members: []*syncv1.GroupMembersDelta{{GroupId: groupA, Added: []*syncv1.Member{{Id: uid(1), Type: 42}}}}})), "has type 42"},
			{"groups delta member type unset", delta(groupsDelta(&syncv1.GroupsDeltaPage{
				Members: []*syncv1.GroupMembersDelta{{GroupId: groupA, Added: []*syncv1.Member{{Id: uid(1)}}}}})), "has type"},
			{"groups delta added member without id", delta(groupsDelta(&syncv1.GroupsDeltaPage{
				Members: []*syncv1.GroupMembersDelta{{GroupId: groupA, Added: []*syncv1.Member{{Type: 1}}}}})), "added[0] has no id"},
			{"groups delta removed member empty", delta(groupsDelta(&syncv1.GroupsDeltaPage{
				Members: []*syncv1.GroupMembersDelta{{GroupId: groupA, Removed: []string{""}}}})), "removed[0] is empty"},
			{"groups delta group twice", delta(groupsDelta(&syncv1.GroupsDeltaPage{
				Members: []*syncv1.GroupMembersDelta{{GroupId: groupA, Removed: []string{uid(1)}}, {GroupId: groupA}}})),
				"member changes twice"},
			{"groups delta member added and removed", delta(groupsDelta(&syncv1.GroupsDeltaPage{
				Members: []*syncv1.GroupMembersDelta{{GroupId: groupA, Added: []*syncv1.Member{{Id: uid(1), Type: 1}},
					Removed: []string{uid(1)}}}})), "both added to and removed from"},
			{"fetched delta link with NUL", fetched(func(ev *syncv1.SyncEvent) { ev.GetFetched().UsersDeltaLink = "https://g\x00" }),
				"users_delta_link"},
			{"fetched caught up without links", fetched(func(ev *syncv1.SyncEvent) { ev.GetFetched().CaughtUp = true }),
				"caught_up without both delta links"},
			{"fetched filtered with a link", fetched(func(ev *syncv1.SyncEvent) {
				ev.GetFetched().UsersFiltered, ev.GetFetched().GroupsDeltaLink = true, "https://graph/groups/delta?$deltatoken=1"
			}), "users_filtered with delta links"},
			{"failed with a page", func(good []*syncv1.SyncEvent) *syncv1.SyncEvent {
				return &syncv1.SyncEvent{TenantId: tenant, RunId: good[0].RunId, RunSeq: good[0].RunSeq, Page: 0,
					Body: &syncv1.SyncEvent_Failed{Failed: &syncv1.RunFailed{Error: "x"}}}
			}, "page of RunFailed is 0"},
		}
		// What the run's failure may change; everything else stays.
		runTables := map[string]bool{"sync_runs": true, "sync_run_pages": true, "notification_tasks": true}
		for _, c := range cases {
			run := e.newRun(tenant)
			good := events(d, tenant, run.ID, run.Seq, 5)
			// Some of the run's pages are in, and its RunFetched with
			// as many pages as there are.
			e.apply(good[:3])
			fetchedEv := good[len(good)-1]
			e.apply([]*syncv1.SyncEvent{fetchedEv})
			before := e.hashes()

			err := e.r.Apply(context.Background(), c.spoil(good))
			if !bus.IsPermanent(err) {
				t.Errorf("%s: err = %v, want a permanent error", c.name, err)
			}
			after := e.hashes()
			for tbl := range before {
				if !runTables[tbl] && before[tbl] != after[tbl] {
					t.Errorf("%s: %s changed", c.name, tbl)
				}
			}
			got, err := e.st.GetRun(context.Background(), tenant, run.ID)
			must(t, err)
			if got.Status != store.StatusFailed || !strings.Contains(got.Error, "could not be applied, so the run cannot finish") ||
				!strings.Contains(got.Error, c.want) {
				t.Errorf("%s: run is %s with error %q; want failed, saying %q", c.name, got.Status, got.Error, c.want)
			}
			// The run's good events change nothing now.
			before = e.hashes()
			e.apply(good)
			storetest.DiffHashes(t, c.name+": good events after the failure", e.hashes(), before)
		}
	})
}

// Postgres text cannot hold NUL, which Graph allows in free text: it is
// stored as U+FFFD, and the run goes through.
func TestNULInGraphTextIsReplacedNotRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := e.tenant(50)
	d := testDirectory()
	u := d.users[uid(3)]
	u.DisplayName = "Ada\x00Lovelace"
	u.Department = "\x00"
	for _, g := range d.groups {
		g.Description = "nul\x00here"
		g.GroupTypes = append(g.GroupTypes, "x\x00")
		break
	}
	e.sync(tenant, d, 4)
	var name, dept string
	must(t, e.db.QueryRow(context.Background(), `SELECT display_name, department FROM dir_users WHERE entra_id = $1`, uid(3)).Scan(&name, &dept))
	if name != "Ada\uFFFDLovelace" || dept != "\uFFFD" {
		t.Errorf("mirror has %q / %q, want NUL replaced by U+FFFD", name, dept)
	}
	for _, au := range e.users(tenant) {
		if au.EntraID == uid(3) && au.DisplayName != "Ada\uFFFDLovelace" {
			t.Errorf("app user named %q", au.DisplayName)
		}
	}
}

func TestFailedRunEndsWithTheReasonAndLatePagesChangeNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := e.tenant(5)
	run := e.newRun(tenant)
	evs := events(testDirectory(), tenant, run.ID, run.Seq, 5)
	e.apply(evs[:2])
	failed := &syncv1.SyncEvent{TenantId: tenant, RunId: run.ID, RunSeq: run.Seq, Page: -1,
		Body: &syncv1.SyncEvent_Failed{Failed: &syncv1.RunFailed{Error: "AADSTS7000215: Invalid client secret provided.",
			Stats: &syncv1.GraphStats{Requests: 3, Throttled: 1}}}}
	e.apply([]*syncv1.SyncEvent{failed})
	before := e.hashes()
	e.apply(evs) // late pages and a RunFetched: the run is over
	e.apply([]*syncv1.SyncEvent{failed})
	storetest.DiffHashes(t, "after late events", e.hashes(), before)

	got, err := e.st.GetRun(context.Background(), tenant, run.ID)
	must(t, err)
	if got.Status != store.StatusFailed || got.Error != "AADSTS7000215: Invalid client secret provided." ||
		got.GraphRequests != 3 || got.Throttled != 1 || got.FinishedAt == nil || got.PagesApplied != 1 {
		t.Fatalf("run = %+v", got)
	}
	if users := e.users(tenant); len(users) != 0 {
		t.Fatalf("a failed run made %d app users", len(users))
	}
}

func TestDatabaseGoneIsRetriedNotDeadLettered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := e.tenant(5)
	run := e.newRun(tenant)
	evs := events(testDirectory(), tenant, run.ID, run.Seq, 5)

	// Drop the database under the reconciler's feet.
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(e.url)
	must(t, err)
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	must(t, err)
	defer conn.Close(ctx)
	e.db.Close()
	_, err = conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	must(t, err)

	err = e.r.Apply(ctx, evs[1])
	if err == nil || bus.IsPermanent(err) {
		t.Fatalf("apply with the database gone: %v; want a retryable error", err)
	}
	if !store.IsRetryable(err) {
		t.Errorf("IsRetryable(%v) = false", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRetriedFetchIsJudgedOnItsLastAttempt plays a run whose job was
// fetched twice: the first attempt is cut off after some of its pages, the
// directory changes, and the second attempt reads it all again under its
// own page numbers. Whatever the order, the run ends as the second attempt
// saw the directory, and the tables end the same.
func TestRetriedFetchIsJudgedOnItsLastAttempt(t *testing.T) {
	t.Parallel()
	before := testDirectory()
	after := before.clone()
	after.deleteUser(uid(8))              // seen by attempt 1 only: must go
	after.users[uid(9)].DisplayName = "Z" // changed between the attempts
	after.users[uid(15)] = &syncv1.User{Id: uid(15), DisplayName: "New", UserPrincipalName: "u15@contoso.example",
		UserType: "Member", AccountEnabled: true}
	after.addMember(groupA, uid(15), syncv1.MemberType_MEMBER_TYPE_USER)
	after.removeMember(groupB, groupC)

	// Attempt 1 got RunStarted and half of its pages out; attempt 2 all of
	// them, RunStarted included.
	const pageSize = 3
	run2Events := func(r store.Run) []*syncv1.SyncEvent {
		first := attemptEvents(before, tenantID, r.ID, r.Seq, 1, pageSize)
		second := attemptEvents(after, tenantID, r.ID, r.Seq, 2, pageSize)
		return append(first[:len(first)/2], second...)
	}
	check := func(t *testing.T, e *env) {
		t.Helper()
		if got, want := e.users(tenantID), expectedUsers(after, func(string) bool { return true }); !reflect.DeepEqual(got, want) {
			t.Fatalf("app users:\n%s\nwant:\n%s", describeUsers(got), describeUsers(want))
		}
		if got, want := e.groups(tenantID), expectedGroups(after); !reflect.DeepEqual(got, want) {
			t.Fatalf("app groups:\n%+v\nwant:\n%+v", got, want)
		}
		if got, want := e.members(tenantID), expectedMembers(after); !reflect.DeepEqual(got, want) {
			t.Fatalf("memberships:\n%v\nwant:\n%v", got, want)
		}
	}

	reference := newEnv(t)
	reference.tenant(100)
	reference.sync(tenantID, before, pageSize)
	r := reference.newRun(tenantID)
	reference.apply(run2Events(r))
	run := reference.finished(tenantID, r.ID)
	if run.PagesFirst == nil || *run.PagesFirst != syncv1.AttemptPageSpan || run.PagesApplied != *run.PagesTotal {
		t.Fatalf("run 2: %v pages from %v, %d applied", run.PagesTotal, run.PagesFirst, run.PagesApplied)
	}
	check(t, reference)
	want := reference.hashes()

	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.tenant(100)
			e.sync(tenantID, before, pageSize)
			r := e.newRun(tenantID)
			e.apply(twiceShuffled(run2Events(r), seed))
			e.finished(tenantID, r.ID)
			check(t, e)
			storetest.DiffHashes(t, "shuffled", e.hashes(), want)
		})
	}
}
