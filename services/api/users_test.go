package api_test

import (
	"bytes"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// userAnswer is a user as the api shows it, null kept apart from empty.
type userAnswer struct {
	EntraID           string     `json:"entraId"`
	Email             string     `json:"email"`
	DisplayName       string     `json:"displayName"`
	Enabled           bool       `json:"enabled"`
	License           string     `json:"license"`
	LicenseDisabledAt *time.Time `json:"licenseDisabledAt"`
	Edited            *bool      `json:"edited"`
	Roles             []string   `json:"roles"`
}

func (e *env) user(tenantID, entraID string) userAnswer {
	e.t.Helper()
	r := e.do("GET", "/v1/tenants/"+tenantID+"/users/"+entraID, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET user %s: %d %s", entraID, r.status, r.body)
	}
	var u userAnswer
	r.decode(e.t, &u)
	return u
}

// patchUser sends an edit of a user as contentType.
func (e *env) patchUser(tenantID, entraID, body, contentType string) response {
	e.t.Helper()
	return e.doWith("PATCH", "/v1/tenants/"+tenantID+"/users/"+entraID, body, map[string]string{
		"Authorization": "Bearer " + token, "Content-Type": contentType})
}

// edited checks that a patch answered 200 with the user as GET shows it,
// and returns it.
func (e *env) edited(tenantID, entraID, body string) userAnswer {
	e.t.Helper()
	r := e.patchUser(tenantID, entraID, body, "application/merge-patch+json")
	var got userAnswer
	r.decode(e.t, &got)
	if r.status != http.StatusOK {
		e.t.Fatalf("PATCH %s: %d %s", body, r.status, r.body)
	}
	if again := e.user(tenantID, entraID); !reflect.DeepEqual(again, got) {
		e.t.Fatalf("after PATCH %s: GET shows %+v, the answer %+v", body, again, got)
	}
	return got
}

// TestUsersShowRolesAndEdits: a synced user is read alone or in the list
// with its roles (always a list), whether it was edited and when its
// license was disabled; an unknown one is a 404.
func TestUsersShowRolesAndEdits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten, other := e.createTenant(), e.createTenant()
	users := people(3)
	e.syncer(ten.ID).run(users)

	u := e.user(ten.ID, users[1].ID)
	no := false
	want := userAnswer{EntraID: users[1].ID, Email: users[1].Mail, DisplayName: users[1].DisplayName, Enabled: true,
		License: "assigned", Edited: &no, Roles: []string{}}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("user %+v, want %+v", u, want)
	}
	raw := e.do("GET", "/v1/tenants/"+ten.ID+"/users/"+users[1].ID, nil).body
	for _, k := range []string{`"roles":[]`, `"edited":false`, `"licenseDisabledAt":null`} {
		if !bytes.Contains(raw, []byte(k)) {
			t.Errorf("user answer lacks %s: %s", k, raw)
		}
	}
	// An id in upper case finds the user.
	if got := e.user(ten.ID, strings.ToUpper(users[1].ID)); got.EntraID != users[1].ID {
		t.Fatalf("upper-case id: %+v", got)
	}
	e.edited(ten.ID, users[2].ID, `{"roles": ["Administrator"]}`)
	_, list, _ := walk(e, "/v1/tenants/"+ten.ID+"/users", 0, func(u userAnswer) string { return u.EntraID })
	if len(list) != 3 || !reflect.DeepEqual(list[1], want) || !slices.Equal(list[2].Roles, []string{"Administrator"}) {
		t.Fatalf("users list %+v", list)
	}

	for _, c := range []struct {
		path   string
		status int
		field  string
	}{
		{"/v1/tenants/" + ten.ID + "/users/" + uuid.NewString(), 404, ""},
		{"/v1/tenants/" + other.ID + "/users/" + users[1].ID, 404, ""}, // another tenant's user
		{"/v1/tenants/" + uuid.NewString() + "/users/" + users[1].ID, 404, ""},
		{"/v1/tenants/" + ten.ID + "/users/user2@contoso.test", 400, "entraId"},
		{"/v1/tenants/" + ten.ID + "/users/{" + users[1].ID + "}", 400, "entraId"},
		{"/v1/tenants/nope/users/" + users[1].ID, 400, "tenantId"},
		{"/v1/tenants/" + ten.ID + "/users/" + users[1].ID + "?fields=roles", 400, "fields"},
	} {
		for _, method := range []string{"GET", "PATCH"} {
			var body any
			if method == "PATCH" {
				body = `{"displayName": "Nobody"}`
			}
			r := e.do(method, c.path, body)
			var out errorAnswer
			r.decode(t, &out)
			if r.status != c.status || out.Error.Field != c.field || !strings.Contains(out.Error.Message, c.field) {
				t.Errorf("%s %s: %d %s; want %d naming %q", method, c.path, r.status, r.body, c.status, c.field)
			}
		}
	}
	if r := e.do("DELETE", "/v1/tenants/"+ten.ID+"/users/"+users[1].ID, nil); r.status != http.StatusMethodNotAllowed ||
		r.header.Get("Allow") != "GET, PATCH" {
		t.Fatalf("DELETE user: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
}

// TestEditingAUser: each member of a patch changes what it names and
// nothing else; a license given back needs a free seat, and a patch that
// cannot have one changes nothing.
func TestEditingAUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	if r := e.patch(ten.ID, `{"seats": 2}`); r.status != http.StatusOK {
		t.Fatalf("seats: %d %s", r.status, r.body)
	}
	users := people(3)
	e.syncer(ten.ID).run(users)
	ada, bob, cy := users[0].ID, users[1].ID, users[2].ID
	if e.user(ten.ID, ada).License != "assigned" || e.user(ten.ID, cy).License != "none" {
		t.Fatal("the first two users by id did not get the two seats")
	}

	want := e.user(ten.ID, ada)
	yes := true
	steps := []struct {
		body   string
		change func(*userAnswer)
	}{
		{`{"displayName": "Ada Lovelace (Finance)"}`, func(u *userAnswer) { u.DisplayName, u.Edited = "Ada Lovelace (Finance)", &yes }},
		{`{"email": "ada.lovelace@finance.contoso.test"}`, func(u *userAnswer) { u.Email = "ada.lovelace@finance.contoso.test" }},
		{`{"roles": ["License manager", "Administrator", "Administrator"]}`, func(u *userAnswer) {
			u.Roles = []string{"Administrator", "License manager"}
		}},
		{`{"roles": ["License manager"]}`, func(u *userAnswer) { u.Roles = []string{"License manager"} }},
		{`{"roles": []}`, func(u *userAnswer) { u.Roles = []string{} }},
		{`{}`, func(*userAnswer) {}},
		{`{"displayName": "Ada", "email": "ada@contoso.test", "roles": ["Administrator"]}`, func(u *userAnswer) {
			u.DisplayName, u.Email, u.Roles = "Ada", "ada@contoso.test", []string{"Administrator"}
		}},
	}
	for _, step := range steps {
		step.change(&want)
		if got := e.edited(ten.ID, ada, step.body); !reflect.DeepEqual(got, want) {
			t.Fatalf("PATCH %s: %+v, want %+v", step.body, got, want)
		}
	}

	// Ada's seat goes back; no sync gives it again, and Cy, waiting, may
	// have it by hand.
	off := e.edited(ten.ID, ada, `{"license": "disabled"}`)
	if off.License != "disabled" || off.LicenseDisabledAt == nil || !off.Enabled {
		t.Fatalf("license disabled: %+v", off)
	}
	if got := e.edited(ten.ID, cy, `{"license": "assigned"}`); got.License != "assigned" || got.LicenseDisabledAt != nil {
		t.Fatalf("license given by hand: %+v", got)
	}
	// Both seats are used now: Ada cannot have hers back, and a patch
	// that asks for it changes nothing else either.
	for _, body := range []string{`{"license": "assigned"}`, `{"license": "assigned", "displayName": "Ada Again"}`} {
		conflict(t, body, e.patchUser(ten.ID, ada, body, "application/json"), "no free seat (2 of 2 used)")
	}
	if got := e.user(ten.ID, ada); !reflect.DeepEqual(got, off) {
		t.Fatalf("refused patches changed the user: %+v, was %+v", got, off)
	}
	// With a seat free again it works.
	if got := e.edited(ten.ID, bob, `{"license": "disabled"}`); got.License != "disabled" {
		t.Fatalf("bob's license: %+v", got)
	}
	if got := e.edited(ten.ID, ada, `{"license": "assigned"}`); got.License != "assigned" || got.LicenseDisabledAt != nil {
		t.Fatalf("license back: %+v", got)
	}
}

