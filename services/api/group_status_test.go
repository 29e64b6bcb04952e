package api_test

import (
	"net/http"
	"strings"
	"testing"
)

type groupStatusAnswer struct {
	EntraID     string   `json:"entraId"`
	DisplayName string   `json:"displayName"`
	Kind        string   `json:"kind"`
	Status      string   `json:"status"`
	Enabled     bool     `json:"enabled"`
	Roles       []string `json:"roles"`
	Effective   string   `json:"effective"`
}

func (e *env) groupStatuses(tenantID string) map[string]groupStatusAnswer {
	e.t.Helper()
	r := e.do("GET", "/v1/tenants/"+tenantID+"/groups?limit=100", nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET groups: %d %s", r.status, r.body)
	}
	var page struct{ Items []groupStatusAnswer }
	r.decode(e.t, &page)
	out := map[string]groupStatusAnswer{}
	for _, g := range page.Items {
		out[g.EntraID] = g
	}
	return out
}

func checkConflict(t *testing.T, what string, r response, message string) {
	t.Helper()
	var out errorAnswer
	r.decode(t, &out)
	if r.status != http.StatusConflict || out.Error.Code != "conflict" || !strings.Contains(out.Error.Message, message) {
		t.Errorf("%s: %d %s; want 409 with %q", what, r.status, r.body, message)
	}
}

// TestGroupStatusThroughTheAPI: a group is switched off and on, archived
// and deleted; an enabled group cannot be deleted, nor one of a kind the
// tenant does not sync enabled; a local group is created, bound, kept by
// syncs and deleted. Every bad input is a 400 naming its field, every
// change is in the activity log.
func TestGroupStatusThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	T := "/v1/tenants/" + ten.ID
	users := people(2)
	g := dirGroup{id: "00000002-0000-4000-8000-000000000001", members: ids(users)}
	h := dirGroup{id: "00000002-0000-4000-8000-000000000002", members: ids(users)[:1]}
	s := e.syncer(ten.ID)
	s.run(users, g, h)
	if got := e.groupStatuses(ten.ID); got[g.id].Status != "enabled" || got[h.id].Status != "enabled" {
		t.Fatalf("groups after the first sync: %+v", got)
	}

	for _, c := range []struct{ name, body, field string }{
		{"enabled a string", `{"enabled": "no"}`, "enabled"},
		{"enabled null", `{"enabled": null}`, "enabled"},
		{"unknown member", `{"status": "disabled"}`, "status"},
	} {
		checkRefused(t, c.name, e.patchGroup(ten.ID, g.id, c.body), c.field, "")
	}
	r := e.patchGroup(ten.ID, g.id, `{"enabled": false}`)
	var patched groupStatusAnswer
	r.decode(t, &patched)
	if r.status != http.StatusOK || patched.Status != "disabled" || patched.Enabled || patched.Effective != "nextSync" {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	checkConflict(t, "delete an enabled group", e.do("DELETE", T+"/groups/"+h.id, nil), "the group is enabled")

	// A kind off: h is disabled by the next sync and cannot be enabled.
	if r := e.patch(ten.ID, `{"groups": {"security": false}}`); r.status != http.StatusOK {
		t.Fatalf("PATCH groups setting: %d %s", r.status, r.body)
	}
	s.run(users, g, h)
	if got := e.groupStatuses(ten.ID); got[g.id].Status != "disabled" || got[h.id].Status != "disabled" {
		t.Fatalf("groups with security off: %+v", got)
	}
	checkConflict(t, "enable a group of a kind off", e.patchGroup(ten.ID, h.id, `{"enabled": true, "roles": ["Administrator"]}`),
		"groups.security is false")
	if got := e.groupStatuses(ten.ID)[h.id]; got.Status != "disabled" {
		t.Fatalf("a refused enable changed the group: %+v", got)
	}
	if r := e.patch(ten.ID, `{"groups": {"include": ["`+h.id+`"]}}`); r.status != http.StatusOK {
		t.Fatalf("PATCH include: %d %s", r.status, r.body)
	}
	if r := e.patchGroup(ten.ID, h.id, `{"enabled": true}`); r.status != http.StatusOK || !strings.Contains(string(r.body), `"status":"enabled"`) {
		t.Fatalf("enable an included group: %d %s", r.status, r.body)
	}

	// Archived: orphaned, no switch; then deleted.
	r = e.do("POST", T+"/groups/"+g.id+"/archive", nil)
	r.decode(t, &patched)
	if r.status != http.StatusOK || patched.Status != "orphaned" {
		t.Fatalf("archive: %d %s", r.status, r.body)
	}
	checkConflict(t, "enable an orphaned group", e.patchGroup(ten.ID, g.id, `{"enabled": true}`), "orphaned")
	if r := e.do("DELETE", T+"/groups/"+g.id, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete an orphaned group: %d %s", r.status, r.body)
	}
	if _, ok := e.groupStatuses(ten.ID)[g.id]; ok {
		t.Fatal("the deleted group is still listed")
	}
	if r := e.do("DELETE", T+"/groups/"+g.id, nil); r.status != http.StatusNotFound {
		t.Fatalf("delete again: %d %s", r.status, r.body)
	}
	if r := e.do("POST", T+"/groups/"+g.id+"/archive", nil); r.status != http.StatusNotFound {
		t.Fatalf("archive a deleted group: %d %s", r.status, r.body)
	}

	// Local groups.
	for _, c := range []struct{ name, body string }{
		{"no name", `{}`},
		{"blank", `{"displayName": "  "}`},
		{"surrounding space", `{"displayName": " Auditors"}`},
		{"too long", `{"displayName": "` + strings.Repeat("a", 257) + `"}`},
		{"a number", `{"displayName": 7}`},
	} {
		checkRefused(t, c.name, e.do("POST", T+"/groups", c.body), "displayName", "")
	}
	checkRefused(t, "unknown member", e.do("POST", T+"/groups", `{"displayName": "A", "kind": "security"}`), "kind", "")
	r = e.do("POST", T+"/groups", map[string]any{"displayName": "Auditors"})
	var local groupStatusAnswer
	r.decode(t, &local)
	if r.status != http.StatusCreated || local.Kind != "local" || local.Status != "enabled" || local.EntraID == "" {
		t.Fatalf("create a local group: %d %s", r.status, r.body)
	}
	if r := e.patchGroup(ten.ID, local.EntraID, `{"roles": ["Administrator"]}`); r.status != http.StatusOK {
		t.Fatalf("bind a local group: %d %s", r.status, r.body)
	}
	checkConflict(t, "archive a local group", e.do("POST", T+"/groups/"+local.EntraID+"/archive", nil), "local group")
	checkConflict(t, "disable a local group", e.patchGroup(ten.ID, local.EntraID, `{"enabled": false}`), "local group")
	s.run(users, h)
	if got := e.groupStatuses(ten.ID)[local.EntraID]; got.Status != "enabled" || got.Kind != "local" || got.DisplayName != "Auditors" {
		t.Fatalf("local group after a sync: %+v", got)
	}
	if r := e.do("DELETE", T+"/groups/"+local.EntraID, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete a local group: %d %s", r.status, r.body)
	}

	count := map[string]int{}
	_, all, _ := walk(e, T+"/activity", 50, func(a activityEntry) string { return a.ID })
	for _, a := range all {
		if a.Actor == "api" {
			count[a.Action]++
		}
	}
	for action, n := range map[string]int{"disableGroup": 1, "enableGroup": 1, "archiveGroup": 1, "deleteGroup": 2,
		"createLocalGroup": 1} {
		if count[action] != n {
			t.Errorf("%d %s entries, want %d (all: %v)", count[action], action, n, count)
		}
	}
}

