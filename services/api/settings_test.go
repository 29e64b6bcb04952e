package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

// settingsAnswer is a tenant answer read as plan.Settings plus the fields
// around them.
type settingsAnswer struct {
	plan.Settings
	ID             string     `json:"id"`
	EntraTenantID  string     `json:"entraTenantId"`
	ClientID       string     `json:"clientId"`
	Connected      *bool      `json:"connected"`
	DisconnectedAt *time.Time `json:"disconnectedAt"`
	UpdatedAt      time.Time  `json:"updatedAt"`
	SyncRunID      string     `json:"syncRunId"`
	LastRun        *struct {
		RunID  string `json:"runId"`
		Status string `json:"status"`
	} `json:"lastRun"`
}

func (e *env) tenant(id string) settingsAnswer {
	e.t.Helper()
	r := e.do("GET", "/v1/tenants/"+id, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET tenant %s: %d %s", id, r.status, r.body)
	}
	var out settingsAnswer
	r.decode(e.t, &out)
	return out
}

// patch sends a merge patch, as application/merge-patch+json.
func (e *env) patch(id string, body string) response {
	e.t.Helper()
	return e.doWith("PATCH", "/v1/tenants/"+id, body, map[string]string{
		"Authorization": "Bearer " + token, "Content-Type": "application/merge-patch+json"})
}

// jobsOf counts the jobs of a tenant waiting on SYNC_JOBS.
func (e *env) jobsOf(tenantID string) uint64 {
	e.t.Helper()
	ctx := context.Background()
	stream, err := e.js.Stream(ctx, bus.StreamJobs)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(bus.SubjectJobs+tenantID))
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Subjects[bus.SubjectJobs+tenantID]
}

func (e *env) runsOf(tenantID string) []store.Run {
	e.t.Helper()
	runs, err := e.st.ListRuns(context.Background(), tenantID, 0, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	return runs
}

const (
	groupA = "2f0c6a55-7d1e-4b8a-9c3f-5e6d7a8b9c0d"
	groupB = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
)

// TestTenantShowsItsSettings: a tenant created without settings shows
// plan.DefaultSettings at the top level, connected; one created with some
// settings shows them, the others at their defaults.
func TestTenantShowsItsSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	plain := e.createTenant()
	got := e.tenant(plain.ID)
	want := plan.DefaultSettings()
	want.Seats = 25
	if !reflect.DeepEqual(got.Settings, want) {
		t.Errorf("settings %+v, want the defaults %+v", got.Settings, want)
	}
	if got.Connected == nil || !*got.Connected || got.DisconnectedAt != nil {
		t.Errorf("connected %v, disconnectedAt %v; want true and null", got.Connected, got.DisconnectedAt)
	}
	raw := e.do("GET", "/v1/tenants/"+plain.ID, nil).body
	for _, k := range []string{`"disconnectedAt":null`, `"groups":[]`, `"emailInclude":[]`, `"userFilter":""`, `"connected":true`} {
		if !bytes.Contains(raw, []byte(k)) {
			t.Errorf("tenant answer lacks %s: %s", k, raw)
		}
	}
	if bytes.Contains(raw, []byte("syncRunId")) {
		t.Errorf("GET answers a syncRunId: %s", raw)
	}

	body := goodTenant()
	body["plan"] = "premium"
	body["localEdits"] = "overwrite"
	body["applyMode"] = "review"
	body["deletionGuard"] = map[string]any{"percent": 3}
	body["scope"] = map[string]any{"groups": []string{strings.ToUpper(groupA), groupA, groupB}, "emailExclude": []string{"@External.test"},
		"requireMailbox": true}
	r := e.do("POST", "/v1/tenants", body)
	if r.status != http.StatusCreated {
		t.Fatalf("create with settings: %d %s", r.status, r.body)
	}
	var created settingsAnswer
	r.decode(t, &created)
	want = plan.Settings{Seats: 25, Plan: plan.TierPremium, LocalEdits: plan.EditsOverwrite, ApplyMode: plan.ApplyReview,
		DeletionGuard: plan.DeletionGuard{Percent: 3, Minimum: 5},
		Scope: plan.Scope{Groups: []string{groupA, groupB}, EmailInclude: []string{}, EmailExclude: []string{"@External.test"},
			IncludeDisabled: true, RequireMailbox: true}}
	want.Notify = plan.DefaultSettings().Notify
	want.Groups = plan.DefaultSettings().Groups     // every kind
	want.Schedule = plan.DefaultSettings().Schedule // every syncIntervalMinutes: a day
	if !reflect.DeepEqual(created.Settings, want) {
		t.Errorf("created with %+v, want %+v", created.Settings, want)
	}
	stored, err := e.st.GetTenant(context.Background(), created.ID)
	if err != nil || !reflect.DeepEqual(stored.Settings, want) {
		t.Errorf("stored %+v, %v; want %+v", stored.Settings, err, want)
	}
	if again := e.tenant(created.ID); !reflect.DeepEqual(again.Settings, want) {
		t.Errorf("GET shows %+v, want %+v", again.Settings, want)
	}
}

