package reconciler_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
	"github.com/entrasync/entrasync/services/reconciler"
)

func TestMain(m *testing.M) { os.Exit(devenv.RunTests(m)) }

// The tests build a small directory by hand, turn it into the events a
// fetcher would publish, and check what the reconciler made of them
// against answers computed here, independently of the SQL.

// fixedNow is the clock of every test: with one fixed clock, two
// databases fed the same events must end up byte-for-byte equal.
var fixedNow = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

func clock() time.Time { return fixedNow }

// id makes a readable, sortable UUID: kind tells users (1), groups (2),
// devices (3), contacts (4) apart.
func id(kind, n int) string { return fmt.Sprintf("%08d-0000-4000-8000-%012d", kind, n) }

func uid(n int) string { return id(1, n) }
func gid(n int) string { return id(2, n) }

type directory struct {
	users   map[string]*syncv1.User
	groups  map[string]*syncv1.Group
	members map[string][]*syncv1.Member // group id → direct members, in Graph's order
}

func (d *directory) clone() *directory {
	c := &directory{users: map[string]*syncv1.User{}, groups: map[string]*syncv1.Group{}, members: map[string][]*syncv1.Member{}}
	for k, u := range d.users {
		c.users[k] = proto.CloneOf(u)
	}
	for k, g := range d.groups {
		c.groups[k] = proto.CloneOf(g)
	}
	for k, ms := range d.members {
		for _, m := range ms {
			c.members[k] = append(c.members[k], proto.CloneOf(m))
		}
	}
	return c
}

func (d *directory) addMember(group, member string, typ syncv1.MemberType) {
	d.members[group] = append(d.members[group], &syncv1.Member{Id: member, Type: typ})
}

func (d *directory) removeMember(group, member string) {
	d.members[group] = slices.DeleteFunc(d.members[group], func(m *syncv1.Member) bool { return m.Id == member })
}

func (d *directory) deleteUser(id string) {
	delete(d.users, id)
	for g := range d.members {
		d.removeMember(g, id)
	}
}

// Groups of the test directory.
var (
	groupA     = gid(1) // security: B, u1, a device
	groupB     = gid(2) // Microsoft 365: C, u2, a contact
	groupC     = gid(3) // mail-enabled security: u3, u4, a guest
	groupX     = gid(4) // distribution: Y, u5
	groupY     = gid(5) // dynamic security: X (a cycle), u6, a disabled user
	groupEmpty = gid(6)
	groupLarge = gid(7) // every user: its member list takes several pages
)

// testDirectory has every shape the reconciler must handle: members and
// guests, disabled users, users without mail, nesting three deep (A ⊃ B ⊃
// C), a cycle (X ⊃ Y ⊃ X), a device and a contact as members, an empty
// group and a group whose member list spans pages.
func testDirectory() *directory {
	d := &directory{users: map[string]*syncv1.User{}, groups: map[string]*syncv1.Group{}, members: map[string][]*syncv1.Member{}}
	for n := 1; n <= 14; n++ {
		u := &syncv1.User{
			Id: uid(n), DisplayName: fmt.Sprintf("User %d", n), GivenName: "User", Surname: fmt.Sprint(n),
			Mail: fmt.Sprintf("user%d@contoso.example", n), UserPrincipalName: fmt.Sprintf("u%d@contoso.example", n),
			JobTitle: "Engineer", Department: "R&D", UserType: "Member", AccountEnabled: true,
		}
		switch n {
		case 3, 7: // no mailbox: the UPN is the email
			u.Mail = ""
		case 11, 12:
			u.AccountEnabled = false
		case 13:
			u.UserType = "Guest"
		case 14:
			u.UserType, u.AccountEnabled = "Guest", false
		}
		d.users[u.Id] = u
	}
	group := func(id, name string, types []string, security, mail bool) {
		d.groups[id] = &syncv1.Group{Id: id, DisplayName: name, GroupTypes: types, SecurityEnabled: security, MailEnabled: mail}
	}
	group(groupA, "A", nil, true, false)
	group(groupB, "B", []string{"Unified"}, false, true)
	group(groupC, "C", nil, true, true)
	group(groupX, "X", nil, false, true)
	group(groupY, "Y", []string{"DynamicMembership"}, true, false)
	group(groupEmpty, "Empty", nil, true, false)
	group(groupLarge, "Everyone", nil, true, false)
	d.groups[groupY].MembershipRule = `user.department -eq "R&D"`

	user, grp := syncv1.MemberType_MEMBER_TYPE_USER, syncv1.MemberType_MEMBER_TYPE_GROUP
	d.addMember(groupA, groupB, grp)
	d.addMember(groupA, uid(1), user)
	d.addMember(groupA, id(3, 1), syncv1.MemberType_MEMBER_TYPE_DEVICE)
	d.addMember(groupB, groupC, grp)
	d.addMember(groupB, uid(2), user)
	d.addMember(groupB, id(4, 1), syncv1.MemberType_MEMBER_TYPE_ORG_CONTACT)
	d.addMember(groupC, uid(3), user)
	d.addMember(groupC, uid(4), user)
	d.addMember(groupC, uid(13), user)
	d.addMember(groupX, groupY, grp)
	d.addMember(groupX, uid(5), user)
	d.addMember(groupY, groupX, grp)
	d.addMember(groupY, uid(6), user)
	d.addMember(groupY, uid(11), user)
	for n := 14; n >= 1; n-- {
		d.addMember(groupLarge, uid(n), user)
	}
	d.members[groupEmpty] = nil
	return d
}

