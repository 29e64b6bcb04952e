package fleet_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/services/graphsim"
)

// groupStatus is a group of GET .../groups with its status.
type groupStatus struct {
	EntraID     string `json:"entraId"`
	DisplayName string `json:"displayName"`
	Kind        string `json:"kind"`
	Status      string `json:"status"`
}

func (h *harness) groupStatuses(tenant string) map[string]groupStatus {
	h.t.Helper()
	gs, _ := list[groupStatus](h, "/v1/tenants/"+tenant+"/groups")
	out := map[string]groupStatus{}
	for _, g := range gs {
		out[g.EntraID] = g
	}
	return out
}

// userRoles are the names of the roles a user holds (GET .../grants).
func (h *harness) userRoles(tenant, user string) []string {
	h.t.Helper()
	var grants struct{ Items []grant }
	if code := h.do("GET", "/v1/tenants/"+tenant+"/users/"+user+"/grants", nil, &grants); code != http.StatusOK {
		h.t.Fatalf("GET grants of %s = %d", user, code)
	}
	var out []string
	for _, g := range grants.Items {
		if g.Kind == "role" {
			out = append(out, g.Name)
		}
	}
	return out
}

// bindRole puts a custom role in the tenant's catalogue and binds it to a
// group.
func (h *harness) bindRole(tenant, group, role string) {
	h.t.Helper()
	T := "/v1/tenants/" + tenant
	if code := h.do("PUT", T+"/roles/"+role, nil, nil); code != http.StatusCreated && code != http.StatusOK {
		h.t.Fatalf("PUT role = %d", code)
	}
	if code := h.do("PATCH", T+"/groups/"+group, map[string]any{"roles": []string{role}}, nil); code != http.StatusOK {
		h.t.Fatalf("PATCH group = %d", code)
	}
}

// TestGroupDeletedInEntraIsOrphanedAndItsGrantsAreRevoked: a group
// deleted in the simulator stays in the app as orphaned; the role it
// granted is revoked through the plan, with the reason.
func TestGroupDeletedInEntraIsOrphanedAndItsGrantsAreRevoked(t *testing.T) {
	t.Parallel()
	h, e, tenant := syncedTenant(t, 100)
	user := members(e.Dir)[0]
	g := e.Dir.AddGroup(graphsim.Group{DisplayName: "Status Auditors", SecurityEnabled: true})
	if err := e.Dir.AddMember(g.ID, graphsim.Member{ID: user.ID, Type: graphsim.TypeUser}); err != nil {
		t.Fatal(err)
	}
	h.sync(tenant)
	h.bindRole(tenant, g.ID, "Auditor")
	h.sync(tenant)
	if roles := h.userRoles(tenant, user.ID); !slices.Equal(roles, []string{"Auditor"}) {
		t.Fatalf("roles before the deletion: %v", roles)
	}

	if err := e.Dir.DeleteGroup(g.ID); err != nil {
		t.Fatal(err)
	}
	run := h.sync(tenant)
	var orphaned, revoked bool
	for _, it := range h.plan(tenant, run.RunID) {
		switch {
		case it.Action == "updateGroup" && it.EntraID == g.ID:
			orphaned = it.After["status"] == "orphaned" && strings.HasPrefix(it.Reason, "deleted in Entra ID")
		case it.Action == "revokeRole" && it.EntraID == user.ID:
			revoked = it.Before["group"] == g.ID &&
				strings.Contains(it.Reason, "\u201cStatus Auditors\u201d is orphaned (deleted in Entra ID or archived)")
		case it.Action == "removeGroup":
			t.Fatalf("a group was removed: %+v", it)
		}
	}
	if !orphaned || !revoked {
		t.Fatalf("plan of run %s (orphaned %v, revoked %v): %+v", run.RunID, orphaned, revoked, h.plan(tenant, run.RunID))
	}
	if got := h.groupStatuses(tenant)[g.ID]; got.Status != "orphaned" || got.DisplayName != "Status Auditors" {
		t.Fatalf("group after the deletion: %+v", got)
	}
	if roles := h.userRoles(tenant, user.ID); len(roles) != 0 {
		t.Fatalf("roles after the deletion: %v", roles)
	}
	// It stays orphaned, and the next sync plans nothing for it.
	run = h.sync(tenant)
	for _, it := range h.plan(tenant, run.RunID) {
		if it.EntraID == g.ID {
			t.Fatalf("run %s touched the orphaned group: %+v", run.RunID, it)
		}
	}
	if got := h.groupStatuses(tenant)[g.ID]; got.Status != "orphaned" {
		t.Fatalf("group a sync later: %+v", got)
	}
	// Deleted here at last: gone, and no sync brings it back.
	if code := h.do("DELETE", "/v1/tenants/"+tenant+"/groups/"+g.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE orphaned group = %d", code)
	}
	h.sync(tenant)
	if got, ok := h.groupStatuses(tenant)[g.ID]; ok {
		t.Fatalf("deleted group is back: %+v", got)
	}
}

