package graphsim_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/graphsim"
)

// deltaRound follows a delta round from path to its deltaLink and returns
// every item in order, the number of pages and the deltaLink.
func (s *sim) deltaRound(token, path string, headers ...string) (items []map[string]any, pages int, deltaLink string) {
	s.t.Helper()
	for next := path; next != ""; {
		r := s.get(token, next, headers...)
		if r.status != http.StatusOK {
			s.t.Fatalf("GET %s: %d %s", next, r.status, r.raw)
		}
		pages++
		items = append(items, r.values()...)
		nl, hasNext := r.body["@odata.nextLink"].(string)
		dl, hasDelta := r.body["@odata.deltaLink"].(string)
		if hasNext == hasDelta {
			s.t.Fatalf("page %d has nextLink %v and deltaLink %v: exactly one expected", pages, hasNext, hasDelta)
		}
		if hasNext {
			checkOnlyParam(s.t, nl, "$skiptoken")
		} else {
			checkOnlyParam(s.t, dl, "$deltatoken")
		}
		next, deltaLink = nl, dl
		if pages > 10000 {
			s.t.Fatal("delta round does not end")
		}
	}
	return items, pages, deltaLink
}

// checkOnlyParam fails unless link's query is exactly one opaque token.
func checkOnlyParam(t *testing.T, link, name string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if len(q) != 1 || q.Get(name) == "" {
		t.Fatalf("link %s: want only %s", link, name)
	}
}

// removedReason is an item's @removed reason ("" when not removed).
func removedReason(it map[string]any) string {
	r, _ := it["@removed"].(map[string]any)
	reason, _ := r["reason"].(string)
	return reason
}

// byID folds a round's items into the set of IDs with their removal
// reason ("" for present objects).
func byID(items []map[string]any) map[string]string {
	out := map[string]string{}
	for _, it := range items {
		out[it["id"].(string)] = removedReason(it)
	}
	return out
}

// memberDelta merges a group's members@delta entries over a round:
// member id → "" (added) or "deleted" (removed).
func memberDelta(items []map[string]any, groupID string) (entries map[string]string, copies int) {
	entries = map[string]string{}
	for _, it := range items {
		if it["id"] != groupID {
			continue
		}
		copies++
		ms, _ := it["members@delta"].([]any)
		for _, m := range ms {
			mm := m.(map[string]any)
			entries[mm["id"].(string)] = removedReason(mm)
		}
	}
	return entries, copies
}

func TestDeltaFirstRoundServesEveryObject(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{DeltaPageSize: 50})
	d := graphsim.Generate(graphsim.Spec{Seed: 21, Users: 170, Guests: 5, Groups: 12})
	tc := s.addTenant(d)
	for _, path := range []string{"/users/delta", "/users/delta()", "/users/microsoft.graph.delta()", "/users/Delta"} {
		items, pages, link := s.deltaRound(tc.token, path)
		if len(items) != 175 || pages != 4 {
			t.Errorf("%s: %d items on %d pages, want 175 on 4", path, len(items), pages)
		}
		want := ids(nil)
		for _, u := range d.Users() {
			want = append(want, u.ID)
		}
		if got := ids(items); !slices.Equal(got, want) {
			t.Errorf("%s: first round ids differ from the directory's", path)
		}
		// Default set: no accountEnabled; null properties left out.
		for _, it := range items {
			if _, ok := it["accountEnabled"]; ok {
				t.Fatalf("%s: accountEnabled outside the default set: %v", path, it)
			}
			for k, v := range it {
				if v == nil {
					t.Fatalf("%s: never-set property %s sent as null", path, k)
				}
			}
		}
		if next, _, _ := s.deltaRound(tc.token, link); len(next) != 0 {
			t.Errorf("%s: a round right after the first returns %d objects", path, len(next))
		}
		if !strings.Contains(link, strings.TrimPrefix(path, "/")) {
			t.Errorf("deltaLink %s does not keep the request's path %s", link, path)
		}
	}
	groups, _, _ := s.deltaRound(tc.token, "/groups/delta()")
	if len(groups) != len(d.Groups()) {
		t.Errorf("groups first round: %d, want %d", len(groups), len(d.Groups()))
	}
	for _, g := range groups {
		got, _ := memberDelta([]map[string]any{g}, g["id"].(string))
		if len(got) != len(d.DirectMembers(g["id"].(string))) {
			t.Errorf("group %s: members@delta has %d, the group %d", g["id"], len(got), len(d.DirectMembers(g["id"].(string))))
		}
	}
}

