package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

// publishTimeout bounds how long a trigger waits for JetStream before it
// answers 503 and leaves the run to the scheduler's sweeper.
const publishTimeout = 5 * time.Second

// queueJob puts a run's job on SYNC_JOBS. The job of a waiting run that a
// trigger joined (created false) is normally there already; it is
// published only if it is not (lost before it got there), rather than
// leaving it to the scheduler's sweep.
func (s *Server) queueJob(ctx context.Context, created bool, job *syncv1.SyncJob) error {
	if !created {
		if queued, err := s.bus.JobQueued(ctx, job.GetTenantId(), job.GetRunId()); err == nil && queued {
			return nil
		}
	}
	return s.bus.PublishJob(ctx, job)
}

// errNotPublished means a run was recorded but its job could not be put on
// SYNC_JOBS in time; the scheduler's sweeper publishes it later.
var errNotPublished = errors.New("api: run recorded but its job not published")

// queueSync is what a manual trigger does: it records a run of the tenant
// (or joins the one waiting for a fetcher, which reads the directory when
// it starts) and publishes its job. With errNotPublished the run is
// returned too.
func (s *Server) queueSync(ctx context.Context, tenantID, kind string) (store.Run, error) {
	run, created, err := s.st.QueueManualRunOf(ctx, tenantID, kind)
	if err != nil {
		return store.Run{}, err
	}
	log := s.log.With().Str("tenant", tenantID).Str("run", run.ID).Bool("joined_waiting_run", !created).Logger()
	// The request may be cancelled by the client; the publish should still
	// have its chance, since the run is already recorded.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	job := bus.NewJob(run.TenantID, run.ID, run.Seq, run.Kind == store.KindDelta, run.Trigger == store.TriggerSchedule,
		run.CreatedAt)
	if err := s.queueJob(pctx, created, job); err != nil {
		log.Warn().Err(err).Msg("run recorded but its job could not be published; the scheduler will publish it")
		return run, fmt.Errorf("%w: %w", errNotPublished, err)
	}
	log.Info().Int64("run_seq", run.Seq).Msg("sync queued")
	return run, nil
}

// syncRequest is the optional body of POST .../syncs.
type syncRequest struct {
	Kind string `json:"kind"`
}

// triggerSync starts a manual run: POST /v1/tenants/{tenantId}/syncs. The
// run reads what changed, or the whole directory when the rule says so
// (plan.RunKind) or the body asks for {"kind": "full"} (the contract
// allows nothing else).
func (s *Server) triggerSync(w http.ResponseWriter, r *http.Request) {
	id := pathID(r, "tenantId")
	kind := store.KindAuto
	raw, err := checkedBody(r)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if len(raw) > 0 {
		var body syncRequest
		if err := json.Unmarshal(raw, &body); err != nil {
			s.internal(w, r, fmt.Errorf("api: decode a sync request the contract accepted: %w", err))
			return
		}
		if body.Kind == store.KindFull {
			kind = store.KindFull
		}
	}
	run, err := s.queueSync(r.Context(), id, kind)
	switch {
	case errors.Is(err, errNotPublished):
		writeJSON(w, http.StatusServiceUnavailable, errorBody{
			Error: apiError{Code: "unavailable", Message: "the run was recorded but could not be queued now; " +
				"it will be queued automatically within minutes"},
			RunID: run.ID,
		})
		return
	case err != nil:
		s.storeError(w, r, err, "tenant")
		return
	}
	w.Header().Set("Location", "/v1/tenants/"+id+"/syncs/"+run.ID)
	writeJSON(w, http.StatusAccepted, map[string]string{"runId": run.ID})
}

// runView is a run as the api shows it.
type runView struct {
	RunID         string           `json:"runId"`
	TenantID      string           `json:"tenantId"`
	Seq           int64            `json:"seq"`
	Kind          string           `json:"kind"`
	ReadStrategy  string           `json:"readStrategy"`
	Trigger       string           `json:"trigger"`
	Status        string           `json:"status"`
	Error         string           `json:"error"`
	Counts        map[string]int64 `json:"counts"`
	GraphRequests int64            `json:"graphRequests"`
	Throttled     int64            `json:"throttled"`
	CreatedAt     time.Time        `json:"createdAt"`
	StartedAt     *time.Time       `json:"startedAt"`
	FinishedAt    *time.Time       `json:"finishedAt"`
	// HeldReason is why the run's plan waited for an admin; it stays after
	// the decision, so the history shows it. Null when it never waited.
	HeldReason  *string `json:"heldReason"`
	HeldMessage string  `json:"heldMessage"`
	// Plan counts the plan's items per action; null until the run was
	// planned.
	Plan      map[string]int64 `json:"plan"`
	DecidedAt *time.Time       `json:"decidedAt"`
}

