package fleet_test

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/services/graphsim"
)

// grant is one item of GET .../users/{entraId}/grants with a group path.
type grant struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	Via  []struct {
		EntraID     string `json:"entraId"`
		DisplayName string `json:"displayName"`
	} `json:"via"`
}

// TestRoleBoundThreeLevelsUpReachesTheBottomAndLeavesWithIt: a role bound
// to a group three levels above a user's own group reaches the user, with
// the whole path in via, although the groups form a cycle; taking the
// user out of the bottom group in Entra ID revokes it at the next sync,
// and the plan says why. The runs after the first are delta rounds: the
// change three levels down reaches the top group's grant through
// members@delta and the store's recomputation of the changed subtree.
func TestRoleBoundThreeLevelsUpReachesTheBottomAndLeavesWithIt(t *testing.T) {
	t.Parallel()
	h, e, tenant := syncedTenant(t, 100)
	T := "/v1/tenants/" + tenant
	user := members(e.Dir)[0]
	bottom := e.Dir.AddGroup(graphsim.Group{DisplayName: "Grants Bottom", SecurityEnabled: true})
	mid := e.Dir.AddGroup(graphsim.Group{DisplayName: "Grants Mid", SecurityEnabled: true})
	top := e.Dir.AddGroup(graphsim.Group{DisplayName: "Grants Top", SecurityEnabled: true})
	for _, m := range []struct {
		group string
		m     graphsim.Member
	}{
		{bottom.ID, graphsim.Member{ID: user.ID, Type: graphsim.TypeUser}},
		{mid.ID, graphsim.Member{ID: bottom.ID, Type: graphsim.TypeGroup}},
		{top.ID, graphsim.Member{ID: mid.ID, Type: graphsim.TypeGroup}},
		// The cycle: the top group is a member of the bottom one.
		{bottom.ID, graphsim.Member{ID: top.ID, Type: graphsim.TypeGroup}},
	} {
		if err := e.Dir.AddMember(m.group, m.m); err != nil {
			t.Fatal(err)
		}
	}
	h.sync(tenant) // the groups come into the app

	if code := h.do("PUT", T+"/roles/"+url.PathEscape("Finance editor"), nil, nil); code != http.StatusCreated {
		t.Fatalf("PUT role = %d", code)
	}
	if code := h.do("PATCH", T+"/groups/"+top.ID, map[string]any{"roles": []string{"Finance editor"}}, nil); code != http.StatusOK {
		t.Fatalf("PATCH group = %d", code)
	}
	if code := h.do("PUT", T+"/sharing/"+url.PathEscape("Export reports"), nil, nil); code != http.StatusCreated {
		t.Fatalf("PUT sharing = %d", code)
	}
	if code := h.do("PATCH", T+"/groups/"+mid.ID, map[string]any{"sharing": []string{"Export reports"}}, nil); code != http.StatusOK {
		t.Fatalf("PATCH group = %d", code)
	}
	run := h.sync(tenant)
	if run.Kind != "delta" {
		t.Fatalf("the run after the binding is %s; want a delta round", run.Kind)
	}
	if c := run.Counts; c["rolesGranted"] != 1 || c["sharingGranted"] != 1 || c["rolesRevoked"] != 0 || c["sharingRevoked"] != 0 {
		t.Errorf("counts of the run that granted: %v", c)
	}
	var grants struct{ Items []grant }
	if code := h.do("GET", T+"/users/"+user.ID+"/grants", nil, &grants); code != http.StatusOK {
		t.Fatalf("GET grants = %d", code)
	}
	if len(grants.Items) != 2 || grants.Items[0].Kind != "role" || grants.Items[0].Name != "Finance editor" ||
		grants.Items[1].Kind != "sharing" || grants.Items[1].Name != "Export reports" {
		t.Fatalf("grants %+v", grants.Items)
	}
	var path []string
	for _, g := range grants.Items[0].Via {
		path = append(path, g.EntraID+" "+g.DisplayName)
	}
	if want := []string{bottom.ID + " Grants Bottom", mid.ID + " Grants Mid", top.ID + " Grants Top"}; !reflect.DeepEqual(path, want) {
		t.Fatalf("via %v, want %v", path, want)
	}
	granted := false
	for _, it := range h.plan(tenant, run.RunID) {
		granted = granted || (it.Action == "grantRole" && it.EntraID == user.ID &&
			it.Reason == "member of \u201cGrants Top\u201d through \u201cGrants Bottom\u201d \u203a \u201cGrants Mid\u201d; "+
				"\u201cGrants Top\u201d grants role \u201cFinance editor\u201d")
	}
	if !granted {
		t.Fatalf("no grantRole with its path in run %s: %+v", run.RunID, h.plan(tenant, run.RunID))
	}

	// Out of the bottom group in Entra ID: the next sync revokes it.
	if err := e.Dir.RemoveMember(bottom.ID, user.ID); err != nil {
		t.Fatal(err)
	}
	run = h.sync(tenant)
	if run.Kind != "delta" {
		t.Fatalf("the run after the user left the bottom group is %s; want a delta round", run.Kind)
	}
	if c := run.Counts; c["rolesRevoked"] != 1 || c["sharingRevoked"] != 1 || c["rolesGranted"] != 0 || c["sharingGranted"] != 0 {
		t.Errorf("counts of the run that revoked: %v", c)
	}
	var revoked *planItem
	for _, it := range h.plan(tenant, run.RunID) {
		if it.Action == "revokeRole" && it.EntraID == user.ID {
			revoked = &it
		}
	}
	if revoked == nil || !strings.HasPrefix(revoked.Reason, "no longer a member of \u201cGrants Top\u201d in Entra ID") ||
		revoked.Before["group"] != top.ID {
		t.Fatalf("revocation %+v", revoked)
	}
	grants.Items = nil
	if code := h.do("GET", T+"/users/"+user.ID+"/grants", nil, &grants); code != http.StatusOK || len(grants.Items) != 0 {
		t.Fatalf("grants after leaving: %d %+v", code, grants.Items)
	}
}
