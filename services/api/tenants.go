package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
)

// tenantView is a tenant as the api shows it: never with its secret. The
// settings are at the top level, in the shape PATCH takes them.
type tenantView struct {
	ID                  string             `json:"id"`
	Name                string             `json:"name"`
	EntraTenantID       string             `json:"entraTenantId"`
	ClientID            string             `json:"clientId"`
	Seats               int                `json:"seats"`
	Plan                plan.Tier          `json:"plan"`
	LocalEdits          plan.LocalEdits    `json:"localEdits"`
	ApplyMode           plan.ApplyMode     `json:"applyMode"`
	DeletionGuard       plan.DeletionGuard `json:"deletionGuard"`
	Scope               plan.Scope         `json:"scope"`
	SyncIntervalMinutes int64              `json:"syncIntervalMinutes"`
	Schedule            plan.Schedule      `json:"schedule"`
	NextRunAt           *time.Time         `json:"nextRunAt"`
	Connected           bool               `json:"connected"`
	DisconnectedAt      *time.Time         `json:"disconnectedAt"`
	Notify              notifyView         `json:"notify"`
	Groups              plan.GroupKinds    `json:"groups"`
	CreatedAt           time.Time          `json:"createdAt"`
	UpdatedAt           time.Time          `json:"updatedAt"`
	LastRun             *runSummary        `json:"lastRun,omitempty"`
}

// tenantUpdated is the answer to a settings change.
type tenantUpdated struct {
	tenantView
	// SyncRunID is the run queued because the scope changed.
	SyncRunID string `json:"syncRunId,omitempty"`
}

type runSummary struct {
	RunID      string     `json:"runId"`
	Status     string     `json:"status"`
	Trigger    string     `json:"trigger"`
	CreatedAt  time.Time  `json:"createdAt"`
	FinishedAt *time.Time `json:"finishedAt"`
}

func newTenantView(t store.Tenant) tenantView {
	set := t.Settings
	// Lists are [] rather than null for clients, whatever the store held.
	set.Normalize()
	return tenantView{
		ID: t.ID, Name: t.Name, EntraTenantID: t.EntraTenantID, ClientID: t.ClientID, Seats: t.Seats,
		Plan: set.Plan, LocalEdits: set.LocalEdits, ApplyMode: set.ApplyMode,
		DeletionGuard: set.DeletionGuard, Scope: set.Scope,
		SyncIntervalMinutes: int64(t.SyncInterval / time.Minute),
		Schedule:            set.Schedule,
		Connected:           t.Connected(), DisconnectedAt: utc(t.DisconnectedAt),
		Notify:    notifyView{Notify: set.Notify, SecretSet: t.NotifySecretSet},
		Groups:    set.Groups,
		CreatedAt: t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC(),
	}
}

// notifyView is the notify setting as the api shows it: with whether a
// signing secret was made, never with the secret.
type notifyView struct {
	plan.Notify
	SecretSet bool `json:"secretSet"`
}

