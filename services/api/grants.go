package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
)

// Roles and sharing permissions: the tenant's catalogue, their bindings
// to groups, and what a user holds and through which groups.

// grantNameView is a role or sharing permission of the catalogue.
type grantNameView struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Builtin bool   `json:"builtin"`
}

// The catalogue's routes, one per kind.
func (s *Server) putRole(w http.ResponseWriter, r *http.Request) { s.putGrantName(plan.KindRole)(w, r) }
func (s *Server) deleteRole(w http.ResponseWriter, r *http.Request) {
	s.deleteGrantName(plan.KindRole)(w, r)
}
func (s *Server) putSharing(w http.ResponseWriter, r *http.Request) {
	s.putGrantName(plan.KindSharing)(w, r)
}
func (s *Server) deleteSharing(w http.ResponseWriter, r *http.Request) {
	s.deleteGrantName(plan.KindSharing)(w, r)
}

// putGrantName adds a custom role or sharing permission:
// PUT /v1/tenants/{tenantId}/roles/{name} and .../sharing/{name}.
func (s *Server) putGrantName(kind plan.GrantKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenantID, name := pathID(r, "tenantId"), r.PathValue("name")
		if err := plan.CheckGrantName(name); err != nil {
			writeBadRequest(w, invalid("name", "%s", err))
			return
		}
		created, err := s.st.PutGrantName(r.Context(), tenantID, kind, name)
		if err != nil {
			s.storeError(w, r, err, "tenant")
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
			s.log.Info().Str("tenant", tenantID).Str("kind", string(kind)).Msg("grant name added")
		}
		writeJSON(w, status, grantNameView{Kind: string(kind), Name: name, Builtin: plan.IsBuiltin(kind, name)})
	}
}

// deleteGrantName removes a custom role or sharing permission that no
// group binds: DELETE /v1/tenants/{tenantId}/roles/{name} and
// .../sharing/{name}.
func (s *Server) deleteGrantName(kind plan.GrantKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenantID, name := pathID(r, "tenantId"), r.PathValue("name")
		err := s.st.DeleteGrantName(r.Context(), tenantID, kind, name)
		switch {
		case errors.Is(err, store.ErrStillBound), errors.Is(err, store.ErrBuiltin):
			sentinel := store.ErrStillBound
			if errors.Is(err, store.ErrBuiltin) {
				sentinel = store.ErrBuiltin
			}
			writeError(w, http.StatusConflict, "conflict", "", reason(err, sentinel, string(kind)+" is in use"))
			return
		case errors.Is(err, store.ErrNotFound):
			// The tenant or the name: say which.
			if _, terr := s.st.GetTenant(r.Context(), tenantID); terr != nil {
				s.storeError(w, r, terr, "tenant")
				return
			}
			writeError(w, http.StatusNotFound, "not_found", "", fmt.Sprintf("the tenant has no %s %q", kind, name))
			return
		case err != nil:
			s.storeError(w, r, err, "tenant")
			return
		}
		s.log.Info().Str("tenant", tenantID).Str("kind", string(kind)).Msg("grant name deleted")
		writeJSON(w, http.StatusOK, grantNameView{Kind: string(kind), Name: name})
	}
}

// groupGrantsView is a group with what it grants, its status and its
// own switch.
type groupGrantsView struct {
	EntraID     string   `json:"entraId"`
	DisplayName string   `json:"displayName"`
	Kind        string   `json:"kind"`
	Status      string   `json:"status"`
	Enabled     bool     `json:"enabled"`
	Roles       []string `json:"roles"`
	Sharing     []string `json:"sharing"`
	// Effective says when the members' grants and memberships follow: at
	// the next sync.
	Effective string `json:"effective"`
}

func newGroupGrantsView(g store.GroupGrants) groupGrantsView {
	return groupGrantsView{EntraID: g.EntraID, DisplayName: g.DisplayName, Kind: g.Kind, Status: g.Status,
		Enabled: g.Enabled, Roles: g.Roles, Sharing: g.Sharing, Effective: "nextSync"}
}

// groupPatch is the body of PATCH .../groups/{entraId}.
type groupPatch struct {
	Roles   *[]string `json:"roles"`
	Sharing *[]string `json:"sharing"`
	Enabled *bool     `json:"enabled"`
}

// updateGroup binds roles and sharing permissions to a group:
// PATCH /v1/tenants/{tenantId}/groups/{entraId}.
func (s *Server) updateGroup(w http.ResponseWriter, r *http.Request) {
	tenantID, groupID := pathID(r, "tenantId"), pathID(r, "entraId")
	raw, err := checkedBody(r)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	var p groupPatch
	if err := json.Unmarshal(raw, &p); err != nil {
		s.internal(w, r, fmt.Errorf("api: decode a group patch the contract accepted: %w", err))
		return
	}
	g, err := s.st.UpdateGroupGrants(r.Context(), tenantID, groupID, store.GroupBindingPatch{Roles: p.Roles,
		Sharing: p.Sharing, Enabled: p.Enabled})
	var unknown *store.UnknownGrantError
	if errors.As(err, &unknown) {
		writeError(w, http.StatusBadRequest, "invalid_request", unknown.Field, unknown.Error())
		return
	}
	if err != nil {
		s.groupError(w, r, tenantID, groupID, err)
		return
	}
	s.log.Info().Str("tenant", tenantID).Str("group", groupID).Bool("roles", p.Roles != nil).
		Bool("sharing", p.Sharing != nil).Bool("switch", p.Enabled != nil).Msg("group edited")
	writeJSON(w, http.StatusOK, newGroupGrantsView(g))
}

// groupError answers a store error about one group: 404 naming the
// tenant or the group, 409 with the reason its status forbids the change.
func (s *Server) groupError(w http.ResponseWriter, r *http.Request, tenantID, groupID string, err error) {
	switch {
	case errors.Is(err, store.ErrGroupState):
		writeError(w, http.StatusConflict, "conflict", "", reason(err, store.ErrGroupState, "the group's status forbids it"))
	case errors.Is(err, store.ErrNotFound):
		if _, terr := s.st.GetTenant(r.Context(), tenantID); terr != nil {
			s.storeError(w, r, terr, "tenant")
			return
		}
		writeError(w, http.StatusNotFound, "not_found", "", "the application has no group "+groupID+
			" (GET .../groups lists them)")
	default:
		s.storeError(w, r, err, "group")
	}
}

// grantView is one grant of a user; Via is "direct" or a group path.
type grantView struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	Via  any    `json:"via"`
}

// listUserGrants shows what a user holds and how:
// GET /v1/tenants/{tenantId}/users/{entraId}/grants.
func (s *Server) listUserGrants(w http.ResponseWriter, r *http.Request) {
	grants, err := s.st.UserGrants(r.Context(), pathID(r, "tenantId"), pathID(r, "entraId"))
	if err != nil {
		s.storeError(w, r, err, "user")
		return
	}
	out := struct {
		Items []grantView `json:"items"`
	}{Items: make([]grantView, 0, len(grants))}
	for _, g := range grants {
		v := grantView{Kind: string(g.Kind), Name: g.Name, Via: "direct"}
		if g.Via != nil {
			v.Via = g.Via
		}
		out.Items = append(out.Items, v)
	}
	writeJSON(w, http.StatusOK, out)
}
