package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/entrasync/entrasync/libs/store"
)

// activityView is an entry of the activity log as the api shows it.
type activityView struct {
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	// TargetName, GroupID, Role, RunID and Reason are null when the
	// entry has none; Before and After when nothing was there.
	TargetName *string         `json:"targetName"`
	GroupID    *string         `json:"groupId"`
	Role       *string         `json:"role"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
	RunID      *string         `json:"runId"`
	Reason     *string         `json:"reason"`
}

// listActivity lists a tenant's activity log, newest first:
// GET /v1/tenants/{tenantId}/activity?target=&action=&since=.
func (s *Server) listActivity(w http.ResponseWriter, r *http.Request) {
	tenantID := pathID(r, "tenantId")
	after, limit, ok := s.pageParams(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := store.ActivityFilter{Target: q.Get("target"), Action: q.Get("action")}
	if v := q.Get("since"); v != "" {
		since, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeBadRequest(w, invalid("since", "since must be a date-time such as 2026-12-01T06:00:00Z"))
			return
		}
		f.Since = since
	}
	var cur *store.ActivityCursor
	if after != "" {
		c, err := store.DecodeActivityCursor(after)
		if err != nil {
			writeBadRequest(w, badCursor())
			return
		}
		cur = &c
	}
	entries, next, err := s.st.ListActivity(r.Context(), tenantID, f, cur, limit)
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	out := page[activityView]{Items: make([]activityView, 0, len(entries))}
	for _, e := range entries {
		out.Items = append(out.Items, activityView{ID: e.ID, At: e.At.UTC(), Actor: e.Actor, Action: e.Action,
			Target: e.Target, TargetName: nonEmpty(e.TargetName), GroupID: nonEmpty(e.GroupID), Role: nonEmpty(e.Role),
			Before: jsonOrNull(e.Before), After: jsonOrNull(e.After), RunID: nonEmpty(e.RunID), Reason: nonEmpty(e.Reason)})
	}
	if next != nil {
		out.Next = cursor(next.Encode())
	}
	writeJSON(w, http.StatusOK, out)
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// jsonOrNull is raw, or JSON null when there is none.
func jsonOrNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}