// badSetting is a settings value the api refuses, naming field.
type badSetting struct {
	name    string
	member  string // top-level member of the settings
	value   string // its JSON
	field   string
	message string // a part of the message, when it matters
}

var badSettings = []badSetting{
	{"seats negative", "seats", `-1`, "seats", "seats must be an integer from 0 to 10000000"},
	{"groups kind a string", "groups", `{"security": "no"}`, "groups.security", ""},
	{"groups unknown member", "groups", `{"devices": true}`, "groups.devices", ""},
	{"groups include not an id", "groups", `{"include": ["sales"]}`, "groups.include", ""},
	{"groups null", "groups", `null`, "groups", ""},
	{"seats over the limit", "seats", `10000001`, "seats", ""},
	{"seats a string", "seats", `"ten"`, "seats", ""},
	{"seats null", "seats", `null`, "seats", ""},
	{"plan unknown", "plan", `"gold"`, "plan", `plan must be "basic", "business" or "premium"`},
	{"plan null", "plan", `null`, "plan", ""},
	{"localEdits unknown", "localEdits", `"sometimes"`, "localEdits", `"keep" or "overwrite"`},
	{"applyMode unknown", "applyMode", `"manual"`, "applyMode", `"auto" or "review"`},
	{"deletionGuard a number", "deletionGuard", `10`, "deletionGuard", "deletionGuard must be an object"},
	{"deletionGuard null", "deletionGuard", `null`, "deletionGuard", ""},
	{"percent over 100", "deletionGuard", `{"percent": 101}`, "deletionGuard.percent", "deletionGuard.percent must be an integer from 0 to 100"},
	{"percent negative", "deletionGuard", `{"percent": -1}`, "deletionGuard.percent", ""},
	{"percent fractional", "deletionGuard", `{"percent": 12.5}`, "deletionGuard.percent", ""},
	{"percent with exponent", "deletionGuard", `{"percent": 1e1}`, "deletionGuard.percent", "without a fraction or an exponent"},
	{"minimum negative", "deletionGuard", `{"minimum": -5}`, "deletionGuard.minimum", "deletionGuard.minimum must be an integer from 0 to 1000000"},
	{"guard member unknown", "deletionGuard", `{"percent": 5, "max": 9}`, "deletionGuard.max", "deletionGuard.max is not a known field"},
	{"guard member twice", "deletionGuard", `{"percent": 5, "percent": 6}`, "deletionGuard.percent", "deletionGuard.percent appears more than once"},
	{"scope a list", "scope", `[]`, "scope", "scope must be an object"},
	{"group not a GUID", "scope", `{"groups": ["` + groupA + `", "sales"]}`, "scope.groups", "scope.groups[1] must be a UUID"},
	{"group in braces", "scope", `{"groups": ["{` + groupA + `}"]}`, "scope.groups", ""},
	{"groups not a list", "scope", `{"groups": "` + groupA + `"}`, "scope.groups", ""},
	{"too many groups", "scope", `{"groups": [` + manyGroups(101) + `]}`, "scope.groups", "scope.groups must list at most 100 items"},
	{"userFilter unbalanced", "scope", `{"userFilter": "department eq 'Sales"}`, "scope.userFilter", "not a valid Graph $filter"},
	{"userFilter too long", "scope", `{"userFilter": "` + strings.Repeat("a", 2049) + `"}`, "scope.userFilter", "at most 2048 characters"},
	{"userFilter null", "scope", `{"userFilter": null}`, "scope.userFilter", ""},
	{"email pattern blank", "scope", `{"emailInclude": [" "]}`, "scope.emailInclude", "scope.emailInclude[0] must be a string of 1 to 254 characters, not blank"},
	{"email pattern too long", "scope", `{"emailExclude": ["` + strings.Repeat("x", 255) + `"]}`, "scope.emailExclude", ""},
	{"includeGuests a string", "scope", `{"includeGuests": "yes"}`, "scope.includeGuests", "scope.includeGuests must be true or false"},
	{"scope member unknown", "scope", `{"departments": ["Sales"]}`, "scope.departments", "scope.departments is not a known field"},
	{"scope member twice", "scope", `{"userFilter": "", "userFilter": "x"}`, "scope.userFilter", "appears more than once"},
}

