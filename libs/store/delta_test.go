package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// deltaWorld is one tenant fed full and delta runs by hand.
type deltaWorld struct {
	t      *testing.T
	st     *store.Store
	db     *pgxpool.Pool
	tenant string
	at     time.Time
}

func newDeltaWorld(t *testing.T) *deltaWorld {
	t.Helper()
	st, url := storetest.NewWithURL(t)
	db, err := pgxpool.New(context.Background(), url)
	must(t, err)
	t.Cleanup(db.Close)
	return &deltaWorld{t: t, st: st, db: db, tenant: newTenant(t, st, 100).ID,
		at: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func dUser(n int, name string) store.DirUser {
	return store.DirUser{ID: uID(n), DisplayName: name, UserPrincipalName: fmt.Sprintf("u%d@x", n), UserType: "Member",
		AccountEnabled: true}
}

func dGroup(n int, name string) store.DirGroup {
	return store.DirGroup{ID: gID(n), DisplayName: name, SecurityEnabled: true}
}

func memberUser(n int) store.DirMember { return store.DirMember{ID: uID(n), Type: store.MemberUser} }

func (w *deltaWorld) newRun(kind string) store.PageRef {
	w.t.Helper()
	r, err := w.st.CreateRun(context.Background(), store.NewRun{TenantID: w.tenant, Kind: kind, Trigger: store.TriggerManual})
	must(w.t, err)
	return store.PageRef{TenantID: w.tenant, RunID: r.ID, RunSeq: r.Seq}
}

func (w *deltaWorld) page(ref store.PageRef, page int32) store.PageRef {
	ref.Page = page
	return ref
}

// full applies a full run: users, groups and each group's complete
// member list, with the delta links it took; it returns the run after
// finalization.
func (w *deltaWorld) full(users []store.DirUser, groups []store.DirGroup, members map[string][]store.DirMember,
	links [2]string) store.Run {
	w.t.Helper()
	ctx := context.Background()
	ref := w.newRun(store.KindFull)
	must(w.t, w.st.ApplyUsersPage(ctx, w.page(ref, 0), users, w.at))
	must(w.t, w.st.ApplyGroupsPage(ctx, w.page(ref, 1), groups, w.at))
	p := int32(2)
	for _, g := range groups {
		must(w.t, w.st.ApplyMembersPage(ctx, w.page(ref, p), store.MembersPage{GroupID: g.ID, Last: true,
			Members: members[g.ID]}, w.at))
		p++
	}
	return w.finish(ref, int(p), links)
}

// finish marks the run fetched with pages pages and finalizes it.
func (w *deltaWorld) finish(ref store.PageRef, pages int, links [2]string) store.Run {
	w.t.Helper()
	ctx := context.Background()
	must(w.t, w.st.MarkRunFetched(ctx, ref, store.Fetched{Pages: pages, UsersDeltaLink: links[0],
		GroupsDeltaLink: links[1]}, w.at))
	if done, err := w.st.TryFinalize(ctx, w.tenant, ref.RunID, w.at); err != nil || !done {
		w.t.Fatalf("finalize run %d: %v %v", ref.RunSeq, done, err)
	}
	r, err := w.st.GetRun(ctx, w.tenant, ref.RunID)
	must(w.t, err)
	return r
}

// rows reads a query's rows as strings.
func (w *deltaWorld) rows(query string) []string {
	w.t.Helper()
	rows, err := w.db.Query(context.Background(), query, w.tenant)
	must(w.t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		must(w.t, err)
		out = append(out, fmt.Sprint(vals...))
	}
	must(w.t, rows.Err())
	return out
}

func (w *deltaWorld) users() []string {
	return w.rows(`SELECT entra_id, ' ', display_name, ' deleted=', deleted FROM dir_users WHERE tenant_id = $1 ORDER BY 1`)
}

func (w *deltaWorld) groups() []string {
	return w.rows(`SELECT entra_id, ' ', display_name, ' deleted=', deleted FROM dir_groups WHERE tenant_id = $1 ORDER BY 1`)
}

func (w *deltaWorld) edges() []string {
	return w.rows(`SELECT group_id, '>', member_id FROM dir_members WHERE tenant_id = $1 ORDER BY 1, 3`)
}

// dirty is what the next plan recomputes memberships for: edges added
// or retyped since the plan the app follows ("group +member"), edges
// removed ("group -member"), groups marked ("group").
func (w *deltaWorld) dirty() []string {
	return w.rows(`SELECT e.group_id || ' +' || e.member_id FROM dir_members e JOIN tenants t ON t.id = e.tenant_id
		WHERE e.tenant_id = $1 AND e.changed_run_seq > t.memberships_run_seq
		UNION ALL SELECT c.group_id || ' -' || c.member_id FROM dir_edge_changes c WHERE c.tenant_id = $1
			AND NOT EXISTS (SELECT 1 FROM dir_members e
				WHERE e.tenant_id = c.tenant_id AND e.group_id = c.group_id AND e.member_id = c.member_id)
		UNION ALL SELECT group_id FROM dir_dirty_groups WHERE tenant_id = $1
		ORDER BY 1`)
}

func (w *deltaWorld) links() store.DeltaLinks {
	w.t.Helper()
	l, err := w.st.DeltaLinks(context.Background(), w.tenant)
	must(w.t, err)
	return l
}

func wantRows(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func row(id, name string, deleted bool) string {
	return fmt.Sprintf("%s %s deleted=%v", id, name, deleted)
}
func edge(g, m string) string { return g + ">" + m }

// A delta run changes what its pages name, removes what they say removed,
// and leaves everything else as the last full run read it: it tombstones
// nothing for being unseen and drops no edge for missing from a list.
func TestDeltaRunLeavesWhatItDoesNotMentionAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	w.full([]store.DirUser{dUser(1, "Ann"), dUser(2, "Bob"), dUser(3, "Cy")},
		[]store.DirGroup{dGroup(1, "Staff"), dGroup(2, "Ops")},
		map[string][]store.DirMember{gID(1): {memberUser(1), memberUser(2)}, gID(2): {memberUser(3)}}, [2]string{})
	before := w.rows(`SELECT entra_id, v_run_seq FROM dir_users WHERE tenant_id = $1 AND entra_id <> '` + uID(1) + `' ORDER BY 1`)
	edgesBefore := w.edges()
	apps, _, err := w.st.ListAppUsers(ctx, w.tenant, "", 0)
	must(t, err)

	d := w.newRun(store.KindDelta)
	must(t, w.st.ApplyUsersDeltaPage(ctx, w.page(d, 0), []store.DirUser{dUser(1, "Ann B.")}, nil, w.at))
	must(t, w.st.ApplyGroupsDeltaPage(ctx, w.page(d, 1), nil, nil, nil, w.at))
	r := w.finish(d, 2, [2]string{"https://graph/u?d=2", "https://graph/g?d=2"})
	if r.Status != store.StatusSucceeded || r.Kind != store.KindDelta {
		t.Fatalf("delta run = %s %s %q (held: %s)", r.Kind, r.Status, r.Error, r.HeldReason)
	}
	wantRows(t, "users", w.users(), row(uID(1), "Ann B.", false), row(uID(2), "Bob", false), row(uID(3), "Cy", false))
	wantRows(t, "untouched users' versions",
		w.rows(`SELECT entra_id, v_run_seq FROM dir_users WHERE tenant_id = $1 AND entra_id <> '`+uID(1)+`' ORDER BY 1`), before...)
	wantRows(t, "groups", w.groups(), row(gID(1), "Staff", false), row(gID(2), "Ops", false))
	wantRows(t, "edges", w.edges(), edgesBefore...)
	after, _, err := w.st.ListAppUsers(ctx, w.tenant, "", 0)
	must(t, err)
	if len(after) != len(apps) {
		t.Fatalf("app users %d after the delta run, %d before", len(after), len(apps))
	}
	if u, err := w.st.GetAppUser(ctx, w.tenant, uID(1)); err != nil || u.DisplayName != "Ann B." {
		t.Fatalf("changed user in the app: %+v %v", u, err)
	}
}

// Removals, restores and member changes, in any page order, replayed.
func TestDeltaPagesRemoveRestoreAndChangeMembers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	w.full([]store.DirUser{dUser(1, "Ann"), dUser(2, "Bob"), dUser(3, "Cy")},
		[]store.DirGroup{dGroup(1, "Staff"), dGroup(2, "Ops"), dGroup(4, "Lab")},
		map[string][]store.DirMember{gID(1): {memberUser(1), memberUser(2)}, gID(2): {memberUser(3)},
			gID(4): {memberUser(1), memberUser(3)}}, [2]string{})
	wantRows(t, "dirty after the full run", w.dirty())

	d := w.newRun(store.KindDelta)
	// Bob is soft-deleted, Cy gone for good, and user 9, never seen, too.
	users := func() error {
		return w.st.ApplyUsersDeltaPage(ctx, w.page(d, 0), nil,
			[]store.DirRemoved{{ID: uID(2), Restorable: true}, {ID: uID(3)}, {ID: uID(9)}}, w.at)
	}
	// Group 2 is deleted; group 1 gains Cy (who is gone: Graph's edges
	// may lag) and a device, loses Bob; group 3 is new with Ann; group 4
	// loses Cy and gains the same device, named by nobody this time (one
	// page adds it twice: it is written once, and keeps its name).
	device := store.DirMember{ID: "dev-1", Type: store.MemberDevice, DisplayName: "Laptop"}
	unnamed := store.DirMember{ID: "dev-1", Type: store.MemberDevice}
	groups := func() error {
		return w.st.ApplyGroupsDeltaPage(ctx, w.page(d, 1), []store.DirGroup{dGroup(3, "New")},
			[]store.DirRemoved{{ID: gID(2)}},
			[]store.MembersDelta{
				{GroupID: gID(3), Added: []store.DirMember{memberUser(1)}},
				{GroupID: gID(1), Added: []store.DirMember{memberUser(3), device}, Removed: []string{uID(2)}},
				{GroupID: gID(4), Added: []store.DirMember{unnamed}, Removed: []string{uID(3)}},
			}, w.at)
	}
	must(t, groups())
	must(t, users())
	applied := storetest.TableHashes(t, w.db)
	must(t, users())
	must(t, groups())
	storetest.DiffHashes(t, "delta pages applied again", storetest.TableHashes(t, w.db), applied)

	wantRows(t, "users", w.users(), row(uID(1), "Ann", false), row(uID(2), "", true), row(uID(3), "", true),
		row(uID(9), "", true))
	wantRows(t, "groups", w.groups(), row(gID(1), "Staff", false), row(gID(2), "", true), row(gID(3), "New", false),
		row(gID(4), "Lab", false))
	wantRows(t, "edges", w.edges(), edge(gID(1), uID(1)), edge(gID(1), uID(3)), edge(gID(1), "dev-1"),
		edge(gID(2), uID(3)), edge(gID(3), uID(1)), edge(gID(4), uID(1)), edge(gID(4), "dev-1"))
	wantRows(t, "changed edges", w.dirty(), gID(1)+" +"+uID(3), gID(1)+" +dev-1", gID(1)+" -"+uID(2),
		gID(3)+" +"+uID(1), gID(4)+" +dev-1", gID(4)+" -"+uID(3))
	wantRows(t, "devices", w.rows(`SELECT entra_id, display_name FROM dir_devices WHERE tenant_id = $1`), "dev-1Laptop")

	r := w.finish(d, 2, [2]string{})
	if r.Status != store.StatusSucceeded {
		t.Fatalf("delta run = %s %q %s", r.Status, r.Error, r.HeldReason)
	}
	// The deleted group's edges go with it, as after a full run.
	wantRows(t, "edges after finalize", w.edges(), edge(gID(1), uID(1)), edge(gID(1), uID(3)), edge(gID(1), "dev-1"),
		edge(gID(3), uID(1)), edge(gID(4), uID(1)), edge(gID(4), "dev-1"))
	wantRows(t, "changed edges after the plan", w.dirty())
	wantRows(t, "edge removals after finalize", w.rows(`SELECT member_id FROM dir_member_removals WHERE tenant_id = $1`))
	for _, id := range []string{uID(2), uID(3)} {
		if _, err := w.st.GetAppUser(ctx, w.tenant, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("removed user %s in the app: %v", id, err)
		}
	}

	// Bob is restored: he comes again as changed.
	d2 := w.newRun(store.KindDelta)
	must(t, w.st.ApplyUsersDeltaPage(ctx, w.page(d2, 0), []store.DirUser{dUser(2, "Bob")}, nil, w.at))
	w.finish(d2, 1, [2]string{})
	wantRows(t, "users after the restore", w.users(), row(uID(1), "Ann", false), row(uID(2), "Bob", false),
		row(uID(3), "", true), row(uID(9), "", true))
	if u, err := w.st.GetAppUser(ctx, w.tenant, uID(2)); err != nil || u.DisplayName != "Bob" {
		t.Fatalf("restored user in the app: %+v %v", u, err)
	}
}

// Versions order delta pages against full ones and against each other:
// an older page applied late neither resurrects a removed object nor
// brings back a removed edge.
func TestOlderPagesDoNotUndoDeltaRemovals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	full := w.newRun(store.KindFull)
	delta := w.newRun(store.KindDelta)

	// The delta run (newer) removes user 1, group 2 and the edge 1→2
	// first; the full run's pages, read before, arrive after.
	must(t, w.st.ApplyUsersDeltaPage(ctx, w.page(delta, 0), nil, []store.DirRemoved{{ID: uID(1)}}, w.at))
	must(t, w.st.ApplyGroupsDeltaPage(ctx, w.page(delta, 1), nil, []store.DirRemoved{{ID: gID(2)}},
		[]store.MembersDelta{{GroupID: gID(1), Removed: []string{uID(2)}}}, w.at))
	must(t, w.st.ApplyUsersPage(ctx, w.page(full, 0), []store.DirUser{dUser(1, "Ann"), dUser(2, "Bob")}, w.at))
	must(t, w.st.ApplyGroupsPage(ctx, w.page(full, 1), []store.DirGroup{dGroup(1, "Staff"), dGroup(2, "Ops")}, w.at))
	must(t, w.st.ApplyMembersPage(ctx, w.page(full, 2), store.MembersPage{GroupID: gID(1), Last: true,
		Members: []store.DirMember{memberUser(1), memberUser(2)}}, w.at))
	wantRows(t, "users", w.users(), row(uID(1), "", true), row(uID(2), "Bob", false))
	wantRows(t, "groups", w.groups(), row(gID(1), "Staff", false), row(gID(2), "", true))
	wantRows(t, "edges", w.edges(), edge(gID(1), uID(1)))

	// Within one delta run: page 3 removes the edge 1→1, page 2 (older)
	// added it and arrives late.
	must(t, w.st.ApplyGroupsDeltaPage(ctx, w.page(delta, 3), nil, nil,
		[]store.MembersDelta{{GroupID: gID(1), Removed: []string{uID(1)}}}, w.at))
	must(t, w.st.ApplyGroupsDeltaPage(ctx, w.page(delta, 2), nil, nil,
		[]store.MembersDelta{{GroupID: gID(1), Added: []store.DirMember{memberUser(1)}}}, w.at))
	wantRows(t, "edges after a late older add", w.edges())
	// A newer add wins over an older removal, in either order.
	must(t, w.st.ApplyGroupsDeltaPage(ctx, w.page(delta, 5), nil, nil,
		[]store.MembersDelta{{GroupID: gID(1), Added: []store.DirMember{memberUser(2)}}}, w.at))
	must(t, w.st.ApplyGroupsDeltaPage(ctx, w.page(delta, 4), nil, nil,
		[]store.MembersDelta{{GroupID: gID(1), Removed: []string{uID(2)}}}, w.at))
	wantRows(t, "edges after a late older removal", w.edges(), edge(gID(1), uID(2)))
}

