package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/google/uuid"
)

type activityEntry struct {
	ID         string          `json:"id"`
	Actor      string          `json:"actor"`
	Action     string          `json:"action"`
	Target     string          `json:"target"`
	TargetName *string         `json:"targetName"`
	GroupID    *string         `json:"groupId"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
	RunID      *string         `json:"runId"`
	Reason     *string         `json:"reason"`
}

// TestActivityLogShowsSyncsAndAdmins: a sync's plan and an admin's edits
// through the API are both in the log, newest first, and the filters
// narrow it to a user, an action or a time.
func TestActivityLogShowsSyncsAndAdmins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	s := e.syncer(ten.ID)
	users := people(2)
	group := uuid.NewString()
	run := s.run(users, dirGroup{id: group, members: ids(users)})

	if r := e.do("PATCH", "/v1/tenants/"+ten.ID+"/users/"+users[0].ID, map[string]any{"license": "disabled"}); r.status != http.StatusOK {
		t.Fatalf("PATCH user: %d %s", r.status, r.body)
	}
	if r := e.do("PATCH", "/v1/tenants/"+ten.ID, map[string]any{"seats": 30}); r.status != http.StatusOK {
		t.Fatalf("PATCH tenant: %d %s", r.status, r.body)
	}

	path := "/v1/tenants/" + ten.ID + "/activity"
	key := func(a activityEntry) string { return a.ID }
	_, all, pages := walk(e, path, 2, key)
	if pages < 3 {
		t.Errorf("%d entries in %d pages of 2", len(all), pages)
	}
	count := map[string]int{}
	for _, a := range all {
		count[a.Actor+" "+a.Action]++
	}
	want := map[string]int{"sync createUser": 2, "sync assignLicense": 2, "sync createGroup": 1, "sync addMembership": 2,
		"api updateUser": 1, "api updateSettings": 1}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%d entries %q, want %d (all: %v)", count[k], k, n, count)
		}
	}

	// What happened to user 1: created, licensed, put in the group by the
	// sync, and the license disabled by an admin.
	_, mine, _ := walk(e, path+"?target="+users[0].ID, 10, key)
	var got []string
	for _, a := range mine {
		got = append(got, a.Actor+" "+a.Action)
		if a.Target != users[0].ID {
			t.Errorf("target filter let through %+v", a)
		}
		if a.Actor == "sync" && (a.RunID == nil || *a.RunID != run.ID || a.Reason == nil || a.TargetName == nil) {
			t.Errorf("sync entry without its run, reason or name: %+v", a)
		}
		if a.Action == "addMembership" && (a.GroupID == nil || *a.GroupID != group) {
			t.Errorf("membership entry without its group: %+v", a)
		}
		if a.Action == "updateUser" && (string(a.Before) != `{"license":"assigned"}` || string(a.After) != `{"license":"disabled"}`) {
			t.Errorf("the edit logged %s -> %s", a.Before, a.After)
		}
	}
	if len(got) != 4 {
		t.Errorf("user 1's entries: %v", got)
	}

	_, settings, _ := walk(e, path+"?action=updateSettings", 10, key)
	if len(settings) != 1 || settings[0].Target != ten.ID || string(settings[0].After) != `{"seats":30}` {
		t.Errorf("updateSettings entries: %+v", settings)
	}
	_, future, _ := walk(e, path+"?since="+url.QueryEscape("2099-01-01T00:00:00Z"), 10, key)
	if len(future) != 0 {
		t.Errorf("entries since 2099: %+v", future)
	}

	for _, c := range []struct{ query, field string }{
		{"since=yesterday", "since"},
		{"action=deleteEverything", "action"},
		{"after=bm90LWEtY3Vyc29y", "after"},
		{"target=", "target"},
	} {
		r := e.do("GET", path+"?"+c.query, nil)
		var ea errorAnswer
		r.decode(t, &ea)
		if r.status != http.StatusBadRequest || ea.Error.Field != c.field {
			t.Errorf("GET activity?%s = %d %s, want 400 naming %s", c.query, r.status, r.body, c.field)
		}
	}
	if r := e.do("GET", "/v1/tenants/"+uuid.NewString()+"/activity", nil); r.status != http.StatusNotFound {
		t.Errorf("activity of an unknown tenant = %d", r.status)
	}
}