func manyGroups(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = `"` + uuid.NewString() + `"`
	}
	return strings.Join(ids, ",")
}

// basicWithMembers are settings a Basic tenant cannot have: it syncs
// groups only.
var basicWithMembers = []badSetting{
	{"basic with a scope group", "scope", `{"groups": ["` + groupA + `"]}`, "scope.groups", "member synchronization needs the Business or Premium plan"},
	{"basic with a user filter", "scope", `{"userFilter": "accountEnabled eq true"}`, "scope.userFilter", "member synchronization needs the Business or Premium plan"},
	{"basic with guests", "scope", `{"includeGuests": true}`, "scope.includeGuests", "member synchronization needs the Business or Premium plan"},
}

// checkRefused checks r is a 400 naming field, whose message holds
// message, or the field's name when message is empty.
func checkRefused(t *testing.T, what string, r response, field, message string) {
	t.Helper()
	var out errorAnswer
	r.decode(t, &out)
	if message == "" {
		message = field
	}
	if r.status != http.StatusBadRequest || out.Error.Code != "invalid_request" || out.Error.Field != field ||
		!strings.Contains(out.Error.Message, message) {
		t.Errorf("%s: %d %s; want 400 naming %q with %q", what, r.status, r.body, field, message)
	}
}

// TestCreateTenantRejectsBadSettings: every bad setting in a create is a
// 400 naming it, and creates nothing.
func TestCreateTenantRejectsBadSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	with := func(extra string) string {
		good, _ := json.Marshal(goodTenant())
		return strings.TrimSuffix(string(good), "}") + "," + extra + "}"
	}
	for _, c := range badSettings {
		if c.member == "seats" {
			continue // goodTenant has seats; the create test covers them
		}
		checkRefused(t, c.name, e.do("POST", "/v1/tenants", with(`"`+c.member+`":`+c.value)), c.field, c.message)
	}
	for _, c := range basicWithMembers {
		checkRefused(t, c.name, e.do("POST", "/v1/tenants", with(`"plan":"basic","`+c.member+`":`+c.value)), c.field, c.message)
	}
	if n := e.tenantCount(); n != 0 {
		t.Fatalf("bad settings created %d tenants", n)
	}
	// A Basic tenant with the default scope is fine.
	if r := e.do("POST", "/v1/tenants", with(`"plan":"basic","scope":{"includeDisabled":true}`)); r.status != http.StatusCreated {
		t.Fatalf("basic tenant: %d %s", r.status, r.body)
	}
}