// Malformed delta pages are refused whole and change nothing.
func TestMalformedDeltaPagesChangeNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	d := w.newRun(store.KindDelta)
	before := storetest.TableHashes(t, w.db)
	ok := []store.DirMember{memberUser(1)}
	for _, tc := range []struct {
		name  string
		apply func() error
	}{
		{"user without id", func() error {
			return w.st.ApplyUsersDeltaPage(ctx, d, []store.DirUser{dUser(1, "A"), {DisplayName: "x"}}, nil, w.at)
		}},
		{"removed user without id", func() error {
			return w.st.ApplyUsersDeltaPage(ctx, d, nil, []store.DirRemoved{{ID: " "}}, w.at)
		}},
		{"removed user id with NUL", func() error {
			return w.st.ApplyUsersDeltaPage(ctx, d, nil, []store.DirRemoved{{ID: "a\x00b"}}, w.at)
		}},
		{"user changed and removed", func() error {
			return w.st.ApplyUsersDeltaPage(ctx, d, []store.DirUser{dUser(1, "A")}, []store.DirRemoved{{ID: uID(1)}}, w.at)
		}},
		{"removed group without id", func() error {
			return w.st.ApplyGroupsDeltaPage(ctx, d, nil, []store.DirRemoved{{ID: ""}}, nil, w.at)
		}},
		{"group changed and removed", func() error {
			return w.st.ApplyGroupsDeltaPage(ctx, d, []store.DirGroup{dGroup(1, "G")}, []store.DirRemoved{{ID: gID(1)}}, nil, w.at)
		}},
		{"member changes without group", func() error {
			return w.st.ApplyGroupsDeltaPage(ctx, d, nil, nil, []store.MembersDelta{{Added: ok}}, w.at)
		}},
		{"member changes of a group id with NUL", func() error {
			return w.st.ApplyGroupsDeltaPage(ctx, d, nil, nil, []store.MembersDelta{{GroupID: "g\x00", Added: ok}}, w.at)
		}},
		{"member of unknown type", func() error {
			return w.st.ApplyGroupsDeltaPage(ctx, d, nil, nil, []store.MembersDelta{{GroupID: gID(1),
				Added: []store.DirMember{{ID: uID(1), Type: "robot"}}}}, w.at)
		}},
		{"added member without id", func() error {
			return w.st.ApplyGroupsDeltaPage(ctx, d, nil, nil, []store.MembersDelta{{GroupID: gID(1),
				Added: []store.DirMember{{Type: store.MemberUser}}}}, w.at)
		}},
		{"removed member without id", func() error {
			return w.st.ApplyGroupsDeltaPage(ctx, d, nil, nil, []store.MembersDelta{{GroupID: gID(1), Removed: []string{""}}}, w.at)
		}},
		{"member added and removed", func() error {
			return w.st.ApplyGroupsDeltaPage(ctx, d, nil, nil, []store.MembersDelta{{GroupID: gID(1), Added: ok,
				Removed: []string{uID(1)}}}, w.at)
		}},
		{"group twice in member changes", func() error {
			return w.st.ApplyGroupsDeltaPage(ctx, d, nil, nil, []store.MembersDelta{{GroupID: gID(1), Added: ok},
				{GroupID: gID(1), Removed: []string{uID(2)}}}, w.at)
		}},
		{"negative page", func() error {
			ref := d
			ref.Page = -1
			return w.st.ApplyUsersDeltaPage(ctx, ref, []store.DirUser{dUser(1, "A")}, nil, w.at)
		}},
		{"delta link with NUL", func() error {
			return w.st.MarkRunFetched(ctx, d, store.Fetched{Pages: 1, UsersDeltaLink: "https://x\x00"}, w.at)
		}},
	} {
		if err := tc.apply(); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
	storetest.DiffHashes(t, "after malformed pages", storetest.TableHashes(t, w.db), before)
}

