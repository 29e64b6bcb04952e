package fleet_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/services/graphsim"
)

// The product's rules, each end to end: the api takes the settings or the
// admin's edit, the fleet syncs a tenant from the Graph simulator, and the
// outcome is read back through the api.

// smallSpec is a tenant small enough for many rule tests at once, with
// every shape the rules look at: guests, disabled accounts, users without
// mail, nesting three deep, a cycle.
var smallSpec = graphsim.Spec{Seed: 21, Users: 60, Guests: 4, Disabled: 3, NoMail: 3, Groups: 10, NestingDepth: 3, Cycle: true}

// appUser is a user as GET .../users shows it, with roles and edits.
type appUser struct {
	EntraID     string   `json:"entraId"`
	Email       string   `json:"email"`
	DisplayName string   `json:"displayName"`
	Enabled     bool     `json:"enabled"`
	License     string   `json:"license"`
	Roles       []string `json:"roles"`
	Edited      bool     `json:"edited"`
}

type planItem struct {
	Action      string         `json:"action"`
	EntraID     string         `json:"entraId"`
	DisplayName string         `json:"displayName"`
	Before      map[string]any `json:"before"`
	After       map[string]any `json:"after"`
	Reason      string         `json:"reason"`
}

type notification struct {
	ID         string   `json:"id"`
	Kind       string   `json:"kind"`
	RunID      string   `json:"runId"`
	Recipients []string `json:"recipients"`
	Subject    string   `json:"subject"`
	Text       string   `json:"text"`
}

// syncedTenant starts a fleet with one tenant of smallSpec, connected
// with seats, and syncs it once.
func syncedTenant(t *testing.T, seats int) (*harness, entraTenant, string) {
	t.Helper()
	h := newHarness(t, 1, 1)
	e := h.addEntraTenant(smallSpec)
	tenant := h.connect(e, seats)
	h.sync(tenant)
	return h, e, tenant
}

// settle waits for a run and fails unless it ended with status.
func (h *harness) settle(tenant, runID, status string) runView {
	h.t.Helper()
	v := h.wait(tenant, runID)
	if v.Status != status {
		h.t.Fatalf("run %s is %s (%s %q), want %s", runID, v.Status, v.HeldReason, v.Error, status)
	}
	return v
}

// patchTenant changes settings; it returns the id of the sync a scope
// change queued ("" when none).
func (h *harness) patchTenant(tenant string, patch any) string {
	h.t.Helper()
	var out struct {
		SyncRunID string `json:"syncRunId"`
	}
	if code := h.do("PATCH", "/v1/tenants/"+tenant, patch, &out); code != http.StatusOK {
		h.t.Fatalf("PATCH tenant %v = %d", patch, code)
	}
	return out.SyncRunID
}

func (h *harness) patchUser(tenant, id string, patch any) int {
	h.t.Helper()
	return h.do("PATCH", "/v1/tenants/"+tenant+"/users/"+id, patch, nil)
}

func (h *harness) appUsers(tenant string) map[string]appUser {
	h.t.Helper()
	us, _ := list[appUser](h, "/v1/tenants/"+tenant+"/users")
	out := map[string]appUser{}
	for _, u := range us {
		out[u.EntraID] = u
	}
	return out
}

func (h *harness) appUser(tenant, id string) appUser {
	h.t.Helper()
	var u appUser
	if code := h.do("GET", "/v1/tenants/"+tenant+"/users/"+id, nil, &u); code != http.StatusOK {
		h.t.Fatalf("GET user %s = %d", id, code)
	}
	return u
}

func (h *harness) plan(tenant, runID string) []planItem {
	h.t.Helper()
	items, _ := list[planItem](h, "/v1/tenants/"+tenant+"/syncs/"+runID+"/plan")
	return items
}

func (h *harness) notifications(tenant string) []notification {
	h.t.Helper()
	ns, _ := list[notification](h, "/v1/tenants/"+tenant+"/notifications")
	return ns
}

// decide approves or rejects a held run; it returns the status code and
// the run's status, or the error's message.
func (h *harness) decide(tenant, runID, verb string) (int, string) {
	h.t.Helper()
	var out map[string]json.RawMessage
	code := h.do("POST", "/v1/tenants/"+tenant+"/syncs/"+runID+"/"+verb, nil, &out)
	if code == http.StatusOK {
		var status string
		_ = json.Unmarshal(out["status"], &status)
		return code, status
	}
	var e struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(out["error"], &e)
	return code, e.Message
}

