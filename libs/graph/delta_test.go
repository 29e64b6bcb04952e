package graph

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/graphsim"
)

// deltaSpec has more users than a delta page holds (200) and every kind
// of member.
var deltaSpec = graphsim.Spec{
	Seed: 21, Users: 450, Guests: 10, Disabled: 10, NoMail: 10,
	Groups: 20, NestingDepth: 3, Devices: 3, Contacts: 2, Cycle: true,
}

// newDeltaFixture is newFixture with the simulator's options.
func newDeltaFixture(t *testing.T, spec graphsim.Spec, opts graphsim.Options) (*fixture, *Client) {
	t.Helper()
	sim, err := graphsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	f := &fixture{sim: sim, dir: graphsim.Generate(spec), tenant: guid(), client: guid(), secret: "s3cret-" + guid()}
	sim.AddTenant(f.tenant, f.client, f.secret, f.dir)
	return f, f.newClient(t, f.config(t))
}

// usersRound drains a users delta round; only the last page may carry
// the deltaLink, and it must.
func usersRound(t *testing.T, c *Client, link string) []UsersDeltaPage {
	t.Helper()
	pages, err := round(c.UsersDelta(t.Context(), link), func(p UsersDeltaPage) string { return p.DeltaLink })
	if err != nil {
		t.Fatalf("users delta from %q: %v", link, err)
	}
	return pages
}

func groupsRound(t *testing.T, c *Client, link string) []GroupsDeltaPage {
	t.Helper()
	pages, err := round(c.GroupsDelta(t.Context(), link), func(p GroupsDeltaPage) string { return p.DeltaLink })
	if err != nil {
		t.Fatalf("groups delta from %q: %v", link, err)
	}
	return pages
}

func round[P any](seq func(func(P, error) bool), linkOf func(P) string) ([]P, error) {
	var pages []P
	for p, err := range seq {
		if err != nil {
			return pages, err
		}
		pages = append(pages, p)
	}
	for i, p := range pages {
		if last := i == len(pages)-1; (linkOf(p) != "") != last {
			return pages, fmt.Errorf("page %d of %d has deltaLink %q", i, len(pages), linkOf(p))
		}
	}
	if len(pages) == 0 {
		return nil, errors.New("no page")
	}
	return pages, nil
}

// usersState merges a round's pages in order, as a caller does.
type usersState struct {
	changed map[string]User
	removed map[string]Removal
}

func mergeUsers(pages []UsersDeltaPage) usersState {
	s := usersState{changed: map[string]User{}, removed: map[string]Removal{}}
	for _, p := range pages {
		for _, u := range p.Changed {
			s.changed[u.ID] = u
			delete(s.removed, u.ID)
		}
		for _, r := range p.Removed {
			s.removed[r.ID] = r
			delete(s.changed, r.ID)
		}
	}
	return s
}

// groupsState merges a round's pages by group id: properties from the
// last copy, member changes in page order.
type groupsState struct {
	changed map[string]Group
	removed map[string]Removal
	added   map[string]map[string]Member // group → member id → member
	left    map[string]map[string]Member
	pagesOf map[string]int // how many pages each group was on
}

func mergeGroups(pages []GroupsDeltaPage) groupsState {
	s := groupsState{changed: map[string]Group{}, removed: map[string]Removal{},
		added: map[string]map[string]Member{}, left: map[string]map[string]Member{}, pagesOf: map[string]int{}}
	for _, p := range pages {
		for _, g := range p.Changed {
			s.pagesOf[g.ID]++
			s.changed[g.ID] = g.Group
			delete(s.removed, g.ID)
			if s.added[g.ID] == nil {
				s.added[g.ID], s.left[g.ID] = map[string]Member{}, map[string]Member{}
			}
			for _, m := range g.MembersAdded {
				s.added[g.ID][m.ID] = m
				delete(s.left[g.ID], m.ID)
			}
			for _, m := range g.MembersRemoved {
				s.left[g.ID][m.ID] = m
				delete(s.added[g.ID], m.ID)
			}
		}
		for _, r := range p.Removed {
			s.pagesOf[r.ID]++
			s.removed[r.ID] = r
			delete(s.changed, r.ID)
		}
	}
	return s
}