// The tenant's delta links move only when a run's plan is applied, and
// only forward: a held run leaves them until it is approved, a failed run
// never moves them, and a run without links keeps the saved ones.
func TestDeltaLinksAreSavedWhenThePlanIsApplied(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	if l := w.links(); l != (store.DeltaLinks{}) {
		t.Fatalf("links of a new tenant: %+v", l)
	}
	users := []store.DirUser{dUser(1, "Ann")}
	r1 := w.full(users, nil, nil, [2]string{"U1", "G1"})
	if l := w.links(); l.Users != "U1" || l.Groups != "G1" || l.RunSeq != r1.Seq || !l.TakenAt.Equal(w.at) {
		t.Fatalf("links after run 1: %+v", l)
	}

	set, err := w.st.TenantSettings(ctx, w.tenant)
	must(t, err)
	set.ApplyMode = plan.ApplyReview
	_, _, err = w.st.UpdateSettings(ctx, w.tenant, set)
	must(t, err)
	d := w.newRun(store.KindDelta)
	must(t, w.st.ApplyUsersDeltaPage(ctx, w.page(d, 0), []store.DirUser{dUser(1, "Ann B.")}, nil, w.at))
	r2 := w.finish(d, 1, [2]string{"U2", "G2"})
	if r2.Status != store.StatusAwaitingApproval {
		t.Fatalf("run 2 in review mode: %s", r2.Status)
	}
	if l := w.links(); l.Users != "U1" || l.Groups != "G1" {
		t.Fatalf("a held run moved the links: %+v", l)
	}
	if _, err := w.st.ApprovePlan(ctx, w.tenant, d.RunID); err != nil {
		t.Fatal(err)
	}
	if l := w.links(); l.Users != "U2" || l.Groups != "G2" || l.RunSeq != r2.Seq {
		t.Fatalf("links after approving run 2: %+v", l)
	}

	// Run 3 is held, run 4 applied; run 3's approval is refused and its
	// links never replace run 4's.
	d3 := w.newRun(store.KindDelta)
	must(t, w.st.ApplyUsersDeltaPage(ctx, w.page(d3, 0), []store.DirUser{dUser(1, "Ann C.")}, nil, w.at))
	if r := w.finish(d3, 1, [2]string{"U3", "G3"}); r.Status != store.StatusAwaitingApproval {
		t.Fatalf("run 3: %s", r.Status)
	}
	set.ApplyMode = plan.ApplyAuto
	_, _, err = w.st.UpdateSettings(ctx, w.tenant, set)
	must(t, err)
	d4 := w.newRun(store.KindDelta)
	must(t, w.st.ApplyUsersDeltaPage(ctx, w.page(d4, 0), nil, nil, w.at))
	if r := w.finish(d4, 1, [2]string{"U4", ""}); r.Status != store.StatusSucceeded {
		t.Fatalf("run 4: %s %s", r.Status, r.HeldReason)
	}
	if _, err := w.st.ApprovePlan(ctx, w.tenant, d3.RunID); !errors.Is(err, store.ErrStalePlan) {
		t.Fatalf("approving run 3 after run 4: %v", err)
	}
	// Run 4 took no groups link: the groups round goes on from run 2's.
	if l := w.links(); l.Users != "U4" || l.Groups != "G2" || l.RunSeq != r2.Seq {
		t.Fatalf("links after run 4: %+v", l)
	}

	// A failed run leaves them.
	d5 := w.newRun(store.KindDelta)
	must(t, w.st.MarkRunFetched(ctx, d5, store.Fetched{Pages: 1, UsersDeltaLink: "U5", GroupsDeltaLink: "G5"}, w.at))
	must(t, w.st.MarkRunFailed(ctx, d5, "boom", store.GraphStats{}, w.at))
	if l := w.links(); l.Users != "U4" || l.Groups != "G2" {
		t.Fatalf("links after a failed run: %+v", l)
	}
	if _, err := w.st.DeltaLinks(ctx, "not-a-uuid"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("links of a malformed tenant id: %v", err)
	}
	var saved []string
	for _, r := range w.rows(`SELECT resource, link, run_seq FROM tenant_delta_links WHERE tenant_id = $1 ORDER BY 1`) {
		saved = append(saved, strings.TrimSpace(r))
	}
	wantRows(t, "saved links", saved, "groupsG22", "usersU44")
}

