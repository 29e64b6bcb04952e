package store_test

import (
	"context"
	"testing"

	"github.com/entrasync/entrasync/libs/store"
)

// A full run that first read a delta round (caught up) reports as drift
// what its listing found beyond that round: a user changed, one gone and
// one new that the round never mentioned, a renamed group, an edge
// dropped and an edge added in lists the round did not name. What the
// round named (a renamed user, a group's new member) is not drift. The
// counts are the same whichever order the pages are applied in, and a
// full run that did not catch up reports none.
func TestCaughtUpFullRunReportsDrift(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	links := [2]string{"https://graph/u?d=1", "https://graph/g?d=1"}
	setUp := func(t *testing.T) *deltaWorld {
		w := newDeltaWorld(t)
		w.full([]store.DirUser{dUser(1, "Ann"), dUser(2, "Bob"), dUser(3, "Cy"), dUser(4, "Di")},
			[]store.DirGroup{dGroup(1, "Staff"), dGroup(2, "Ops"), dGroup(3, "Dev")},
			map[string][]store.DirMember{
				gID(1): {memberUser(1), memberUser(2)},
				gID(2): {memberUser(3), memberUser(4)},
				gID(3): {memberUser(1)},
			}, links)
		return w
	}
	// The second run's pages: its delta round (0, 1), then its listing.
	pages := func(w *deltaWorld, ref store.PageRef) []func() error {
		return []func() error{
			func() error {
				return w.st.ApplyUsersDeltaPage(ctx, w.page(ref, 0), []store.DirUser{dUser(1, "Ann B.")}, nil, w.at)
			},
			func() error {
				return w.st.ApplyGroupsDeltaPage(ctx, w.page(ref, 1), nil, nil,
					[]store.MembersDelta{{GroupID: gID(1), Added: []store.DirMember{memberUser(3)}}}, w.at)
			},
			func() error {
				return w.st.ApplyUsersPage(ctx, w.page(ref, 2),
					[]store.DirUser{dUser(1, "Ann B."), dUser(2, "Bob X"), dUser(3, "Cy"), dUser(5, "Eve")}, w.at)
			},
			func() error {
				return w.st.ApplyGroupsPage(ctx, w.page(ref, 3),
					[]store.DirGroup{dGroup(1, "Staff"), dGroup(2, "Ops 2"), dGroup(3, "Dev")}, w.at)
			},
			func() error {
				return w.st.ApplyMembersPage(ctx, w.page(ref, 4), store.MembersPage{GroupID: gID(1), Last: true,
					Members: []store.DirMember{memberUser(1), memberUser(2), memberUser(3)}}, w.at)
			},
			func() error {
				return w.st.ApplyMembersPage(ctx, w.page(ref, 5), store.MembersPage{GroupID: gID(2), Last: true,
					Members: []store.DirMember{memberUser(3)}}, w.at)
			},
			func() error {
				return w.st.ApplyMembersPage(ctx, w.page(ref, 6), store.MembersPage{GroupID: gID(3), Last: true,
					Members: []store.DirMember{memberUser(1), memberUser(2)}}, w.at)
			},
		}
	}
	finish := func(w *deltaWorld, ref store.PageRef, caughtUp bool) store.Run {
		must(t, w.st.MarkRunFetched(ctx, ref, store.Fetched{Pages: 7, UsersDeltaLink: "https://graph/u?d=2",
			GroupsDeltaLink: "https://graph/g?d=2", CaughtUp: caughtUp}, w.at))
		if done, err := w.st.TryFinalize(ctx, w.tenant, ref.RunID, w.at); err != nil || !done {
			t.Fatalf("finalize: %v %v", done, err)
		}
		r, err := w.st.GetRun(ctx, w.tenant, ref.RunID)
		must(t, err)
		if r.Status != store.StatusSucceeded {
			t.Fatalf("run %s %q (held: %s)", r.Status, r.Error, r.HeldReason)
		}
		if n := w.rows(`SELECT count(*) FROM sync_run_drift WHERE tenant_id = $1`); n[0] != "0" {
			t.Errorf("%s drift notes left after finalization", n[0])
		}
		return r
	}
	want := map[string]int64{"driftUsers": 3, "driftGroups": 1, "driftMemberships": 2}
	for name, order := range map[string][]int{
		"round first":   {0, 1, 2, 3, 4, 5, 6},
		"listing first": {6, 5, 4, 3, 2, 1, 0},
		"interleaved":   {2, 4, 0, 6, 3, 1, 5},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := setUp(t)
			ref := w.newRun(store.KindFull)
			apply := pages(w, ref)
			for _, i := range order {
				must(t, apply[i]())
			}
			r := finish(w, ref, true)
			for k, v := range want {
				if r.Counts[k] != v {
					t.Errorf("counts[%s] = %d, want %d (counts %v)", k, r.Counts[k], v, r.Counts)
				}
			}
			// Drift is reported, not kept: the mirror is Entra's.
			wantRows(t, "users", w.users(), row(uID(1), "Ann B.", false), row(uID(2), "Bob X", false),
				row(uID(3), "Cy", false), row(uID(4), "Di", true), row(uID(5), "Eve", false))
			wantRows(t, "edges", w.edges(), edge(gID(1), uID(1)), edge(gID(1), uID(2)), edge(gID(1), uID(3)),
				edge(gID(2), uID(3)), edge(gID(3), uID(1)), edge(gID(3), uID(2)))
		})
	}
	t.Run("not caught up", func(t *testing.T) {
		t.Parallel()
		w := setUp(t)
		ref := w.newRun(store.KindFull)
		for _, apply := range pages(w, ref) {
			must(t, apply())
		}
		r := finish(w, ref, false)
		for k := range want {
			if v, ok := r.Counts[k]; ok {
				t.Errorf("counts[%s] = %d on a run that did not catch up; want no drift counts", k, v)
			}
		}
	})
	t.Run("caught up without links is refused", func(t *testing.T) {
		t.Parallel()
		w := setUp(t)
		ref := w.newRun(store.KindFull)
		if err := w.st.MarkRunFetched(ctx, ref, store.Fetched{Pages: 1, CaughtUp: true}, w.at); err == nil {
			t.Fatal("MarkRunFetched took a caught-up fetch without delta links")
		}
	})
}