// edges is a group's direct members as "type:id".
func edges(dir *graphsim.Directory, groupID string) map[string]bool {
	out := map[string]bool{}
	for _, m := range dir.DirectMembers(groupID) {
		out[string(m.Type)+":"+m.ID] = true
	}
	return out
}

func countObjects(pages []UsersDeltaPage) int {
	n := 0
	for _, p := range pages {
		n += len(p.Changed) + len(p.Removed)
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

func wantUser(w graphsim.User) User {
	return User{ID: w.ID, DisplayName: w.DisplayName, Mail: w.Mail, UserPrincipalName: w.UserPrincipalName,
		GivenName: w.GivenName, Surname: w.Surname, JobTitle: w.JobTitle, Department: w.Department,
		UserType: w.UserType, AccountEnabled: w.AccountEnabled}
}

// A full round gives every user and group, each group's whole direct
// membership; after the directory churns, the next round gives exactly
// the users and groups that changed, in their new state, with the
// membership changes that turn the old edges into the new; a round with
// no change is one empty page with a new link.
//
// With replays (each page starting with the last object of the page
// before), merging by id gives the same.
func TestDeltaRoundsReportExactlyTheChanges(t *testing.T) {
	t.Parallel()
	for _, replay := range []bool{false, true} {
		t.Run(fmt.Sprintf("replay=%v", replay), func(t *testing.T) {
			t.Parallel()
			testDeltaRounds(t, replay)
		})
	}
}

func testDeltaRounds(t *testing.T, replay bool) {
	f, c := newDeltaFixture(t, deltaSpec, graphsim.Options{})
	if replay {
		f.sim.SetFaults(f.tenant, graphsim.Faults{DeltaReplay: true})
	}

	upages := usersRound(t, c, "")
	if len(upages) < 3 {
		t.Errorf("a full round of %d users came in %d pages; Graph's pages hold about 200", len(f.dir.Users()), len(upages))
	}
	us := mergeUsers(upages)
	checkUsers(t, f.dir, slices.Collect(maps.Values(us.changed)))
	if served := countObjects(upages); replay && served <= len(us.changed) {
		t.Errorf("replays on: %d objects served for %d users", served, len(us.changed))
	}
	if len(us.removed) != 0 {
		t.Errorf("full round removed %v from a directory without deleted users", us.removed)
	}
	gpages := groupsRound(t, c, "")
	gs := mergeGroups(gpages)
	var wantGroups []string
	before := map[string]map[string]bool{}
	for _, g := range f.dir.Groups() {
		wantGroups = append(wantGroups, g.ID)
		before[g.ID] = edges(f.dir, g.ID)
		got := map[string]bool{}
		for _, m := range gs.added[g.ID] {
			got[string(m.Type)+":"+m.ID] = true
		}
		if !maps.Equal(got, before[g.ID]) {
			t.Errorf("group %s: full round's members@delta %v, direct members %v", g.ID, sortedKeys(got), sortedKeys(before[g.ID]))
		}
		if cg := gs.changed[g.ID]; cg.DisplayName != g.DisplayName || cg.Mail != g.Mail || cg.SecurityEnabled != g.SecurityEnabled {
			t.Errorf("group %s: got %+v, want %+v", g.ID, cg, g)
		}
	}
	if got := sortedKeys(gs.changed); !slices.Equal(got, wantGroups) {
		t.Errorf("full round's groups %v, want %v", got, wantGroups)
	}
	// The first requests carried entrasync's $select (members for
	// groups), the later ones the links alone.
	var firsts int
	for _, r := range f.graphRequests() {
		if !strings.Contains(r.Path, "/delta") {
			continue
		}
		q := r.RawQuery
		if strings.Contains(q, "skiptoken") || strings.Contains(q, "deltatoken") {
			if strings.Contains(q, "select") {
				t.Errorf("%s?%s: a link followed with options of its own", r.Path, q)
			}
			continue
		}
		firsts++
		want := "accountEnabled"
		if strings.Contains(r.Path, "groups") {
			want = "members"
		}
		if !strings.Contains(q, want) {
			t.Errorf("first request %s?%s does not select %s", r.Path, q, want)
		}
	}
	if firsts != 2 {
		t.Errorf("%d first delta requests, want one per collection", firsts)
	}

	rep := f.dir.Churn(9, 0.05)
	upages = usersRound(t, c, upages[len(upages)-1].DeltaLink)
	us = mergeUsers(upages)
	if got := union(sortedKeys(us.changed), sortedKeys(us.removed)); !slices.Equal(got, rep.Users) {
		t.Errorf("users changed or removed:\n got %v\nwant %v", got, rep.Users)
	}
	for id, u := range us.changed {
		if w, ok := f.dir.User(id); !ok || u != wantUser(w) {
			t.Errorf("changed user %s:\n got %+v\nwant %+v", id, u, wantUser(w))
		}
	}
	for _, c := range []struct {
		ids    []string
		reason RemovalReason
	}{{rep.SoftDeleted, RemovedChanged}, {rep.Purged, RemovedDeleted}} {
		if len(c.ids) == 0 {
			t.Errorf("the churn removed no user as %q: nothing checks that reason", c.reason)
		}
		for _, id := range c.ids {
			if r := us.removed[id]; r.Reason != c.reason || r.Restorable() != (c.reason == RemovedChanged) {
				t.Errorf("removed user %s: %+v, want reason %q", id, r, c.reason)
			}
		}
	}
	if len(rep.Joined) == 0 || len(rep.Disabled) == 0 {
		t.Errorf("churn %+v has no joiner or no disabled account", rep)
	}

	gpages = groupsRound(t, c, gpages[len(gpages)-1].DeltaLink)
	gs = mergeGroups(gpages)
	if got := union(sortedKeys(gs.changed), sortedKeys(gs.removed)); !slices.Equal(got, rep.Groups) {
		t.Errorf("groups changed or removed:\n got %v\nwant %v", got, rep.Groups)
	}
	for _, g := range f.dir.Groups() {
		after := edges(f.dir, g.ID)
		applied := maps.Clone(before[g.ID])
		for _, m := range gs.added[g.ID] {
			applied[string(m.Type)+":"+m.ID] = true
		}
		for _, m := range gs.left[g.ID] {
			delete(applied, string(m.Type)+":"+m.ID)
		}
		if !maps.Equal(applied, after) {
			t.Errorf("group %s: old members with the round's changes %v, direct members now %v", g.ID, sortedKeys(applied), sortedKeys(after))
		}
		if cg, ok := gs.changed[g.ID]; ok && cg.DisplayName != g.DisplayName {
			t.Errorf("group %s: name %q, want %q", g.ID, cg.DisplayName, g.DisplayName)
		}
	}

	// Nothing changed since: one empty page with the next link.
	for _, p := range usersRound(t, c, upages[len(upages)-1].DeltaLink) {
		if len(p.Changed)+len(p.Removed) != 0 {
			t.Errorf("a round without changes reported %+v", p)
		}
	}
	for _, p := range groupsRound(t, c, gpages[len(gpages)-1].DeltaLink) {
		if len(p.Changed)+len(p.Removed) != 0 {
			t.Errorf("a round without changes reported %+v", p)
		}
	}
}

// Soft deletes (a user, a Microsoft 365 group) come as removed with
// reason "changed", hard ones (a purged user, a security group) as
// "deleted"; a restored user comes back whole.
func TestDeltaRemovalReasons(t *testing.T) {
	t.Parallel()
	f, c := newDeltaFixture(t, smallSpec, graphsim.Options{})
	users := usersRound(t, c, "")
	groups := groupsRound(t, c, "")
	ulink, glink := users[len(users)-1].DeltaLink, groups[len(groups)-1].DeltaLink

	all := f.dir.Users()
	soft, hard := all[0].ID, all[1].ID
	var m365, security string
	for _, g := range f.dir.Groups() {
		switch {
		case slices.Contains(g.GroupTypes, "Unified") && m365 == "":
			m365 = g.ID
		case g.SecurityEnabled && !g.MailEnabled && len(g.GroupTypes) == 0 && security == "":
			security = g.ID
		}
	}
	if m365 == "" || security == "" {
		t.Fatalf("no Microsoft 365 (%q) or security group (%q) in the spec", m365, security)
	}
	for _, err := range []error{f.dir.DeleteUser(soft), f.dir.PurgeUser(hard), f.dir.DeleteGroup(m365), f.dir.DeleteGroup(security)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	users = usersRound(t, c, ulink)
	us := mergeUsers(users)
	groups = groupsRound(t, c, glink)
	gs := mergeGroups(groups)
	for _, c := range []struct {
		what   string
		got    Removal
		id     string
		reason RemovalReason
	}{
		{"soft-deleted user", us.removed[soft], soft, RemovedChanged},
		{"purged user", us.removed[hard], hard, RemovedDeleted},
		{"deleted Microsoft 365 group", gs.removed[m365], m365, RemovedChanged},
		{"deleted security group", gs.removed[security], security, RemovedDeleted},
	} {
		if c.got != (Removal{ID: c.id, Reason: c.reason}) {
			t.Errorf("%s: %+v, want reason %q", c.what, c.got, c.reason)
		}
	}
	if len(us.removed) != 2 {
		t.Errorf("users removed: %v, want the two deleted", us.removed)
	}

	if err := f.dir.RestoreUser(soft); err != nil {
		t.Fatal(err)
	}
	us = mergeUsers(usersRound(t, c, users[len(users)-1].DeltaLink))
	w, _ := f.dir.User(soft)
	if len(us.removed) != 0 || len(us.changed) != 1 || us.changed[soft] != wantUser(w) {
		t.Errorf("after restoring %s: changed %v, removed %v", soft, us.changed, us.removed)
	}
}

// A group whose members@delta does not fit one page comes on several
// pages, each with a part of it; merged by group id they are the whole
// membership, and later the whole change set.
func TestDeltaBigGroupMembersSpanPages(t *testing.T) {
	t.Parallel()
	const chunk = 5
	spec := graphsim.Spec{Seed: 5, Users: 200, Groups: 6}
	f, c := newDeltaFixture(t, spec, graphsim.Options{DeltaMemberChunk: chunk})

	var big graphsim.Group
	for _, g := range f.dir.Groups() {
		if g.MembershipRule == "" && len(f.dir.DirectMembers(g.ID)) > len(f.dir.DirectMembers(big.ID)) {
			big = g
		}
	}
	members := edges(f.dir, big.ID)
	if len(members) <= 3*chunk {
		t.Fatalf("the biggest group has %d members; the test needs more than %d", len(members), 3*chunk)
	}
	pages := groupsRound(t, c, "")
	checkChunks := func(pages []GroupsDeltaPage) {
		t.Helper()
		for i, p := range pages {
			for _, g := range p.Changed {
				if n := len(g.MembersAdded) + len(g.MembersRemoved); n > chunk {
					t.Errorf("page %d: group %s carries %d member changes, the simulator sends %d a page", i, g.ID, n, chunk)
				}
			}
		}
	}
	checkChunks(pages)
	gs := mergeGroups(pages)
	if n := gs.pagesOf[big.ID]; n < len(members)/chunk {
		t.Errorf("group %s with %d members came on %d pages", big.ID, len(members), n)
	}
	got := map[string]bool{}
	for _, m := range gs.added[big.ID] {
		got[string(m.Type)+":"+m.ID] = true
	}
	if !maps.Equal(got, members) {
		t.Errorf("merged members@delta %v, direct members %v", sortedKeys(got), sortedKeys(members))
	}

	// Twenty join, ten leave.
	var joined, left []string
	for _, u := range f.dir.Users() {
		if len(joined) < 20 && !members["user:"+u.ID] {
			if err := f.dir.AddMember(big.ID, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser}); err != nil {
				t.Fatal(err)
			}
			joined = append(joined, u.ID)
		}
	}
	for m := range members {
		if typ, id, _ := strings.Cut(m, ":"); typ == "user" && len(left) < 10 {
			if err := f.dir.RemoveMember(big.ID, id); err != nil {
				t.Fatal(err)
			}
			left = append(left, id)
		}
	}
	pages = groupsRound(t, c, pages[len(pages)-1].DeltaLink)
	checkChunks(pages)
	gs = mergeGroups(pages)
	if n := gs.pagesOf[big.ID]; n < 30/chunk {
		t.Errorf("30 member changes came on %d pages", n)
	}
	slices.Sort(joined)
	slices.Sort(left)
	if a, l := sortedKeys(gs.added[big.ID]), sortedKeys(gs.left[big.ID]); !slices.Equal(a, joined) || !slices.Equal(l, left) {
		t.Errorf("merged changes: added %v, removed %v\nwant added %v, removed %v", a, l, joined, left)
	}
	for _, m := range gs.added[big.ID] {
		if m.Type != MemberUser {
			t.Errorf("added member %+v: want a user", m)
		}
	}
}

// $deltatoken=latest gives a link at now without reading any object: a
// round from it reports only what changed afterwards.
func TestLatestDeltaLink(t *testing.T) {
	t.Parallel()
	f, c := newDeltaFixture(t, deltaSpec, graphsim.Options{})
	ulink, err := c.LatestDeltaLink(t.Context(), DeltaUsers)
	if err != nil {
		t.Fatal(err)
	}
	glink, err := c.LatestDeltaLink(t.Context(), DeltaGroups)
	if err != nil {
		t.Fatal(err)
	}
	if ulink == "" || glink == "" || ulink == glink {
		t.Fatalf("links %q and %q", ulink, glink)
	}
	if _, err := c.LatestDeltaLink(t.Context(), "devices"); err == nil {
		t.Error("a latest link of devices: no error")
	}
	latest := 0
	for _, r := range f.graphRequests() {
		if strings.Contains(r.RawQuery, "deltatoken=latest") {
			latest++
			if !strings.Contains(r.RawQuery, "select") {
				t.Errorf("%s?%s: a latest link without entrasync's $select tracks other properties", r.Path, r.RawQuery)
			}
		}
	}
	if latest != 2 || len(f.graphRequests()) != 2 {
		t.Errorf("%d requests, %d of them for latest links; want exactly the two", len(f.graphRequests()), latest)
	}

	u := f.dir.Users()[3]
	if err := f.dir.DisableUser(u.ID); err != nil {
		t.Fatal(err)
	}
	g := f.dir.Groups()[2]
	if err := f.dir.UpdateGroup(g.ID, func(g *graphsim.Group) { g.DisplayName += " (renamed)" }); err != nil {
		t.Fatal(err)
	}
	us := mergeUsers(usersRound(t, c, ulink))
	if len(us.changed) != 1 || us.changed[u.ID].AccountEnabled || len(us.removed) != 0 {
		t.Errorf("from the latest link: changed %v, removed %v; want only %s, disabled", us.changed, us.removed, u.ID)
	}
	gs := mergeGroups(groupsRound(t, c, glink))
	if len(gs.changed) != 1 || !strings.HasSuffix(gs.changed[g.ID].DisplayName, "(renamed)") || len(gs.added[g.ID])+len(gs.left[g.ID]) != 0 {
		t.Errorf("from the latest link: groups %v, member changes %v %v; want only %s renamed", gs.changed, gs.added, gs.left, g.ID)
	}
}

// fakeClock is the simulator's clock, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// When Graph no longer has a round's state (410 Gone with a Location, a
// 400 resyncRequired, a token past its seven days) the error is
// ErrResync, on the first page or a later one; a 410's Location starts a
// full round.
func TestDeltaStateGoneIsErrResync(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Now()}
	f, c := newDeltaFixture(t, deltaSpec, graphsim.Options{Clock: clock.Now})
	pages := usersRound(t, c, "")
	link := pages[len(pages)-1].DeltaLink
	nUsers := len(f.dir.Users())

	resync := func(t *testing.T, link string, wantStatus int, wantCode string) *ResyncError {
		t.Helper()
		_, err := round(c.UsersDelta(t.Context(), link), func(p UsersDeltaPage) string { return p.DeltaLink })
		var re *ResyncError
		var ge *Error
		if !errors.Is(err, ErrResync) || !errors.As(err, &re) || !errors.As(err, &ge) {
			t.Fatalf("error %v: want ErrResync", err)
		}
		if ge.Status != wantStatus || !strings.EqualFold(ge.Code, wantCode) || !IsPermanent(err) {
			t.Errorf("Graph's answer %+v: want HTTP %d %s, permanent", ge, wantStatus, wantCode)
		}
		return re
	}

	t.Run("410 Gone", func(t *testing.T) {
		f.sim.SetFaults(f.tenant, graphsim.Faults{DeltaGoneNext: 1})
		re := resync(t, link, http.StatusGone, "resyncRequired")
		if re.Location == "" {
			t.Fatal("a 410 without its Location")
		}
		// The Location is a first request: a full round.
		us := mergeUsers(usersRound(t, c, re.Location))
		if len(us.changed) != nUsers {
			t.Errorf("the round from the 410's Location read %d users, want all %d", len(us.changed), nUsers)
		}
	})
	t.Run("400 resyncRequired", func(t *testing.T) {
		f.sim.SetFaults(f.tenant, graphsim.Faults{DeltaResyncNext: 1})
		if re := resync(t, link, http.StatusBadRequest, "resyncRequired"); re.Location != "" {
			t.Errorf("Location %q from a 400", re.Location)
		}
	})
	t.Run("410 on a later page", func(t *testing.T) {
		f.sim.SetFaults(f.tenant, graphsim.Faults{})
		var err error
		n := 0
		for _, err = range c.UsersDelta(t.Context(), "") {
			if err != nil {
				break
			}
			if n++; n == 1 {
				f.sim.SetFaults(f.tenant, graphsim.Faults{DeltaGoneNext: 1})
			}
		}
		if n != 1 || !errors.Is(err, ErrResync) {
			t.Errorf("after %d pages: %v, want ErrResync on the second", n, err)
		}
	})
	t.Run("expired token", func(t *testing.T) {
		f.sim.SetFaults(f.tenant, graphsim.Faults{})
		clock.add(7*24*time.Hour + time.Minute)
		resync(t, link, http.StatusBadRequest, "syncStateNotFound")
	})
}

// Delta pages of the wrong shape are ErrMalformed, Graph's answers that
// end a round's state are ErrResync, whatever else Graph says is its
// *Error; shapes the docs allow are read.
func TestDeltaPagesOfEveryShape(t *testing.T) {
	const end = `"@odata.deltaLink":"https://graph.microsoft.com/v1.0/x/delta?$deltatoken=e"`
	p := newDeltaPageServer(t)
	c := p.client
	for _, tc := range []struct {
		name          string
		status        int
		body          string
		users, groups error // nil: read
	}{
		{"plain objects", 200, `{"value":[{"id":"a","accountEnabled":true}],` + end + `}`, nil, nil},
		{"removed without a reason", 200, `{"value":[{"id":"a","@removed":{}}],` + end + `}`, nil, nil},
		{"removed with an unknown reason", 200, `{"value":[{"id":"a","@removed":{"reason":"purged"}}],` + end + `}`, nil, nil},
		{"@removed not an object", 200, `{"value":[{"id":"a","accountEnabled":true,"@removed":"deleted"}],` + end + `}`, ErrMalformed, ErrMalformed},
		// The SDK drops null annotations: they read as absent.
		{"@removed null", 200, `{"value":[{"id":"a","accountEnabled":true,"@removed":null,"members@delta":null}],` + end + `}`, nil, nil},
		{"@removed reason a number", 200, `{"value":[{"id":"a","@removed":{"reason":1}}],` + end + `}`, ErrMalformed, ErrMalformed},
		{"removed without id", 200, `{"value":[{"@removed":{"reason":"deleted"}}],` + end + `}`, ErrMalformed, ErrMalformed},
		{"members@delta not an array", 200, `{"value":[{"id":"a","accountEnabled":true,"members@delta":{"id":"b"}}],` + end + `}`, nil, ErrMalformed},
		{"members@delta entry null", 200, `{"value":[{"id":"a","accountEnabled":true,"members@delta":[null]}],` + end + `}`, nil, ErrMalformed},
		{"members@delta entry without id", 200, `{"value":[{"id":"a","accountEnabled":true,"members@delta":[{"@odata.type":"#microsoft.graph.user"}]}],` + end + `}`, nil, ErrMalformed},
		{"members@delta id a number", 200, `{"value":[{"id":"a","accountEnabled":true,"members@delta":[{"id":5}]}],` + end + `}`, nil, ErrMalformed},
		{"members@delta type a number", 200, `{"value":[{"id":"a","accountEnabled":true,"members@delta":[{"id":"b","@odata.type":5}]}],` + end + `}`, nil, ErrMalformed},
		{"members@delta entry's @removed a string", 200, `{"value":[{"id":"a","accountEnabled":true,"members@delta":[{"id":"b","@removed":"x"}]}],` + end + `}`, nil, ErrMalformed},
		{"members@delta entry without type", 200, `{"value":[{"id":"a","accountEnabled":true,"members@delta":[{"id":"b"}]}],` + end + `}`, nil, nil},
		{"changed user without accountEnabled", 200, `{"value":[{"id":"a"}],` + end + `}`, ErrMalformed, nil},
		{"no value", 200, `{` + end + `}`, ErrMalformed, ErrMalformed},
		{"neither link", 200, `{"value":[]}`, ErrMalformed, ErrMalformed},
		{"both links", 200, `{"value":[],"@odata.nextLink":"https://graph.microsoft.com/v1.0/x/delta?$skiptoken=n",` + end + `}`, ErrMalformed, ErrMalformed},
		{"relative deltaLink", 200, `{"value":[],"@odata.deltaLink":"/users/delta?$deltatoken=e"}`, ErrMalformed, ErrMalformed},
		{"410 Gone", 410, `{"error":{"code":"resyncRequired","message":"Resync required."}}`, ErrResync, ErrResync},
		{"410 without a body", 410, ``, ErrResync, ErrResync},
		{"400 syncStateNotFound", 400, `{"error":{"code":"syncStateNotFound","message":"expired"}}`, ErrResync, ErrResync},
		{"400 syncStateInvalid", 400, `{"error":{"code":"SyncStateInvalid","message":"invalid"}}`, ErrResync, ErrResync},
		{"400 other", 400, `{"error":{"code":"Request_BadRequest","message":"Invalid state token."}}`, &Error{}, &Error{}},
		{"403", 403, `{"error":{"code":"Authorization_RequestDenied","message":"no"}}`, &Error{}, &Error{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, l := range []struct {
				name string
				want error
				run  func() error
			}{
				{"users", tc.users, func() error {
					_, err := round(c.UsersDelta(t.Context(), ""), func(p UsersDeltaPage) string { return p.DeltaLink })
					return err
				}},
				{"groups", tc.groups, func() error {
					_, err := round(c.GroupsDelta(t.Context(), ""), func(p GroupsDeltaPage) string { return p.DeltaLink })
					return err
				}},
			} {
				p.serve(tc.status, []byte(tc.body))
				err := l.run()
				var ge *Error
				switch want := l.want; {
				case want == nil && err != nil:
					t.Errorf("%s: %v, want pages", l.name, err)
				case want == nil:
				case errors.As(want, &ge):
					if !errors.As(err, &ge) || ge.Status != tc.status || errors.Is(err, ErrResync) || errors.Is(err, ErrMalformed) {
						t.Errorf("%s: %v, want Graph's HTTP %d and nothing more", l.name, err, tc.status)
					}
				case !errors.Is(err, want) || !IsPermanent(err):
					t.Errorf("%s: %v, want a permanent %v", l.name, err, want)
				}
			}
		})
	}
}

// Copies of a group on one page are merged (properties of the last,
// member changes of all, the later entry for a member winning); an object
// removed and then seen again on a page is changed, and the other way
// round removed.
func TestDeltaPageMergesCopies(t *testing.T) {
	p := newDeltaPageServer(t)
	p.serve(200, []byte(`{"value":[
		{"id":"g1","displayName":"Old","members@delta":[{"@odata.type":"#microsoft.graph.user","id":"u1"},{"@odata.type":"#microsoft.graph.user","id":"u2"}]},
		{"id":"g2","displayName":"Two"},
		{"id":"g1","displayName":"New","members@delta":[{"@odata.type":"#microsoft.graph.user","id":"u2","@removed":{"reason":"deleted"}},{"@odata.type":"#microsoft.graph.device","id":"d1","displayName":"Laptop"}]},
		{"id":"g2","@removed":{"reason":"changed"}},
		{"id":"g3","@removed":{"reason":"deleted"}},
		{"id":"g3","displayName":"Back"}],
		"@odata.deltaLink":"https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=e"}`))
	pages, err := round(p.client.GroupsDelta(t.Context(), ""), func(p GroupsDeltaPage) string { return p.DeltaLink })
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 1 {
		t.Fatalf("%d pages", len(pages))
	}
	want := GroupsDeltaPage{
		Changed: []GroupDelta{
			{Group: Group{ID: "g1", DisplayName: "New"},
				MembersAdded:   []Member{{ID: "u1", Type: MemberUser}, {ID: "d1", Type: MemberDevice, DisplayName: "Laptop"}},
				MembersRemoved: []Member{{ID: "u2", Type: MemberUser}}},
			{Group: Group{ID: "g3", DisplayName: "Back"}},
		},
		Removed:   []Removal{{ID: "g2", Reason: RemovedChanged}},
		DeltaLink: "https://graph.microsoft.com/v1.0/groups/delta?$deltatoken=e",
	}
	got := pages[0]
	slices.SortFunc(got.Changed, func(a, b GroupDelta) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(got.Changed[0].MembersAdded, func(a, b Member) int { return strings.Compare(b.ID, a.ID) })
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("page\n got %+v\nwant %+v", got, want)
	}
}

// A latest link is read from an empty page; a page with objects is not
// what $deltatoken=latest answers.
func TestLatestDeltaLinkShapes(t *testing.T) {
	p := newDeltaPageServer(t)
	const dl = "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=now"
	for _, r := range []DeltaResource{DeltaUsers, DeltaGroups} {
		p.serve(200, []byte(`{"value":[],"@odata.deltaLink":"`+dl+`"}`))
		if got, err := p.client.LatestDeltaLink(t.Context(), r); err != nil || got != dl {
			t.Errorf("%s: %q, %v; want %q", r, got, err, dl)
		}
		p.serve(200, []byte(`{"value":[{"id":"a","accountEnabled":true}],"@odata.deltaLink":"`+dl+`"}`))
		if got, err := p.client.LatestDeltaLink(t.Context(), r); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: a latest link from a page with an object: %q, %v", r, got, err)
		}
		p.serve(410, []byte(`{"error":{"code":"resyncRequired","message":"gone"}}`))
		if _, err := p.client.LatestDeltaLink(t.Context(), r); !errors.Is(err, ErrResync) {
			t.Errorf("%s: 410: %v, want ErrResync", r, err)
		}
	}
}