// A run that listed users through scope.userFilter drops the tenant's
// delta links when it is applied: its mirror lacks the users the filter
// hid, and a delta round after the filter is cleared would not bring them
// back. A fetch that says it was filtered and carries links is refused.
func TestAFilteredListingDropsTheDeltaLinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	users := []store.DirUser{dUser(1, "Ann"), dUser(2, "Bob")}
	w.full(users, nil, nil, [2]string{"U1", "G1"})
	if l := w.links(); l.Users != "U1" || l.Groups != "G1" {
		t.Fatalf("links after an unfiltered full run: %+v", l)
	}

	ref := w.newRun(store.KindFull)
	must(t, w.st.ApplyUsersPage(ctx, w.page(ref, 0), users, w.at)) // a filter both match
	must(t, w.st.ApplyGroupsPage(ctx, w.page(ref, 1), nil, w.at))
	bad := store.Fetched{Pages: 2, UsersFiltered: true, UsersDeltaLink: "U2", GroupsDeltaLink: "G2"}
	if err := w.st.MarkRunFetched(ctx, ref, bad, w.at); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a filtered fetch with delta links: %v", err)
	}
	must(t, w.st.MarkRunFetched(ctx, ref, store.Fetched{Pages: 2, UsersFiltered: true}, w.at))
	if done, err := w.st.TryFinalize(ctx, w.tenant, ref.RunID, w.at); err != nil || !done {
		t.Fatalf("finalize the filtered run: %v %v", done, err)
	}
	if l := w.links(); l != (store.DeltaLinks{}) {
		t.Fatalf("links after a filtered full run: %+v", l)
	}

	// Unfiltered again: the next full run's links are kept as before.
	w.full(users, nil, nil, [2]string{"U3", "G3"})
	if l := w.links(); l.Users != "U3" || l.Groups != "G3" {
		t.Fatalf("links after the filter went: %+v", l)
	}
}