// transitiveUsers is Graph's /transitiveMembers/graph.user of a group:
// every user reachable through nested groups, each once, cycles or not.
func (d *directory) transitiveUsers(group string) []string {
	seen := map[string]bool{group: true}
	users := map[string]bool{}
	queue := []string{group}
	for len(queue) > 0 {
		g := queue[0]
		queue = queue[1:]
		for _, m := range d.members[g] {
			switch m.Type {
			case syncv1.MemberType_MEMBER_TYPE_USER:
				if _, ok := d.users[m.Id]; ok {
					users[m.Id] = true
				}
			case syncv1.MemberType_MEMBER_TYPE_GROUP:
				if !seen[m.Id] {
					seen[m.Id] = true
					queue = append(queue, m.Id)
				}
			}
		}
	}
	return sortedKeys(users)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// events returns what a fetcher publishes for one run over d: RunStarted,
// users pages, groups pages, per group its members and transitive
// members pages (pageSize entries each), and RunFetched.
func events(d *directory, tenantID, runID string, seq int64, pageSize int) []*syncv1.SyncEvent {
	return attemptEvents(d, tenantID, runID, seq, 1, pageSize)
}

// attemptEvents is events for the given fetch attempt of the run (from
// 1): its pages are numbered from the attempt's first page.
func attemptEvents(d *directory, tenantID, runID string, seq int64, attempt, pageSize int) []*syncv1.SyncEvent {
	var out []*syncv1.SyncEvent
	first, ok := syncv1.AttemptFirstPage(attempt)
	if !ok {
		panic(fmt.Sprint("no attempt ", attempt))
	}
	page := first
	ev := func(p int32) *syncv1.SyncEvent {
		return &syncv1.SyncEvent{TenantId: tenantID, RunId: runID, RunSeq: seq, Page: p, ObservedAt: timestamppb.New(fixedNow)}
	}
	data := func() *syncv1.SyncEvent { e := ev(page); page++; out = append(out, e); return e }

	start := ev(-1)
	start.Body = &syncv1.SyncEvent_Started{Started: &syncv1.RunStarted{Fetcher: "test", Attempt: int32(attempt)}}
	out = append(out, start)

	userIDs := sortedKeys(d.users)
	for i := 0; i < len(userIDs); i += pageSize {
		var us []*syncv1.User
		for _, id := range userIDs[i:min(i+pageSize, len(userIDs))] {
			us = append(us, d.users[id])
		}
		data().Body = &syncv1.SyncEvent_Users{Users: &syncv1.UsersPage{Users: us}}
	}
	groupIDs := sortedKeys(d.groups)
	for i := 0; i < len(groupIDs); i += pageSize {
		var gs []*syncv1.Group
		for _, id := range groupIDs[i:min(i+pageSize, len(groupIDs))] {
			gs = append(gs, d.groups[id])
		}
		data().Body = &syncv1.SyncEvent_Groups{Groups: &syncv1.GroupsPage{Groups: gs}}
	}
	for _, g := range groupIDs {
		ms := d.members[g]
		for part, i := int32(0), 0; ; part, i = part+1, i+pageSize {
			last := i+pageSize >= len(ms)
			data().Body = &syncv1.SyncEvent_Members{Members: &syncv1.MembersPage{
				GroupId: g, Members: ms[i:min(i+pageSize, len(ms))], Part: part, Last: last}}
			if last {
				break
			}
		}
		ts := d.transitiveUsers(g)
		for part, i := int32(0), 0; ; part, i = part+1, i+pageSize {
			last := i+pageSize >= len(ts)
			data().Body = &syncv1.SyncEvent_TransitiveMembers{TransitiveMembers: &syncv1.TransitiveMembersPage{
				GroupId: g, UserIds: ts[i:min(i+pageSize, len(ts))], Part: part, Last: last}}
			if last {
				break
			}
		}
	}
	fetched := ev(-1)
	fetched.Body = &syncv1.SyncEvent_Fetched{Fetched: &syncv1.RunFetched{
		FirstPage: first, Pages: page - first, Stats: &syncv1.GraphStats{Requests: int64(page-first) + 1}}}
	return append(out, fetched)
}

// Expected application side.

func expectedUsers(d *directory, licensed func(id string) bool) []store.AppUser {
	var out []store.AppUser
	for _, id := range sortedKeys(d.users) {
		u := d.users[id]
		if u.UserType != "Member" {
			continue
		}
		au := store.AppUser{EntraID: id, Email: u.Mail, DisplayName: u.DisplayName, Enabled: u.AccountEnabled,
			License: store.LicenseNone, Roles: []string{}}
		if au.Email == "" {
			au.Email = u.UserPrincipalName
		}
		switch {
		case !u.AccountEnabled:
			au.License = store.LicenseDisabled
		case licensed(id):
			au.License = store.LicenseAssigned
		}
		out = append(out, au)
	}
	return out
}

// firstSeats is the first run's seat rule: enabled members in id order
// while seats last.
func firstSeats(d *directory, seats int) func(string) bool {
	holders := map[string]bool{}
	for _, id := range sortedKeys(d.users) {
		if u := d.users[id]; u.UserType == "Member" && u.AccountEnabled && len(holders) < seats {
			holders[id] = true
		}
	}
	return func(id string) bool { return holders[id] }
}

func expectedGroups(d *directory) []store.AppGroup {
	var out []store.AppGroup
	for _, id := range sortedKeys(d.groups) {
		g := d.groups[id]
		// Every group of these directories is of a kind the default
		// settings sync, and none is deleted: all are enabled.
		ag := store.AppGroup{EntraID: id, DisplayName: g.DisplayName, Status: plan.StatusEnabled,
			Dynamic: slices.Contains(g.GroupTypes, "DynamicMembership")}
		switch {
		case slices.Contains(g.GroupTypes, "Unified"):
			ag.Kind = store.GroupMicrosoft365
		case g.SecurityEnabled && g.MailEnabled:
			ag.Kind = store.GroupMailEnabledSecurity
		case g.SecurityEnabled:
			ag.Kind = store.GroupSecurity
		default:
			ag.Kind = store.GroupDistribution
		}
		ag.EntraMemberCount = len(d.transitiveUsers(id))
		ag.SyncedMemberCount = len(expectedMembers(d)[id])
		out = append(out, ag)
	}
	return out
}

// expectedMembers: each group's transitive users that are app users.
func expectedMembers(d *directory) map[string][]string {
	out := map[string][]string{}
	for g := range d.groups {
		for _, u := range d.transitiveUsers(g) {
			if d.users[u].UserType == "Member" {
				out[g] = append(out[g], u)
			}
		}
	}
	return out
}

// env is one database with a store and a reconciler on it.
type env struct {
	t   *testing.T
	st  *store.Store
	url string
	db  *pgxpool.Pool
	r   *reconciler.Reconciler
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, url := storetest.NewWithURL(t, store.WithClock(clock))
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	r, err := reconciler.New(reconciler.Config{Clock: clock}, reconciler.Deps{Store: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return &env{t: t, st: st, url: url, db: db, r: r}
}

// Fixed ids, so that databases built apart can be compared byte for byte.
const tenantID = "7e57e57e-0000-4000-8000-000000000001"

func runID(seq int) string { return fmt.Sprintf("1d000000-0000-4000-8000-%012d", seq) }

func (e *env) tenant(seats int) string {
	e.t.Helper()
	tn, err := e.st.CreateTenant(context.Background(), store.NewTenant{ID: tenantID, Name: "Contoso",
		EntraTenantID: "c0000000-0000-4000-8000-000000000000", ClientID: "c1000000-0000-4000-8000-000000000000",
		ClientSecret: "secret", Seats: seats})
	if err != nil {
		e.t.Fatal(err)
	}
	return tn.ID
}

// newRun creates the tenant's next run (with the fixed id of its seq).
func (e *env) newRun(tenant string) store.Run {
	e.t.Helper()
	runs, err := e.st.ListRuns(context.Background(), tenant, 0, 1)
	if err != nil {
		e.t.Fatal(err)
	}
	next := 1
	if len(runs) > 0 {
		next = int(runs[0].Seq) + 1
	}
	r, err := e.st.CreateRun(context.Background(), store.NewRun{ID: runID(next), TenantID: tenant, Kind: store.KindFull, Trigger: store.TriggerManual})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// apply applies events one after the other; each must succeed.
func (e *env) apply(evs []*syncv1.SyncEvent) {
	e.t.Helper()
	for _, ev := range evs {
		if err := e.r.Apply(context.Background(), ev); err != nil {
			e.t.Fatalf("apply page %d (%T): %v", ev.GetPage(), ev.GetBody(), err)
		}
	}
}

// applyConcurrently applies events from several goroutines at once,
// retrying what failed for a passing reason, as the bus would.
func (e *env) applyConcurrently(evs []*syncv1.SyncEvent, workers int) {
	e.t.Helper()
	ch := make(chan *syncv1.SyncEvent)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ev := range ch {
				var err error
				for attempt := 0; attempt < 20; attempt++ {
					if err = e.r.Apply(context.Background(), ev); err == nil || bus.IsPermanent(err) {
						break
					}
				}
				if err != nil {
					e.t.Errorf("apply page %d: %v", ev.GetPage(), err)
				}
			}
		})
	}
	for _, ev := range evs {
		ch <- ev
	}
	close(ch)
	wg.Wait()
}

// sync runs a whole run in wire order and returns the finished run.
func (e *env) sync(tenant string, d *directory, pageSize int) store.Run {
	e.t.Helper()
	run := e.newRun(tenant)
	e.apply(events(d, tenant, run.ID, run.Seq, pageSize))
	return e.finished(tenant, run.ID)
}

func (e *env) finished(tenant, runID string) store.Run {
	e.t.Helper()
	run, err := e.st.GetRun(context.Background(), tenant, runID)
	if err != nil {
		e.t.Fatal(err)
	}
	if run.Status != store.StatusSucceeded {
		e.t.Fatalf("run %d is %s (%s), want succeeded", run.Seq, run.Status, run.Error)
	}
	return run
}

// waitOver waits until a run is over (Terminal) and returns it.
func (e *env) waitOver(tenant, runID string, limit time.Duration) store.Run {
	e.t.Helper()
	var run store.Run
	devenv.WaitFor(e.t, limit, "run "+runID+" to be over", func() bool {
		var err error
		run, err = e.st.GetRun(context.Background(), tenant, runID)
		if err != nil {
			e.t.Fatal(err)
		}
		return run.Terminal()
	})
	return run
}

func (e *env) users(tenant string) []store.AppUser {
	e.t.Helper()
	var all []store.AppUser
	for after := ""; ; {
		page, next, err := e.st.ListAppUsers(context.Background(), tenant, after, 5)
		if err != nil {
			e.t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		after = next
	}
}

func (e *env) groups(tenant string) []store.AppGroup {
	e.t.Helper()
	var all []store.AppGroup
	for after := ""; ; {
		page, next, err := e.st.ListAppGroups(context.Background(), tenant, after, 4)
		if err != nil {
			e.t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		after = next
	}
	// Every group of these directories can be read: each is green as of
	// the last applied run. The directory fields are what tests compare.
	for i, g := range all {
		if !g.LastOK || g.LastError != "" || g.LastResultAt == nil {
			e.t.Fatalf("group %s: last result ok %v, error %q, at %v; want green", g.EntraID, g.LastOK, g.LastError, g.LastResultAt)
		}
		all[i].LastOK, all[i].LastResultAt = false, nil
	}
	return all
}

func (e *env) members(tenant string) map[string][]string {
	e.t.Helper()
	out := map[string][]string{}
	for _, g := range e.groups(tenant) {
		for after := ""; ; {
			page, next, err := e.st.ListAppGroupMembers(context.Background(), tenant, g.EntraID, after, 3)
			if err != nil {
				e.t.Fatal(err)
			}
			if len(page) > 0 {
				out[g.EntraID] = append(out[g.EntraID], page...)
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	return out
}

// hashes returns an md5 of every table's rows (storetest.TableHashes).
func (e *env) hashes() map[string]string {
	e.t.Helper()
	h := storetest.TableHashes(e.t, e.db)
	if len(h) < 8 {
		e.t.Fatalf("only %d tables: %v", len(h), h)
	}
	return h
}

// xmins maps each row's key to the transaction that last wrote it.
func (e *env) xmins(query string) map[string]uint32 {
	e.t.Helper()
	return storetest.RowVersions(e.t, e.db, query)
}

// twiceShuffled returns every event twice, in a random order.
func twiceShuffled(evs []*syncv1.SyncEvent, seed uint64) []*syncv1.SyncEvent {
	out := append(append([]*syncv1.SyncEvent{}, evs...), evs...)
	r := rand.New(rand.NewPCG(seed, 42))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func describeUsers(us []store.AppUser) string {
	var b strings.Builder
	for _, u := range us {
		fmt.Fprintf(&b, "  %+v\n", u)
	}
	return b.String()
}
