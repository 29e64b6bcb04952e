package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/entrasync/entrasync/libs/store"
)

// planItemView is one change of a run's plan as the api shows it.
type planItemView struct {
	Action  string `json:"action"`
	EntraID string `json:"entraId"`
	// GroupID is the group of a membership action; Role the role of a
	// role action. Absent on other actions.
	GroupID     string         `json:"groupId,omitempty"`
	Role        string         `json:"role,omitempty"`
	DisplayName string         `json:"displayName"`
	Before      map[string]any `json:"before"`
	After       map[string]any `json:"after"`
	Reason      string         `json:"reason"`
}

// planPage is one page of a run's plan, with the plan's counts per
// action (null before the run was planned).
type planPage struct {
	Summary map[string]int64 `json:"summary"`
	Items   []planItemView   `json:"items"`
	Next    *string          `json:"next"`
}

// getPlan lists a run's plan, in the order it was planned:
// GET /v1/tenants/{tenantId}/syncs/{runId}/plan. The cursor is the last
// item's sequence number in the plan.
func (s *Server) getPlan(w http.ResponseWriter, r *http.Request) {
	tenantID, runID := pathID(r, "tenantId"), pathID(r, "runId")
	after, limit, ok := s.pageParams(w, r)
	if !ok {
		return
	}
	seq := -1 // from the start
	if after != "" {
		n, err := strconv.Atoi(after)
		if err != nil || n < 0 {
			writeBadRequest(w, badCursor())
			return
		}
		seq = n
	}
	run, err := s.st.GetRun(r.Context(), tenantID, runID)
	if err != nil {
		s.storeError(w, r, err, "run")
		return
	}
	out := planPage{Summary: run.PlanSummary, Items: []planItemView{}}
	// A run not planned yet has no items; one planned while this request
	// runs is listed by the next, with its summary.
	if run.PlanSummary == nil {
		writeJSON(w, http.StatusOK, out)
		return
	}
	items, next, err := s.st.ListPlanItems(r.Context(), tenantID, runID, seq, limit)
	if err != nil {
		s.storeError(w, r, err, "run")
		return
	}
	for _, it := range items {
		out.Items = append(out.Items, planItemView{Action: it.Action, EntraID: it.EntraID, GroupID: it.GroupID, Role: it.Role,
			DisplayName: it.DisplayName, Before: it.Before, After: it.After, Reason: it.Reason})
	}
	if next >= 0 {
		out.Next = cursor(strconv.Itoa(next))
	}
	writeJSON(w, http.StatusOK, out)
}

// approveRun applies a held run's plan:
// POST /v1/tenants/{tenantId}/syncs/{runId}/approve.
func (s *Server) approveRun(w http.ResponseWriter, r *http.Request) {
	s.decide(w, r, "approved", s.st.ApprovePlan)
}

// rejectRun ends a held run without applying its plan:
// POST /v1/tenants/{tenantId}/syncs/{runId}/reject.
func (s *Server) rejectRun(w http.ResponseWriter, r *http.Request) {
	s.decide(w, r, "rejected", s.st.RejectPlan)
}

// decide answers with the run an admin's decision left, or 409 with the
// store's reason when the run is not held or its plan is out of date.
func (s *Server) decide(w http.ResponseWriter, r *http.Request, verb string,
	do func(ctx context.Context, tenantID, runID string) (store.Run, error)) {
	tenantID, runID := pathID(r, "tenantId"), pathID(r, "runId")
	run, err := do(r.Context(), tenantID, runID)
	if err != nil {
		s.storeError(w, r, err, "run")
		return
	}
	s.log.Info().Str("tenant", tenantID).Str("run", runID).Int64("run_seq", run.Seq).Str("status", run.Status).
		Msg("plan " + verb)
	writeJSON(w, http.StatusOK, viewOfRun(run))
}

// notificationView is a notification task as the api shows it.
type notificationView struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// RunID is the run the notification is about; null when none.
	RunID       *string    `json:"runId"`
	Recipients  []string   `json:"recipients"`
	Subject     string     `json:"subject"`
	Text        string     `json:"text"`
	CreatedAt   time.Time  `json:"createdAt"`
	DeliveredAt *time.Time `json:"deliveredAt"`
	// Status is pending, delivered or failed; the rest says how delivery
	// went so far.
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	LastError     string     `json:"lastError"`
	FailedAt      *time.Time `json:"failedAt"`
	NextAttemptAt *time.Time `json:"nextAttemptAt"`
}

// listNotifications lists a tenant's notifications, newest first:
// GET /v1/tenants/{tenantId}/notifications. The cursor is the last
// notification's creation time and id.
func (s *Server) listNotifications(w http.ResponseWriter, r *http.Request) {
	tenantID := pathID(r, "tenantId")
	after, limit, ok := s.pageParams(w, r)
	if !ok {
		return
	}
	var before *store.NotificationCursor
	if after != "" {
		c, ok := parseNotificationCursor(after)
		if !ok {
			writeBadRequest(w, badCursor())
			return
		}
		before = &c
	}
	ns, next, err := s.st.ListNotifications(r.Context(), tenantID, before, limit)
	if err != nil {
		s.storeError(w, r, err, "tenant")
		return
	}
	out := page[notificationView]{Items: make([]notificationView, 0, len(ns))}
	for _, n := range ns {
		v := notificationView{ID: n.ID, Kind: n.Kind, Recipients: n.Recipients, Subject: n.Subject, Text: n.Text,
			CreatedAt: n.CreatedAt.UTC(), DeliveredAt: utc(n.DeliveredAt), Status: n.Status, Attempts: n.Attempts,
			LastError: n.LastError, FailedAt: utc(n.FailedAt)}
		if n.Status == store.NotificationPending {
			next := n.NextAttemptAt.UTC()
			v.NextAttemptAt = &next
		}
		if n.RunID != "" {
			v.RunID = &n.RunID
		}
		if v.Recipients == nil {
			v.Recipients = []string{}
		}
		out.Items = append(out.Items, v)
	}
	if next != nil {
		out.Next = cursor(next.CreatedAt.UTC().Format(time.RFC3339Nano) + " " + next.ID)
	}
	writeJSON(w, http.StatusOK, out)
}

// parseNotificationCursor reads what listNotifications put in a cursor.
func parseNotificationCursor(s string) (store.NotificationCursor, bool) {
	at, id, ok := strings.Cut(s, " ")
	if !ok {
		return store.NotificationCursor{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return store.NotificationCursor{}, false
	}
	id, ok = parseGUID(id)
	return store.NotificationCursor{CreatedAt: t, ID: id}, ok
}
