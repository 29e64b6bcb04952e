package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// Actors of the activity log.
const (
	ActorSync = "sync" // a sync applied its plan
	ActorAPI  = "api"  // an admin acted through the API
)

// Actions the API writes to the activity log. A sync's entries carry the
// plan's actions (plan.Action: createUser, assignLicense, ...).
const (
	ActivityUpdateSettings   = "updateSettings"
	ActivityUpdateUser       = "updateUser"
	ActivityApprovePlan      = "approvePlan"
	ActivityRejectPlan       = "rejectPlan"
	ActivityDisconnectTenant = "disconnectTenant"
	ActivityConnectTenant    = "connectTenant"
	ActivityTriggerSync      = "triggerSync"
	// Roles and sharing permissions: the catalogue (target: the tenant)
	// and a group's bindings (target: the group).
	ActivityAddRole       = "addRole"
	ActivityDeleteRole    = "deleteRole"
	ActivityAddSharing    = "addSharing"
	ActivityDeleteSharing = "deleteSharing"
	ActivityBindGroup     = "bindGroup"
)

// Activity is one entry of a tenant's activity log: what was done, by
// whom, to what, with the values before and after.
type Activity struct {
	// ID is opaque and stable: "api-<n>" or "sync-<run>-<item>".
	ID     string
	At     time.Time
	Actor  string // ActorSync or ActorAPI
	Action string
	// Target is what the action was done to: a user's or group's Entra
	// id, a run's id, or the tenant's id for the tenant's own settings.
	Target string
	// TargetName is the target's display name, when the entry has one.
	TargetName string
	// GroupID and Role say which membership or role a sync entry is about.
	GroupID, Role string
	// Before and After are JSON objects of the changed fields; nil when
	// there was nothing before (a creation) or after (a removal).
	Before, After json.RawMessage
	RunID         string
	// Reason is why a sync did it, in words.
	Reason string
}

// ActivityFilter narrows a listing of the activity log; zero fields do not.
type ActivityFilter struct {
	Target string
	Action string
	Since  time.Time
}

// ActivityCursor is where a listing of the activity log goes on: one
// position in each of its two sources (entries written through the API,
// and the plans of applied runs), so that the sources are merged by time
// without a tie ever being read twice or skipped.
type ActivityCursor struct {
	API  activityAPIPos  `json:"a"`
	Sync activitySyncPos `json:"s"`
}

type activityAPIPos struct {
	At   time.Time `json:"t"`
	ID   int64     `json:"i"`
	Done bool      `json:"d,omitempty"`
}

type activitySyncPos struct {
	At     time.Time `json:"t"`
	RunSeq int64     `json:"r"`
	Item   int32     `json:"i"` // the next item read is before this one
	Done   bool      `json:"d,omitempty"`
}

// firstActivityCursor is the position before the newest entry.
func firstActivityCursor() ActivityCursor {
	end := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	return ActivityCursor{
		API:  activityAPIPos{At: end, ID: math.MaxInt64},
		Sync: activitySyncPos{At: end, RunSeq: math.MaxInt64, Item: math.MaxInt32},
	}
}

// Encode returns the cursor as a string for the API to hand out (wrapped
// in its own opaque token).
func (c ActivityCursor) Encode() string {
	raw, _ := json.Marshal(c)
	return string(raw)
}

// DecodeActivityCursor reads a string made by Encode; one it cannot read
// is ErrInvalid.
func DecodeActivityCursor(s string) (ActivityCursor, error) {
	var c ActivityCursor
	if err := json.Unmarshal([]byte(s), &c); err != nil || c.API.At.IsZero() || c.Sync.At.IsZero() {
		return ActivityCursor{}, invalidf("cursor %q is not one this store handed out", s)
	}
	return c, nil
}

// runsPerActivityPage bounds how many applied runs one page looks into
// for sync entries: a filter that matches nothing in many runs ends a
// page early, with a cursor to go on, instead of reading every run.
const runsPerActivityPage = 200