func TestDeltaRoundReturnsExactlyTheChanges(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{DeltaPageSize: 7})
	d := graphsim.Generate(graphsim.Spec{Seed: 22, Users: 60, Groups: 8})
	tc := s.addTenant(d)
	users := d.Users()
	restored := users[5].ID
	if err := d.DeleteUser(restored); err != nil { // before the round: comes as removed
		t.Fatal(err)
	}
	first, _, link := s.deltaRound(tc.token, "/users/delta")
	if got := byID(first)[restored]; got != "changed" {
		t.Errorf("first round: a soft-deleted user comes with reason %q, want changed", got)
	}

	retitled, disabled, softDel, purged := users[0].ID, users[1].ID, users[2].ID, users[3].ID
	must(t, d.UpdateUser(retitled, func(u *graphsim.User) { u.JobTitle = "Chief Tester" }))
	must(t, d.DisableUser(disabled))
	must(t, d.DeleteUser(softDel))
	must(t, d.PurgeUser(purged))
	must(t, d.RestoreUser(restored))
	joiner := d.AddUser(graphsim.User{GivenName: "Jo", Surname: "Iner", AccountEnabled: true})

	items, _, link2 := s.deltaRound(tc.token, link)
	got := byID(items)
	want := map[string]string{retitled: "", disabled: "", softDel: "changed", purged: "deleted", restored: "", joiner.ID: ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delta after changes:\n got %v\nwant %v", got, want)
	}
	for _, it := range items {
		switch it["id"] {
		case retitled:
			if it["jobTitle"] != "Chief Tester" || it["displayName"] == nil {
				t.Errorf("retitled user: %v (want the new title and the other properties)", it)
			}
		case restored, joiner.ID:
			if _, removed := it["@removed"]; removed || it["userPrincipalName"] == nil {
				t.Errorf("restored or new user served as %v", it)
			}
		}
	}
	if again, _, _ := s.deltaRound(tc.token, link2); len(again) != 0 {
		t.Errorf("no change since: %d objects", len(again))
	}
	// The old deltaLink still works and gives the same changes.
	if items2, _, _ := s.deltaRound(tc.token, link); fmt.Sprint(byID(items2)) != fmt.Sprint(want) {
		t.Errorf("replaying the older deltaLink: %v", byID(items2))
	}
}

func TestDeltaSelectAndMinimal(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	d := graphsim.NewDirectory("contoso.onmicrosoft.com")
	a := d.AddUser(graphsim.User{GivenName: "Ann", Surname: "A", DisplayName: "Ann A", JobTitle: "Clerk", AccountEnabled: true})
	b := d.AddUser(graphsim.User{GivenName: "Bob", Surname: "B", DisplayName: "Bob B", JobTitle: "Clerk", AccountEnabled: true})
	c := d.AddUser(graphsim.User{GivenName: "Cy", Surname: "C", DisplayName: "Cy C", JobTitle: "Clerk", AccountEnabled: true})
	tc := s.addTenant(d)
	first, _, link := s.deltaRound(tc.token, "/users/delta?$select=displayName,jobTitle,mobilePhone")
	for _, it := range first {
		k := keys(it)
		sort.Strings(k)
		if !slices.Equal(k, []string{"displayName", "id", "jobTitle"}) {
			t.Errorf("selected first round item %v: want displayName, id, jobTitle (never-set mobilePhone left out)", it)
		}
	}
	must(t, d.UpdateUser(a.ID, func(u *graphsim.User) { u.Department = "Sales" })) // not selected: not tracked
	must(t, d.UpdateUser(b.ID, func(u *graphsim.User) { u.JobTitle = "" }))        // to null: sent as null
	must(t, d.UpdateUser(c.ID, func(u *graphsim.User) { u.DisplayName = "Cy Cee" }))

	items, _, _ := s.deltaRound(tc.token, link)
	if got := byID(items); len(got) != 2 {
		t.Fatalf("round after three changes, one of an unselected property: %v", got)
	}
	if _, ok := byID(items)[a.ID]; ok {
		t.Errorf("department change of a $select=displayName,jobTitle round reported")
	}
	for _, it := range items {
		switch it["id"] {
		case b.ID:
			if v, ok := it["jobTitle"]; !ok || v != nil || it["displayName"] != "Bob B" {
				t.Errorf("title cleared: %v, want jobTitle null and the unchanged displayName", it)
			}
		case c.ID:
			if it["displayName"] != "Cy Cee" || it["jobTitle"] != "Clerk" {
				t.Errorf("renamed: %v", it)
			}
		}
	}
	minimal, _, _ := s.deltaRound(tc.token, link, "Prefer", "return=minimal")
	for _, it := range minimal {
		k := keys(it)
		sort.Strings(k)
		want := map[string][]string{b.ID: {"id", "jobTitle"}, c.ID: {"displayName", "id"}}[it["id"].(string)]
		if !slices.Equal(k, want) {
			t.Errorf("return=minimal item %v: keys %v, want %v", it, k, want)
		}
	}
}

