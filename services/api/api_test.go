package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
	"github.com/entrasync/entrasync/services/api"
)

func TestMain(m *testing.M) { os.Exit(devenv.RunTests(m)) }

const token = "test-admin-token-0123456789"

// env is the real api handler on a database and a NATS server of its own.
type env struct {
	t    testing.TB
	url  string // of the httptest server
	st   *store.Store
	db   *pgxpool.Pool
	bus  *bus.Bus
	js   jetstream.JetStream
	srv  *api.Server
	http *http.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	st, dbURL := storetest.NewWithURL(t)
	natsURL := devenv.NATS(t)
	b, err := bus.Connect(ctx, natsURL, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	srv, err := api.New(api.Config{AdminToken: token}, api.Deps{Store: st, Bus: b, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, url: ts.URL, st: st, db: db, bus: b, js: js, srv: srv, http: ts.Client()}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer %d %s is not JSON: %v", r.status, r.body, err)
	}
}

type errorAnswer struct {
	Error struct {
		Code    string `json:"code"`
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"error"`
	RunID string `json:"runId"`
}

// do sends a request with the admin token; body is sent as is when it is
// a string, else as JSON.
func (e *env) do(method, path string, body any) response {
	e.t.Helper()
	return e.doWith(method, path, body, map[string]string{"Authorization": "Bearer " + token})
}

func (e *env) doWith(method, path string, body any, headers map[string]string) response {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode == http.StatusNoContent { // DELETE of a group: no body at all
		if len(raw) > 0 {
			e.t.Errorf("%s %s: 204 with a body %q", method, path, raw)
		}
	} else if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	checkAnswer(e.t, req, resp.StatusCode, resp.Header, raw)
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

const (
	entraTenant = "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00"
	clientID    = "3b9d2f64-1c8e-4a7b-b5d0-6e2f8a9c4d11"
	secret      = "the-client-secret-that-must-never-come-back"
)

func goodTenant() map[string]any {
	return map[string]any{"name": "Contoso", "entraTenantId": entraTenant, "clientId": clientID,
		"clientSecret": secret, "seats": 25}
}

type tenantAnswer struct {
	ID                  string    `json:"id"`
	Name                string    `json:"name"`
	EntraTenantID       string    `json:"entraTenantId"`
	ClientID            string    `json:"clientId"`
	Seats               int       `json:"seats"`
	SyncIntervalMinutes int       `json:"syncIntervalMinutes"`
	CreatedAt           time.Time `json:"createdAt"`
	LastRun             *struct {
		RunID  string `json:"runId"`
		Status string `json:"status"`
	} `json:"lastRun"`
}

func (e *env) createTenant() tenantAnswer {
	e.t.Helper()
	r := e.do("POST", "/v1/tenants", goodTenant())
	if r.status != http.StatusCreated {
		e.t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	var out tenantAnswer
	r.decode(e.t, &out)
	return out
}

func (e *env) tenantCount() int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM tenants`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := map[string]map[string]string{
		"no header":        nil,
		"wrong token":      {"Authorization": "Bearer not-the-admin-token-at-all"},
		"token prefix":     {"Authorization": "Bearer " + token[:len(token)-1]},
		"token and more":   {"Authorization": "Bearer " + token + "x"},
		"basic scheme":     {"Authorization": "Basic " + token},
		"bare token":       {"Authorization": token},
		"empty bearer":     {"Authorization": "Bearer "},
		"token in a query": {"X-Token": token},
	}
	for name, h := range cases {
		for _, path := range []string{"/v1/tenants/" + uuid.NewString(), "/v1/nothing-here"} {
			r := e.doWith("GET", path, nil, h)
			var out errorAnswer
			r.decode(t, &out)
			if r.status != http.StatusUnauthorized || out.Error.Code != "unauthorized" || r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s, %s: %d %s; want 401 unauthorized with WWW-Authenticate", name, path, r.status, r.body)
			}
		}
	}
	// A create without the token creates nothing.
	if r := e.doWith("POST", "/v1/tenants", goodTenant(), nil); r.status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated create: %d", r.status)
	}
	if n := e.tenantCount(); n != 0 {
		t.Fatalf("unauthenticated create made %d tenants", n)
	}
	// The lower-case scheme is accepted, like any HTTP auth scheme.
	if r := e.doWith("GET", "/v1/tenants/"+uuid.NewString(), nil, map[string]string{"Authorization": "bearer " + token}); r.status != http.StatusNotFound {
		t.Fatalf("lower-case bearer: %d %s, want 404", r.status, r.body)
	}
	if r := e.doWith("GET", "/healthz", nil, nil); r.status != http.StatusOK {
		t.Fatalf("/healthz without token: %d", r.status)
	}
}