// getRun shows a run: GET /v1/tenants/{tenantId}/syncs/{runId}.
func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	tenantID, runID := pathID(r, "tenantId"), pathID(r, "runId")
	run, err := s.st.GetRun(r.Context(), tenantID, runID)
	if err != nil {
		s.storeError(w, r, err, "run")
		return
	}
	writeJSON(w, http.StatusOK, viewOfRun(run))
}

func viewOfRun(run store.Run) runView {
	counts := run.Counts
	if counts == nil {
		counts = map[string]int64{}
	}
	var held *string
	if run.HeldReason != "" {
		held = &run.HeldReason
	}
	return runView{
		RunID: run.ID, TenantID: run.TenantID, Seq: run.Seq, Kind: run.Kind, ReadStrategy: run.ReadStrategy, Trigger: run.Trigger,
		Status: run.Status, Error: run.Error, Counts: counts,
		GraphRequests: run.GraphRequests, Throttled: run.Throttled,
		CreatedAt: run.CreatedAt.UTC(), StartedAt: utc(run.StartedAt), FinishedAt: utc(run.FinishedAt),
		HeldReason: held, HeldMessage: run.HeldMessage, Plan: run.PlanSummary, DecidedAt: utc(run.DecidedAt),
	}
}

// listRuns lists a tenant's runs, newest first:
// GET /v1/tenants/{tenantId}/syncs. The cursor is the last run's sequence
// number; a tenant's runs are numbered 1, 2, 3... without gaps, so the
// list ends at run 1.
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	tenantID, after, limit, ok := s.listParams(w, r)
	if !ok {
		return
	}
	var before int64
	if after != "" {
		n, err := strconv.ParseInt(after, 10, 64)
		if err != nil || n < 1 {
			writeBadRequest(w, badCursor())
			return
		}
		before = n
	}
	runs, err := s.st.ListRuns(r.Context(), tenantID, before, limit)
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	out := page[runView]{Items: make([]runView, 0, len(runs))}
	for _, run := range runs {
		out.Items = append(out.Items, viewOfRun(run))
	}
	if n := len(runs); n == limit && runs[n-1].Seq > 1 {
		out.Next = cursor(strconv.FormatInt(runs[n-1].Seq, 10))
	}
	writeJSON(w, http.StatusOK, out)
}

// page is one page of a list; Next is null on the last page.
type page[T any] struct {
	Items []T     `json:"items"`
	Next  *string `json:"next"`
}

type groupView struct {
	EntraID           string `json:"entraId"`
	DisplayName       string `json:"displayName"`
	Kind              string `json:"kind"`
	Status            string `json:"status"`
	Dynamic           bool   `json:"dynamic"`
	EntraMemberCount  int    `json:"entraMemberCount"`
	SyncedMemberCount int    `json:"syncedMemberCount"`
	// LastResult is null until a run was applied.
	LastResult *groupResult `json:"lastResult"`
}

// groupResult is how the last applied run fared with a group: green, or
// red with Graph's message.
type groupResult struct {
	OK    bool      `json:"ok"`
	Error *string   `json:"error"`
	At    time.Time `json:"at"`
}

func groupResultOf(g store.AppGroup) *groupResult {
	if g.LastResultAt == nil {
		return nil
	}
	return &groupResult{OK: g.LastOK, Error: nonEmpty(g.LastError), At: g.LastResultAt.UTC()}
}