func TestDeltaGroupMembersSpanPages(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{DeltaPageSize: 50, DeltaMemberChunk: 40})
	d := graphsim.NewDirectory("contoso.onmicrosoft.com")
	big := d.AddGroup(graphsim.Group{DisplayName: "Everyone", SecurityEnabled: true})
	small := d.AddGroup(graphsim.Group{DisplayName: "Few", SecurityEnabled: true})
	team := d.AddGroup(graphsim.Group{DisplayName: "Team", GroupTypes: []string{"Unified"}, MailEnabled: true})
	var us []graphsim.User
	for i := range 150 {
		u := d.AddUser(graphsim.User{GivenName: "U", Surname: fmt.Sprint(i), AccountEnabled: true})
		us = append(us, u)
		must(t, d.AddMember(big.ID, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser}))
	}
	must(t, d.AddMember(small.ID, graphsim.Member{ID: us[0].ID, Type: graphsim.TypeUser}))
	must(t, d.AddMember(small.ID, graphsim.Member{ID: big.ID, Type: graphsim.TypeGroup}))
	tc := s.addTenant(d)

	// Members leaving between two pages of the round do not hide others.
	p1 := s.get(tc.token, "/groups/delta()")
	seen, _ := memberDelta(p1.values(), big.ID)
	if len(seen) != 40 {
		t.Fatalf("first page: %d of the big group's members, want 40", len(seen))
	}
	left := sortedKeys(seen)[0]
	must(t, d.RemoveMember(big.ID, left))
	rest, pages, link := s.deltaRound(tc.token, p1.body["@odata.nextLink"].(string))
	first := slices.Concat(p1.values(), rest)
	entries, copies := memberDelta(first, big.ID)
	if len(entries) != 150 || copies != 4 || pages < 3 {
		t.Errorf("first round: big group on %d copies (pages %d) with %d members, want 4 copies holding 150", copies, pages+1, len(entries))
	}
	must(t, d.AddMember(big.ID, graphsim.Member{ID: left, Type: graphsim.TypeUser}))
	if items, _, l := s.deltaRound(tc.token, link); len(items) != 1 {
		t.Errorf("round after re-adding the member: %v", items)
	} else {
		link = l
	}
	if got, _ := memberDelta(first, small.ID); len(got) != 2 {
		t.Errorf("small group members@delta %v", got)
	}
	for _, it := range first {
		if it["id"] == small.ID {
			for _, m := range it["members@delta"].([]any) {
				mm := m.(map[string]any)
				if mm["id"] == big.ID && mm["@odata.type"] != "#microsoft.graph.group" {
					t.Errorf("nested group entry %v", mm)
				}
			}
		}
	}

	// 30 leave (10 removed, 20 soft-deleted users), 45 join.
	for _, u := range us[:10] {
		must(t, d.RemoveMember(big.ID, u.ID))
	}
	for _, u := range us[10:30] {
		must(t, d.DeleteUser(u.ID))
	}
	for i := range 45 {
		u := d.AddUser(graphsim.User{GivenName: "New", Surname: fmt.Sprint(i), AccountEnabled: true})
		must(t, d.AddMember(big.ID, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser}))
	}
	must(t, d.DeleteGroup(team.ID))
	must(t, d.DeleteGroup(small.ID))
	items, _, _ := s.deltaRound(tc.token, link)
	entries, copies = memberDelta(items, big.ID)
	removed, added := 0, 0
	for _, r := range entries {
		if r == "deleted" {
			removed++
		} else {
			added++
		}
	}
	if removed != 30 || added != 45 || copies != 2 {
		t.Errorf("member changes: %d removed, %d added over %d copies; want 30, 45 over 2", removed, added, copies)
	}
	got := byID(items)
	if got[team.ID] != "changed" || got[small.ID] != "deleted" {
		t.Errorf("deleted Microsoft 365 group %q (want changed), security group %q (want deleted)", got[team.ID], got[small.ID])
	}

	// Without members in $select, member changes do not show.
	_, _, sel := s.deltaRound(tc.token, "/groups/delta?$select=displayName")
	must(t, d.AddMember(big.ID, graphsim.Member{ID: us[0].ID, Type: graphsim.TypeUser}))
	if items, _, _ := s.deltaRound(tc.token, sel); len(items) != 0 {
		t.Errorf("$select=displayName round reports a member change: %v", items)
	}
	_, _, selm := s.deltaRound(tc.token, "/groups/delta?$select=displayName,members")
	must(t, d.RemoveMember(big.ID, us[0].ID))
	if items, _, _ := s.deltaRound(tc.token, selm); len(items) != 1 {
		t.Errorf("$select=displayName,members round: %v", items)
	}
}

