package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
)

// syncer runs whole syncs of one tenant straight through the store, as
// the fetcher and the reconciler would: a users page, a groups page, each
// group's direct and transitive members, RunFetched, finalization. Each
// run happens a minute after the one before.
type syncer struct {
	e      *env
	tenant string
	at     time.Time
}

func (e *env) syncer(tenantID string) *syncer {
	return &syncer{e: e, tenant: tenantID, at: time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)}
}

// dirGroup is an Entra group whose members are users.
type dirGroup struct {
	id      string
	members []string
}

func (s *syncer) run(users []store.DirUser, groups ...dirGroup) store.Run {
	t := s.e.t
	t.Helper()
	ctx := context.Background()
	st := s.e.st
	s.at = s.at.Add(time.Minute)
	r, err := st.CreateRun(ctx, store.NewRun{TenantID: s.tenant, Kind: store.KindFull, Trigger: store.TriggerManual})
	must(t, err)
	ref := store.PageRef{TenantID: s.tenant, RunID: r.ID, RunSeq: r.Seq}
	must(t, st.ApplyUsersPage(ctx, ref, users, s.at))
	var dir []store.DirGroup
	for _, g := range groups {
		dir = append(dir, store.DirGroup{ID: g.id, DisplayName: "Group " + g.id[:8], SecurityEnabled: true})
	}
	ref.Page = 1
	must(t, st.ApplyGroupsPage(ctx, ref, dir, s.at))
	for _, g := range groups {
		var ms []store.DirMember
		for _, id := range g.members {
			ms = append(ms, store.DirMember{ID: id, Type: store.MemberUser})
		}
		ref.Page++
		must(t, st.ApplyMembersPage(ctx, ref, store.MembersPage{GroupID: g.id, Last: true, Members: ms}, s.at))
		ref.Page++
		must(t, st.ApplyTransitivePage(ctx, ref, store.TransitivePage{GroupID: g.id, Last: true, UserIDs: g.members}, s.at))
	}
	must(t, st.MarkRunFetched(ctx, ref, store.Fetched{Pages: int(ref.Page) + 1}, s.at))
	done, err := st.TryFinalize(ctx, s.tenant, r.ID, s.at)
	if err != nil || !done {
		t.Fatalf("finalize run %d: %v %v", r.Seq, done, err)
	}
	run, err := st.GetRun(ctx, s.tenant, r.ID)
	must(t, err)
	return run
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// people are n enabled Member users with mail, in Entra id order.
func people(n int) []store.DirUser {
	out := make([]store.DirUser, n)
	for i := range out {
		out[i] = store.DirUser{ID: fmt.Sprintf("00000001-0000-4000-8000-%012d", i+1), DisplayName: fmt.Sprintf("User %d", i+1),
			Mail: fmt.Sprintf("user%d@contoso.test", i+1), UserPrincipalName: fmt.Sprintf("user%d@contoso.test", i+1),
			UserType: "Member", AccountEnabled: true}
	}
	return out
}

func ids(users []store.DirUser) []string {
	var out []string
	for _, u := range users {
		out = append(out, u.ID)
	}
	return out
}

// heldRun is a run answer with the review fields, null kept apart from
// empty.
type heldRun struct {
	runAnswer
	Seq         int64            `json:"seq"`
	HeldReason  *string          `json:"heldReason"`
	HeldMessage *string          `json:"heldMessage"`
	Plan        map[string]int64 `json:"plan"`
	DecidedAt   *time.Time       `json:"decidedAt"`
}

func (e *env) getRun(tenantID, runID string) heldRun {
	e.t.Helper()
	r := e.do("GET", "/v1/tenants/"+tenantID+"/syncs/"+runID, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET run %s: %d %s", runID, r.status, r.body)
	}
	var out heldRun
	r.decode(e.t, &out)
	return out
}

// decide approves or rejects a run and returns the answer.
func (e *env) decide(tenantID, runID, verb string) response {
	e.t.Helper()
	return e.do("POST", "/v1/tenants/"+tenantID+"/syncs/"+runID+"/"+verb, nil)
}

// decided checks that a decision answered 200 with the run in status.
func (e *env) decided(r response, status string) heldRun {
	e.t.Helper()
	var out heldRun
	r.decode(e.t, &out)
	if r.status != http.StatusOK || out.Status != status || out.DecidedAt == nil || out.FinishedAt == nil {
		e.t.Fatalf("decision: %d %s; want 200 with the run %s, decided", r.status, r.body, status)
	}
	return out
}

// conflict checks that r is a 409 whose message holds each of want.
func conflict(t *testing.T, what string, r response, want ...string) {
	t.Helper()
	var out errorAnswer
	r.decode(t, &out)
	if r.status != http.StatusConflict || out.Error.Code != "conflict" || out.Error.Field != "" {
		t.Errorf("%s: %d %s; want 409 conflict", what, r.status, r.body)
		return
	}
	for _, w := range want {
		if !strings.Contains(out.Error.Message, w) {
			t.Errorf("%s: message %q does not say %q", what, out.Error.Message, w)
		}
	}
	if strings.Contains(out.Error.Message, "store:") {
		t.Errorf("%s: message %q shows the store's internals", what, out.Error.Message)
	}
}

// planItem is an item of a plan; Raw keeps which members it had.
type planItem struct {
	Action      string         `json:"action"`
	EntraID     string         `json:"entraId"`
	GroupID     string         `json:"groupId"`
	Role        string         `json:"role"`
	DisplayName string         `json:"displayName"`
	Before      map[string]any `json:"before"`
	After       map[string]any `json:"after"`
	Reason      string         `json:"reason"`
	Raw         map[string]json.RawMessage
}

func (p *planItem) UnmarshalJSON(b []byte) error {
	type plain planItem
	if err := json.Unmarshal(b, (*plain)(p)); err != nil {
		return err
	}
	return json.Unmarshal(b, &p.Raw)
}

type planAnswer struct {
	Summary map[string]int64 `json:"summary"`
	Items   []planItem       `json:"items"`
	Next    *string          `json:"next"`
}

// plan reads a run's whole plan, limit items a page, and checks every
// page carries the same summary.
func (e *env) plan(tenantID, runID string, limit int) (map[string]int64, []planItem, int) {
	e.t.Helper()
	var items []planItem
	var summary map[string]int64
	after, pages := "", 0
	for {
		path := fmt.Sprintf("/v1/tenants/%s/syncs/%s/plan?limit=%d", tenantID, runID, limit)
		if after != "" {
			path += "&after=" + after
		}
		r := e.do("GET", path, nil)
		if r.status != http.StatusOK {
			e.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		var p planAnswer
		r.decode(e.t, &p)
		if pages > 0 && !maps.Equal(p.Summary, summary) {
			e.t.Fatalf("page %d has summary %v, the first %v", pages, p.Summary, summary)
		}
		summary = p.Summary
		items = append(items, p.Items...)
		pages++
		if p.Next == nil {
			return summary, items, pages
		}
		if pages > 100 {
			e.t.Fatal("the plan's pages do not end")
		}
		after = *p.Next
	}
}

func actions(items []planItem) map[string]int64 {
	out := map[string]int64{}
	for _, it := range items {
		out[it.Action]++
	}
	return out
}

// nonZero drops the actions a summary counts 0 times.
func nonZero(m map[string]int64) map[string]int64 {
	out := maps.Clone(m)
	maps.DeleteFunc(out, func(_ string, n int64) bool { return n == 0 })
	return out
}

func (e *env) setReview(tenantID string) {
	e.t.Helper()
	if r := e.patch(tenantID, `{"applyMode": "review"}`); r.status != http.StatusOK {
		e.t.Fatalf("applyMode review: %d %s", r.status, r.body)
	}
}

func (e *env) userIDs(tenantID string) []string {
	e.t.Helper()
	ids, _, _ := walk(e, "/v1/tenants/"+tenantID+"/users", 1000, func(u userItem) string { return u.EntraID })
	return ids
}

// TestReviewModeHoldsThePlanUntilApproved: a tenant that reviews every
// sync gets its run held with the plan's counts; the plan is read page
// by page with its reasons, nothing is applied until an admin approves,
// and then exactly the plan is.
func TestReviewModeHoldsThePlanUntilApproved(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	e.setReview(ten.ID)
	s := e.syncer(ten.ID)
	users := people(3)
	group := uuid.NewString()
	run := s.run(users, dirGroup{id: group, members: ids(users)})

	held := e.getRun(ten.ID, run.ID)
	wantPlan := map[string]int64{"createUser": 3, "assignLicense": 3, "createGroup": 1, "addMembership": 3}
	if held.Status != "awaiting_approval" || held.HeldReason == nil || *held.HeldReason != "review" ||
		held.HeldMessage == nil || !strings.Contains(*held.HeldMessage, "reviews every sync") ||
		!maps.Equal(nonZero(held.Plan), wantPlan) || len(held.Plan) != len(plan.Actions) || held.DecidedAt != nil {
		t.Fatalf("held run %+v; want awaiting_approval for review with the plan %v", held, wantPlan)
	}
	raw := e.do("GET", "/v1/tenants/"+ten.ID+"/syncs/"+run.ID, nil).body
	if !bytes.Contains(raw, []byte(`"decidedAt":null`)) {
		t.Errorf("held run answer lacks decidedAt null: %s", raw)
	}
	// The list of runs shows the same.
	var runs struct {
		Items []heldRun `json:"items"`
	}
	e.do("GET", "/v1/tenants/"+ten.ID+"/syncs", nil).decode(t, &runs)
	if len(runs.Items) != 1 || runs.Items[0].HeldReason == nil || *runs.Items[0].HeldReason != "review" ||
		!maps.Equal(runs.Items[0].Plan, held.Plan) {
		t.Fatalf("runs list %+v", runs.Items)
	}
	// The tenant's last run says it waits.
	if v := e.tenant(ten.ID); v.LastRun == nil || v.LastRun.Status != "awaiting_approval" {
		t.Fatalf("tenant's lastRun %+v", v.LastRun)
	}

	summary, items, pages := e.plan(ten.ID, run.ID, 4)
	if pages != 3 || len(items) != 10 || !maps.Equal(summary, held.Plan) || !maps.Equal(actions(items), wantPlan) {
		t.Fatalf("plan: %d pages of %d items, summary %v, actions %v; want 3 pages of 10 items as the run counts them",
			pages, len(items), summary, actions(items))
	}
	for _, it := range items {
		membership := it.Action == "addMembership"
		_, hasGroup := it.Raw["groupId"]
		_, hasRole := it.Raw["role"]
		if it.EntraID == "" || it.DisplayName == "" || it.Reason == "" || hasRole || hasGroup != membership ||
			(membership && it.GroupID != group) || it.After == nil {
			t.Errorf("plan item %+v", it)
		}
		if _, ok := it.Raw["before"]; !ok {
			t.Errorf("plan item without before: %+v", it)
		}
	}
	if n := len(e.userIDs(ten.ID)); n != 0 {
		t.Fatalf("%d users before the approval, want none", n)
	}

	ok := e.decided(e.decide(ten.ID, run.ID, "approve"), "succeeded")
	if ok.HeldReason == nil || *ok.HeldReason != "review" || ok.Counts["usersCreated"] != 3 || ok.Counts["membershipsAdded"] != 3 {
		t.Fatalf("approved run %+v", ok)
	}
	if got := e.userIDs(ten.ID); !slices.Equal(got, ids(users)) {
		t.Fatalf("users after the approval %v, want %v", got, ids(users))
	}
	// The plan stays readable; a decided run takes no second decision.
	if _, again, _ := e.plan(ten.ID, run.ID, 100); len(again) != len(items) {
		t.Fatalf("the approved plan has %d items, it had %d", len(again), len(items))
	}
	conflict(t, "approve twice", e.decide(ten.ID, run.ID, "approve"), "not awaiting approval", "run 1 is succeeded")
	conflict(t, "reject an approved run", e.decide(ten.ID, run.ID, "reject"), "not awaiting approval")

	// The admins were told the run waited.
	var ns struct {
		Items []notificationItem `json:"items"`
	}
	e.do("GET", "/v1/tenants/"+ten.ID+"/notifications", nil).decode(t, &ns)
	if len(ns.Items) != 1 || ns.Items[0].Kind != "run_held" || ns.Items[0].RunID == nil || *ns.Items[0].RunID != run.ID ||
		!strings.Contains(ns.Items[0].Subject, "waits for your approval") {
		t.Fatalf("notifications %+v", ns.Items)
	}
}

// TestDeletionGuardHoldsAndARejectionChangesNothing: a run that would
// take away more users than the guard allows is held even in auto mode,
// its plan names the roles and seats it would revoke, the tenant's
// administrators are told, and rejecting it leaves the app as it was.
func TestDeletionGuardHoldsAndARejectionChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	s := e.syncer(ten.ID)
	everyone := people(20)
	s.run(everyone)
	admin := everyone[0]
	if r := e.patchUser(ten.ID, admin.ID, `{"roles": ["Administrator"]}`, "application/json"); r.status != http.StatusOK {
		t.Fatalf("make an admin: %d %s", r.status, r.body)
	}

	run := s.run(everyone[10:]) // half leave
	held := e.getRun(ten.ID, run.ID)
	if held.Status != "awaiting_approval" || held.HeldReason == nil || *held.HeldReason != "deletion_guard" ||
		held.HeldMessage == nil || !strings.Contains(*held.HeldMessage, "deletion guard") ||
		held.Plan["removeUser"] != 10 || held.Plan["revokeRole"] != 1 {
		t.Fatalf("run %+v; want held by the deletion guard", held)
	}
	_, items, _ := e.plan(ten.ID, run.ID, 1000)
	var roles []planItem
	for _, it := range items {
		if _, ok := it.Raw["role"]; ok {
			roles = append(roles, it)
		}
		if _, ok := it.Raw["groupId"]; ok {
			t.Errorf("a membership in a plan without groups: %+v", it)
		}
	}
	if len(roles) != 1 || roles[0].Action != "revokeRole" || roles[0].Role != "Administrator" || roles[0].EntraID != admin.ID {
		t.Fatalf("role items %+v; want the admin's role revoked", roles)
	}
	var ns struct {
		Items []notificationItem `json:"items"`
	}
	e.do("GET", "/v1/tenants/"+ten.ID+"/notifications", nil).decode(t, &ns)
	if len(ns.Items) != 1 || ns.Items[0].Kind != "run_held" || !slices.Equal(ns.Items[0].Recipients, []string{admin.Mail}) {
		t.Fatalf("notifications %+v; want run_held to the administrator", ns.Items)
	}

	no := e.decided(e.decide(ten.ID, run.ID, "reject"), "rejected")
	if no.HeldReason == nil || *no.HeldReason != "deletion_guard" {
		t.Fatalf("rejected run %+v", no)
	}
	if got := e.getRun(ten.ID, run.ID); got.Status != "rejected" || got.DecidedAt == nil || !got.DecidedAt.Equal(*no.DecidedAt) {
		t.Fatalf("GET the rejected run %+v", got)
	}
	if got := e.userIDs(ten.ID); !slices.Equal(got, ids(everyone)) {
		t.Fatalf("%d users after the rejection, want the 20", len(got))
	}
	if u := e.user(ten.ID, admin.ID); !slices.Equal(u.Roles, []string{"Administrator"}) {
		t.Fatalf("the admin after the rejection %+v", u)
	}
	conflict(t, "approve a rejected run", e.decide(ten.ID, run.ID, "approve"), "not awaiting approval", "rejected")
	conflict(t, "reject twice", e.decide(ten.ID, run.ID, "reject"), "not awaiting approval")
}

// TestApprovingAnOutOfDatePlanIsAConflict: a plan older than its data is
// refused with the reason (an edit since, a later plan) and stays held;
// the newest plan can be approved.
func TestApprovingAnOutOfDatePlanIsAConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	s := e.syncer(ten.ID)
	everyone := people(20)
	s.run(everyone)
	first := s.run(everyone[:10])

	if r := e.patchUser(ten.ID, everyone[15].ID, `{"displayName": "Renamed"}`, "application/json"); r.status != http.StatusOK {
		t.Fatalf("edit: %d %s", r.status, r.body)
	}
	conflict(t, "approve after an edit", e.decide(ten.ID, first.ID, "approve"),
		"the plan is out of date", "was edited through the API", "sync again")
	if got := e.getRun(ten.ID, first.ID); got.Status != "awaiting_approval" || got.DecidedAt != nil {
		t.Fatalf("the refused run %+v; want it still held", got)
	}

	later := s.run(everyone[:10])
	conflict(t, "approve a replaced plan", e.decide(ten.ID, first.ID, "approve"),
		fmt.Sprintf("run %d was planned after this one", later.Seq))
	e.decided(e.decide(ten.ID, later.ID, "approve"), "succeeded")
	if got := e.userIDs(ten.ID); !slices.Equal(got, ids(everyone[:10])) {
		t.Fatalf("%d users after approving the later plan, want 10", len(got))
	}
}

