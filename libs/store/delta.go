package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// Delta runs (KindDelta) read only what changed in Entra ID since the
// tenant's saved delta links, one Graph delta round of users and one of
// groups. Their pages are applied like a full run's, idempotent and in any
// order, with the same versions (run seq, page, index), but they are not
// listings: sync_run_pages records them as users_delta / groups_delta,
// which finalization does not read as users or groups pages, so a delta
// run tombstones nothing for being unseen, drops no edge for missing from
// a list, and the deletion guard does not take it for an empty users
// listing. What a delta page removes, it removes itself, with its own
// version:
//
//   - a removed user or group becomes a tombstone (deleted, properties
//     blanked), inserted when the mirror lacks it, so that an older page
//     applied late cannot bring it in; a restored one comes again as
//     changed and the upsert undeletes it;
//   - a removed edge is deleted when older than the removal, and the
//     removal is kept (dir_member_removals) so that an older add applied
//     late does not bring it back; finalization drops those once the run
//     is over.
//
// Member changes mark their group dirty, so that the plan recomputes the
// memberships below it (see plan.go).
//
// The delta links a run's fetch ended with (Fetched.UsersDeltaLink,
// GroupsDeltaLink) are saved for the tenant (DeltaLinks) in the
// transaction that applies the run's plan, and only from a run newer than
// the one that saved the current ones: a failed, held or rejected run
// leaves the last applied links, so the next round reads its changes
// again.

// Page kinds of a delta run's pages, as recorded in sync_run_pages.
const (
	pageUsersDelta  = "users_delta"
	pageGroupsDelta = "groups_delta"
)

// DirRemoved is an object a delta page reports removed.
type DirRemoved struct {
	ID string
	// Restorable: Graph's reason was "changed", a soft delete the object
	// can come back from; else "deleted", gone for good. The mirror
	// tombstones both alike.
	Restorable bool
}

// MembersDelta is one group's direct member changes on a groups delta
// page.
type MembersDelta struct {
	GroupID string
	Added   []DirMember
	Removed []string // member ids
}

// removedRow is a removal as the tombstone statements take it.
type removedRow struct {
	ID  string `json:"id"`
	Idx int    `json:"idx"`
}

// removedRows numbers removals from base (after the page's changed
// objects), keeps the last of an id, and refuses an id that is also among
// changed: within a page an object is changed or removed, not both.
func removedRows(removed []DirRemoved, base int, changed []string) ([]removedRow, []string, error) {
	rows := make([]removedRow, len(removed))
	for i, r := range removed {
		rows[i] = removedRow{r.ID, base + i}
	}
	rows, ids, err := latestByID(rows, func(r removedRow) string { return r.ID })
	if err != nil {
		return nil, nil, fmt.Errorf("removed: %w", err)
	}
	for _, id := range ids {
		if _, found := slices.BinarySearch(changed, id); found {
			return nil, nil, invalidf("%s is both changed and removed on one page", id)
		}
	}
	return rows, ids, nil
}

// ApplyUsersDeltaPage applies one page of a users delta round: users
// created, changed or restored (upserted as ApplyUsersPage does) and
// users removed (tombstoned with the page's version). Users it does not
// name stay as they are.
func (s *Store) ApplyUsersDeltaPage(ctx context.Context, ref PageRef, users []DirUser, removed []DirRemoved, at time.Time) error {
	rows, ids, err := userRows(users)
	if err != nil {
		return fmt.Errorf("store: apply users delta page: %w", err)
	}
	gone, goneIDs, err := removedRows(removed, len(users), ids)
	if err != nil {
		return fmt.Errorf("store: apply users delta page: %w", err)
	}
	rec := pageRecord{kind: pageUsersDelta, ids: sortedUnion(ids, goneIDs)}
	return s.applyPage(ctx, ref, rec, at, func(q *dbsqlc.Queries) error {
		if err := upsert(rows, func(raw []byte) error {
			// A delta page notes no drift: drift is what a listing
			// finds that the delta rounds did not report.
			return q.UpsertUsers(ctx, dbsqlc.UpsertUsersParams{TenantID: ref.TenantID, RunID: ref.RunID,
				RunSeq: ref.RunSeq, Page: ref.Page, Rows: raw, NoteDrift: false})
		}); err != nil {
			return err
		}
		return upsert(gone, func(raw []byte) error {
			return q.TombstoneUsers(ctx, dbsqlc.TombstoneUsersParams{TenantID: ref.TenantID, RunSeq: ref.RunSeq, Page: ref.Page, Rows: raw})
		})
	})
}

