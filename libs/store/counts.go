package store

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// A group has two member counts: Entra ID's (entra_member_count, the
// users in its nested membership, from the mirror's edges) and the app's
// (synced_member_count, its rows in app_group_members). After a plan is
// applied, refreshCounts counts whole the groups whose counts it cannot
// build on: those the last refresh did not count (new since, or not
// enabled then: a group switched off keeps its counts), and for Entra ID
// every enabled group when the tenant's memberships were stale. The other
// groups' counts move: Entra ID's by what the edges changed since the
// last refresh (dir_edge_changes, migration 00024), the app's by the
// plan's membership items. Under a company-wide group a count reads
// every user of the tenant; a delta round changes a few hundred edges and
// memberships.

// refreshCounts brings the tenant's groups' counts in line with the
// mirror and the app, once run ref's plan is applied, and marks the
// recorded edge changes counted (those of runs up to ref's, whose plan is
// applied, go with ClearMembershipChanges right after). It runs under
// the tenant's exclusive lock, so no page changes an edge between the
// counts and the marking. While the tenant's memberships are stale edge
// additions are not recorded, and only a refresh (before
// ClearMembershipChanges, in the same transaction) makes them fresh
// again: a tenant whose memberships are fresh now had every change since
// the last refresh recorded.
func refreshCounts(ctx context.Context, q *dbsqlc.Queries, ref PageRef, at time.Time) error {
	t := ref.TenantID
	whole, err := q.MembershipsStale(ctx, t)
	if err != nil {
		return fmt.Errorf("memberships stale: %w", err)
	}
	// Each statement reads few rows through indexes, or, counting a group
	// whole, walks down its nesting a group at a time and counts its
	// memberships through the index (forbidding nested loops here cost a
	// 100k-user first sync 20 s).
	err = withNestLoops(ctx, q, func() error {
		var entra map[string]int
		if !whole {
			if entra, err = entraCountMoves(ctx, q, t); err != nil {
				return err
			}
		}
		// The recount writes the groups not counted (or all of them, when
		// whole: then nothing moves Entra's counts), the moves only
		// counted ones.
		err := q.RecountEntraMembers(ctx, dbsqlc.RecountEntraMembersParams{TenantID: t, Whole: whole, At: at})
		if err != nil {
			return fmt.Errorf("recount entra members: %w", err)
		}
		synced, err := q.SyncedCountMoves(ctx, dbsqlc.SyncedCountMovesParams{TenantID: t, RunID: ref.RunID})
		if err != nil {
			return fmt.Errorf("synced count moves: %w", err)
		}
		moves, err := countMovesJSON(entra, synced)
		if err != nil {
			return err
		}
		if moves != nil {
			if err := q.MoveCounts(ctx, dbsqlc.MoveCountsParams{TenantID: t, Moves: moves, At: at}); err != nil {
				return fmt.Errorf("move counts: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The app's counts of the groups not counted: each through the index,
	// or, after a plan that recomputed everything, in one pass over the
	// tenant's memberships, planned as finalization plans whole sets
	// (RecountSyncedMembersWhole says why).
	err = withNestLoopsUnless(ctx, q, whole, func() error {
		if whole {
			return q.RecountSyncedMembersWhole(ctx, dbsqlc.RecountSyncedMembersWholeParams{TenantID: t, At: at})
		}
		return q.RecountSyncedMembers(ctx, dbsqlc.RecountSyncedMembersParams{TenantID: t, At: at})
	})
	if err != nil {
		return fmt.Errorf("recount synced members: %w", err)
	}
	return withNestLoops(ctx, q, func() error {
		if err := q.CountsRefreshed(ctx, dbsqlc.CountsRefreshedParams{TenantID: t, RunSeq: ref.RunSeq}); err != nil {
			return fmt.Errorf("counts refreshed: %w", err)
		}
		return nil
	})
}

// entraCountMoves returns what the edges changed since the last refresh
// made of each group's Entra ID count (groups that do not move may be
// left out).
func entraCountMoves(ctx context.Context, q *dbsqlc.Queries, tenantID string) (map[string]int, error) {
	rows, err := q.EntraCountChanges(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("entra count changes: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	changes := make([]edgeChange, len(rows))
	for i, r := range rows {
		changes[i] = edgeChange{edge: edge{group: r.GroupID, member: r.MemberID}, before: r.TypeBefore, now: r.TypeNow}
	}
	nestRows, err := q.NestingEdges(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("nesting edges: %w", err)
	}
	nesting := make([]edge, len(nestRows))
	for i, r := range nestRows {
		nesting[i] = edge{group: r.GroupID, member: r.MemberID}
	}
	below, changedUsers := belowChanges(changes, nesting)
	ids, err := json.Marshal(below)
	if err != nil {
		return nil, err
	}
	users, err := q.UsersInGroups(ctx, dbsqlc.UsersInGroupsParams{TenantID: tenantID, GroupIds: ids})
	if err != nil {
		return nil, fmt.Errorf("users below changed edges: %w", err)
	}
	users = append(users, changedUsers...)
	if len(users) == 0 {
		return nil, nil // no user's nested membership changed
	}
	slices.Sort(users)
	users = slices.Compact(users)
	if ids, err = json.Marshal(users); err != nil {
		return nil, err
	}
	direct := make(map[string][]string, len(users))
	rs, err := q.GroupsOfUsers(ctx, dbsqlc.GroupsOfUsersParams{TenantID: tenantID, UserIds: ids})
	if err != nil {
		return nil, fmt.Errorf("groups of users below changed edges: %w", err)
	}
	for _, r := range rs {
		direct[r.UserID] = append(direct[r.UserID], r.GroupID)
	}
	return countMoves(changes, nesting, users, direct), nil
}

// countMove is what MoveCounts adds to one group's two counts.
type countMove struct {
	ID     string `json:"id"`
	Entra  int    `json:"entra"`
	Synced int    `json:"synced"`
}

// countMovesJSON merges the moves of a group's Entra ID count and of its
// app count into one entry per group that moves, in id order, as
// MoveCounts takes them; nil when nothing moves.
func countMovesJSON(entra map[string]int, synced []dbsqlc.SyncedCountMovesRow) ([]byte, error) {
	byID := map[string]*countMove{}
	get := func(id string) *countMove {
		m, ok := byID[id]
		if !ok {
			m = &countMove{ID: id}
			byID[id] = m
		}
		return m
	}
	for id, n := range entra {
		if n != 0 {
			get(id).Entra += n
		}
	}
	for _, r := range synced {
		if r.N != 0 {
			get(r.GroupID).Synced += int(r.N)
		}
	}
	if len(byID) == 0 {
		return nil, nil
	}
	out := make([]countMove, 0, len(byID))
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		out = append(out, *byID[id])
	}
	return json.Marshal(out)
}

// edge is a member in a group.
type edge struct{ group, member string }

// edgeChange is an edge changed since the last refresh, with its member
// type then and now ("" where there was or is no edge).
type edgeChange struct {
	edge
	before, now string
}

// belowChanges returns the ids to list the direct users of: each changed
// edge's member and every group below it in the current nesting
// (cycle-safe); and the changed members that were or are users.
//
// Whose nested membership may have changed: a user one of whose paths up,
// before or now, crosses a changed edge. Below the changed edge nearest
// to the user, that path is unchanged, so it is in the current nesting
// too: the user is found by walking down from that edge's member now.
func belowChanges(changes []edgeChange, nesting []edge) (groups, users []string) {
	children := map[string][]string{}
	for _, e := range nesting {
		children[e.group] = append(children[e.group], e.member)
	}
	seen := map[string]bool{}
	var walk []string
	for _, c := range changes {
		if c.before == "user" || c.now == "user" {
			users = append(users, c.member)
		}
		if !seen[c.member] {
			seen[c.member] = true
			walk = append(walk, c.member)
		}
	}
	for len(walk) > 0 {
		g := walk[len(walk)-1]
		walk = walk[:len(walk)-1]
		groups = append(groups, g)
		for _, child := range children[g] {
			if !seen[child] {
				seen[child] = true
				walk = append(walk, child)
			}
		}
	}
	slices.Sort(groups)
	slices.Sort(users)
	return groups, slices.Compact(users)
}

// countMoves returns how many users each group's nested membership gained
// (or, negative, lost) through the changed edges. nesting is the current
// group-in-group edges, users the users whose membership may have changed
// (belowChanges) and direct their current direct groups. The nesting of
// the last refresh is the current one with each changed edge as it was.
func countMoves(changes []edgeChange, nesting []edge, users []string, direct map[string][]string) map[string]int {
	changed := make(map[edge]edgeChange, len(changes))
	wasIn := map[string][]string{} // user → groups it was directly in through a changed edge
	for _, c := range changes {
		changed[c.edge] = c
		if c.before == "user" {
			wasIn[c.member] = append(wasIn[c.member], c.group)
		}
	}
	now, then := newAncestry(), newAncestry()
	for _, e := range nesting {
		now.parents[e.member] = append(now.parents[e.member], e.group)
		if _, ok := changed[e]; !ok {
			then.parents[e.member] = append(then.parents[e.member], e.group)
		}
	}
	for _, c := range changes {
		if c.before == "group" {
			then.parents[c.member] = append(then.parents[c.member], c.group)
		}
	}
	moves := map[string]int{}
	for _, u := range users {
		before := slices.Clone(wasIn[u])
		for _, g := range direct[u] {
			if _, ok := changed[edge{group: g, member: u}]; !ok {
				before = append(before, g)
			}
		}
		in, was := now.reach(direct[u]), then.reach(before)
		for g := range in {
			if !was[g] {
				moves[g]++
			}
		}
		for g := range was {
			if !in[g] {
				moves[g]--
			}
		}
	}
	return moves
}

// ancestry is a nesting of groups, read upwards, with each group's
// ancestors worked out once.
type ancestry struct {
	parents map[string][]string
	above   map[string][]string
}

func newAncestry() *ancestry {
	return &ancestry{parents: map[string][]string{}, above: map[string][]string{}}
}

// ancestors returns the groups g is in, directly or through other groups
// (g itself only when a cycle leads back to it).
func (a *ancestry) ancestors(g string) []string {
	if up, ok := a.above[g]; ok {
		return up
	}
	seen := map[string]bool{}
	var up []string
	walk := slices.Clone(a.parents[g])
	for len(walk) > 0 {
		p := walk[len(walk)-1]
		walk = walk[:len(walk)-1]
		if seen[p] {
			continue
		}
		seen[p] = true
		up = append(up, p)
		walk = append(walk, a.parents[p]...)
	}
	a.above[g] = up
	return up
}

// reach returns the groups a member of the groups direct is in, nested.
func (a *ancestry) reach(direct []string) map[string]bool {
	in := make(map[string]bool, len(direct)*4)
	for _, g := range direct {
		in[g] = true
		for _, p := range a.ancestors(g) {
			in[p] = true
		}
	}
	return in
}