func TestDeltaQueryOptions(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{DeltaPageSize: 5})
	d := graphsim.Generate(graphsim.Spec{Seed: 23, Users: 30, Groups: 4})
	tc := s.addTenant(d)
	users := d.Users()
	var fifty []string
	for i := range 51 {
		fifty = append(fifty, fmt.Sprintf("id eq '00000000-0000-4000-8000-%012d'", i))
	}
	_, _, link := s.deltaRound(tc.token, "/users/delta")
	page := s.get(tc.token, "/users/delta")
	next := page.body["@odata.nextLink"].(string)
	cases := []struct {
		name, path string
		status     int
		code       string
	}{
		{"$top", "/users/delta?$top=10", 400, "Request_UnsupportedQuery"},
		{"$orderby", "/users/delta?$orderby=displayName", 400, "Request_UnsupportedQuery"},
		{"$expand", "/groups/delta?$expand=members", 400, "Request_UnsupportedQuery"},
		{"filter on another property", "/users/delta?$filter=" + url.QueryEscape("displayName eq 'x'"), 400, "Request_UnsupportedQuery"},
		{"51 ids", "/users/delta?$filter=" + url.QueryEscape(strings.Join(fifty, " or ")), 400, "Request_UnsupportedQuery"},
		{"unknown property", "/users/delta?$select=nope", 400, "BadRequest"},
		{"members on users", "/users/delta?$select=members", 400, "BadRequest"},
		{"$select with a skiptoken", next + "&$select=displayName", 400, "Request_UnsupportedQuery"},
		{"$select with a deltatoken", link + "&$select=displayName", 400, "Request_UnsupportedQuery"},
		{"garbled token", "/users/delta?$deltatoken=abc", 400, "Request_BadRequest"},
		{"users token on groups", strings.Replace(link, "/users/", "/groups/", 1), 400, "Request_BadRequest"},
		{"skiptoken as deltatoken", strings.Replace(next, "$skiptoken", "$deltatoken", 1), 400, "Request_BadRequest"},
		{"50 ids", "/users/delta?$filter=" + url.QueryEscape(strings.Join(fifty[:50], " or ")), 200, ""},
	}
	for _, c := range cases {
		r := s.get(tc.token, c.path)
		code, _ := r.graphErr()
		if r.status != c.status || code != c.code {
			t.Errorf("%s: %d %s, want %d %s (%s)", c.name, r.status, code, c.status, c.code, r.raw)
		}
	}
	filter := url.QueryEscape(fmt.Sprintf("id eq '%s' or id eq '%s'", users[3].ID, users[17].ID))
	items, _, flink := s.deltaRound(tc.token, "/users/delta?$filter="+filter)
	if got := ids(items); !slices.Equal(got, []string{users[3].ID, users[17].ID}) {
		t.Errorf("id filter: %v", got)
	}
	must(t, d.DisableUser(users[4].ID))
	must(t, d.UpdateUser(users[17].ID, func(u *graphsim.User) { u.JobTitle = "Filtered" }))
	if items, _, _ := s.deltaRound(tc.token, flink); !slices.Equal(ids(items), []string{users[17].ID}) {
		t.Errorf("id filter carried to the next round: %v", ids(items))
	}
}