// listGroups lists a tenant's groups: GET /v1/tenants/{tenantId}/groups.
func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	tenantID, after, limit, ok := s.listParams(w, r)
	if !ok {
		return
	}
	groups, next, err := s.st.ListAppGroups(r.Context(), tenantID, after, limit)
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	out := page[groupView]{Items: make([]groupView, 0, len(groups)), Next: cursor(next)}
	for _, g := range groups {
		out.Items = append(out.Items, groupView{EntraID: g.EntraID, DisplayName: g.DisplayName, Kind: g.Kind,
			Status: g.Status, Dynamic: g.Dynamic, EntraMemberCount: g.EntraMemberCount, SyncedMemberCount: g.SyncedMemberCount,
			LastResult: groupResultOf(g)})
	}
	writeJSON(w, http.StatusOK, out)
}

// groupDetailView is one group with its details: GET .../groups/{entraId}.
type groupDetailView struct {
	EntraID           string        `json:"entraId"`
	DisplayName       string        `json:"displayName"`
	Kind              string        `json:"kind"`
	Status            string        `json:"status"`
	Enabled           bool          `json:"enabled"`
	Dynamic           bool          `json:"dynamic"`
	EntraMemberCount  int           `json:"entraMemberCount"`
	SyncedMemberCount int           `json:"syncedMemberCount"`
	LastResult        *groupResult  `json:"lastResult"`
	Mail              *string       `json:"mail"`
	Description       *string       `json:"description"`
	MembershipType    string        `json:"membershipType"`
	MembershipRule    *string       `json:"membershipRule"`
	EntraUpdatedAt    *time.Time    `json:"entraUpdatedAt"`
	NestedGroups      []namedObject `json:"nestedGroups"`
	NestedGroupCount  int           `json:"nestedGroupCount"`
	Devices           []namedObject `json:"devices"`
	DeviceCount       int           `json:"deviceCount"`
	Contacts          int           `json:"contacts"`
	Roles             []string      `json:"roles"`
	Sharing           []string      `json:"sharing"`
}

// namedObject is a directory object by id and name.
type namedObject struct {
	EntraID     string `json:"entraId"`
	DisplayName string `json:"displayName"`
}

func namedObjects(in []store.NamedObject) []namedObject {
	out := make([]namedObject, len(in))
	for i, o := range in {
		out[i] = namedObject(o)
	}
	return out
}

// getGroup shows one group with its details:
// GET /v1/tenants/{tenantId}/groups/{entraId}.
func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	tenantID, groupID := pathID(r, "tenantId"), pathID(r, "entraId")
	g, err := s.st.GetAppGroup(r.Context(), tenantID, groupID)
	if err != nil {
		s.groupError(w, r, tenantID, groupID, err)
		return
	}
	membership := "assigned"
	if g.Dynamic {
		membership = "dynamic"
	}
	var updated *time.Time
	if g.EntraUpdatedAt != nil {
		u := g.EntraUpdatedAt.UTC()
		updated = &u
	}
	writeJSON(w, http.StatusOK, groupDetailView{EntraID: g.EntraID, DisplayName: g.DisplayName, Kind: g.Kind,
		Status: g.Status, Enabled: g.Enabled, Dynamic: g.Dynamic, EntraMemberCount: g.EntraMemberCount,
		SyncedMemberCount: g.SyncedMemberCount, LastResult: groupResultOf(g.AppGroup), Mail: nonEmpty(g.Mail),
		Description: nonEmpty(g.Description), MembershipType: membership, MembershipRule: nonEmpty(g.MembershipRule),
		EntraUpdatedAt: updated, NestedGroups: namedObjects(g.NestedGroups), NestedGroupCount: g.NestedGroupsCount,
		Devices: namedObjects(g.Devices), DeviceCount: g.DevicesCount, Contacts: g.Contacts, Roles: g.Roles,
		Sharing: g.Sharing})
}

// listParams reads the tenant id, the cursor and the limit of a list of
// the tenant's. The contract has checked their form; what it cannot know
// is whether a cursor is one this api gave out.
func (s *Server) listParams(w http.ResponseWriter, r *http.Request) (tenantID, after string, limit int, ok bool) {
	tenantID = pathID(r, "tenantId")
	if after, limit, ok = s.pageParams(w, r); !ok {
		return "", "", 0, false
	}
	// The store tells an unknown tenant from an empty list on a first
	// page; past a cursor only a look at the tenant can.
	if after != "" {
		if _, err := s.st.GetTenant(r.Context(), tenantID); err != nil {
			s.storeError(w, r, err, "tenant")
			return "", "", 0, false
		}
	}
	return tenantID, after, limit, true
}