func TestCreateTenantRejectsBadPayloads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	with := func(k string, v any) string {
		m := goodTenant()
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		raw, _ := json.Marshal(m)
		return string(raw)
	}
	cases := []struct {
		name  string
		body  string
		field string // "" when no single field is at fault
	}{
		{"empty body", "", ""},
		{"malformed", `{"name": "Contoso",`, ""},
		{"not an object", `["Contoso"]`, ""},
		{"a string", `"Contoso"`, ""},
		{"two objects", with("seats", 1) + `{}`, ""},
		{"garbage after", with("seats", 1) + ` x`, ""},
		{"name missing", with("name", nil), "name"},
		{"name null", strings.Replace(with("name", "x"), `"name":"x"`, `"name":null`, 1), "name"},
		{"name empty", with("name", ""), "name"},
		{"name blank", with("name", "   "), "name"},
		{"name a no-break space", with("name", "\u00a0\u3000"), "name"},
		{"name a number", with("name", 42), "name"},
		{"name too long", with("name", strings.Repeat("n", 201)), "name"},
		{"name with NUL", with("name", "Con\x00toso"), "name"},
		{"entraTenantId missing", with("entraTenantId", nil), "entraTenantId"},
		{"entraTenantId not a GUID", with("entraTenantId", "contoso.onmicrosoft.com"), "entraTenantId"},
		{"entraTenantId GUID in braces", with("entraTenantId", "{"+entraTenant+"}"), "entraTenantId"},
		{"entraTenantId an object", with("entraTenantId", map[string]any{"id": entraTenant}), "entraTenantId"},
		{"clientId missing", with("clientId", nil), "clientId"},
		{"clientId short", with("clientId", "3b9d2f64"), "clientId"},
		{"clientSecret missing", with("clientSecret", nil), "clientSecret"},
		{"clientSecret empty", with("clientSecret", ""), "clientSecret"},
		{"clientSecret an ideographic space", with("clientSecret", "\u3000"), "clientSecret"},
		{"clientSecret a bool", with("clientSecret", true), "clientSecret"},
		{"clientSecret too long", with("clientSecret", strings.Repeat("s", 1025)), "clientSecret"},
		{"seats missing", with("seats", nil), "seats"},
		{"seats negative", with("seats", -1), "seats"},
		{"seats a string", with("seats", "ten"), "seats"},
		{"seats numeric string", with("seats", "10"), "seats"},
		{"seats fractional", with("seats", 1.5), "seats"},
		{"seats exponent", strings.Replace(with("seats", 7), `"seats":7`, `"seats":1e3`, 1), "seats"},
		{"seats huge", strings.Replace(with("seats", 7), `"seats":7`, `"seats":99999999999999999999999`, 1), "seats"},
		{"seats over the limit", with("seats", 10_000_001), "seats"},
		{"seats an array", with("seats", []int{1}), "seats"},
		{"syncIntervalMinutes zero", with("syncIntervalMinutes", 0), "syncIntervalMinutes"},
		{"syncIntervalMinutes a string", with("syncIntervalMinutes", "daily"), "syncIntervalMinutes"},
		{"unknown field", with("color", "blue"), "color"},
		{"secret by another name", with("client_secret", "x"), "client_secret"},
		{"duplicate field", strings.Replace(with("seats", 5), `"seats":5`, `"seats":5,"seats":6`, 1), "seats"},
		{"too large", with("name", "x")[:10] + strings.Repeat(" ", 70<<10) + with("name", "x")[10:], ""},
	}
	for _, c := range cases {
		r := e.do("POST", "/v1/tenants", c.body)
		var out errorAnswer
		r.decode(t, &out)
		if r.status != http.StatusBadRequest || out.Error.Code != "invalid_request" || out.Error.Message == "" {
			t.Errorf("%s: %d %s; want 400 invalid_request", c.name, r.status, r.body)
			continue
		}
		if out.Error.Field != c.field || !strings.Contains(out.Error.Message, c.field) {
			t.Errorf("%s: field %q, message %q; want them to name %q", c.name, out.Error.Field, out.Error.Message, c.field)
		}
	}
	// The good payload itself is accepted: the cases above failed for
	// their one defect.
	if r := e.do("POST", "/v1/tenants", goodTenant()); r.status != http.StatusCreated {
		t.Fatalf("good payload: %d %s", r.status, r.body)
	}
	// A body sent as text is refused too.
	tr := e.doWith("POST", "/v1/tenants", with("seats", 1), map[string]string{"Authorization": "Bearer " + token, "Content-Type": "text/plain"})
	if tr.status != http.StatusBadRequest {
		t.Errorf("text/plain body: %d %s, want 400", tr.status, tr.body)
	}
	if n := e.tenantCount(); n != 1 {
		t.Fatalf("%d tenants after the bad payloads and one good one, want 1", n)
	}
	// Messages are made from openapi.yaml's limits, in words.
	for _, c := range []struct{ body, want string }{
		{with("seats", -3), "seats must be an integer from 0 to 10000000"},
		{with("name", strings.Repeat("n", 201)), "name must be a string of 1 to 200 characters, not blank, without control characters"},
		{with("clientId", "3b9d2f64"), "clientId must be a UUID like 00000000-0000-0000-0000-000000000000"},
		{with("color", "blue"), "color is not a known field"},
		{with("seats", nil), "seats is required"},
		{`{"name": "Contoso",`, "request body is not well-formed JSON: it ends before its last value does"},
	} {
		var out errorAnswer
		e.do("POST", "/v1/tenants", c.body).decode(t, &out)
		if out.Error.Message != c.want {
			t.Errorf("message %q, want %q", out.Error.Message, c.want)
		}
	}
	// A secret is never quoted back, even when it is what is wrong.
	long := strings.Repeat("s", 1020) + "SECRETTAIL"
	if r := e.do("POST", "/v1/tenants", with("clientSecret", long)); r.status != http.StatusBadRequest || bytes.Contains(r.body, []byte("SECRETTAIL")) {
		t.Errorf("too long secret: %d %s", r.status, r.body)
	}
}

func TestCreateAndGetTenantNeverShowTheSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := goodTenant()
	body["entraTenantId"] = strings.ToUpper(entraTenant) // GUIDs are case-insensitive
	body["syncIntervalMinutes"] = 60
	r := e.do("POST", "/v1/tenants", body)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	// notify.secretSet is the one member that may speak of a secret.
	for _, leak := range []string{secret, "clientSecret", "Secret", "secret"} {
		if bytes.Contains(withoutSecretSet(r.body), []byte(leak)) {
			t.Fatalf("create answer contains %q: %s", leak, r.body)
		}
	}
	var created tenantAnswer
	r.decode(t, &created)
	if _, err := uuid.Parse(created.ID); err != nil {
		t.Fatalf("id %q is not a UUID", created.ID)
	}
	want := tenantAnswer{ID: created.ID, Name: "Contoso", EntraTenantID: entraTenant, ClientID: clientID, Seats: 25,
		SyncIntervalMinutes: 60, CreatedAt: created.CreatedAt}
	if created.CreatedAt.IsZero() || created.LastRun != nil {
		t.Fatalf("created %+v", created)
	}
	if created != want {
		t.Fatalf("created %+v, want %+v", created, want)
	}
	if loc := r.header.Get("Location"); loc != "/v1/tenants/"+created.ID {
		t.Errorf("Location %q", loc)
	}

	g := e.do("GET", "/v1/tenants/"+created.ID, nil)
	if g.status != http.StatusOK || bytes.Contains(g.body, []byte(secret)) || bytes.Contains(withoutSecretSet(g.body), []byte("ecret")) {
		t.Fatalf("get: %d %s", g.status, g.body)
	}
	var got tenantAnswer
	g.decode(t, &got)
	if !got.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("get createdAt %s, create said %s", got.CreatedAt, created.CreatedAt)
	}
	got.CreatedAt = created.CreatedAt
	if got != created {
		t.Fatalf("get %+v, create said %+v", got, created)
	}

	// At rest the secret is sealed, not stored in the clear.
	var sealed []byte
	if err := e.db.QueryRow(context.Background(), `SELECT client_secret_sealed FROM tenants WHERE id = $1`, created.ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(secret)) {
		t.Fatal("client secret stored in the clear")
	}

	// Without syncIntervalMinutes, a day.
	var def tenantAnswer
	e.do("POST", "/v1/tenants", goodTenant()).decode(t, &def)
	if def.SyncIntervalMinutes != 1440 {
		t.Fatalf("default syncIntervalMinutes %d, want 1440", def.SyncIntervalMinutes)
	}
}

func TestNotFoundAndBadPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	other := e.createTenant()
	r := e.do("POST", "/v1/tenants/"+other.ID+"/syncs", nil)
	var run struct {
		RunID string `json:"runId"`
	}
	r.decode(t, &run)
	unknown := uuid.NewString()
	cases := []struct {
		method, path string
		status       int
		field        string
	}{
		{"GET", "/v1/tenants/" + unknown, 404, ""},
		{"GET", "/v1/tenants/not-a-uuid", 400, "tenantId"},
		{"GET", "/v1/tenants/" + unknown + "x", 400, "tenantId"},
		{"POST", "/v1/tenants/" + unknown + "/syncs", 404, ""},
		{"POST", "/v1/tenants/42/syncs", 400, "tenantId"},
		{"GET", "/v1/tenants/" + ten.ID + "/syncs/" + unknown, 404, ""},
		{"GET", "/v1/tenants/" + ten.ID + "/syncs/" + run.RunID, 404, ""}, // another tenant's run
		{"GET", "/v1/tenants/" + ten.ID + "/syncs/nope", 400, "runId"},
		{"GET", "/v1/tenants/" + unknown + "/users", 404, ""},
		{"GET", "/v1/tenants/" + unknown + "/groups", 404, ""},
		{"GET", "/v1/tenants/" + unknown + "/users?after=" + cursorOf("zzz"), 404, ""},
		{"GET", "/v1/tenants/bad/users", 400, "tenantId"},
		{"GET", "/v1/tenants", 405, ""},
		{"DELETE", "/v1/tenants/" + ten.ID, 405, ""},
		{"PUT", "/v1/tenants/" + ten.ID + "/syncs", 405, ""},
		{"GET", "/v1/tenants/" + ten.ID + "/devices", 404, ""},
		{"GET", "/v2/tenants", 404, ""},
	}
	for _, c := range cases {
		r := e.do(c.method, c.path, nil)
		var out errorAnswer
		r.decode(t, &out)
		if r.status != c.status || out.Error.Message == "" || out.Error.Field != c.field {
			t.Errorf("%s %s: %d %s; want %d naming %q", c.method, c.path, r.status, r.body, c.status, c.field)
		}
		if c.status == 405 && r.header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", c.method, c.path)
		}
	}
}

