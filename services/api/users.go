package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/entrasync/entrasync/libs/store"
)

// userView is an app user as the api shows it.
type userView struct {
	EntraID     string `json:"entraId"`
	Email       string `json:"email"`
	DisplayName string `json:"displayName"`
	Enabled     bool   `json:"enabled"`
	License     string `json:"license"`
	// LicenseDisabledAt is when an admin disabled the license; null
	// otherwise (a disabled account's license is not "disabled by an
	// admin").
	LicenseDisabledAt *time.Time `json:"licenseDisabledAt"`
	// Edited says the display name or email was edited through the api.
	Edited bool     `json:"edited"`
	Roles  []string `json:"roles"`
}

func newUserView(u store.AppUser) userView {
	roles := u.Roles
	if roles == nil {
		roles = []string{} // a list for clients, whatever the store held
	}
	return userView{EntraID: u.EntraID, Email: u.Email, DisplayName: u.DisplayName, Enabled: u.Enabled,
		License: u.License, LicenseDisabledAt: utc(u.LicenseDisabledAt), Edited: u.Edited, Roles: roles}
}

// listUsers lists a tenant's app users: GET /v1/tenants/{tenantId}/users.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	tenantID, after, limit, ok := s.listParams(w, r)
	if !ok {
		return
	}
	users, next, err := s.st.ListAppUsers(r.Context(), tenantID, after, limit)
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	out := page[userView]{Items: make([]userView, 0, len(users)), Next: cursor(next)}
	for _, u := range users {
		out.Items = append(out.Items, newUserView(u))
	}
	writeJSON(w, http.StatusOK, out)
}

// getUser shows one app user: GET /v1/tenants/{tenantId}/users/{entraId}.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.st.GetAppUser(r.Context(), pathID(r, "tenantId"), pathID(r, "entraId"))
	if err != nil {
		s.storeError(w, r, err, "user")
		return
	}
	writeJSON(w, http.StatusOK, newUserView(u))
}

// userPatch is the body of PATCH .../users/{entraId}: members left out
// stay as they are (the contract refuses null).
type userPatch struct {
	DisplayName *string   `json:"displayName"`
	Email       *string   `json:"email"`
	License     *string   `json:"license"`
	Roles       *[]string `json:"roles"`
}

// updateUser applies an admin's edit to an app user:
// PATCH /v1/tenants/{tenantId}/users/{entraId}.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) {
	tenantID, entraID := pathID(r, "tenantId"), pathID(r, "entraId")
	raw, err := checkedBody(r)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	var p userPatch
	if err := json.Unmarshal(raw, &p); err != nil {
		s.internal(w, r, fmt.Errorf("api: decode a user patch the contract accepted: %w", err))
		return
	}
	if p.Roles != nil {
		// Roles are a set: a role named twice is given once.
		roles := slices.Clone(*p.Roles)
		slices.Sort(roles)
		roles = slices.Compact(roles)
		p.Roles = &roles
	}
	u, err := s.st.UpdateAppUser(r.Context(), tenantID, entraID, store.UserPatch{
		DisplayName: p.DisplayName, Email: p.Email, License: p.License, Roles: p.Roles,
	})
	if err != nil {
		s.storeError(w, r, err, "user")
		return
	}
	// Which fields changed, not their values: names and emails are
	// personal data.
	s.log.Info().Str("tenant", tenantID).Str("user", entraID).
		Bool("display_name", p.DisplayName != nil).Bool("email", p.Email != nil).
		Bool("license", p.License != nil).Bool("roles", p.Roles != nil).Msg("user edited")
	writeJSON(w, http.StatusOK, newUserView(u))
}