// A delta run reads no member lists: a group whose members Graph refused
// in the last full run stays shown with that error.
func TestDeltaRunKeepsGroupResults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	ref := w.newRun(store.KindFull)
	must(t, w.st.ApplyUsersPage(ctx, w.page(ref, 0), []store.DirUser{dUser(1, "Ann")}, w.at))
	must(t, w.st.ApplyGroupsPage(ctx, w.page(ref, 1), []store.DirGroup{dGroup(1, "Hidden")}, w.at))
	must(t, w.st.ApplyUnreadableGroup(ctx, w.page(ref, 2), store.UnreadableGroup{GroupID: gID(1), Status: 403,
		Code: "Authorization_RequestDenied", Message: "no"}, w.at))
	w.finish(ref, 3, [2]string{})
	result := func() string {
		gs, _, err := w.st.ListAppGroups(ctx, w.tenant, "", 0)
		must(t, err)
		if len(gs) != 1 {
			t.Fatalf("app groups: %+v", gs)
		}
		return fmt.Sprint(gs[0].LastOK, " ", gs[0].LastError)
	}
	red := result()
	if strings.HasPrefix(red, "true") {
		t.Fatalf("unreadable group after the full run: %s", red)
	}
	d := w.newRun(store.KindDelta)
	must(t, w.st.ApplyGroupsDeltaPage(ctx, w.page(d, 0), []store.DirGroup{dGroup(1, "Hidden")}, nil, nil, w.at))
	w.finish(d, 1, [2]string{})
	if got := result(); got != red {
		t.Fatalf("group result after a delta run: %s, want %s", got, red)
	}
}