// ListActivity returns a tenant's activity log, newest first: up to limit
// entries after cur (nil: from the newest) and the cursor of the next
// page (nil when there is none). Entries of both sources are merged by
// time; of two at the same time, the API's comes first.
func (s *Store) ListActivity(ctx context.Context, tenantID string, f ActivityFilter, cur *ActivityCursor, limit int) ([]Activity, *ActivityCursor, error) {
	if err := s.tenantExists(ctx, tenantID); err != nil {
		return nil, nil, err
	}
	if limit < 1 {
		limit = 1
	}
	pos := firstActivityCursor()
	if cur != nil {
		pos = *cur
	}
	apiRows, apiMore, err := s.apiActivity(ctx, tenantID, f, pos.API, limit)
	if err != nil {
		return nil, nil, err
	}
	syncRows, syncPos, err := s.syncActivity(ctx, tenantID, f, pos.Sync, limit)
	if err != nil {
		return nil, nil, err
	}

	// Merge, newest first, until the page is full.
	var out []Activity
	next := pos
	a, y := 0, 0
	for len(out) < limit && (a < len(apiRows) || y < len(syncRows)) {
		if y == len(syncRows) || (a < len(apiRows) && !apiRows[a].entry.At.Before(syncRows[y].entry.At)) {
			out = append(out, apiRows[a].entry)
			next.API = apiRows[a].pos
			a++
		} else {
			out = append(out, syncRows[y].entry)
			next.Sync = syncRows[y].pos
			y++
		}
	}
	// A source that had every row it read taken goes on where its
	// reading stopped, which is past runs it found nothing in.
	if a == len(apiRows) && !apiMore {
		next.API.Done = true
	}
	if y == len(syncRows) {
		next.Sync = syncPos
	}
	if next.API.Done && next.Sync.Done {
		return out, nil, nil
	}
	return out, &next, nil
}

type apiActivityRow struct {
	entry Activity
	pos   activityAPIPos
}

// apiActivity reads up to limit entries written through the API after
// pos, and whether there are more.
func (s *Store) apiActivity(ctx context.Context, tenantID string, f ActivityFilter, pos activityAPIPos, limit int) ([]apiActivityRow, bool, error) {
	if pos.Done {
		return nil, false, nil
	}
	rows, err := s.q.ListAPIActivity(ctx, dbsqlc.ListAPIActivityParams{TenantID: tenantID,
		Target: nilIfEmpty(f.Target), Action: nilIfEmpty(f.Action), Since: f.Since,
		BeforeAt: pos.At, BeforeID: pos.ID, Lim: int32(limit + 1)})
	if err != nil {
		return nil, false, translate(err, "list activity of tenant "+tenantID)
	}
	more := len(rows) > limit
	rows = rows[:min(len(rows), limit)]
	out := make([]apiActivityRow, len(rows))
	for i, r := range rows {
		e := Activity{ID: fmt.Sprintf("api-%d", r.ID), At: r.At, Actor: r.Actor, Action: r.Action, Target: r.Target,
			Before: r.Before, After: r.After}
		if r.RunID != nil {
			e.RunID = *r.RunID
		}
		out[i] = apiActivityRow{entry: e, pos: activityAPIPos{At: r.At, ID: r.ID}}
	}
	return out, more, nil
}

type syncActivityRow struct {
	entry Activity
	pos   activitySyncPos
}