// cursorOf makes a well-formed cursor; the api's cursors are opaque, so
// this only has to pass the format check.
func cursorOf(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

type runAnswer struct {
	RunID         string           `json:"runId"`
	TenantID      string           `json:"tenantId"`
	Status        string           `json:"status"`
	Trigger       string           `json:"trigger"`
	Kind          string           `json:"kind"`
	ReadStrategy  string           `json:"readStrategy"`
	Error         *string          `json:"error"`
	Counts        map[string]int64 `json:"counts"`
	GraphRequests *int64           `json:"graphRequests"`
	Throttled     *int64           `json:"throttled"`
	CreatedAt     time.Time        `json:"createdAt"`
	StartedAt     *time.Time       `json:"startedAt"`
	FinishedAt    *time.Time       `json:"finishedAt"`
}

func TestTriggerPublishesAJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	r := e.do("POST", "/v1/tenants/"+ten.ID+"/syncs", nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("trigger: %d %s", r.status, r.body)
	}
	var out struct {
		RunID string `json:"runId"`
	}
	r.decode(t, &out)
	if _, err := uuid.Parse(out.RunID); err != nil {
		t.Fatalf("runId %q", out.RunID)
	}

	// The job is on SYNC_JOBS, keyed by the run id.
	ctx := context.Background()
	s, err := e.js.Stream(ctx, bus.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, bus.SubjectJobs+ten.ID)
	if err != nil {
		t.Fatalf("no job on SYNC_JOBS: %v", err)
	}
	var job syncv1.SyncJob
	if err := proto.Unmarshal(m.Data, &job); err != nil {
		t.Fatal(err)
	}
	if job.RunId != out.RunID || job.TenantId != ten.ID || job.Kind != syncv1.JobKind_JOB_KIND_FULL ||
		job.Trigger != syncv1.Trigger_TRIGGER_MANUAL || job.RunSeq != 1 || m.Header.Get(nats.MsgIdHdr) != out.RunID {
		t.Fatalf("job %v with id %q", &job, m.Header.Get(nats.MsgIdHdr))
	}

	g := e.do("GET", "/v1/tenants/"+ten.ID+"/syncs/"+out.RunID, nil)
	var run runAnswer
	g.decode(t, &run)
	if g.status != http.StatusOK || run.RunID != out.RunID || run.TenantID != ten.ID || run.Status != "queued" ||
		run.Trigger != "manual" || run.Kind != "full" || run.ReadStrategy != "full" || run.Error == nil || *run.Error != "" ||
		run.Counts == nil || len(run.Counts) != 0 || run.GraphRequests == nil || run.Throttled == nil ||
		run.CreatedAt.IsZero() || run.StartedAt != nil || run.FinishedAt != nil {
		t.Fatalf("run: %d %s", g.status, g.body)
	}
	for _, k := range []string{`"startedAt":null`, `"finishedAt":null`, `"counts":{}`, `"heldReason":null`, `"heldMessage":""`,
		`"plan":null`, `"decidedAt":null`} {
		if !bytes.Contains(g.body, []byte(k)) {
			t.Errorf("run answer lacks %s: %s", k, g.body)
		}
	}

	var again tenantAnswer
	e.do("GET", "/v1/tenants/"+ten.ID, nil).decode(t, &again)
	if again.LastRun == nil || again.LastRun.RunID != out.RunID || again.LastRun.Status != "queued" {
		t.Fatalf("tenant's lastRun %+v, want run %s", again.LastRun, out.RunID)
	}

	// A body, if any, may only ask for a full sync.
	if r := e.do("POST", "/v1/tenants/"+ten.ID+"/syncs", `{"kind":"delta"}`); r.status != http.StatusBadRequest {
		t.Fatalf("kind delta: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/tenants/"+ten.ID+"/syncs", `{"kind":"full"}`); r.status != http.StatusAccepted {
		t.Fatalf("kind full: %d %s", r.status, r.body)
	}
}

func TestTriggerAnswers503WhenJobCannotBePublished(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	e.bus.Close() // NATS is gone for this api
	r := e.do("POST", "/v1/tenants/"+ten.ID+"/syncs", nil)
	var out errorAnswer
	r.decode(t, &out)
	if r.status != http.StatusServiceUnavailable || out.Error.Code != "unavailable" || out.RunID == "" {
		t.Fatalf("trigger without NATS: %d %s; want 503 with the run id", r.status, r.body)
	}
	// The run is recorded, queued, for the scheduler's sweeper.
	run, err := e.st.GetRun(context.Background(), ten.ID, out.RunID)
	if err != nil || run.Status != store.StatusQueued {
		t.Fatalf("run %+v, %v; want it queued", run, err)
	}
}

// seed inserts app users and groups for a tenant, as a finished run leaves them.
func (e *env) seed(tenantID string, users, groups int) (userIDs, groupIDs []string) {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now()
	for i := range users {
		id := uuid.NewString()
		license, enabled := []string{"assigned", "none", "disabled"}[i%3], i%3 != 2
		var seq *int64
		var at *time.Time
		if license == "assigned" {
			one := int64(1)
			seq, at = &one, &now
		}
		_, err := e.db.Exec(ctx, `INSERT INTO app_users (tenant_id, entra_id, email, display_name, given_name, surname,
			job_title, department, enabled, license, license_run_seq, licensed_at, created_at, updated_at)
			VALUES ($1, $2, $3, $4, '', '', '', '', $5, $6, $7, $8, $9, $9)`,
			tenantID, id, fmt.Sprintf("user%d@contoso.test", i), fmt.Sprintf("User %d", i), enabled, license, seq, at, now)
		if err != nil {
			e.t.Fatal(err)
		}
		userIDs = append(userIDs, id)
	}
	for i := range groups {
		id := uuid.NewString()
		_, err := e.db.Exec(ctx, `INSERT INTO app_groups (tenant_id, entra_id, display_name, kind, dynamic,
			entra_member_count, synced_member_count, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
			tenantID, id, fmt.Sprintf("Group %d", i), []string{"security", "microsoft365", "distribution", "mailEnabledSecurity"}[i%4],
			i%5 == 0, i*2, i, now)
		if err != nil {
			e.t.Fatal(err)
		}
		groupIDs = append(groupIDs, id)
	}
	sort.Strings(userIDs)
	sort.Strings(groupIDs)
	return userIDs, groupIDs
}

type userItem struct {
	EntraID     string `json:"entraId"`
	Email       string `json:"email"`
	DisplayName string `json:"displayName"`
	Enabled     bool   `json:"enabled"`
	License     string `json:"license"`
}

type groupItem struct {
	EntraID           string `json:"entraId"`
	DisplayName       string `json:"displayName"`
	Kind              string `json:"kind"`
	EntraMemberCount  int    `json:"entraMemberCount"`
	SyncedMemberCount int    `json:"syncedMemberCount"`
}

// walk reads every page of a list and returns the entra ids and the page count.
func walk[T any](e *env, path string, limit int, id func(T) string) ([]string, []T, int) {
	e.t.Helper()
	var ids []string
	var all []T
	after, pages := "", 0
	for {
		q := url.Values{}
		if limit > 0 {
			q.Set("limit", fmt.Sprint(limit))
		}
		if after != "" {
			q.Set("after", after)
		}
		sep := "?" // path may carry a query of its own
		if strings.Contains(path, "?") {
			sep = "&"
		}
		r := e.do("GET", path+sep+q.Encode(), nil)
		if r.status != http.StatusOK {
			e.t.Fatalf("GET %s?%s: %d %s", path, q.Encode(), r.status, r.body)
		}
		if !bytes.Contains(r.body, []byte(`"next":`)) {
			e.t.Fatalf("page without next: %s", r.body)
		}
		var page struct {
			Items []T     `json:"items"`
			Next  *string `json:"next"`
		}
		r.decode(e.t, &page)
		pages++
		for _, it := range page.Items {
			ids = append(ids, id(it))
			all = append(all, it)
		}
		if page.Next == nil {
			return ids, all, pages
		}
		if *page.Next == "" || pages > 100 {
			e.t.Fatalf("bad next %q after %d pages", *page.Next, pages)
		}
		after = *page.Next
	}
}

func TestUsersAndGroupsArePaged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	other := e.createTenant()
	users, groups := e.seed(ten.ID, 250, 30)
	e.seed(other.ID, 5, 5) // must not show up

	ids, items, pages := walk(e, "/v1/tenants/"+ten.ID+"/users", 0, func(u userItem) string { return u.EntraID })
	if pages != 3 || strings.Join(ids, ",") != strings.Join(users, ",") {
		t.Fatalf("default paging: %d pages, %d users; want 3 pages of the 250 users in order", pages, len(ids))
	}
	licenses := map[string]int{}
	for _, u := range items {
		licenses[u.License]++
		if u.Email == "" || u.DisplayName == "" || u.Enabled != (u.License != "disabled") {
			t.Fatalf("user %+v", u)
		}
	}
	if len(licenses) != 3 {
		t.Fatalf("licenses %v", licenses)
	}
	if ids, _, pages := walk(e, "/v1/tenants/"+ten.ID+"/users", 1000, func(u userItem) string { return u.EntraID }); pages != 1 || len(ids) != 250 {
		t.Fatalf("limit 1000: %d pages, %d users", pages, len(ids))
	}
	if ids, _, pages := walk(e, "/v1/tenants/"+ten.ID+"/users", 50, func(u userItem) string { return u.EntraID }); pages != 5 || len(ids) != 250 {
		t.Fatalf("limit 50: %d pages, %d users", pages, len(ids))
	}

	gids, gitems, gpages := walk(e, "/v1/tenants/"+ten.ID+"/groups", 7, func(g groupItem) string { return g.EntraID })
	if gpages != 5 || strings.Join(gids, ",") != strings.Join(groups, ",") {
		t.Fatalf("groups: %d pages, %d groups", gpages, len(gids))
	}
	for _, g := range gitems {
		if g.Kind == "" || g.DisplayName == "" || g.EntraMemberCount < g.SyncedMemberCount {
			t.Fatalf("group %+v", g)
		}
	}

	// A tenant without users yet: an empty first page, not a 404.
	empty := e.createTenant()
	r := e.do("GET", "/v1/tenants/"+empty.ID+"/users", nil)
	if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"items":[]`)) || !bytes.Contains(r.body, []byte(`"next":null`)) {
		t.Fatalf("empty tenant: %d %s", r.status, r.body)
	}

	for _, q := range []struct{ query, field string }{
		{"limit=0", "limit"}, {"limit=1001", "limit"}, {"limit=ten", "limit"}, {"limit=", "limit"}, {"limit=-5", "limit"},
		{"after=%21%21%21", "after"}, {"page=2", "page"},
	} {
		r := e.do("GET", "/v1/tenants/"+ten.ID+"/users?"+q.query, nil)
		var out errorAnswer
		r.decode(t, &out)
		if r.status != http.StatusBadRequest || out.Error.Field != q.field || !strings.Contains(out.Error.Message, q.field) {
			t.Errorf("?%s: %d %s; want 400 naming %s", q.query, r.status, r.body, q.field)
		}
	}
}

func TestServerStartsAndStops(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	st := storetest.New(t)
	b, err := bus.Connect(ctx, devenv.NATS(t), log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := api.New(api.Config{AdminToken: "short"}, api.Deps{Store: st, Bus: b, Logger: log}); err == nil {
		t.Fatal("a short admin token was accepted")
	}
	srv, err := api.New(api.Config{Addr: "127.0.0.1:0", AdminToken: token}, api.Deps{Store: st, Bus: b, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(srv.Addr(), ":0") {
		t.Fatalf("Addr() = %s, want the real port", srv.Addr())
	}
	resp, err := http.Get("http://" + srv.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := srv.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + srv.Addr() + "/healthz"); err == nil {
		t.Fatal("server still answers after Stop")
	}
}

// TestTriggerJoinsTheWaitingRun: a trigger while a run waits for a
// fetcher answers with that run, publishing its job only if it is not
// queued (lost on its way); once a fetcher began the run, a trigger
// queues a new one.
func TestTriggerJoinsTheWaitingRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	ctx := context.Background()
	trigger := func() string {
		t.Helper()
		r := e.do("POST", "/v1/tenants/"+ten.ID+"/syncs", nil)
		var out struct {
			RunID string `json:"runId"`
		}
		r.decode(t, &out)
		if r.status != http.StatusAccepted || out.RunID == "" {
			t.Fatalf("trigger: %d %s", r.status, r.body)
		}
		return out.RunID
	}
	stream, err := e.js.Stream(ctx, bus.StreamJobs)
	if err != nil {
		t.Fatal(err)
	}
	jobs := func() uint64 {
		t.Helper()
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(bus.SubjectJobs+ten.ID))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects[bus.SubjectJobs+ten.ID]
	}

	// A run was recorded and its job lost before it reached the stream
	// (an api replica died in between).
	lost, created, err := e.st.QueueManualRun(ctx, ten.ID)
	if err != nil || !created {
		t.Fatalf("QueueManualRun = %v, %v", created, err)
	}
	if got := trigger(); got != lost.ID {
		t.Fatalf("trigger got run %s, want the waiting run %s", got, lost.ID)
	}
	if n := jobs(); n != 1 {
		t.Fatalf("%d jobs queued after the trigger, want the waiting run's 1", n)
	}
	if got := trigger(); got != lost.ID {
		t.Fatalf("second trigger got run %s, want the waiting run %s", got, lost.ID)
	}
	if n := jobs(); n != 1 {
		t.Fatalf("%d jobs queued after a second trigger, want still 1", n)
	}

	// A fetcher began the run: the next trigger gets a run of its own.
	if _, err := e.st.BeginFetch(ctx, ten.ID, lost.ID); err != nil {
		t.Fatal(err)
	}
	second := trigger()
	if second == lost.ID {
		t.Fatalf("trigger after the run began got the same run %s", lost.ID)
	}
	if n := jobs(); n != 2 {
		t.Fatalf("%d jobs queued, want 2", n)
	}
}

// TestReadiness: /readyz answers 200 with both dependencies up, and 503
// naming the one that is down; /healthz stays 200 either way.
func TestReadiness(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	type answer struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	get := func(path string) (int, answer) {
		t.Helper()
		resp, err := e.http.Get(e.url + path) // no token: probes are anonymous
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a answer
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, a
	}
	if code, a := get("/readyz"); code != http.StatusOK || a.Status != "ready" || a.Checks["postgres"] != "ok" || a.Checks["nats"] != "ok" {
		t.Fatalf("readyz with everything up: %d %+v", code, a)
	}
	e.bus.Close() // NATS is gone for this api
	if code, a := get("/readyz"); code != http.StatusServiceUnavailable || a.Status != "unavailable" ||
		a.Checks["nats"] != "unavailable" || a.Checks["postgres"] != "ok" {
		t.Fatalf("readyz without NATS: %d %+v", code, a)
	}
	e.st.Close() // and Postgres
	if code, a := get("/readyz"); code != http.StatusServiceUnavailable || a.Checks["postgres"] != "unavailable" {
		t.Fatalf("readyz without Postgres: %d %+v", code, a)
	}
	if code, a := get("/healthz"); code != http.StatusOK || a.Status != "ok" {
		t.Fatalf("healthz: %d %+v", code, a)
	}
}

// TestListRuns pages through a tenant's runs, newest first, and rejects
// bad cursors and unknown tenants.
func TestListRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten, empty := e.createTenant(), e.createTenant()
	ctx := context.Background()
	var ids []string // by seq, from 1
	for range 5 {
		r, err := e.st.CreateRun(ctx, store.NewRun{TenantID: ten.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	type runPage struct {
		Items []runAnswer `json:"items"`
		Next  *string     `json:"next"`
	}
	list := func(tenantID, query string) runPage {
		t.Helper()
		r := e.do("GET", "/v1/tenants/"+tenantID+"/syncs"+query, nil)
		if r.status != http.StatusOK {
			t.Fatalf("list runs%s: %d %s", query, r.status, r.body)
		}
		var p runPage
		r.decode(t, &p)
		return p
	}
	var got []string
	query := "?limit=2"
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("more than three pages of two for five runs")
		}
		p := list(ten.ID, query)
		for _, r := range p.Items {
			if r.TenantID != ten.ID || r.Status != "queued" || r.Trigger != "manual" {
				t.Fatalf("run %+v", r)
			}
			got = append(got, r.RunID)
		}
		if p.Next == nil {
			break
		}
		query = "?limit=2&after=" + *p.Next
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("runs %v, want newest first %v", got, want)
	}
	if p := list(ten.ID, "?limit=5"); len(p.Items) != 5 || p.Next != nil {
		t.Fatalf("a page holding every run: %d runs, next %v; want 5 and no next", len(p.Items), p.Next)
	}
	if p := list(empty.ID, ""); len(p.Items) != 0 || p.Next != nil {
		t.Fatalf("a tenant without runs: %+v", p)
	}
	if r := e.do("DELETE", "/v1/tenants/"+ten.ID+"/syncs", nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, POST" {
		t.Fatalf("DELETE syncs: %d, Allow %q; want 405 allowing GET, POST", r.status, r.header.Get("Allow"))
	}
	for _, c := range []struct {
		path  string
		code  int
		field string
	}{
		{"/v1/tenants/" + ten.ID + "/syncs?after=" + cursorOf("x"), 400, "after"},
		{"/v1/tenants/" + ten.ID + "/syncs?after=" + cursorOf("0"), 400, "after"},
		{"/v1/tenants/" + ten.ID + "/syncs?limit=0", 400, "limit"},
		{"/v1/tenants/" + ten.ID + "/syncs?status=failed", 400, "status"},
		{"/v1/tenants/" + uuid.NewString() + "/syncs", 404, ""},
	} {
		r := e.do("GET", c.path, nil)
		var out errorAnswer
		r.decode(t, &out)
		if r.status != c.code || out.Error.Field != c.field {
			t.Errorf("GET %s: %d %s; want %d naming %q", c.path, r.status, r.body, c.code, c.field)
		}
	}
}

// TestContractChecksParameters: path and query parameters are checked
// against openapi.yaml before a handler runs, with messages made from the
// spec's limits; what the spec cannot know (a cursor the api issued) is
// checked after.
func TestContractChecksParameters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	users := "/v1/tenants/" + ten.ID + "/users"
	for _, c := range []struct {
		path, field, message string
	}{
		{"/v1/tenants/not-a-uuid", "tenantId", "tenantId must be a UUID like 00000000-0000-0000-0000-000000000000"},
		{"/v1/tenants/{" + ten.ID + "}", "tenantId", "tenantId must be a UUID like 00000000-0000-0000-0000-000000000000"},
		{"/v1/tenants/" + ten.ID + "/syncs/42", "runId", "runId must be a UUID like 00000000-0000-0000-0000-000000000000"},
		{users + "?limit=0", "limit", "limit must be an integer from 1 to 1000"},
		{users + "?limit=1001", "limit", "limit must be an integer from 1 to 1000"},
		{users + "?limit=1e2", "limit", "limit must be an integer from 1 to 1000"},
		{users + "?limit=", "limit", "limit must not be empty"},
		{users + "?page=2", "page", "page is not a known query parameter"},
		{users + "?after=" + strings.Repeat("a", 1025), "after", "after must be a string of at most 1024 characters"},
		{users + "?after=%21%21%21", "after", "after must be the next cursor of a previous page"},
		// A bad path parameter is named before a bad query parameter.
		{"/v1/tenants/nope/groups?limit=0", "tenantId", "tenantId must be a UUID like 00000000-0000-0000-0000-000000000000"},
	} {
		r := e.do("GET", c.path, nil)
		var out errorAnswer
		r.decode(t, &out)
		if r.status != http.StatusBadRequest || out.Error.Code != "invalid_request" || out.Error.Field != c.field || out.Error.Message != c.message {
			t.Errorf("GET %s: %d %s; want 400 %q: %q", c.path, r.status, r.body, c.field, c.message)
		}
	}
	// Ids are case-insensitive: an upper-case one finds the tenant.
	if r := e.do("GET", "/v1/tenants/"+strings.ToUpper(ten.ID), nil); r.status != http.StatusOK {
		t.Errorf("upper-case tenant id: %d %s", r.status, r.body)
	}
	if r := e.do("GET", users+"?limit=1000", nil); r.status != http.StatusOK {
		t.Errorf("limit at its maximum: %d %s", r.status, r.body)
	}
}

// TestContractChecksBodies: a body must have a media type its operation
// takes, be one JSON value without duplicate members, and match the
// operation's schema; an operation without a body takes none.
func TestContractChecksBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	syncs := "/v1/tenants/" + ten.ID + "/syncs"
	good, _ := json.Marshal(goodTenant())
	auth := "Bearer " + token
	for _, c := range []struct {
		name, method, path, body, contentType string
		field, message                        string
	}{
		{"text body", "POST", "/v1/tenants", string(good), "text/plain", "", "Content-Type must be application/json"},
		{"patch media type on a create", "POST", "/v1/tenants", string(good), "application/merge-patch+json", "", "Content-Type must be application/json"},
		{"malformed media type", "POST", "/v1/tenants", string(good), "application/", "", "Content-Type must be application/json"},
		{"not UTF-8", "POST", "/v1/tenants", `{"name": "Con` + "\xff" + `toso"}`, "application/json", "", "request body is not valid UTF-8"},
		{"kind not full", "POST", syncs, `{"kind":"delta"}`, "application/json", "kind", `kind must be "full"`},
		{"kind null", "POST", syncs, `{"kind":null}`, "application/json", "kind", `kind must be "full"`},
		{"unknown member", "POST", syncs, `{"kind":"full","priority":1}`, "application/json", "priority", "priority is not a known field"},
		{"duplicate member", "POST", syncs, `{"kind":"full","kind":"full"}`, "application/json", "kind", "kind appears more than once"},
		{"trailing data", "POST", syncs, `{"kind":"full"} {}`, "application/json", "", "request body must hold exactly one JSON value"},
		{"an array", "POST", syncs, `[]`, "application/json", "", "request body must be a JSON object"},
		{"body on a GET", "GET", "/v1/tenants/" + ten.ID, `{}`, "application/json", "", "this request takes no body"},
	} {
		r := e.doWith(c.method, c.path, c.body, map[string]string{"Authorization": auth, "Content-Type": c.contentType})
		var out errorAnswer
		r.decode(t, &out)
		if r.status != http.StatusBadRequest || out.Error.Field != c.field || out.Error.Message != c.message {
			t.Errorf("%s: %d %s; want 400 %q: %q", c.name, r.status, r.body, c.field, c.message)
		}
	}
	if n := e.tenantCount(); n != 1 {
		t.Fatalf("%d tenants after refused creates, want the first one only", n)
	}
	// What a client may send: a charset, or no Content-Type at all (JSON
	// is assumed), and an empty body where it is optional.
	for _, c := range []struct{ name, method, path, body, contentType string }{
		{"charset", "POST", "/v1/tenants", string(good), "application/json; charset=utf-8"},
		{"no Content-Type", "POST", "/v1/tenants", string(good), ""},
		{"empty optional body", "POST", syncs, "", ""},
		{"full sync", "POST", syncs, `{"kind":"full"}`, "application/json"},
	} {
		req, err := http.NewRequest(c.method, e.url+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		if c.contentType != "" {
			req.Header.Set("Content-Type", c.contentType)
		}
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Errorf("%s: %d %s; want it taken", c.name, resp.StatusCode, raw)
		}
	}
}

// withoutSecretSet is a tenant answer without its notify.secretSet
// member, which says whether a webhook signing secret exists.
func withoutSecretSet(body []byte) []byte {
	return bytes.ReplaceAll(body, []byte(`"secretSet":`), nil)
}