// Entra member counts move by each edge change once: a newer run whose
// pages were applied before an older run's plan had its changes counted
// by that plan's refresh, and its own plan does not count them again.
// Removing an edge and adding it back in between counts nothing, nor
// does adding one and removing it.
func TestEntraCountsCountANewerRunsChangesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	// Staff holds Ops, which holds Ann and Bob.
	first := w.full([]store.DirUser{dUser(1, "Ann"), dUser(2, "Bob"), dUser(3, "Cy"), dUser(4, "Di"), dUser(5, "Eve")},
		[]store.DirGroup{dGroup(1, "Staff"), dGroup(2, "Ops")},
		map[string][]store.DirMember{gID(1): {grp(gID(2))}, gID(2): {memberUser(1), memberUser(2)}}, [2]string{})
	if first.Status != store.StatusSucceeded {
		t.Fatalf("full run = %s %q %s", first.Status, first.Error, first.HeldReason)
	}
	counts := func() []string {
		return w.rows(`SELECT entra_id || ' ' || entra_member_count FROM app_groups WHERE tenant_id = $1 ORDER BY 1`)
	}
	wantRows(t, "counts after the full run", counts(), gID(1)+" 2", gID(2)+" 2")

	older, newer := w.newRun(store.KindDelta), w.newRun(store.KindDelta)
	// The newer run's page comes first: Cy joins Ops, Bob leaves and
	// comes back.
	must(t, w.st.ApplyGroupsDeltaPage(ctx, w.page(newer, 0), nil, nil,
		[]store.MembersDelta{{GroupID: gID(2), Added: []store.DirMember{memberUser(3)}, Removed: []string{uID(2)}}}, w.at))
	must(t, w.st.ApplyGroupsDeltaPage(ctx, w.page(newer, 1), nil, nil,
		[]store.MembersDelta{{GroupID: gID(2), Added: []store.DirMember{memberUser(2)}}}, w.at))
	// The older run: Di joins Staff directly; Eve joins Ops and leaves.
	must(t, w.st.ApplyGroupsDeltaPage(ctx, w.page(older, 0), nil, nil,
		[]store.MembersDelta{{GroupID: gID(1), Added: []store.DirMember{memberUser(4)}}}, w.at))
	must(t, w.st.ApplyGroupsDeltaPage(ctx, w.page(older, 1), nil, nil,
		[]store.MembersDelta{{GroupID: gID(2), Added: []store.DirMember{memberUser(5)}}}, w.at))
	must(t, w.st.ApplyGroupsDeltaPage(ctx, w.page(older, 2), nil, nil,
		[]store.MembersDelta{{GroupID: gID(2), Removed: []string{uID(5)}}}, w.at))
	if r := w.finish(older, 3, [2]string{}); r.Status != store.StatusSucceeded {
		t.Fatalf("older delta run = %s %q %s", r.Status, r.Error, r.HeldReason)
	}
	wantRows(t, "counts after the older run's plan", counts(), gID(1)+" 4", gID(2)+" 3")
	if r := w.finish(newer, 2, [2]string{}); r.Status != store.StatusSucceeded {
		t.Fatalf("newer delta run = %s %q %s", r.Status, r.Error, r.HeldReason)
	}
	wantRows(t, "counts after the newer run's plan", counts(), gID(1)+" 4", gID(2)+" 3")
	wantRows(t, "changes left", w.rows(`SELECT member_id FROM dir_edge_changes WHERE tenant_id = $1`))
}