// TestSecurityKindOffDisablesGroupsThatKeepTheirLastMembers: switching the
// security kind off disables the security groups (a listed one excepted)
// without deleting them; a disabled group keeps its last members, and its
// role, while its members change in the simulator; switching the kind on
// again enables it and it follows Entra ID again.
func TestSecurityKindOffDisablesGroupsThatKeepTheirLastMembers(t *testing.T) {
	t.Parallel()
	h, e, tenant := syncedTenant(t, 100)
	us := members(e.Dir)
	u1, u2, u3 := us[0].ID, us[1].ID, us[2].ID
	sec := e.Dir.AddGroup(graphsim.Group{DisplayName: "Status Security", SecurityEnabled: true})
	kept := e.Dir.AddGroup(graphsim.Group{DisplayName: "Status Included", SecurityEnabled: true})
	m365 := e.Dir.AddGroup(graphsim.Group{DisplayName: "Status Team", GroupTypes: []string{"Unified"}, MailEnabled: true})
	spare := e.Dir.AddGroup(graphsim.Group{DisplayName: "Status Spare", SecurityEnabled: true})
	for _, id := range []string{u1, u2} {
		if err := e.Dir.AddMember(sec.ID, graphsim.Member{ID: id, Type: graphsim.TypeUser}); err != nil {
			t.Fatal(err)
		}
	}
	h.sync(tenant)
	h.bindRole(tenant, sec.ID, "Reviewer")
	h.sync(tenant)
	before := h.groupStatuses(tenant)

	h.patchTenant(tenant, map[string]any{"groups": map[string]any{"security": false, "include": []string{kept.ID}}})
	run := h.sync(tenant)
	after := h.groupStatuses(tenant)
	if len(after) != len(before) {
		t.Fatalf("groups %d after the kind went off, %d before", len(after), len(before))
	}
	for id, g := range after {
		want := "enabled"
		if (g.Kind == "security" || g.Kind == "mailEnabledSecurity") && id != kept.ID {
			want = "disabled"
		}
		if g.Status != want {
			t.Fatalf("group %s (%s) is %s, want %s", g.DisplayName, g.Kind, g.Status, want)
		}
	}
	if after[m365.ID].Status != "enabled" || after[kept.ID].Status != "enabled" {
		t.Fatalf("groups: %+v", after)
	}
	disabledItem := false
	for _, it := range h.plan(tenant, run.RunID) {
		if it.Action == "updateGroup" && it.EntraID == sec.ID {
			disabledItem = it.After["status"] == "disabled" && strings.Contains(it.Reason, "groups.security is false")
		}
	}
	if !disabledItem {
		t.Fatalf("no updateGroup disabling %s in run %s: %+v", sec.ID, run.RunID, h.plan(tenant, run.RunID))
	}
	// Deleting here: an enabled group is refused, a disabled one goes and
	// stays away while its kind is off.
	T := "/v1/tenants/" + tenant
	if code := h.do("DELETE", T+"/groups/"+m365.ID, nil, nil); code != http.StatusConflict {
		t.Fatalf("DELETE enabled group = %d, want 409", code)
	}
	if code := h.do("DELETE", T+"/groups/"+spare.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE disabled group = %d, want 204", code)
	}
	if _, ok := e.Dir.Group(spare.ID); !ok {
		t.Fatal("deleting here deleted the group in Entra ID")
	}

	// Members change in Entra ID; the disabled group keeps its last ones,
	// and they keep its role.
	if err := e.Dir.RemoveMember(sec.ID, u1); err != nil {
		t.Fatal(err)
	}
	if err := e.Dir.AddMember(sec.ID, graphsim.Member{ID: u3, Type: graphsim.TypeUser}); err != nil {
		t.Fatal(err)
	}
	h.sync(tenant)
	if _, ok := h.groupStatuses(tenant)[spare.ID]; ok {
		t.Fatal("the deleted group came back while its kind is off")
	}
	if got, want := h.groupMembers(tenant, sec.ID), sorted(u1, u2); !slices.Equal(got, want) {
		t.Fatalf("disabled group's members %v, want its last %v", got, want)
	}
	if g := h.groupStatuses(tenant)[sec.ID]; g.Status != "disabled" {
		t.Fatalf("disabled group: %+v", g)
	}
	if r1, r3 := h.userRoles(tenant, u1), h.userRoles(tenant, u3); !slices.Equal(r1, []string{"Reviewer"}) || len(r3) != 0 {
		t.Fatalf("roles of the last member %v, of the new one %v", r1, r3)
	}

	// The kind on again: enabled, and synced again.
	h.patchTenant(tenant, map[string]any{"groups": map[string]any{"security": true}})
	h.sync(tenant)
	if got, want := h.groupMembers(tenant, sec.ID), sorted(u2, u3); !slices.Equal(got, want) {
		t.Fatalf("enabled group's members %v, want %v", got, want)
	}
	if g := h.groupStatuses(tenant)[sec.ID]; g.Status != "enabled" {
		t.Fatalf("enabled group: %+v", g)
	}
	if r1, r3 := h.userRoles(tenant, u1), h.userRoles(tenant, u3); len(r1) != 0 || !slices.Equal(r3, []string{"Reviewer"}) {
		t.Fatalf("roles of the old member %v, of the new one %v", r1, r3)
	}
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

// TestOneGroupSwitchedOffArchivedAndLocalGroups: one group switched off
// keeps its last members and their role while Entra ID's change, and
// follows Entra ID again once switched on; an archived group's role is
// revoked at the next sync, with the reason, and it can then be deleted;
// a local group survives syncs and is deleted here.
func TestOneGroupSwitchedOffArchivedAndLocalGroups(t *testing.T) {
	t.Parallel()
	h, e, tenant := syncedTenant(t, 100)
	T := "/v1/tenants/" + tenant
	us := members(e.Dir)
	u1, u2, u3, u4 := us[0].ID, us[1].ID, us[2].ID, us[3].ID
	switched := e.Dir.AddGroup(graphsim.Group{DisplayName: "Switch Board", SecurityEnabled: true})
	archived := e.Dir.AddGroup(graphsim.Group{DisplayName: "Switch Archive", SecurityEnabled: true})
	for _, m := range []struct{ group, user string }{{switched.ID, u1}, {switched.ID, u2}, {archived.ID, u4}} {
		if err := e.Dir.AddMember(m.group, graphsim.Member{ID: m.user, Type: graphsim.TypeUser}); err != nil {
			t.Fatal(err)
		}
	}
	h.sync(tenant)
	h.bindRole(tenant, switched.ID, "Switcher")
	h.bindRole(tenant, archived.ID, "Archivist")
	h.sync(tenant)

	// Off: kept as last synced while Entra ID's members change.
	if code := h.do("PATCH", T+"/groups/"+switched.ID, map[string]any{"enabled": false}, nil); code != http.StatusOK {
		t.Fatalf("switch off = %d", code)
	}
	if err := e.Dir.RemoveMember(switched.ID, u1); err != nil {
		t.Fatal(err)
	}
	if err := e.Dir.AddMember(switched.ID, graphsim.Member{ID: u3, Type: graphsim.TypeUser}); err != nil {
		t.Fatal(err)
	}
	h.sync(tenant)
	if got, want := h.groupMembers(tenant, switched.ID), sorted(u1, u2); !slices.Equal(got, want) {
		t.Fatalf("switched-off group's members %v, want its last %v", got, want)
	}
	if r1, r3 := h.userRoles(tenant, u1), h.userRoles(tenant, u3); !slices.Equal(r1, []string{"Switcher"}) || len(r3) != 0 {
		t.Fatalf("while off: roles of the last member %v, of the new one %v", r1, r3)
	}
	// On again: the next sync follows Entra ID, though nothing changed
	// there since.
	if code := h.do("PATCH", T+"/groups/"+switched.ID, map[string]any{"enabled": true}, nil); code != http.StatusOK {
		t.Fatalf("switch on = %d", code)
	}
	h.sync(tenant)
	if got, want := h.groupMembers(tenant, switched.ID), sorted(u2, u3); !slices.Equal(got, want) {
		t.Fatalf("switched-on group's members %v, want %v", got, want)
	}
	if r1, r3 := h.userRoles(tenant, u1), h.userRoles(tenant, u3); len(r1) != 0 || !slices.Equal(r3, []string{"Switcher"}) {
		t.Fatalf("switched on: roles of the old member %v, of the new one %v", r1, r3)
	}

	// Archived: orphaned at once, its role revoked by the next sync.
	if code := h.do("POST", T+"/groups/"+archived.ID+"/archive", nil, nil); code != http.StatusOK {
		t.Fatalf("archive = %d", code)
	}
	if code := h.do("DELETE", T+"/groups/"+switched.ID, nil, nil); code != http.StatusConflict {
		t.Fatalf("DELETE an enabled group = %d, want 409", code)
	}
	run := h.sync(tenant)
	revoked := false
	for _, it := range h.plan(tenant, run.RunID) {
		revoked = revoked || (it.Action == "revokeRole" && it.EntraID == u4 && it.Before["group"] == archived.ID &&
			strings.Contains(it.Reason, "is orphaned"))
	}
	if !revoked || len(h.userRoles(tenant, u4)) != 0 {
		t.Fatalf("archived group's role: revoked %v, roles now %v; plan %+v", revoked, h.userRoles(tenant, u4),
			h.plan(tenant, run.RunID))
	}
	if g := h.groupStatuses(tenant)[archived.ID]; g.Status != "orphaned" {
		t.Fatalf("archived group: %+v", g)
	}
	if code := h.do("DELETE", T+"/groups/"+archived.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE the archived group = %d", code)
	}

	// A local group: no sync touches it; deleted here.
	var local struct{ EntraID string }
	if code := h.do("POST", T+"/groups", map[string]any{"displayName": "Switch Local"}, &local); code != http.StatusCreated {
		t.Fatalf("POST local group = %d", code)
	}
	h.bindRole(tenant, local.EntraID, "Switcher")
	h.sync(tenant)
	if g := h.groupStatuses(tenant)[local.EntraID]; g.Kind != "local" || g.Status != "enabled" {
		t.Fatalf("local group after a sync: %+v", g)
	}
	if _, ok := h.groupStatuses(tenant)[archived.ID]; ok {
		t.Fatal("the deleted archived group came back")
	}
	if code := h.do("DELETE", T+"/groups/"+local.EntraID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE the local group = %d", code)
	}
}