// pageParams reads the limit of a list and its cursor, unwrapped: the
// store's position, which the caller parses.
func (s *Server) pageParams(w http.ResponseWriter, r *http.Request) (after string, limit int, ok bool) {
	q := r.URL.Query()
	limit = s.defaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeBadRequest(w, invalid("limit", "limit must be an integer"))
			return "", 0, false
		}
		limit = n
	}
	if v := q.Get("after"); v != "" {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(raw) == 0 {
			writeBadRequest(w, badCursor())
			return "", 0, false
		}
		after = string(raw)
	}
	return after, limit, true
}

// badCursor is the answer to an after the api did not give out.
func badCursor() error { return invalid("after", "after must be the next cursor of a previous page") }

// cursor wraps the store's position in an opaque token: clients must not
// build one, and the store may change what it holds.
func cursor(next string) *string {
	if next == "" {
		return nil
	}
	c := base64.RawURLEncoding.EncodeToString([]byte(next))
	return &c
}

// pathID returns a UUID path parameter in lower case, the form the store
// keeps. The contract has refused malformed ones.
func pathID(r *http.Request, name string) string {
	id, _ := parseGUID(r.PathValue(name))
	return id
}

// storeError answers for an error from the store: 404 for what does not
// exist, 400 for what the store refused as invalid (naming the setting
// when it is one), 409 for a disconnected tenant or a conflicting write,
// 500 otherwise (logged, not shown).
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error, what string) {
	var fe *plan.FieldError
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "", what+" not found")
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, "invalid_request", fe.Field, fe.Message)
	case errors.Is(err, store.ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid_request", "", reason(err, store.ErrInvalid, "the request was refused as invalid"))
	case errors.Is(err, store.ErrNotHeld), errors.Is(err, store.ErrStalePlan), errors.Is(err, store.ErrNoSeat):
		// The store says why, for the admin: which later run replaced
		// the plan, what was edited since, how many seats are used.
		writeError(w, http.StatusConflict, "conflict", "", reason(err, store.ErrConflict, what+" changed meanwhile"))
	case errors.Is(err, store.ErrDisconnected):
		id := pathID(r, "tenantId")
		writeError(w, http.StatusConflict, "conflict", "", "tenant "+id+" is disconnected and is not synced; "+
			"connect it again with POST /v1/tenants/"+id+"/connect")
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "", what+" changed meanwhile; try again")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "request cancelled")
	default:
		s.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("store error")
		writeError(w, http.StatusInternalServerError, "internal", "", "internal error")
	}
}

// reason returns the part of a store error written for people: what
// follows the sentinel it wraps ("the plan is out of date: run 7 was
// planned after this one ..."), without the store's context of
// operations and ids before it; fallback when there is none.
func reason(err, sentinel error, fallback string) string {
	msg, prefix := err.Error(), sentinel.Error()+": "
	if i := strings.LastIndex(msg, prefix); i >= 0 && i+len(prefix) < len(msg) {
		return msg[i+len(prefix):]
	}
	return fallback
}

// internal answers 500 for a defect of this api (the error is logged,
// not shown).
func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("internal error")
	writeError(w, http.StatusInternalServerError, "internal", "", "internal error")
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// readyTimeout bounds each dependency check of /readyz.
const readyTimeout = 2 * time.Second

// ready is the readiness probe: 200 when Postgres answers and the NATS
// connection is up, 503 naming what is not. Details go to the log, not to
// the unauthenticated caller.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	checks := map[string]string{"postgres": "ok", "nats": "ok"}
	status := http.StatusOK
	if err := s.st.Ping(ctx); err != nil {
		s.log.Warn().Err(err).Msg("readiness: postgres does not answer")
		checks["postgres"], status = "unavailable", http.StatusServiceUnavailable
	}
	if err := s.bus.Connected(); err != nil {
		s.log.Warn().Err(err).Msg("readiness: nats is not connected")
		checks["nats"], status = "unavailable", http.StatusServiceUnavailable
	}
	state := "ready"
	if status != http.StatusOK {
		state = "unavailable"
	}
	writeJSON(w, status, readiness{Status: state, Checks: checks})
}

// readiness is the answer of /readyz.
type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}
