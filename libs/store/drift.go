package store

import (
	"context"
	"fmt"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// runDrift works out, for a run being finalized, what its full listing
// found that its own delta round had not reported (plan.DriftOf), from
// the notes its pages left (migration 00018) and what finalization just
// tombstoned and dropped. ok is false for a run that did not catch up
// first (a delta run, a tenant's first full run, a catch-up Graph refused):
// it has no drift to report. The run's notes are deleted either way.
func runDrift(ctx context.Context, q *dbsqlc.Queries, ref PageRef, tombUsers, tombGroups []string,
	dropped []dbsqlc.DropStaleEdgesRow) (_ plan.Drift, ok bool, _ error) {
	t, r := ref.TenantID, ref.RunID
	caught, err := q.RunCaughtUp(ctx, dbsqlc.RunCaughtUpParams{TenantID: t, RunID: r})
	if err != nil {
		return plan.Drift{}, false, fmt.Errorf("read whether the run caught up: %w", err)
	}
	var found plan.DriftFound
	if caught {
		notes, err := q.RunDriftNotes(ctx, dbsqlc.RunDriftNotesParams{TenantID: t, RunID: r})
		if err != nil {
			return plan.Drift{}, false, fmt.Errorf("read drift notes: %w", err)
		}
		found = plan.DriftFound{Users: tombUsers, Groups: tombGroups, Edges: map[string]int{}}
		for _, n := range notes {
			switch n.Kind {
			case "user":
				found.Users = append(found.Users, n.ObjectID)
			case "group":
				found.Groups = append(found.Groups, n.ObjectID)
			case "member":
				found.Edges[n.GroupID]++
			}
		}
		for _, d := range dropped {
			found.Edges[d.GroupID] += int(d.Dropped)
		}
	}
	if err := q.DeleteRunDrift(ctx, dbsqlc.DeleteRunDriftParams{TenantID: t, RunID: r}); err != nil {
		return plan.Drift{}, false, fmt.Errorf("delete drift notes: %w", err)
	}
	if !caught {
		return plan.Drift{}, false, nil
	}
	named, err := q.RunDeltaPageIDs(ctx, dbsqlc.RunDeltaPageIDsParams{TenantID: t, RunID: r})
	if err != nil {
		return plan.Drift{}, false, fmt.Errorf("read the run's delta pages: %w", err)
	}
	explained := plan.DriftExplained{Users: map[string]bool{}, Groups: map[string]bool{}}
	for _, n := range named {
		switch n.Kind {
		case pageUsersDelta:
			explained.Users[n.ID] = true
		case pageGroupsDelta:
			explained.Groups[n.ID] = true
		}
	}
	return plan.DriftOf(found, explained), true, nil
}