// TestDeltaResourceUnits: throttling-limits.md lists no delta path, so
// a delta page costs what "any identity path not listed" costs, 1, and
// $select cannot take it below 1; the budget counts it.
func TestDeltaResourceUnits(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 27, Users: 10, Groups: 2}))
	s.srv.SetFaults(tc.id, graphsim.Faults{EnforceBudget: true, Budget: 3})
	for i, path := range []string{"/users/delta", "/groups/delta()?$select=displayName", "/users/delta?$deltatoken=latest", "/users/delta"} {
		r := s.get(tc.token, path)
		want, unit := 200, "1"
		if i == 3 {
			want, unit = 429, ""
		}
		if r.status != want || r.header.Get("x-ms-resource-unit") != unit {
			t.Errorf("%s: %d x-ms-resource-unit %q, want %d %q", path, r.status, r.header.Get("x-ms-resource-unit"), want, unit)
		}
	}
}

func TestDeltaTokensExpireAndLatest(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(by time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(by) }
	s := newSim(t, graphsim.Options{Clock: clock, TokenLifetime: 365 * 24 * time.Hour, DeltaPageSize: 10})
	d := graphsim.Generate(graphsim.Spec{Seed: 24, Users: 25, Groups: 3})
	tc := s.addTenant(d)

	latest := s.get(tc.token, "/users/delta?$deltatoken=latest")
	if latest.status != 200 || len(latest.values()) != 0 || latest.body["@odata.deltaLink"] == nil {
		t.Fatalf("$deltatoken=latest: %d %s", latest.status, latest.raw)
	}
	u := d.Users()[0]
	must(t, d.DisableUser(u.ID))
	items, _, link := s.deltaRound(tc.token, latest.body["@odata.deltaLink"].(string))
	if !slices.Equal(ids(items), []string{u.ID}) {
		t.Errorf("round from latest: %v, want only %s", ids(items), u.ID)
	}
	next := s.get(tc.token, "/users/delta").body["@odata.nextLink"].(string)

	cases := []struct {
		after  time.Duration
		status int
		code   string
	}{
		{6 * 24 * time.Hour, 200, ""},
		{24*time.Hour + time.Second, 400, "syncStateNotFound"},
	}
	for _, c := range cases {
		advance(c.after)
		for _, l := range []string{link, next} {
			r := s.get(tc.token, l)
			code, _ := r.graphErr()
			if r.status != c.status || code != c.code {
				t.Errorf("token after %v more: %d %s, want %d %s", c.after, r.status, code, c.status, c.code)
			}
		}
	}

	// A shorter TTL.
	s2 := newSim(t, graphsim.Options{Clock: clock, TokenLifetime: 365 * 24 * time.Hour, DeltaTokenTTL: time.Hour})
	tc2 := s2.addTenant(d)
	_, _, l2 := s2.deltaRound(tc2.token, "/users/delta")
	advance(time.Hour + time.Second)
	if r := s2.get(tc2.token, l2); r.status != 400 {
		t.Errorf("token past a 1h TTL: %d", r.status)
	}
	// A directory replaced under the same tenant invalidates its tokens.
	_, _, l3 := s2.deltaRound(tc2.token, "/users/delta")
	s2.srv.AddTenant(tc2.id, tc2.clientID, tc2.secret, graphsim.Generate(graphsim.Spec{Seed: 24, Users: 25}))
	if r := s2.get(tc2.token, l3); r.status != 400 {
		t.Errorf("token of a replaced directory: %d", r.status)
	}
}