// ApplyGroupsDeltaPage applies one page of a groups delta round: groups
// created, changed or restored (upserted as ApplyGroupsPage does), groups
// removed (tombstoned), and direct member changes: added edges are
// upserted (their devices too, as ApplyMembersPage does), removed edges
// deleted when older than the removal, and each group with a change is
// marked for the next plan. Groups and edges it does not name stay as they
// are.
//
// Versions: the page's groups are numbered from 0, its removals after
// them, and its member changes after those, in the order given.
func (s *Store) ApplyGroupsDeltaPage(ctx context.Context, ref PageRef, groups []DirGroup, removed []DirRemoved,
	members []MembersDelta, at time.Time) error {
	rows, ids, err := groupRows(groups)
	if err != nil {
		return fmt.Errorf("store: apply groups delta page: %w", err)
	}
	gone, goneIDs, err := removedRows(removed, len(groups), ids)
	if err != nil {
		return fmt.Errorf("store: apply groups delta page: %w", err)
	}
	edges, err := memberDeltaRows(members, len(groups)+len(removed))
	if err != nil {
		return fmt.Errorf("store: apply groups delta page: %w", err)
	}
	// The page names its groups, its removals and every group whose member
	// list it changes (a drift check counts those lists as explained).
	named := sortedUnion(ids, goneIDs)
	for _, m := range members {
		named = append(named, m.GroupID)
	}
	rec := pageRecord{kind: pageGroupsDelta, ids: sortedUnion(named, nil)}
	return s.applyPage(ctx, ref, rec, at, func(q *dbsqlc.Queries) error {
		if err := upsert(rows, func(raw []byte) error {
			return q.UpsertGroups(ctx, dbsqlc.UpsertGroupsParams{TenantID: ref.TenantID, RunID: ref.RunID,
				RunSeq: ref.RunSeq, Page: ref.Page, Rows: raw, NoteDrift: false})
		}); err != nil {
			return err
		}
		if err := upsert(gone, func(raw []byte) error {
			return q.TombstoneGroups(ctx, dbsqlc.TombstoneGroupsParams{TenantID: ref.TenantID, RunSeq: ref.RunSeq, Page: ref.Page, Rows: raw})
		}); err != nil {
			return err
		}
		return edges.write(ctx, q, ref)
	})
}

// memberRow is an edge as the members statements take it.
type memberRow struct {
	Group string     `json:"group_id"`
	ID    string     `json:"id"`
	Type  MemberType `json:"type"`
	Name  string     `json:"name"`
	Idx   int        `json:"idx"`
}

// memberRemoval is an edge a delta page removes, as the removal
// statements take it.
type memberRemoval struct {
	Group string `json:"group_id"`
	ID    string `json:"id"`
	Idx   int    `json:"idx"`
}

// pageEdges are a delta page's member changes, every group's in (group,
// member) order: they are written in four statements for the page, not
// four for each group (a round that changed 60 groups spent 50 ms on
// their round trips).
type pageEdges struct {
	added   []memberRow
	removed []memberRemoval
}

// memberDeltaRows checks a page's member changes and numbers them from
// base, in the order given. A group comes at most once per page, and a
// member is added or removed, not both; the result is in (group, member)
// order.
func memberDeltaRows(members []MembersDelta, base int) (pageEdges, error) {
	idx := base
	numbered := make([]MembersDelta, len(members))
	copy(numbered, members)
	first := make(map[string]int, len(members)) // each group's first version
	for i, md := range members {
		if err := checkPart(md.GroupID, 0); err != nil {
			return pageEdges{}, fmt.Errorf("member changes %d: %w", i, err)
		}
		if _, dup := first[md.GroupID]; dup {
			return pageEdges{}, invalidf("group %s has two member change entries on one page", md.GroupID)
		}
		first[md.GroupID] = idx
		idx += len(md.Added) + len(md.Removed)
	}
	slices.SortFunc(numbered, func(a, b MembersDelta) int { return strings.Compare(a.GroupID, b.GroupID) })
	var out pageEdges
	for _, md := range numbered {
		idx := first[md.GroupID]
		added := make([]memberRow, len(md.Added))
		for j, m := range md.Added {
			if !m.Type.valid() {
				return pageEdges{}, invalidf("member %q added to group %s has unknown type %q", m.ID, md.GroupID, m.Type)
			}
			added[j] = memberRow{md.GroupID, m.ID, m.Type, pgText(m.DisplayName), idx}
			idx++
		}
		added, addedIDs, err := latestByID(added, func(r memberRow) string { return r.ID })
		if err != nil {
			return pageEdges{}, fmt.Errorf("members added to group %s: %w", md.GroupID, err)
		}
		removed := make([]memberRemoval, len(md.Removed))
		for j, id := range md.Removed {
			removed[j] = memberRemoval{md.GroupID, id, idx}
			idx++
		}
		removed, removedIDs, err := latestByID(removed, func(r memberRemoval) string { return r.ID })
		if err != nil {
			return pageEdges{}, fmt.Errorf("members removed from group %s: %w", md.GroupID, err)
		}
		for _, id := range removedIDs {
			if _, found := slices.BinarySearch(addedIDs, id); found {
				return pageEdges{}, invalidf("member %s is both added to and removed from group %s on one page", id, md.GroupID)
			}
		}
		out.added = append(out.added, added...)
		out.removed = append(out.removed, removed...)
	}
	return out, nil
}