// TestGroupDetail: GET .../groups/{entraId} answers the group with its
// details in the documented shape (every answer here is checked against
// openapi.yaml), and 404 naming the group or the tenant.
func TestGroupDetail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	T := "/v1/tenants/" + ten.ID
	users := people(3)
	g := dirGroup{id: "00000002-0000-4000-8000-000000000001", members: ids(users)}
	e.syncer(ten.ID).run(users, g)

	var got struct {
		EntraID           string   `json:"entraId"`
		Kind              string   `json:"kind"`
		MembershipType    string   `json:"membershipType"`
		Mail              *string  `json:"mail"`
		SyncedMemberCount int      `json:"syncedMemberCount"`
		NestedGroups      []any    `json:"nestedGroups"`
		Roles             []string `json:"roles"`
	}
	r := e.do("GET", T+"/groups/"+g.id, nil)
	r.decode(t, &got)
	if r.status != http.StatusOK || got.EntraID != g.id || got.Kind != "security" || got.MembershipType != "assigned" ||
		got.Mail != nil || got.SyncedMemberCount != 3 || got.NestedGroups == nil || got.Roles == nil {
		t.Fatalf("GET group: %d %s", r.status, r.body)
	}
	var missing errorAnswer
	r = e.do("GET", T+"/groups/00000002-0000-4000-8000-0000000000ff", nil)
	r.decode(t, &missing)
	if r.status != http.StatusNotFound || !strings.Contains(missing.Error.Message, "no group") {
		t.Errorf("GET an unknown group: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/tenants/00000000-0000-4000-8000-000000000000/groups/"+g.id, nil)
	r.decode(t, &missing)
	if r.status != http.StatusNotFound || !strings.Contains(missing.Error.Message, "tenant") {
		t.Errorf("GET a group of an unknown tenant: %d %s", r.status, r.body)
	}
}