// TestPatchRejectsBadSettings: every bad value in a patch is a 400 naming
// it and changes nothing; so are members that are not settings.
func TestPatchRejectsBadSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	before := e.tenant(ten.ID)
	for _, c := range badSettings {
		checkRefused(t, c.name, e.patch(ten.ID, `{"`+c.member+`":`+c.value+`}`), c.field, c.message)
	}
	for _, c := range basicWithMembers {
		checkRefused(t, c.name, e.patch(ten.ID, `{"plan":"basic","`+c.member+`":`+c.value+`}`), c.field, c.message)
	}
	for _, c := range []struct{ name, body, field, message string }{
		{"a connection field", `{"name": "Fabrikam"}`, "name", "name is not a known field"},
		{"the secret", `{"clientSecret": "x"}`, "clientSecret", "clientSecret is not a known field"},
		{"the sync interval", `{"syncIntervalMinutes": 60}`, "syncIntervalMinutes", "not a known field"},
		{"a read-only field", `{"connected": false}`, "connected", "not a known field"},
		{"not an object", `[{"seats": 3}]`, "", "request body must be a JSON object"},
		{"no body", ``, "", "request body must be a JSON object"},
		{"trailing data", `{"seats": 3} {}`, "", "exactly one JSON value"},
	} {
		checkRefused(t, c.name, e.patch(ten.ID, c.body), c.field, c.message)
	}
	// A Basic plan is refused while the scope has groups, and named by
	// the scope, not the plan.
	if r := e.patch(ten.ID, `{"scope": {"groups": ["`+groupA+`"]}}`); r.status != http.StatusOK {
		t.Fatalf("scope groups: %d %s", r.status, r.body)
	}
	checkRefused(t, "basic over scope groups", e.patch(ten.ID, `{"plan": "basic"}`), "scope.groups", "Business or Premium")
	after := e.tenant(ten.ID)
	before.Scope.Groups = []string{groupA}
	if !reflect.DeepEqual(after.Settings, before.Settings) {
		t.Fatalf("refused patches changed the settings: %+v, was %+v", after.Settings, before.Settings)
	}
	if r := e.doWith("PATCH", "/v1/tenants/"+ten.ID, `{"seats": 3}`, map[string]string{
		"Authorization": "Bearer " + token, "Content-Type": "text/plain"}); r.status != http.StatusBadRequest ||
		!bytes.Contains(r.body, []byte("application/json or application/merge-patch+json")) {
		t.Fatalf("text/plain patch: %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		path   string
		status int
	}{{"/v1/tenants/" + uuid.NewString(), 404}, {"/v1/tenants/nope", 400}} {
		if r := e.doWith("PATCH", c.path, `{"seats": 3}`, map[string]string{"Authorization": "Bearer " + token}); r.status != c.status {
			t.Errorf("PATCH %s: %d %s; want %d", c.path, r.status, r.body, c.status)
		}
	}
}

// TestPatchMergesSettings: a patch changes what it names and keeps the
// rest; objects merge member by member, lists are replaced whole.
func TestPatchMergesSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	want := e.tenant(ten.ID).Settings
	steps := []struct {
		body   string
		change func(*plan.Settings)
	}{
		{`{"seats": 80}`, func(s *plan.Settings) { s.Seats = 80 }},
		{`{"deletionGuard": {"percent": 20}}`, func(s *plan.Settings) { s.DeletionGuard.Percent = 20 }},
		{`{"applyMode": "review", "localEdits": "overwrite"}`, func(s *plan.Settings) {
			s.ApplyMode, s.LocalEdits = plan.ApplyReview, plan.EditsOverwrite
		}},
		{`{"scope": {"emailInclude": ["@contoso.test", "@CONTOSO.test"]}}`, func(s *plan.Settings) {
			s.Scope.EmailInclude = []string{"@contoso.test"} // the same pattern once
		}},
		{`{"scope": {"emailInclude": ["@fabrikam.test"], "userFilter": "  department eq 'Sales'  "}}`, func(s *plan.Settings) {
			s.Scope.EmailInclude = []string{"@fabrikam.test"}
			s.Scope.UserFilter = "department eq 'Sales'"
		}},
		{`{}`, func(*plan.Settings) {}},
	}
	for _, step := range steps {
		step.change(&want)
		r := e.patch(ten.ID, step.body)
		var got settingsAnswer
		r.decode(t, &got)
		if r.status != http.StatusOK || !reflect.DeepEqual(got.Settings, want) {
			t.Fatalf("PATCH %s: %d %s; want settings %+v", step.body, r.status, r.body, want)
		}
		if stored := e.tenant(ten.ID); !reflect.DeepEqual(stored.Settings, want) {
			t.Fatalf("after PATCH %s GET shows %+v, want %+v", step.body, stored.Settings, want)
		}
	}
	// The seats are the tenant's seat pool, which the reconciler reads.
	stored, err := e.st.GetTenant(context.Background(), ten.ID)
	if err != nil || stored.Seats != 80 {
		t.Fatalf("tenant seats %d, %v; want 80", stored.Seats, err)
	}
}