// The app's member count of a group switched off does not follow the
// members it loses meanwhile; switched on again, the group counts the
// members it has, even when the plan that follows changes none of them.
func TestSyncedCountOfAGroupSwitchedOnAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	w.full([]store.DirUser{dUser(1, "Ann"), dUser(2, "Bob")}, []store.DirGroup{dGroup(1, "Staff")},
		map[string][]store.DirMember{gID(1): {memberUser(1), memberUser(2)}}, [2]string{})
	counts := func() []string {
		return w.rows(`SELECT entra_id || ' ' || synced_member_count FROM app_groups WHERE tenant_id = $1 ORDER BY 1`)
	}
	wantRows(t, "counts after the full run", counts(), gID(1)+" 2")
	off, on := false, true
	_, err := w.st.UpdateGroupGrants(ctx, w.tenant, gID(1), store.GroupBindingPatch{Enabled: &off})
	must(t, err)
	// Bob leaves the company: the app loses him, and his membership.
	d := w.newRun(store.KindDelta)
	must(t, w.st.ApplyUsersDeltaPage(ctx, w.page(d, 0), nil, []store.DirRemoved{{ID: uID(2)}}, w.at))
	if r := w.finish(d, 1, [2]string{}); r.Status != store.StatusSucceeded {
		t.Fatalf("delta run = %s %q %s", r.Status, r.Error, r.HeldReason)
	}
	wantRows(t, "members of the switched-off group", w.rows(`SELECT user_id FROM app_group_members WHERE tenant_id = $1`),
		uID(1))
	_, err = w.st.UpdateGroupGrants(ctx, w.tenant, gID(1), store.GroupBindingPatch{Enabled: &on})
	must(t, err)
	if r := w.finish(w.newRun(store.KindDelta), 0, [2]string{}); r.Status != store.StatusSucceeded {
		t.Fatalf("delta run = %s %q %s", r.Status, r.Error, r.HeldReason)
	}
	wantRows(t, "counts after the group is switched on", counts(), gID(1)+" 1")
}