func TestDeltaResetFaults(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	d := graphsim.Generate(graphsim.Spec{Seed: 25, Users: 12, Groups: 3})
	tc := s.addTenant(d)
	_, _, link := s.deltaRound(tc.token, "/users/delta()?$select=displayName,mail")

	s.srv.SetFaults(tc.id, graphsim.Faults{DeltaGoneNext: 1, DeltaResyncNext: 1})
	if r := s.get(tc.token, "/users?$top=1"); r.status != 200 {
		t.Errorf("a list request is not a delta request: %d", r.status)
	}
	gone := s.get(tc.token, link)
	loc := gone.header.Get("Location")
	if gone.status != http.StatusGone || !strings.Contains(loc, "$deltatoken=") || !strings.Contains(loc, "select=displayName") {
		t.Fatalf("410: %d Location %q", gone.status, loc)
	}
	resync := s.get(tc.token, link)
	if code, _ := resync.graphErr(); resync.status != 400 || code != "resyncRequired" || resync.header.Get("Location") != "" {
		t.Errorf("resyncRequired: %d %s", resync.status, resync.raw)
	}
	items, _, _ := s.deltaRound(tc.token, loc)
	if len(items) != 12 {
		t.Errorf("restart from Location: %d users, want the full 12", len(items))
	}
	for _, it := range items {
		if _, ok := it["userPrincipalName"]; ok {
			t.Fatalf("the restart lost the $select: %v", it)
		}
	}
}

func TestDeltaReplays(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{DeltaPageSize: 10})
	d := graphsim.Generate(graphsim.Spec{Seed: 26, Users: 45, Groups: 3})
	tc := s.addTenant(d)
	s.srv.SetFaults(tc.id, graphsim.Faults{DeltaReplay: true})
	items, _, _ := s.deltaRound(tc.token, "/users/delta")
	seen := map[string]int{}
	for _, id := range ids(items) {
		seen[id]++
	}
	replayed := 0
	for _, n := range seen {
		if n > 1 {
			replayed++
		}
	}
	if len(seen) != 45 || replayed == 0 || len(items) <= 45 {
		t.Errorf("with replays: %d items, %d distinct, %d replayed; want all 45 and some twice", len(items), len(seen), replayed)
	}
	// One object a page: a replay does not take the page's only place.
	s1 := newSim(t, graphsim.Options{DeltaPageSize: 1})
	tc1 := s1.addTenant(graphsim.Generate(graphsim.Spec{Seed: 26, Users: 5}))
	s1.srv.SetFaults(tc1.id, graphsim.Faults{DeltaReplay: true})
	if items, pages, _ := s1.deltaRound(tc1.token, "/users/delta"); len(byID(items)) != 5 || pages != 5 || len(items) != 9 {
		t.Errorf("one object a page with replays: %d distinct on %d pages", len(byID(items)), pages)
	}
}

func TestDeltaSoftDeletedUserInGroupDelta(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	d := graphsim.NewDirectory("contoso.onmicrosoft.com")
	g := d.AddGroup(graphsim.Group{DisplayName: "Team", GroupTypes: []string{"Unified"}, MailEnabled: true})
	u := d.AddUser(graphsim.User{GivenName: "A", Surname: "B", AccountEnabled: true})
	must(t, d.AddMember(g.ID, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser}))
	tc := s.addTenant(d)
	_, _, ulink := s.deltaRound(tc.token, "/users/delta")
	_, _, glink := s.deltaRound(tc.token, "/groups/delta")
	must(t, d.DeleteUser(u.ID))
	uitems, _, ulink := s.deltaRound(tc.token, ulink)
	gitems, _, glink := s.deltaRound(tc.token, glink)
	if byID(uitems)[u.ID] != "changed" {
		t.Errorf("soft-deleted user: %v", uitems)
	}
	if m, _ := memberDelta(gitems, g.ID); m[u.ID] != "deleted" {
		t.Errorf("its membership: %v", gitems)
	}
	must(t, d.RestoreUser(u.ID))
	uitems, _, _ = s.deltaRound(tc.token, ulink)
	gitems, _, _ = s.deltaRound(tc.token, glink)
	if got := byID(uitems); len(got) != 1 || got[u.ID] != "" {
		t.Errorf("restored user: %v", uitems)
	}
	if m, _ := memberDelta(gitems, g.ID); len(m) != 1 || m[u.ID] != "" {
		t.Errorf("restored membership: %v", gitems)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
