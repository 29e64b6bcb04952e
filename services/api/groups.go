package api

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/entrasync/entrasync/libs/store"
)

// A group's status through the API: switch one group off or on (PATCH
// .../groups/{entraId} {enabled}, in grants.go), archive it (orphaned),
// delete one that is not enabled, and create local groups. Statuses change
// at once; what members hold and which memberships the group has follow
// at the next sync, through its plan.

// localGroupCreate is the body of POST .../groups.
type localGroupCreate struct {
	DisplayName string `json:"displayName"`
}

// createLocalGroup adds a local group: POST /v1/tenants/{tenantId}/groups.
func (s *Server) createLocalGroup(w http.ResponseWriter, r *http.Request) {
	tenantID := pathID(r, "tenantId")
	raw, err := checkedBody(r)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	var body localGroupCreate
	if err := json.Unmarshal(raw, &body); err != nil {
		s.internal(w, r, fmt.Errorf("api: decode a local group the contract accepted: %w", err))
		return
	}
	if err := store.CheckGroupName(body.DisplayName); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "displayName", err.Error())
		return
	}
	g, err := s.st.CreateLocalGroup(r.Context(), tenantID, body.DisplayName)
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	s.log.Info().Str("tenant", tenantID).Str("group", g.EntraID).Msg("local group created")
	w.Header().Set("Location", "/v1/tenants/"+tenantID+"/groups/"+g.EntraID)
	writeJSON(w, http.StatusCreated, newGroupGrantsView(g))
}

// archiveGroup makes a group orphaned:
// POST /v1/tenants/{tenantId}/groups/{entraId}/archive.
func (s *Server) archiveGroup(w http.ResponseWriter, r *http.Request) {
	tenantID, groupID := pathID(r, "tenantId"), pathID(r, "entraId")
	g, err := s.st.ArchiveGroup(r.Context(), tenantID, groupID)
	if err != nil {
		s.groupError(w, r, tenantID, groupID, err)
		return
	}
	s.log.Info().Str("tenant", tenantID).Str("group", groupID).Msg("group archived")
	writeJSON(w, http.StatusOK, newGroupGrantsView(g))
}

// deleteGroup takes a disabled, orphaned or local group out of the app:
// DELETE /v1/tenants/{tenantId}/groups/{entraId}. Entra ID is never
// touched.
func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) {
	tenantID, groupID := pathID(r, "tenantId"), pathID(r, "entraId")
	if err := s.st.DeleteGroup(r.Context(), tenantID, groupID); err != nil {
		s.groupError(w, r, tenantID, groupID, err)
		return
	}
	s.log.Info().Str("tenant", tenantID).Str("group", groupID).Msg("group deleted")
	w.WriteHeader(http.StatusNoContent)
}
