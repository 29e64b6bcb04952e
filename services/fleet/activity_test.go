package fleet_test

import (
	"net/http"
	"testing"
)

type activityEntry struct {
	Actor  string         `json:"actor"`
	Action string         `json:"action"`
	Target string         `json:"target"`
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	RunID  *string        `json:"runId"`
	Reason *string        `json:"reason"`
}

// TestActivityLogExplainsAUser: the log tells what happened to a user,
// newest first: the sync that disabled them after Entra did, with its
// reason; the admin who took their license; the first sync that created
// and licensed them.
func TestActivityLogExplainsAUser(t *testing.T) {
	t.Parallel()
	h, e, tenant := syncedTenant(t, 100)
	var user string
	for _, u := range e.Dir.Users() {
		if u.AccountEnabled && u.UserType == "Member" && u.Mail != "" {
			user = u.ID
			break
		}
	}
	if code := h.patchUser(tenant, user, map[string]any{"license": "disabled"}); code != http.StatusOK {
		t.Fatalf("PATCH user = %d", code)
	}
	if err := e.Dir.DisableUser(user); err != nil {
		t.Fatal(err)
	}
	second := h.sync(tenant)

	got, _ := list[activityEntry](h, "/v1/tenants/"+tenant+"/activity?target="+user)
	var actions []string
	for _, a := range got {
		actions = append(actions, a.Actor+" "+a.Action)
	}
	if len(got) < 4 {
		t.Fatalf("the user's entries: %v", actions)
	}
	if a := got[0]; a.Actor != "sync" || a.Action != "disableUser" || a.RunID == nil || *a.RunID != second.RunID ||
		a.Reason == nil || *a.Reason == "" || a.After["enabled"] != false {
		t.Errorf("newest entry %+v, want the second sync disabling the user, with its reason", a)
	}
	if a := got[1]; a.Actor != "api" || a.Action != "updateUser" || a.Before["license"] != "assigned" || a.After["license"] != "disabled" {
		t.Errorf("second entry %+v, want the admin's license edit", a)
	}
	first := map[string]bool{}
	for _, a := range got[2:] {
		first[a.Actor+" "+a.Action] = true
	}
	if !first["sync createUser"] || !first["sync assignLicense"] {
		t.Errorf("the first sync's entries: %v", actions[2:])
	}
}
