package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/entrasync/entrasync/libs/store"
)

// tenantView is a tenant as the api shows it: never with its secret.
type tenantView struct {
	ID                  string      `json:"id"`
	Name                string      `json:"name"`
	EntraTenantID       string      `json:"entraTenantId"`
	ClientID            string      `json:"clientId"`
	Seats               int         `json:"seats"`
	SyncIntervalMinutes int64       `json:"syncIntervalMinutes"`
	CreatedAt           time.Time   `json:"createdAt"`
	UpdatedAt           time.Time   `json:"updatedAt"`
	LastRun             *runSummary `json:"lastRun,omitempty"`
}

type runSummary struct {
	RunID      string     `json:"runId"`
	Status     string     `json:"status"`
	Trigger    string     `json:"trigger"`
	CreatedAt  time.Time  `json:"createdAt"`
	FinishedAt *time.Time `json:"finishedAt"`
}

func newTenantView(t store.Tenant) tenantView {
	return tenantView{
		ID: t.ID, Name: t.Name, EntraTenantID: t.EntraTenantID, ClientID: t.ClientID, Seats: t.Seats,
		SyncIntervalMinutes: int64(t.SyncInterval / time.Minute),
		CreatedAt:           t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC(),
	}
}

// viewWithLastRun is newTenantView with the tenant's latest run.
func (s *Server) viewWithLastRun(ctx context.Context, t store.Tenant) (tenantView, error) {
	v := newTenantView(t)
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

// tenantCreate is the body of POST /v1/tenants.
type tenantCreate struct {
	Name string `json:"name"`
	credentials
	Seats               int   `json:"seats"`
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
	if err := json.Unmarshal(raw, &body); err != nil {
		s.internal(w, r, fmt.Errorf("api: decode a tenant the contract accepted: %w", err))
		return
	}
	c := body.forStore()
	t, err := s.st.CreateTenant(r.Context(), store.NewTenant{
		Name: body.Name, EntraTenantID: c.EntraTenantID, ClientID: c.ClientID, ClientSecret: c.ClientSecret,
		Seats:        body.Seats,
		SyncInterval: time.Duration(body.SyncIntervalMinutes) * time.Minute, // 0: the store's default
	})
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	s.log.Info().Str("tenant", t.ID).Str("entra_tenant", t.EntraTenantID).Msg("tenant connected")
	w.Header().Set("Location", "/v1/tenants/"+t.ID)
	writeJSON(w, http.StatusCreated, newTenantView(t))
}

// getTenant shows a tenant: GET /v1/tenants/{tenantId}.
func (s *Server) getTenant(w http.ResponseWriter, r *http.Request) {
	t, err := s.st.GetTenant(r.Context(), pathID(r, "tenantId"))
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	s.writeTenant(w, r, http.StatusOK, t)
}

// writeTenant answers with a tenant and its latest run.
func (s *Server) writeTenant(w http.ResponseWriter, r *http.Request, status int, t store.Tenant) {
	v, err := s.viewWithLastRun(r.Context(), t)
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	writeJSON(w, status, v)
}