// members are the generated directory's enabled Member users with mail,
// in Entra id order.
func members(dir *graphsim.Directory) []graphsim.User {
	var out []graphsim.User
	for _, u := range dir.Users() {
		if u.UserType == "Member" && u.AccountEnabled && u.Mail != "" {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func licensed(us map[string]appUser) int {
	n := 0
	for _, u := range us {
		if u.License == "assigned" {
			n++
		}
	}
	return n
}

func TestGuardHoldsAMassRemovalUntilAnAdminApproves(t *testing.T) {
	t.Parallel()
	h, e, tenant := syncedTenant(t, 1000)
	admin := members(e.Dir)[0]
	if code := h.patchUser(tenant, admin.ID, map[string]any{"roles": []string{"Administrator"}}); code != http.StatusOK {
		t.Fatalf("PATCH roles = %d", code)
	}
	before := h.appUsers(tenant)

	// /users suddenly returns 70% fewer users.
	all := e.Dir.Users()
	for _, u := range all[:len(all)*7/10] {
		if u.ID != admin.ID {
			must(t, e.Dir.DeleteUser(u.ID))
		}
	}
	run := h.settle(tenant, h.trigger(tenant), "awaiting_approval")
	if run.HeldReason != "deletion_guard" || run.Plan["removeUser"] == 0 {
		t.Fatalf("held run = %+v", run)
	}
	if after := h.appUsers(tenant); len(after) != len(before) {
		t.Fatalf("the held run removed users: %d → %d", len(before), len(after))
	}
	ns := h.notifications(tenant)
	if len(ns) != 1 || ns[0].Kind != "run_held" || ns[0].RunID != run.RunID || !slices.Equal(ns[0].Recipients, []string{admin.Mail}) {
		t.Fatalf("notifications = %+v", ns)
	}
	var removal planItem
	for _, it := range h.plan(tenant, run.RunID) {
		if it.Action == "removeUser" {
			removal = it
			break
		}
	}
	if removal.Reason != "deleted in Entra ID" {
		t.Fatalf("removal reads %+v", removal)
	}

	if code, status := h.decide(tenant, run.RunID, "approve"); code != http.StatusOK || status != "succeeded" {
		t.Fatalf("approve = %d %s", code, status)
	}
	if d := diff(h.users(tenant), expectedUsers(e.Dir, 1000), userKey); d != "" {
		t.Fatalf("after approval the users differ from Graph:\n%s", d)
	}
}

func TestGuardAlwaysHoldsAnEmptyUsersListing(t *testing.T) {
	t.Parallel()
	h, e, tenant := syncedTenant(t, 1000)
	// Even a guard that allows removing everyone holds this one.
	h.patchTenant(tenant, map[string]any{"deletionGuard": map[string]any{"percent": 100, "minimum": 0}})
	before := h.appUsers(tenant)
	for _, u := range e.Dir.Users() {
		must(t, e.Dir.DeleteUser(u.ID))
	}
	// A full read: a delta round saying every user was deleted is Graph's
	// word, not an empty listing.
	run := h.settle(tenant, h.triggerFull(tenant), "awaiting_approval")
	if run.HeldReason != "deletion_guard" {
		t.Fatalf("held for %q", run.HeldReason)
	}
	if after := h.appUsers(tenant); len(after) != len(before) {
		t.Fatalf("users removed by an empty listing: %d → %d", len(before), len(after))
	}
	if code, _ := h.decide(tenant, run.RunID, "reject"); code != http.StatusOK {
		t.Fatalf("reject = %d", code)
	}
	if after := h.appUsers(tenant); len(after) != len(before) {
		t.Fatal("rejecting removed users")
	}
}

// appTables hashes a tenant's app side without ids of its own or times,
// so two tenants synced from equal directories compare equal.
func (h *harness) appTables(tenant string) map[string]string {
	h.t.Helper()
	out := map[string]string{}
	for name, q := range map[string]string{
		"users": `SELECT md5(string_agg(concat_ws('|', entra_id, email, display_name, given_name, surname, job_title,
			department, enabled, license, license_run_seq), E'\n' ORDER BY entra_id)) FROM app_users WHERE tenant_id = $1`,
		"groups": `SELECT md5(string_agg(concat_ws('|', entra_id, display_name, kind, dynamic, entra_member_count,
			synced_member_count), E'\n' ORDER BY entra_id)) FROM app_groups WHERE tenant_id = $1`,
		"members": `SELECT md5(string_agg(group_id || '|' || user_id, E'\n' ORDER BY group_id, user_id))
			FROM app_group_members WHERE tenant_id = $1`,
	} {
		var sum *string
		if err := h.db.QueryRow(h.t.Context(), q, tenant).Scan(&sum); err != nil {
			h.t.Fatal(err)
		}
		out[name] = "empty"
		if sum != nil {
			out[name] = *sum
		}
	}
	return out
}

func TestReviewModeHoldsEveryPlanAndApprovalEqualsAutoMode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	auto := h.addEntraTenant(smallSpec)
	review := h.addEntraTenant(smallSpec) // the same directory, generated again
	rejected := h.addEntraTenant(smallSpec)
	a := h.connect(auto, 50)
	r := h.connect(review, 50)
	x := h.connect(rejected, 50)
	h.patchTenant(r, map[string]any{"applyMode": "review"})
	h.patchTenant(x, map[string]any{"applyMode": "review"})

	h.sync(a)
	held := h.settle(r, h.trigger(r), "awaiting_approval")
	if held.HeldReason != "review" || held.Plan["createUser"] == 0 {
		t.Fatalf("review run = %+v", held)
	}
	if us := h.appUsers(r); len(us) != 0 {
		t.Fatalf("a run awaiting review created %d users", len(us))
	}
	if code, _ := h.decide(r, held.RunID, "approve"); code != http.StatusOK {
		t.Fatalf("approve = %d", code)
	}
	if ga, gr := h.appTables(a), h.appTables(r); fmt.Sprint(ga) != fmt.Sprint(gr) || ga["users"] == "empty" {
		t.Fatalf("approved plan differs from auto mode:\nauto   %v\nreview %v", ga, gr)
	}
	if code, msg := h.decide(r, held.RunID, "approve"); code != http.StatusConflict {
		t.Fatalf("approving twice = %d %s", code, msg)
	}

	before := h.appTables(x)
	rej := h.settle(x, h.trigger(x), "awaiting_approval")
	if code, status := h.decide(x, rej.RunID, "reject"); code != http.StatusOK || status != "rejected" {
		t.Fatalf("reject = %d %s", code, status)
	}
	if after := h.appTables(x); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a rejected plan changed the app: %v → %v", before, after)
	}
}

// TestSeatShortageTellsAdministratorsAndLicenseManagersOnce: three short
// runs make one seats_exhausted task, to the Administrator, the License
// manager and a user who is an Administrator through two nested groups.
func TestSeatShortageTellsAdministratorsAndLicenseManagersOnce(t *testing.T) {
	t.Parallel()
	h, e, tenant := syncedTenant(t, 1000)
	ms := members(e.Dir)
	admin, manager := ms[0], ms[1]
	for _, p := range []struct {
		u    graphsim.User
		role string
	}{{admin, "Administrator"}, {manager, "License manager"}} {
		if code := h.patchUser(tenant, p.u.ID, map[string]any{"roles": []string{p.role}}); code != http.StatusOK {
			t.Fatalf("PATCH roles = %d", code)
		}
	}
	// A third is an Administrator through groups: "IT Admins" holds
	// "Helpdesk", which holds the user.
	viaGroups := ms[2]
	itAdmins := e.Dir.AddGroup(graphsim.Group{DisplayName: "IT Admins", SecurityEnabled: true})
	helpdesk := e.Dir.AddGroup(graphsim.Group{DisplayName: "Helpdesk", SecurityEnabled: true})
	if err := e.Dir.AddMember(itAdmins.ID, graphsim.Member{ID: helpdesk.ID, Type: graphsim.TypeGroup}); err != nil {
		t.Fatal(err)
	}
	if err := e.Dir.AddMember(helpdesk.ID, graphsim.Member{ID: viaGroups.ID, Type: graphsim.TypeUser}); err != nil {
		t.Fatal(err)
	}
	h.sync(tenant)
	if code := h.do("PATCH", "/v1/tenants/"+tenant+"/groups/"+itAdmins.ID, map[string]any{"roles": []string{"Administrator"}},
		nil); code != http.StatusOK {
		t.Fatalf("PATCH IT Admins = %d", code)
	}
	// Shrinking the pool takes most seats back: let the guard allow it.
	h.patchTenant(tenant, map[string]any{"seats": 10, "deletionGuard": map[string]any{"percent": 100, "minimum": 0}})
	for i := range 3 {
		run := h.sync(tenant)
		if run.Counts["unlicensed"] == 0 {
			t.Fatalf("run %d: unlicensed = 0 with 10 seats", i)
		}
	}
	var tasks []notification
	for _, n := range h.notifications(tenant) {
		if n.Kind == "seats_exhausted" {
			tasks = append(tasks, n)
		}
	}
	want := []string{admin.Mail, manager.Mail, viaGroups.Mail}
	sort.Strings(want)
	if len(tasks) != 1 || !slices.Equal(tasks[0].Recipients, want) {
		t.Fatalf("seats_exhausted tasks = %+v, want one to %v", tasks, want)
	}
	if got := licensed(h.appUsers(tenant)); got != 10 {
		t.Fatalf("%d seats held, want 10", got)
	}
}

func TestSeatFreedByADisabledAccountGoesToTheFirstWaitingUser(t *testing.T) {
	t.Parallel()
	h, e, tenant := syncedTenant(t, 5)
	ms := members(e.Dir)
	// The first five by id hold the seats; the sixth waits.
	must(t, e.Dir.DisableUser(ms[0].ID))
	run := h.sync(tenant)
	if run.Counts["licensesRevoked"] != 1 || run.Counts["licensesAssigned"] != 1 {
		t.Fatalf("counts = %v", run.Counts)
	}
	us := h.appUsers(tenant)
	if us[ms[0].ID].License != "disabled" || us[ms[5].ID].License != "assigned" {
		t.Fatalf("disabled holder %+v, first waiting %+v", us[ms[0].ID], us[ms[5].ID])
	}
}

func TestLicenseDisabledByAnAdminStaysDisabled(t *testing.T) {
	t.Parallel()
	h, e, tenant := syncedTenant(t, 5)
	holder := members(e.Dir)[0].ID
	if code := h.patchUser(tenant, holder, map[string]any{"license": "disabled"}); code != http.StatusOK {
		t.Fatalf("PATCH license = %d", code)
	}
	for range 2 {
		h.sync(tenant)
		if u := h.appUser(tenant, holder); u.License != "disabled" || !u.Enabled {
			t.Fatalf("after a sync: %+v", u)
		}
	}
	// Its seat went to the next user; with the pool full, giving it back
	// is refused.
	if code := h.patchUser(tenant, holder, map[string]any{"license": "assigned"}); code != http.StatusConflict {
		t.Fatalf("license back with a full pool = %d, want 409", code)
	}
	h.patchTenant(tenant, map[string]any{"seats": 6})
	if code := h.patchUser(tenant, holder, map[string]any{"license": "assigned"}); code != http.StatusOK {
		t.Fatalf("license back with a free seat = %d", code)
	}
	h.sync(tenant)
	if u := h.appUser(tenant, holder); u.License != "assigned" {
		t.Fatalf("after giving it back and a sync: %+v", u)
	}
}

func TestLocalEditsSurviveUnderKeepAndAreRevertedUnderOverwrite(t *testing.T) {
	t.Parallel()
	h, e, tenant := syncedTenant(t, 100)
	u := members(e.Dir)[0]
	if code := h.patchUser(tenant, u.ID, map[string]any{"displayName": "Ada (Finance)", "email": "ada@finance.example"}); code != http.StatusOK {
		t.Fatalf("PATCH user = %d", code)
	}
	h.sync(tenant)
	if got := h.appUser(tenant, u.ID); got.DisplayName != "Ada (Finance)" || got.Email != "ada@finance.example" || !got.Edited {
		t.Fatalf("keep: %+v", got)
	}
	h.patchTenant(tenant, map[string]any{"localEdits": "overwrite"})
	run := h.sync(tenant)
	if got := h.appUser(tenant, u.ID); got.DisplayName != u.DisplayName || got.Email != u.Mail || got.Edited {
		t.Fatalf("overwrite: %+v", got)
	}
	items := h.plan(tenant, run.RunID)
	if len(items) != 1 || items[0].Action != "updateUser" || !strings.Contains(items[0].Reason, "overwritten by Entra ID") {
		t.Fatalf("plan = %+v", items)
	}
}

func TestScopeToANestedGroupKeepsItsMembersAndGivesTheirSeats(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	e := h.addEntraTenant(smallSpec)
	chain := e.Dir.NestedChain()
	outer := chain[0]
	inGroup := map[string]bool{}
	for _, u := range e.Dir.TransitiveUsers(outer) {
		if u.UserType == "Member" {
			inGroup[u.ID] = true
		}
	}
	// As many seats as the group has enabled members: at first they go
	// to the first enabled members by id, so some of the group wait; once
	// the others leave, every member of the group holds one.
	seats, waiting := 0, 0
	for _, u := range e.Dir.TransitiveUsers(outer) {
		if u.UserType == "Member" && u.AccountEnabled {
			seats++
		}
	}
	first := expectedUsers(e.Dir, seats)
	for _, u := range first {
		if inGroup[u.EntraID] && u.Enabled && u.License != "assigned" {
			waiting++
		}
	}
	if waiting == 0 {
		t.Fatalf("directory shape: no member of group %s waits for a seat", outer)
	}
	tenant := h.connect(e, seats)
	h.sync(tenant)

	runID := h.patchTenant(tenant, map[string]any{"scope": map[string]any{"groups": []string{outer}}})
	if runID == "" {
		t.Fatal("changing the scope queued no sync")
	}
	run := h.settle(tenant, runID, "awaiting_approval") // most users leave: the guard holds it
	if run.HeldReason != "deletion_guard" {
		t.Fatalf("held for %q", run.HeldReason)
	}
	for _, it := range h.plan(tenant, runID) {
		if it.Action == "removeUser" && it.Reason != "not a member of any selected group" {
			t.Fatalf("removal reads %+v", it)
		}
	}
	if code, _ := h.decide(tenant, runID, "approve"); code != http.StatusOK {
		t.Fatalf("approve = %d", code)
	}
	us := h.appUsers(tenant)
	if len(us) != len(inGroup) {
		t.Fatalf("%d users in the app, want the group's %d", len(us), len(inGroup))
	}
	for id, u := range us {
		if !inGroup[id] {
			t.Fatalf("user %s is not in the group", id)
		}
		if u.Enabled && u.License != "assigned" {
			t.Fatalf("group member %s has no seat although seats are free: %+v", id, u)
		}
	}
}

func TestUserFilterIsAppliedByGraphAndARefusedOneChangesNothing(t *testing.T) {
	t.Parallel()
	h, _, tenant := syncedTenant(t, 1000)
	before := h.appUsers(tenant)

	// Graph supports endsWith on users only for mail, otherMails,
	// userPrincipalName and proxyAddresses: it refuses this one.
	runID := h.patchTenant(tenant, map[string]any{"scope": map[string]any{"userFilter": "endsWith(displayName,'son')"}})
	if runID == "" {
		t.Fatal("changing the filter queued no sync")
	}
	run := h.settle(tenant, runID, "failed")
	if !strings.Contains(run.Error, "displayName") {
		t.Fatalf("failed run does not carry Graph's message: %q", run.Error)
	}
	if after := h.appUsers(tenant); len(after) != len(before) {
		t.Fatal("a refused filter changed the users")
	}

	// accountEnabled eq false: only the disabled accounts stay; the others
	// leave through the guard.
	runID = h.patchTenant(tenant, map[string]any{"scope": map[string]any{"userFilter": "accountEnabled eq false"}})
	run = h.settle(tenant, runID, "awaiting_approval")
	if code, _ := h.decide(tenant, run.RunID, "approve"); code != http.StatusOK {
		t.Fatalf("approve = %d", code)
	}
	for id, u := range h.appUsers(tenant) {
		if u.Enabled {
			t.Fatalf("enabled user %s passed the filter", id)
		}
	}

	// The filter cleared: the users it kept out come back at once, although
	// none of them changed in Entra ID (a delta round would not list them).
	runID = h.patchTenant(tenant, map[string]any{"scope": map[string]any{"userFilter": ""}})
	run = h.settle(tenant, runID, "succeeded")
	if run.Kind != "full" {
		t.Fatalf("the run after the filter was cleared is %q, want a full read", run.Kind)
	}
	after := h.appUsers(tenant)
	for id := range before {
		if _, ok := after[id]; !ok {
			t.Fatalf("user %s, kept out by the cleared filter, is not back (%d of %d users)", id, len(after), len(before))
		}
	}
}

func TestEmailIncludeAndExcludeAndExclusions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	e := h.addEntraTenant(smallSpec)
	tenant := h.connect(e, 1000)
	excluded := strings.ToUpper(members(e.Dir)[0].Mail)
	h.patchTenant(tenant, map[string]any{
		"deletionGuard": map[string]any{"percent": 100, "minimum": 0},
		"scope": map[string]any{"includeGuests": true, "includeDisabled": false, "requireMailbox": true,
			"emailExclude": []string{excluded}},
	})
	h.sync(tenant)
	check := func(step string, want func(graphsim.User) bool) {
		t.Helper()
		us := h.appUsers(tenant)
		for _, u := range e.Dir.Users() {
			if _, in := us[u.ID]; in != want(u) {
				t.Fatalf("%s: user %s (%s, enabled %v, %s) in the app: %v", step, u.ID, u.Mail, u.AccountEnabled, u.UserType, in)
			}
		}
	}
	check("exclusions", func(u graphsim.User) bool {
		return u.AccountEnabled && u.Mail != "" && !strings.EqualFold(u.Mail, excluded)
	})
	guests := 0
	for _, u := range h.appUsers(tenant) {
		if d, _ := e.Dir.User(u.EntraID); d.UserType == "Guest" {
			guests++
		}
	}
	if guests == 0 {
		t.Fatal("includeGuests let no guest in")
	}

	// Only the tenant's own domain: guests (external mail) leave.
	runID := h.patchTenant(tenant, map[string]any{"scope": map[string]any{"emailInclude": []string{"@" + e.Dir.Domain()}}})
	h.settle(tenant, runID, "succeeded")
	check("include", func(u graphsim.User) bool {
		return u.AccountEnabled && u.Mail != "" && !strings.EqualFold(u.Mail, excluded) &&
			strings.HasSuffix(strings.ToLower(u.Mail), "@"+strings.ToLower(e.Dir.Domain()))
	})
}

func TestBasicPlanSyncsGroupsOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	e := h.addEntraTenant(smallSpec)
	tenant := h.connect(e, 1000)
	h.patchTenant(tenant, map[string]any{"plan": "basic"})
	h.sync(tenant)
	if us := h.appUsers(tenant); len(us) != 0 {
		t.Fatalf("a Basic tenant synced %d users", len(us))
	}
	if gs := h.groups(tenant); len(gs) != len(e.Dir.Groups()) {
		t.Fatalf("a Basic tenant synced %d groups, want %d", len(gs), len(e.Dir.Groups()))
	}
	var out struct {
		Error struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"error"`
	}
	code := h.do("PATCH", "/v1/tenants/"+tenant, map[string]any{"scope": map[string]any{"groups": []string{e.Dir.Groups()[0].ID}}}, &out)
	if code != http.StatusBadRequest || out.Error.Field != "scope.groups" || !strings.Contains(out.Error.Message, "Business or Premium") {
		t.Fatalf("scope on Basic = %d %+v", code, out)
	}
}

func TestDisconnectStopsSyncingAndKeepsTheUsers(t *testing.T) {
	t.Parallel()
	h, e, tenant := syncedTenant(t, 1000)
	before := h.appUsers(tenant)
	if code := h.do("POST", "/v1/tenants/"+tenant+"/disconnect", nil, nil); code != http.StatusOK {
		t.Fatalf("disconnect = %d", code)
	}
	if code := h.do("POST", "/v1/tenants/"+tenant+"/syncs", nil, nil); code != http.StatusConflict {
		t.Fatalf("trigger while disconnected = %d, want 409", code)
	}
	if after := h.appUsers(tenant); len(after) != len(before) {
		t.Fatal("disconnecting removed users")
	}
	if code := h.do("POST", "/v1/tenants/"+tenant+"/connect", map[string]any{
		"entraTenantId": e.ID, "clientId": e.ClientID, "clientSecret": e.Secret}, nil); code != http.StatusOK {
		t.Fatalf("connect = %d", code)
	}
	h.sync(tenant)
}