// TestReviewRoutesRefuseBadInput: the plan, approve, reject and
// notification routes name what is wrong with a request, and answer 404
// for what does not exist.
func TestReviewRoutesRefuseBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten, other := e.createTenant(), e.createTenant()
	ctx := context.Background()
	queued, err := e.st.CreateRun(ctx, store.NewRun{TenantID: ten.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
	must(t, err)
	theirs, err := e.st.CreateRun(ctx, store.NewRun{TenantID: other.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
	must(t, err)
	unknown := uuid.NewString()
	runs := "/v1/tenants/" + ten.ID + "/syncs/"
	planPath := runs + queued.ID + "/plan"
	notes := "/v1/tenants/" + ten.ID + "/notifications"
	for _, c := range []struct {
		method, path, body string
		status             int
		field, message     string
	}{
		{"GET", "/v1/tenants/" + unknown + "/syncs/" + queued.ID + "/plan", "", 404, "", "run not found"},
		{"GET", runs + unknown + "/plan", "", 404, "", "run not found"},
		{"GET", runs + theirs.ID + "/plan", "", 404, "", "run not found"},
		{"GET", runs + unknown + "/plan?after=" + cursorOf("3"), "", 404, "", "run not found"},
		{"GET", runs + "42/plan", "", 400, "runId", "runId must be a UUID"},
		{"GET", "/v1/tenants/x/syncs/" + queued.ID + "/plan", "", 400, "tenantId", "tenantId must be a UUID"},
		{"GET", planPath + "?after=" + cursorOf("x"), "", 400, "after", "after must be the next cursor of a previous page"},
		{"GET", planPath + "?after=" + cursorOf("-3"), "", 400, "after", "after must be the next cursor"},
		{"GET", planPath + "?after=%21%21", "", 400, "after", "after must be the next cursor"},
		{"GET", planPath + "?limit=0", "", 400, "limit", "limit must be an integer from 1 to 1000"},
		{"GET", planPath + "?action=removeUser", "", 400, "action", "action is not a known query parameter"},
		{"POST", runs + unknown + "/approve", "", 404, "", "run not found"},
		{"POST", runs + theirs.ID + "/reject", "", 404, "", "run not found"},
		{"POST", "/v1/tenants/" + unknown + "/syncs/" + queued.ID + "/approve", "", 404, "", "run not found"},
		{"POST", runs + "nope/approve", "", 400, "runId", "runId must be a UUID"},
		{"POST", runs + "nope/reject", "", 400, "runId", "runId must be a UUID"},
		{"POST", runs + queued.ID + "/approve", `{"comment": "ok"}`, 400, "", "this request takes no body"},
		{"POST", runs + queued.ID + "/reject", `{}`, 400, "", "this request takes no body"},
		{"POST", runs + queued.ID + "/approve?force=true", "", 400, "force", "force is not a known query parameter"},
		{"GET", "/v1/tenants/" + unknown + "/notifications", "", 404, "", "tenant not found"},
		{"GET", "/v1/tenants/" + unknown + "/notifications?after=" + cursorOf("2030-01-01T00:00:00Z "+unknown), "", 404, "", "tenant not found"},
		{"GET", "/v1/tenants/nope/notifications", "", 400, "tenantId", "tenantId must be a UUID"},
		{"GET", notes + "?after=%21%21", "", 400, "after", "after must be the next cursor"},
		{"GET", notes + "?after=" + cursorOf("2030-01-01T00:00:00Z"), "", 400, "after", "after must be the next cursor"},
		{"GET", notes + "?after=" + cursorOf("yesterday "+unknown), "", 400, "after", "after must be the next cursor"},
		{"GET", notes + "?after=" + cursorOf("2030-01-01T00:00:00Z not-an-id"), "", 400, "after", "after must be the next cursor"},
		{"GET", notes + "?limit=1001", "", 400, "limit", "limit must be an integer from 1 to 1000"},
		{"GET", notes + "?kind=run_held", "", 400, "kind", "kind is not a known query parameter"},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		r := e.do(c.method, c.path, body)
		var out errorAnswer
		r.decode(t, &out)
		if r.status != c.status || out.Error.Field != c.field || !strings.Contains(out.Error.Message, c.message) {
			t.Errorf("%s %s: %d %s; want %d naming %q with %q", c.method, c.path, r.status, r.body, c.status, c.field, c.message)
		}
	}

	// A run not planned yet has an empty plan, and nothing to decide.
	r := e.do("GET", planPath, nil)
	if r.status != http.StatusOK || string(bytes.TrimSpace(r.body)) != `{"summary":null,"items":[],"next":null}` {
		t.Fatalf("plan of a queued run: %d %s", r.status, r.body)
	}
	if r := e.do("GET", planPath+"?after="+cursorOf("5"), nil); r.status != http.StatusOK {
		t.Fatalf("plan of a queued run past a cursor: %d %s", r.status, r.body)
	}
	if got := e.getRun(ten.ID, queued.ID); got.Plan != nil || got.HeldReason != nil || got.HeldMessage == nil || *got.HeldMessage != "" {
		t.Fatalf("queued run %+v; want no plan and not held", got)
	}
	conflict(t, "approve a queued run", e.decide(ten.ID, queued.ID, "approve"), "not awaiting approval", "run 1 is queued")
	conflict(t, "reject a queued run", e.decide(ten.ID, queued.ID, "reject"), "not awaiting approval", "run 1 is queued")
	if got := e.getRun(ten.ID, queued.ID); got.Status != "queued" {
		t.Fatalf("the refused decisions changed the run: %+v", got)
	}
	for _, c := range []struct{ method, path, allow string }{
		{"GET", runs + queued.ID + "/approve", "POST"},
		{"DELETE", runs + queued.ID + "/reject", "POST"},
		{"POST", planPath, "GET"},
		{"POST", notes, "GET"},
	} {
		if r := e.do(c.method, c.path, nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d, Allow %q; want 405 allowing %s", c.method, c.path, r.status, r.header.Get("Allow"), c.allow)
		}
	}
	// A tenant without notifications has an empty list.
	if r := e.do("GET", notes, nil); r.status != http.StatusOK || string(bytes.TrimSpace(r.body)) != `{"items":[],"next":null}` {
		t.Fatalf("notifications of a quiet tenant: %d %s", r.status, r.body)
	}
}

type notificationItem struct {
	ID          string     `json:"id"`
	Kind        string     `json:"kind"`
	RunID       *string    `json:"runId"`
	Recipients  []string   `json:"recipients"`
	Subject     string     `json:"subject"`
	Text        string     `json:"text"`
	CreatedAt   time.Time  `json:"createdAt"`
	DeliveredAt *time.Time `json:"deliveredAt"`
}

// TestNotificationsArePagedNewestFirst: a tenant's notifications come
// newest first, a page at a time, each with its run.
func TestNotificationsArePagedNewestFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	if r := e.patch(ten.ID, `{"seats": 2}`); r.status != http.StatusOK {
		t.Fatalf("seats: %d %s", r.status, r.body)
	}
	s := e.syncer(ten.ID)
	users := people(5)
	short := s.run(users[:3]) // seats_exhausted
	e.setReview(ten.ID)
	second := s.run(users[:4]) // run_held
	e.decided(e.decide(ten.ID, second.ID, "reject"), "rejected")
	third := s.run(users) // run_held
	want := []struct{ kind, run string }{{"run_held", third.ID}, {"run_held", second.ID}, {"seats_exhausted", short.ID}}

	_, items, pages := walk(e, "/v1/tenants/"+ten.ID+"/notifications", 1, func(n notificationItem) string { return n.ID })
	if pages != 3 || len(items) != 3 {
		t.Fatalf("%d pages of %d notifications, want 3 of 1", pages, len(items))
	}
	for i, n := range items {
		if n.Kind != want[i].kind || n.RunID == nil || *n.RunID != want[i].run || n.Subject == "" || n.Text == "" ||
			n.Recipients == nil || n.DeliveredAt != nil || n.CreatedAt.IsZero() {
			t.Errorf("notification %d: %+v; want %s of run %s", i, n, want[i].kind, want[i].run)
		}
		if i > 0 && !n.CreatedAt.Before(items[i-1].CreatedAt) {
			t.Errorf("notification %d at %s is not older than the one before, at %s", i, n.CreatedAt, items[i-1].CreatedAt)
		}
	}
	if !strings.Contains(items[2].Text, "All 2 seats") {
		t.Errorf("seats_exhausted text %q", items[2].Text)
	}
	raw := e.do("GET", "/v1/tenants/"+ten.ID+"/notifications?limit=1", nil).body
	for _, k := range []string{`"deliveredAt":null`, `"recipients":[]`} {
		if !bytes.Contains(raw, []byte(k)) {
			t.Errorf("notification answer lacks %s: %s", k, raw)
		}
	}
	if _, all, pages := walk(e, "/v1/tenants/"+ten.ID+"/notifications", 0, func(n notificationItem) string { return n.ID }); pages != 1 || len(all) != 3 {
		t.Fatalf("default page: %d pages of %d", pages, len(all))
	}
}