// write applies a page's member changes: the adds (and their devices),
// then the removals.
func (e pageEdges) write(ctx context.Context, q *dbsqlc.Queries, ref PageRef) error {
	if err := upsert(e.added, func(raw []byte) error {
		if err := q.UpsertMembers(ctx, dbsqlc.UpsertMembersParams{TenantID: ref.TenantID, RunID: ref.RunID,
			RunSeq: ref.RunSeq, Page: ref.Page, Rows: raw}); err != nil {
			return fmt.Errorf("member adds: %w", err)
		}
		if err := q.AddDeltaDevices(ctx, dbsqlc.AddDeltaDevicesParams{TenantID: ref.TenantID, RunSeq: ref.RunSeq,
			Page: ref.Page, Rows: raw}); err != nil {
			return fmt.Errorf("devices added as members: %w", err)
		}
		return nil
	}); err != nil {
		return err
	}
	return upsert(e.removed, func(raw []byte) error {
		if err := q.RecordMemberRemovals(ctx, dbsqlc.RecordMemberRemovalsParams{TenantID: ref.TenantID,
			RunSeq: ref.RunSeq, Page: ref.Page, Rows: raw}); err != nil {
			return fmt.Errorf("member removals: %w", err)
		}
		if err := q.DeleteRemovedMembers(ctx, dbsqlc.DeleteRemovedMembersParams{TenantID: ref.TenantID,
			RunSeq: ref.RunSeq, Page: ref.Page, Rows: raw}); err != nil {
			return fmt.Errorf("member removals: %w", err)
		}
		return nil
	})
}

// sortedUnion merges two sorted id lists without duplicates.
func sortedUnion(a, b []string) []string {
	out := append(append(make([]string, 0, len(a)+len(b)), a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// DeltaLinks are the Graph delta links a tenant's next delta round starts
// from: those of the newest run whose plan was applied and that took them.
type DeltaLinks struct {
	Users  string // "" when no applied run took one
	Groups string // "" when no applied run took one
	// TakenAt and RunSeq are of the older of the two saved links (the one
	// a round would replay most from; Graph's links expire after 7 days);
	// zero when none is saved.
	TakenAt time.Time
	RunSeq  int64
}

// DeltaLinks returns the tenant's saved delta links.
func (s *Store) DeltaLinks(ctx context.Context, tenantID string) (DeltaLinks, error) {
	id, ok := canonicalID(tenantID)
	if !ok {
		return DeltaLinks{}, fmt.Errorf("store: delta links: %w", invalidf("tenant id %q is not a UUID", tenantID))
	}
	rows, err := s.q.DeltaLinks(ctx, id)
	if err != nil {
		return DeltaLinks{}, translate(err, "delta links of tenant "+id)
	}
	var l DeltaLinks
	for i, r := range rows {
		switch r.Resource {
		case "users":
			l.Users = r.Link
		case "groups":
			l.Groups = r.Link
		default:
			return DeltaLinks{}, errors.New("store: delta links: unknown resource " + r.Resource)
		}
		if i == 0 || r.RunSeq < l.RunSeq {
			l.RunSeq, l.TakenAt = r.RunSeq, r.TakenAt
		}
	}
	return l, nil
}