// TestUserPatchRefusesBadInput: every bad member of a user patch is a 400
// naming it, and changes nothing.
func TestUserPatchRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	users := people(1)
	e.syncer(ten.ID).run(users)
	id := users[0].ID
	before := e.user(ten.ID, id)
	for _, c := range []struct {
		name, body, field, message string
	}{
		{"unknown role", `{"roles": ["Owner"]}`, "roles", `roles[0] must be "Administrator" or "License manager"`},
		{"role in the wrong case", `{"roles": ["administrator"]}`, "roles", "roles[0] must be"},
		{"second role unknown", `{"roles": ["Administrator", "Owner"]}`, "roles", "roles[1] must be"},
		{"roles a string", `{"roles": "Administrator"}`, "roles", "roles must be a list"},
		{"roles null", `{"roles": null}`, "roles", "roles must be"},
		{"roles too many", `{"roles": [` + strings.Repeat(`"Administrator",`, 20) + `"Administrator"]}`, "roles", "at most 20 items"},
		{"displayName empty", `{"displayName": ""}`, "displayName", "displayName must be a string of 1 to 256 characters, not blank"},
		{"displayName blank", `{"displayName": "   "}`, "displayName", "not blank"},
		{"displayName a no-break space", `{"displayName": "\u00a0"}`, "displayName", "not blank"},
		{"displayName with a newline", `{"displayName": "Ada\nLovelace"}`, "displayName", "without control characters"},
		{"displayName too long", `{"displayName": "` + strings.Repeat("n", 257) + `"}`, "displayName", "1 to 256 characters"},
		{"displayName null", `{"displayName": null}`, "displayName", "displayName must be"},
		{"displayName a number", `{"displayName": 42}`, "displayName", "displayName must be"},
		{"email without @", `{"email": "ada.contoso.test"}`, "email", "email must be a string of 3 to 254 characters, an address like name@contoso.com"},
		{"email with a space", `{"email": "ada lovelace@contoso.test"}`, "email", "an address like"},
		{"email empty", `{"email": ""}`, "email", "email must be"},
		{"email null", `{"email": null}`, "email", "email must be"},
		{"license none", `{"license": "none"}`, "license", `license must be "assigned" or "disabled"`},
		{"license a bool", `{"license": false}`, "license", "license must be"},
		{"unknown member", `{"enabled": false}`, "enabled", "enabled is not a known field"},
		{"read-only member", `{"entraId": "` + uuid.NewString() + `"}`, "entraId", "entraId is not a known field"},
		{"member twice", `{"displayName": "A", "displayName": "B"}`, "displayName", "displayName appears more than once"},
		{"not an object", `[{"displayName": "A"}]`, "", "request body must be a JSON object"},
		{"no body", ``, "", "request body must be a JSON object"},
		{"trailing data", `{"displayName": "A"} {}`, "", "exactly one JSON value"},
	} {
		checkRefused(t, c.name, e.patchUser(ten.ID, id, c.body, "application/json"), c.field, c.message)
	}
	r := e.patchUser(ten.ID, id, `{"displayName": "A"}`, "text/plain")
	checkRefused(t, "text/plain", r, "", "Content-Type must be application/json or application/merge-patch+json")
	if got := e.user(ten.ID, id); !reflect.DeepEqual(got, before) {
		t.Fatalf("refused patches changed the user: %+v, was %+v", got, before)
	}
}