// TestScopeChangeQueuesASync: a change of who is in the application (the
// scope or the plan) queues a sync at once, the way a trigger does, and
// says which; other changes, a patch that changes nothing and a
// disconnected tenant queue none.
func TestScopeChangeQueuesASync(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	ctx := context.Background()

	noRun := func(what, body string) {
		t.Helper()
		r := e.patch(ten.ID, body)
		var got settingsAnswer
		r.decode(t, &got)
		if r.status != http.StatusOK || got.SyncRunID != "" || bytes.Contains(r.body, []byte("syncRunId")) {
			t.Fatalf("%s: %d %s; want 200 without syncRunId", what, r.status, r.body)
		}
	}
	noRun("seats", `{"seats": 30}`)
	noRun("guard and modes", `{"deletionGuard": {"minimum": 2}, "applyMode": "review", "localEdits": "overwrite"}`)
	if runs, jobs := e.runsOf(ten.ID), e.jobsOf(ten.ID); len(runs) != 0 || jobs != 0 {
		t.Fatalf("%d runs and %d jobs after changes outside the scope, want none", len(runs), jobs)
	}

	// The scope changes: a run is recorded and its job is on SYNC_JOBS.
	r := e.patch(ten.ID, `{"scope": {"groups": ["`+groupA+`"]}}`)
	var got settingsAnswer
	r.decode(t, &got)
	if r.status != http.StatusOK || got.SyncRunID == "" {
		t.Fatalf("scope change: %d %s; want 200 with a syncRunId", r.status, r.body)
	}
	run, err := e.st.GetRun(ctx, ten.ID, got.SyncRunID)
	if err != nil || run.Status != store.StatusQueued || run.Trigger != store.TriggerManual {
		t.Fatalf("run %+v, %v; want a queued manual run", run, err)
	}
	if got.LastRun == nil || got.LastRun.RunID != run.ID {
		t.Errorf("the answer's lastRun %+v, want the queued run %s", got.LastRun, run.ID)
	}
	stream, err := e.js.Stream(ctx, bus.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, bus.SubjectJobs+ten.ID)
	if err != nil {
		t.Fatalf("no job on SYNC_JOBS: %v", err)
	}
	var job syncv1.SyncJob
	if err := proto.Unmarshal(m.Data, &job); err != nil {
		t.Fatal(err)
	}
	if job.RunId != run.ID || job.TenantId != ten.ID || m.Header.Get(nats.MsgIdHdr) != run.ID {
		t.Fatalf("job %v with id %q, want run %s's", &job, m.Header.Get(nats.MsgIdHdr), run.ID)
	}

	// The same scope again changes nothing and queues nothing.
	noRun("same scope", `{"scope": {"groups": ["`+strings.ToUpper(groupA)+`"]}}`)
	// While the run waits for a fetcher, another scope change joins it,
	// as a trigger would: one run, one job.
	r = e.patch(ten.ID, `{"scope": {"includeGuests": true}}`)
	var joined settingsAnswer
	r.decode(t, &joined)
	if r.status != http.StatusOK || joined.SyncRunID != run.ID {
		t.Fatalf("second scope change: %d %s; want the waiting run %s", r.status, r.body, run.ID)
	}
	if runs, jobs := e.runsOf(ten.ID), e.jobsOf(ten.ID); len(runs) != 1 || jobs != 1 {
		t.Fatalf("%d runs and %d jobs, want 1 and 1", len(runs), jobs)
	}
	// A plan change may change who is in the application too.
	if _, err := e.st.BeginFetch(ctx, ten.ID, run.ID); err != nil {
		t.Fatal(err)
	}
	r = e.patch(ten.ID, `{"plan": "premium"}`)
	var planned settingsAnswer
	r.decode(t, &planned)
	if r.status != http.StatusOK || planned.SyncRunID == "" || planned.SyncRunID == run.ID {
		t.Fatalf("plan change: %d %s; want a new run", r.status, r.body)
	}
	if runs, jobs := e.runsOf(ten.ID), e.jobsOf(ten.ID); len(runs) != 2 || jobs != 2 {
		t.Fatalf("%d runs and %d jobs after the plan change, want 2 and 2", len(runs), jobs)
	}

	// A disconnected tenant takes the change and queues nothing.
	if r := e.do("POST", "/v1/tenants/"+ten.ID+"/disconnect", nil); r.status != http.StatusOK {
		t.Fatalf("disconnect: %d %s", r.status, r.body)
	}
	noRun("scope of a disconnected tenant", `{"scope": {"groups": []}}`)
	if runs := e.runsOf(ten.ID); len(runs) != 2 {
		t.Fatalf("%d runs after a disconnected tenant's scope change, want still 2", len(runs))
	}
	if s := e.tenant(ten.ID); len(s.Scope.Groups) != 0 {
		t.Fatalf("the disconnected tenant's scope change was not stored: %+v", s.Scope)
	}
}