// syncActivity reads up to limit plan rows of applied runs after pos,
// run by run, newest first, and returns them with the position where its
// reading stopped: after the last row read when the page filled up, else
// after the last run read (Done when no run is left).
func (s *Store) syncActivity(ctx context.Context, tenantID string, f ActivityFilter, pos activitySyncPos, limit int) ([]syncActivityRow, activitySyncPos, error) {
	if pos.Done {
		return nil, pos, nil
	}
	runs, err := s.q.ListAppliedRuns(ctx, dbsqlc.ListAppliedRunsParams{TenantID: tenantID, Since: f.Since,
		FromAt: pos.At, FromSeq: pos.RunSeq, Lim: runsPerActivityPage + 1})
	if err != nil {
		return nil, pos, translate(err, "list activity of tenant "+tenantID)
	}
	moreRuns := len(runs) > runsPerActivityPage
	runs = runs[:min(len(runs), runsPerActivityPage)]
	var out []syncActivityRow
	for _, run := range runs {
		before := int32(math.MaxInt32)
		if run.FinishedAt.Equal(pos.At) && run.Seq == pos.RunSeq {
			before = pos.Item // the run the last page stopped in
		}
		items, err := s.q.ListRunActivity(ctx, dbsqlc.ListRunActivityParams{TenantID: tenantID, RunID: run.ID,
			Target: nilIfEmpty(f.Target), Action: nilIfEmpty(f.Action), BeforeSeq: before, Lim: int32(limit - len(out))})
		if err != nil {
			return nil, pos, translate(err, "list activity of tenant "+tenantID)
		}
		for _, it := range items {
			e := Activity{ID: fmt.Sprintf("sync-%s-%d", run.ID, it.Seq), At: run.FinishedAt, Actor: ActorSync,
				Action: it.Action, Target: it.EntraID, TargetName: it.DisplayName, Before: it.Before, After: it.After,
				RunID: run.ID, Reason: it.Reason}
			if it.GroupID != nil {
				e.GroupID = *it.GroupID
			}
			if it.Role != nil {
				e.Role = *it.Role
			}
			out = append(out, syncActivityRow{entry: e, pos: activitySyncPos{At: run.FinishedAt, RunSeq: run.Seq, Item: it.Seq}})
		}
		if len(out) == limit {
			return out, out[len(out)-1].pos, nil
		}
		// The run is read to its end (items are numbered from 0).
		pos = activitySyncPos{At: run.FinishedAt, RunSeq: run.Seq, Item: 0}
	}
	pos.Done = !moreRuns
	return out, pos, nil
}

// recordActivity writes an entry of the API's to the activity log, in the
// transaction of the change it records. before and after are marshalled
// to JSON objects; nil leaves them out.
func recordActivity(ctx context.Context, q *dbsqlc.Queries, tenantID, action, target string, before, after any, runID string, at time.Time) error {
	enc := func(v any) ([]byte, error) {
		if v == nil {
			return nil, nil
		}
		return json.Marshal(v)
	}
	b, err := enc(before)
	if err != nil {
		return err
	}
	a, err := enc(after)
	if err != nil {
		return err
	}
	if err := q.InsertActivity(ctx, dbsqlc.InsertActivityParams{TenantID: tenantID, At: at, Action: action, Target: target,
		Before: b, After: a, RunID: nilIfEmpty(runID)}); err != nil {
		return fmt.Errorf("record %s of %s: %w", action, target, err)
	}
	return nil
}

// settingsDiff returns the top-level settings that differ, as they were
// and as they are.
func settingsDiff(old, set plan.Settings) (before, after map[string]json.RawMessage, err error) {
	fields := func(s plan.Settings) (map[string]json.RawMessage, error) {
		raw, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		var m map[string]json.RawMessage
		return m, json.Unmarshal(raw, &m)
	}
	was, err := fields(old)
	if err != nil {
		return nil, nil, err
	}
	is, err := fields(set)
	if err != nil {
		return nil, nil, err
	}
	before, after = map[string]json.RawMessage{}, map[string]json.RawMessage{}
	for k, v := range is {
		if w, ok := was[k]; !ok || !bytes.Equal(w, v) {
			if ok {
				before[k] = w
			}
			after[k] = v
		}
	}
	return before, after, nil
}

// userDiff returns an app user's fields an edit changed, as they were and
// as they are.
func userDiff(was, is AppUser) (before, after map[string]any) {
	before, after = map[string]any{}, map[string]any{}
	field := func(name string, b, a any, same bool) {
		if !same {
			before[name], after[name] = b, a
		}
	}
	field("displayName", was.DisplayName, is.DisplayName, was.DisplayName == is.DisplayName)
	field("email", was.Email, is.Email, was.Email == is.Email)
	field("license", was.License, is.License, was.License == is.License)
	field("roles", was.Roles, is.Roles, slices.Equal(was.Roles, is.Roles))
	return before, after
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
