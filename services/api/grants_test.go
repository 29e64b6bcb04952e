package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"
)

type grantAnswer struct {
	Kind string          `json:"kind"`
	Name string          `json:"name"`
	Via  json.RawMessage `json:"via"`
}

func (e *env) grants(tenantID, userID string) []grantAnswer {
	e.t.Helper()
	r := e.do("GET", "/v1/tenants/"+tenantID+"/users/"+userID+"/grants", nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET grants: %d %s", r.status, r.body)
	}
	var out struct{ Items []grantAnswer }
	r.decode(e.t, &out)
	return out.Items
}

func (e *env) patchGroup(tenantID, groupID, body string) response {
	e.t.Helper()
	return e.doWith("PATCH", "/v1/tenants/"+tenantID+"/groups/"+groupID, body, map[string]string{
		"Authorization": "Bearer " + token, "Content-Type": "application/merge-patch+json"})
}

// TestGroupsGrantRolesAndSharingToTheirMembers: the catalogue is PUT and
// DELETEd (built-ins always there, a bound name kept with 409); binding
// names the field of an unknown name and changes nothing; at the next
// sync the group's member holds what it is bound to, and GET grants says
// through which group, beside a direct role.
func TestGroupsGrantRolesAndSharingToTheirMembers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	T := "/v1/tenants/" + ten.ID
	users := people(2)
	finance := dirGroup{id: "00000002-0000-4000-8000-000000000001", members: []string{users[0].ID}}
	s := e.syncer(ten.ID)
	s.run(users, finance)

	for _, tc := range []struct {
		method, path string
		status       int
		field        string
	}{
		{"PUT", T + "/roles/Editor", http.StatusCreated, ""},
		{"PUT", T + "/roles/Editor", http.StatusOK, ""},
		{"PUT", T + "/roles/" + url.PathEscape("License manager"), http.StatusOK, ""},
		{"PUT", T + "/roles/" + url.PathEscape(" Editor"), http.StatusBadRequest, "name"},
		{"PUT", T + "/sharing/" + url.PathEscape("Export reports"), http.StatusCreated, ""},
		{"PUT", "/v1/tenants/" + uuid.NewString() + "/roles/Editor", http.StatusNotFound, ""},
		{"DELETE", T + "/roles/Nope", http.StatusNotFound, ""},
		{"DELETE", T + "/roles/Administrator", http.StatusConflict, ""},
	} {
		r := e.do(tc.method, tc.path, nil)
		var out errorAnswer
		if r.status >= 400 {
			r.decode(t, &out)
		}
		if r.status != tc.status || out.Error.Field != tc.field {
			t.Errorf("%s %s: %d %s, want %d (field %q)", tc.method, tc.path, r.status, r.body, tc.status, tc.field)
		}
	}
	var builtin struct{ Builtin bool }
	e.do("PUT", T+"/roles/Administrator", nil).decode(t, &builtin)
	if !builtin.Builtin {
		t.Error("Administrator is not built in")
	}

	// Bad bindings: 400 naming the member, 404 for a group the app lacks.
	for _, tc := range []struct{ body, field string }{
		{`{"roles": ["Editor", "Auditor"]}`, "roles[1]"},
		{`{"roles": ["Editor"], "sharing": ["Editor"]}`, "sharing[0]"},
		{`{"rolez": []}`, ""},
		{`{"roles": null}`, ""},
	} {
		r := e.patchGroup(ten.ID, finance.id, tc.body)
		var out errorAnswer
		r.decode(t, &out)
		if r.status != http.StatusBadRequest || (tc.field != "" && out.Error.Field != tc.field) {
			t.Errorf("PATCH %s: %d %s, want 400 naming %q", tc.body, r.status, r.body, tc.field)
		}
	}
	if r := e.patchGroup(ten.ID, uuid.NewString(), `{"roles": []}`); r.status != http.StatusNotFound {
		t.Errorf("unknown group: %d %s", r.status, r.body)
	}
	if got := e.grants(ten.ID, users[0].ID); len(got) != 0 {
		t.Fatalf("grants before binding: %+v", got)
	}

	r := e.patchGroup(ten.ID, finance.id, `{"roles": ["Editor", "Editor"], "sharing": ["Export reports"]}`)
	var g struct {
		Roles, Sharing []string
		Effective      string
	}
	r.decode(t, &g)
	if r.status != http.StatusOK || !reflect.DeepEqual(g.Roles, []string{"Editor"}) ||
		!reflect.DeepEqual(g.Sharing, []string{"Export reports"}) || g.Effective != "nextSync" {
		t.Fatalf("PATCH group: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", T+"/roles/Editor", nil); r.status != http.StatusConflict || !strings.Contains(string(r.body), finance.id) {
		t.Fatalf("DELETE a bound role: %d %s", r.status, r.body)
	}
	// Nothing changes until the next sync.
	if got := e.grants(ten.ID, users[0].ID); len(got) != 0 {
		t.Fatalf("grants before the sync: %+v", got)
	}
	e.edited(ten.ID, users[0].ID, `{"roles": ["Administrator"]}`)
	run := s.run(users, finance)
	got := e.grants(ten.ID, users[0].ID)
	via := `[{"entraId":"` + finance.id + `","displayName":"Group 00000002"}]`
	want := []grantAnswer{{"role", "Administrator", json.RawMessage(`"direct"`)}, {"role", "Editor", json.RawMessage(via)},
		{"sharing", "Export reports", json.RawMessage(via)}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("grants %s", mustJSON(t, got))
	}
	if got := e.grants(ten.ID, users[1].ID); len(got) != 0 {
		t.Fatalf("a non-member's grants: %+v", got)
	}
	plan := e.do("GET", T+"/syncs/"+run.ID+"/plan", nil)
	if !strings.Contains(string(plan.body), `"action":"grantSharing"`) ||
		!strings.Contains(string(plan.body), "grants role \u201cEditor\u201d") {
		t.Fatalf("plan %s", plan.body)
	}
	if r := e.do("GET", T+"/users/"+uuid.NewString()+"/grants", nil); r.status != http.StatusNotFound {
		t.Fatalf("unknown user: %d", r.status)
	}

	// The admin's changes are in the activity log.
	var log struct {
		Items []struct {
			Action, Actor, Target string
			After                 map[string]any
		}
	}
	e.do("GET", T+"/activity?action=bindGroup", nil).decode(t, &log)
	if len(log.Items) != 1 || log.Items[0].Target != finance.id || log.Items[0].Actor != "api" ||
		!reflect.DeepEqual(log.Items[0].After["roles"], []any{"Editor"}) {
		t.Fatalf("bindGroup entries %+v", log.Items)
	}
	e.do("GET", T+"/activity?action=addRole", nil).decode(t, &log)
	if len(log.Items) != 1 || log.Items[0].After["role"] != "Editor" {
		t.Fatalf("addRole entries %+v", log.Items)
	}

	// Unbound and deleted; the next sync takes the grants back.
	e.patchGroup(ten.ID, finance.id, `{"roles": [], "sharing": []}`)
	if r := e.do("DELETE", T+"/roles/Editor", nil); r.status != http.StatusOK {
		t.Fatalf("DELETE an unbound role: %d %s", r.status, r.body)
	}
	s.run(users, finance)
	if got := e.grants(ten.ID, users[0].ID); len(got) != 1 || got[0].Name != "Administrator" {
		t.Fatalf("grants after unbinding: %+v", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	must(t, err)
	return string(raw)
}