// A delta run lists no member list, but edges whose group is gone still
// go when it finalizes: here a failed full run left a member list of a
// group the mirror has no row for, beside groups that stay.
func TestDeltaRunDropsTheEdgesOfGroupsWithoutARow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	w.full([]store.DirUser{dUser(1, "Ann"), dUser(2, "Bob")}, []store.DirGroup{dGroup(1, "Staff"), dGroup(9, "Ops")},
		map[string][]store.DirMember{gID(1): {memberUser(1)}, gID(9): {memberUser(2)}}, [2]string{})
	failed := w.newRun(store.KindFull)
	must(t, w.st.ApplyMembersPage(ctx, w.page(failed, 0), store.MembersPage{GroupID: gID(5), Last: true,
		Members: []store.DirMember{memberUser(1), memberUser(2)}}, w.at))
	must(t, w.st.MarkRunFailed(ctx, failed, "the fetcher gave up", store.GraphStats{}, w.at))
	wantRows(t, "edges before the delta run", w.edges(), edge(gID(1), uID(1)), edge(gID(5), uID(1)),
		edge(gID(5), uID(2)), edge(gID(9), uID(2)))

	d := w.newRun(store.KindDelta)
	must(t, w.st.ApplyUsersDeltaPage(ctx, w.page(d, 0), []store.DirUser{dUser(1, "Ann")}, nil, w.at))
	if r := w.finish(d, 1, [2]string{}); r.Status != store.StatusSucceeded {
		t.Fatalf("delta run = %s %q %s", r.Status, r.Error, r.HeldReason)
	}
	wantRows(t, "edges after the delta run", w.edges(), edge(gID(1), uID(1)), edge(gID(9), uID(2)))
}