// A delta run whose attempt listed the whole directory (Graph asked for a
// resync) is what it read: a full run once finalized, whose group results
// are recorded (a group Graph refused shows red) and which counts as the
// weekly full read.
func TestDeltaRunThatListedEverythingIsRecordedFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newDeltaWorld(t)
	w.full([]store.DirUser{dUser(1, "Ann")}, []store.DirGroup{dGroup(1, "Staff"), dGroup(2, "Board")},
		map[string][]store.DirMember{gID(1): {memberUser(1)}, gID(2): {memberUser(1)}},
		[2]string{"https://graph/u?d=1", "https://graph/g?d=1"})

	ref := w.newRun(store.KindDelta)
	must(t, w.st.ApplyUsersPage(ctx, w.page(ref, 0), []store.DirUser{dUser(1, "Ann")}, w.at))
	must(t, w.st.ApplyGroupsPage(ctx, w.page(ref, 1), []store.DirGroup{dGroup(1, "Staff"), dGroup(2, "Board")}, w.at))
	must(t, w.st.ApplyMembersPage(ctx, w.page(ref, 2), store.MembersPage{GroupID: gID(1), Last: true,
		Members: []store.DirMember{memberUser(1)}}, w.at))
	must(t, w.st.ApplyUnreadableGroup(ctx, w.page(ref, 3), store.UnreadableGroup{GroupID: gID(2), Status: 403,
		Code: "Authorization_RequestDenied", Message: "Insufficient privileges to complete the operation."}, w.at))
	r := w.finish(ref, 4, [2]string{"https://graph/u?d=2", "https://graph/g?d=2"})
	if r.Kind != store.KindFull || r.Status != store.StatusSucceeded {
		t.Fatalf("the run is %s %s; want a full run that succeeded", r.Kind, r.Status)
	}
	wantRows(t, "group results", w.rows(`SELECT entra_id, ' ', last_ok FROM app_groups WHERE tenant_id = $1 ORDER BY 1`),
		gID(1)+" true", gID(2)+" false")

	// A delta run that only read delta pages stays delta.
	d := w.newRun(store.KindDelta)
	must(t, w.st.ApplyUsersDeltaPage(ctx, w.page(d, 0), nil, nil, w.at))
	must(t, w.st.ApplyGroupsDeltaPage(ctx, w.page(d, 1), nil, nil, nil, w.at))
	if r := w.finish(d, 2, [2]string{"https://graph/u?d=3", "https://graph/g?d=3"}); r.Kind != store.KindDelta {
		t.Fatalf("a delta round is recorded %s", r.Kind)
	}
}