// TestDisconnectAndConnect: a disconnected tenant is shown so, cannot be
// synced (409 saying how to connect again), and is connected again with
// new credentials.
func TestDisconnectAndConnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	other := e.createTenant()
	ctx := context.Background()
	// A run waiting for a fetcher when the tenant is disconnected ends.
	waiting, _, err := e.st.QueueManualRun(ctx, ten.ID)
	if err != nil {
		t.Fatal(err)
	}

	r := e.do("POST", "/v1/tenants/"+ten.ID+"/disconnect", nil)
	var off settingsAnswer
	r.decode(t, &off)
	if r.status != http.StatusOK || off.Connected == nil || *off.Connected || off.DisconnectedAt == nil {
		t.Fatalf("disconnect: %d %s; want 200, connected false, disconnectedAt set", r.status, r.body)
	}
	if got := e.tenant(ten.ID); got.Connected == nil || *got.Connected || got.DisconnectedAt == nil ||
		!got.DisconnectedAt.Equal(*off.DisconnectedAt) {
		t.Fatalf("GET after disconnect: %+v", got)
	}
	if run, err := e.st.GetRun(ctx, ten.ID, waiting.ID); err != nil || run.Status != store.StatusFailed {
		t.Fatalf("the waiting run %+v, %v; want failed", run, err)
	}
	if _, err := e.st.TenantCredentials(ctx, ten.ID); err == nil {
		t.Fatal("a disconnected tenant still has its secret")
	}

	// Triggering is a conflict that says what to do, naming the tenant
	// as it is shown whatever the case of the request's id.
	r = e.do("POST", "/v1/tenants/"+strings.ToUpper(ten.ID)+"/syncs", nil)
	var conflict errorAnswer
	r.decode(t, &conflict)
	if r.status != http.StatusConflict || conflict.Error.Code != "conflict" ||
		!strings.Contains(conflict.Error.Message, "disconnected") ||
		!strings.Contains(conflict.Error.Message, "POST /v1/tenants/"+ten.ID+"/connect") {
		t.Fatalf("trigger on a disconnected tenant: %d %s; want 409 conflict naming the connect route", r.status, r.body)
	}
	// The other tenant is not touched.
	if got := e.tenant(other.ID); got.Connected == nil || !*got.Connected {
		t.Fatalf("the other tenant: %+v", got)
	}
	// Disconnecting again changes nothing.
	r = e.do("POST", "/v1/tenants/"+ten.ID+"/disconnect", nil)
	var again settingsAnswer
	r.decode(t, &again)
	if r.status != http.StatusOK || again.DisconnectedAt == nil || !again.DisconnectedAt.Equal(*off.DisconnectedAt) {
		t.Fatalf("second disconnect: %d %s; want the first disconnectedAt", r.status, r.body)
	}
	for _, c := range []struct {
		name, path, body string
		status           int
		field            string
	}{
		{"with a body", "/v1/tenants/" + ten.ID + "/disconnect", `{"reason": "offboarding"}`, 400, ""},
		{"unknown tenant", "/v1/tenants/" + uuid.NewString() + "/disconnect", "", 404, ""},
		{"bad tenant id", "/v1/tenants/x/disconnect", "", 400, "tenantId"},
		{"connect unknown tenant", "/v1/tenants/" + uuid.NewString() + "/connect",
			`{"entraTenantId":"` + entraTenant + `","clientId":"` + clientID + `","clientSecret":"s"}`, 404, ""},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		r := e.do("POST", c.path, body)
		var out errorAnswer
		r.decode(t, &out)
		if r.status != c.status || out.Error.Field != c.field {
			t.Errorf("%s: %d %s; want %d naming %q", c.name, r.status, r.body, c.status, c.field)
		}
	}

	// Connecting takes the same credentials as a create, by the same rules.
	newEntra, newClient := uuid.NewString(), uuid.NewString()
	creds := func(k string, v any) map[string]any {
		m := map[string]any{"entraTenantId": strings.ToUpper(newEntra), "clientId": newClient, "clientSecret": "the-new-secret"}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	connect := "/v1/tenants/" + ten.ID + "/connect"
	for _, c := range []struct {
		name  string
		body  any
		field string
	}{
		{"entraTenantId missing", creds("entraTenantId", nil), "entraTenantId"},
		{"entraTenantId not a GUID", creds("entraTenantId", "contoso.onmicrosoft.com"), "entraTenantId"},
		{"clientId missing", creds("clientId", nil), "clientId"},
		{"clientId a number", creds("clientId", 42), "clientId"},
		{"clientSecret missing", creds("clientSecret", nil), "clientSecret"},
		{"clientSecret blank", creds("clientSecret", "   "), "clientSecret"},
		{"clientSecret a no-break space", creds("clientSecret", "\u00a0"), "clientSecret"},
		{"clientSecret too long", creds("clientSecret", strings.Repeat("s", 1025)), "clientSecret"},
		{"a name", creds("name", "Fabrikam"), "name"},
		{"no body", nil, ""},
	} {
		checkRefused(t, c.name, e.do("POST", connect, c.body), c.field, "")
	}
	if got := e.tenant(ten.ID); got.Connected == nil || *got.Connected {
		t.Fatal("a refused connect connected the tenant")
	}
	r = e.do("POST", connect, creds("", nil))
	var on settingsAnswer
	r.decode(t, &on)
	if r.status != http.StatusOK || on.Connected == nil || !*on.Connected || on.DisconnectedAt != nil ||
		on.EntraTenantID != newEntra || on.ClientID != newClient || bytes.Contains(r.body, []byte("the-new-secret")) ||
		!bytes.Contains(r.body, []byte(`"disconnectedAt":null`)) {
		t.Fatalf("connect: %d %s; want 200, connected, the new ids, no secret", r.status, r.body)
	}
	c, err := e.st.TenantCredentials(ctx, ten.ID)
	if err != nil || c.ClientSecret != "the-new-secret" || c.EntraTenantID != newEntra {
		t.Fatalf("credentials after connect: %v, %v", c, err)
	}
	if r := e.do("POST", "/v1/tenants/"+ten.ID+"/syncs", nil); r.status != http.StatusAccepted {
		t.Fatalf("trigger after connect: %d %s", r.status, r.body)
	}
	// Connecting a connected tenant changes its credentials.
	if r := e.do("POST", connect, creds("clientSecret", "rotated")); r.status != http.StatusOK {
		t.Fatalf("rotate the secret: %d %s", r.status, r.body)
	}
	if c, err := e.st.TenantCredentials(ctx, ten.ID); err != nil || c.ClientSecret != "rotated" {
		t.Fatalf("credentials after rotation: %v, %v", c, err)
	}
	if r := e.do("GET", connect, nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Fatalf("GET connect: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
}