// newNotifySecret makes a new webhook signing secret and returns it, the
// only time it is shown: POST /v1/tenants/{tenantId}/notify/secret.
func (s *Server) newNotifySecret(w http.ResponseWriter, r *http.Request) {
	id := pathID(r, "tenantId")
	secret, err := s.st.NewNotifySecret(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	s.log.Info().Str("tenant", id).Msg("new webhook signing secret")
	writeJSON(w, http.StatusOK, map[string]string{"secret": secret})
}

// scheduledView is newTenantView with when the schedule next starts a
// run (nil when none will: a manual schedule, a disconnected tenant), and
// syncIntervalMinutes as tenants showed it before schedules: an interval
// schedule's, else the interval the tenant was connected with.
func (s *Server) scheduledView(t store.Tenant) tenantView {
	v := newTenantView(t)
	sch := t.Settings.Schedule
	if sch.Kind == plan.ScheduleInterval {
		v.SyncIntervalMinutes = int64(sch.EveryMinutes)
	}
	if next, ok := sch.NextRun(t.ID, s.now()); ok && t.Connected() {
		v.NextRunAt = &next
	}
	return v
}

// viewWithLastRun is scheduledView with the tenant's latest run.
func (s *Server) viewWithLastRun(ctx context.Context, t store.Tenant) (tenantView, error) {
	v := s.scheduledView(t)
	runs, err := s.st.ListRuns(ctx, t.ID, 0, 1)
	if err != nil {
		return tenantView{}, err
	}
	if len(runs) > 0 {
		run := runs[0]
		v.LastRun = &runSummary{RunID: run.ID, Status: run.Status, Trigger: run.Trigger,
			CreatedAt: run.CreatedAt.UTC(), FinishedAt: utc(run.FinishedAt)}
	}
	return v, nil
}

// credentials are a tenant's Entra ID connection as requests carry it.
type credentials struct {
	EntraTenantID string `json:"entraTenantId"`
	ClientID      string `json:"clientId"`
	ClientSecret  string `json:"clientSecret"`
}

// forStore returns the credentials with their GUIDs in lower case, so that
// one directory has one spelling.
func (c credentials) forStore() store.Credentials {
	entra, _ := parseGUID(c.EntraTenantID)
	client, _ := parseGUID(c.ClientID)
	return store.Credentials{EntraTenantID: entra, ClientID: client, ClientSecret: c.ClientSecret}
}

// tenantCreate is the body of POST /v1/tenants but for the settings,
// which are decoded into plan.Settings from the same body.
type tenantCreate struct {
	Name string `json:"name"`
	credentials
	SyncIntervalMinutes int64 `json:"syncIntervalMinutes"`
}

// createTenant connects a tenant: POST /v1/tenants.
func (s *Server) createTenant(w http.ResponseWriter, r *http.Request) {
	raw, err := checkedBody(r)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	var body tenantCreate
	// Settings left out keep their defaults: Unmarshal only sets what
	// the body has, member by member inside deletionGuard and scope.
	settings := plan.DefaultSettings()
	if err := errors.Join(json.Unmarshal(raw, &body), json.Unmarshal(raw, &settings)); err != nil {
		s.internal(w, r, fmt.Errorf("api: decode a tenant the contract accepted: %w", err))
		return
	}
	settings.Normalize()
	if err := settings.Validate(); err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	c := body.forStore()
	t, err := s.st.CreateTenant(r.Context(), store.NewTenant{
		Name: body.Name, EntraTenantID: c.EntraTenantID, ClientID: c.ClientID, ClientSecret: c.ClientSecret,
		Seats:        settings.Seats,
		SyncInterval: time.Duration(body.SyncIntervalMinutes) * time.Minute, // 0: the store's default
		Settings:     &settings,
	})
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	s.log.Info().Str("tenant", t.ID).Str("entra_tenant", t.EntraTenantID).Str("plan", string(t.Settings.Plan)).
		Msg("tenant connected")
	w.Header().Set("Location", "/v1/tenants/"+t.ID)
	v := s.scheduledView(t)
	writeJSON(w, http.StatusCreated, v)
}

// getTenant shows a tenant: GET /v1/tenants/{tenantId}.
func (s *Server) getTenant(w http.ResponseWriter, r *http.Request) {
	t, err := s.st.GetTenant(r.Context(), pathID(r, "tenantId"))
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	s.writeTenant(w, r, http.StatusOK, t, "")
}

// writeTenant answers with a tenant and its latest run.
func (s *Server) writeTenant(w http.ResponseWriter, r *http.Request, status int, t store.Tenant, syncRunID string) {
	v, err := s.viewWithLastRun(r.Context(), t)
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	if syncRunID == "" {
		writeJSON(w, status, v)
		return
	}
	writeJSON(w, status, tenantUpdated{tenantView: v, SyncRunID: syncRunID})
}

// updateSettings changes a tenant's settings by a JSON merge patch:
// PATCH /v1/tenants/{tenantId}. A change of who is in scope queues a sync
// at once, so the application does not wait a day to follow it.
func (s *Server) updateSettings(w http.ResponseWriter, r *http.Request) {
	id := pathID(r, "tenantId")
	raw, err := checkedBody(r)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	// The patch applies to the settings as they are when the store holds
	// the tenant's lock: two admins patching different settings at once
	// both get their change.
	var mergeErr error
	t, change, err := s.st.ChangeSettings(r.Context(), id, func(cur plan.Settings) (plan.Settings, error) {
		settings, err := mergeSettings(cur, raw)
		if err != nil {
			mergeErr = err
			return plan.Settings{}, err
		}
		settings.Normalize()
		return settings, settings.Validate()
	})
	switch {
	case mergeErr != nil:
		s.internal(w, r, mergeErr)
		return
	case err != nil:
		s.storeError(w, r, err, "tenant")
		return
	}
	log := s.log.With().Str("tenant", id).Logger()
	if change.Changed {
		log.Info().Bool("scope_changed", change.ScopeChanged).Msg("settings changed")
	}
	var runID string
	if change.ScopeChanged && t.Connected() {
		// The settings are stored: their sync is queued even if the
		// client stops waiting for the answer.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), publishTimeout)
		defer cancel()
		run, err := s.queueSync(ctx, id, store.KindAuto)
		switch {
		case err == nil, errors.Is(err, errNotPublished):
			// A recorded run is the answer even when its job waits for
			// the scheduler's sweeper: it will run.
			runID = run.ID
		default:
			// The settings are stored; the next scheduled sync follows
			// them. Failing the request would suggest they were not.
			log.Warn().Err(err).Msg("scope changed but no sync could be queued")
		}
	}
	s.writeTenant(w, r, http.StatusOK, t, runID)
}

// mergeSettings applies a JSON merge patch (RFC 7386) to settings in
// their JSON form and reads the result back. The contract lets only
// settings members through, none of them null, so the result is always
// whole settings; Validate judges their values.
func mergeSettings(cur plan.Settings, patch []byte) (plan.Settings, error) {
	target, err := json.Marshal(cur)
	if err != nil {
		return plan.Settings{}, fmt.Errorf("api: encode settings: %w", err)
	}
	var t, p any
	if err := errors.Join(unmarshalNumbers(target, &t), unmarshalNumbers(patch, &p)); err != nil {
		return plan.Settings{}, fmt.Errorf("api: decode settings and their patch: %w", err)
	}
	// A schedule is replaced whole: the members of one kind mean nothing
	// to another (a daily schedule has no everyMinutes).
	if pm, ok := p.(map[string]any); ok && pm["schedule"] != nil {
		if tm, ok := t.(map[string]any); ok {
			delete(tm, "schedule")
		}
	}
	merged, err := json.Marshal(mergePatch(t, p))
	if err != nil {
		return plan.Settings{}, fmt.Errorf("api: encode patched settings: %w", err)
	}
	out := plan.DefaultSettings()
	if err := json.Unmarshal(merged, &out); err != nil {
		return plan.Settings{}, fmt.Errorf("api: decode patched settings: %w", err)
	}
	return out, nil
}

// unmarshalNumbers decodes JSON keeping numbers as written, so that a
// patch's integers reach plan.Settings without a trip through float64.
func unmarshalNumbers(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// mergePatch is RFC 7386's MergePatch: members of an object patch replace
// the target's one by one (recursively for objects, null removing one);
// anything else replaces the target whole.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}

// disconnectTenant stops syncing a tenant and forgets its secret:
// POST /v1/tenants/{tenantId}/disconnect.
func (s *Server) disconnectTenant(w http.ResponseWriter, r *http.Request) {
	t, err := s.st.DisconnectTenant(r.Context(), pathID(r, "tenantId"))
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	s.log.Info().Str("tenant", t.ID).Msg("tenant disconnected")
	s.writeTenant(w, r, http.StatusOK, t, "")
}

// connectTenant stores new credentials and connects a tenant again:
// POST /v1/tenants/{tenantId}/connect.
func (s *Server) connectTenant(w http.ResponseWriter, r *http.Request) {
	raw, err := checkedBody(r)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	var c credentials
	if err := json.Unmarshal(raw, &c); err != nil {
		s.internal(w, r, fmt.Errorf("api: decode credentials the contract accepted: %w", err))
		return
	}
	t, err := s.st.ConnectTenant(r.Context(), pathID(r, "tenantId"), c.forStore())
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	s.log.Info().Str("tenant", t.ID).Str("entra_tenant", t.EntraTenantID).Msg("tenant connected again")
	s.writeTenant(w, r, http.StatusOK, t, "")
}
