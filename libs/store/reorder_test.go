package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// The mirror must end the same whatever order pages arrive in. Each case
// below is a sequence that once did not: a newer page that repeated what
// the mirror already held was skipped, so the mirror kept an older
// version, and a page or tombstone between the two versions, arriving
// late, won over the newer page.
func TestLatePagesDoNotWinOverNewerUnchangedOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	type world struct {
		st   *store.Store
		conn *pgx.Conn
		tn   store.Tenant
		runs []store.PageRef // runs[i] has seq i+1
	}
	setup := func(t *testing.T, runs int) *world {
		st, url := storetest.NewWithURL(t)
		conn, err := pgx.Connect(ctx, url)
		must(t, err)
		t.Cleanup(func() { conn.Close(context.Background()) })
		w := &world{st: st, conn: conn, tn: newTenant(t, st, 10)}
		for i := 0; i < runs; i++ {
			r, err := st.CreateRun(ctx, store.NewRun{TenantID: w.tn.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
			must(t, err)
			w.runs = append(w.runs, store.PageRef{TenantID: w.tn.ID, RunID: r.ID, RunSeq: r.Seq})
		}
		return w
	}
	page := func(ref store.PageRef, p int32) store.PageRef { ref.Page = p; return ref }
	finalize := func(t *testing.T, w *world, ref store.PageRef, first, pages int) {
		t.Helper()
		must(t, w.st.MarkRunFetched(ctx, ref, store.Fetched{FirstPage: first, Pages: pages}, at))
		if done, err := w.st.TryFinalize(ctx, w.tn.ID, ref.RunID, at); err != nil || !done {
			t.Fatalf("finalize run %d: %v %v", ref.RunSeq, done, err)
		}
	}
	appName := func(t *testing.T, w *world, id string) (string, bool) {
		t.Helper()
		users, _, err := w.st.ListAppUsers(ctx, w.tn.ID, "", 0)
		must(t, err)
		for _, u := range users {
			if u.EntraID == id {
				return u.DisplayName, true
			}
		}
		return "", false
	}

	t.Run("older run's page after a newer run repeated the row", func(t *testing.T) {
		t.Parallel()
		w := setup(t, 6)
		// Run 4 says A; run 6 says A again; run 5's page, delayed, says B.
		must(t, w.st.ApplyUsersPage(ctx, w.runs[3], []store.DirUser{user("A")}, at))
		must(t, w.st.ApplyUsersPage(ctx, w.runs[5], []store.DirUser{user("A")}, at))
		must(t, w.st.ApplyUsersPage(ctx, w.runs[4], []store.DirUser{user("B")}, at))
		if name, _, seq, _ := mirrorRow(t, w.conn, w.tn.ID); name != "A" || seq != 6 {
			t.Errorf("mirror after 4:A, 6:A, 5:B = %q at run %d, want A at run 6 (as in wire order)", name, seq)
		}
		finalize(t, w, w.runs[5], 0, 1)
		if name, ok := appName(t, w, userID); name != "A" {
			t.Errorf("run 6 finalized the user as %q (present %v), want A", name, ok)
		}
	})

	t.Run("first attempt's page after the second attempt repeated the row", func(t *testing.T) {
		t.Parallel()
		w := setup(t, 5)
		// Run 4 says A; run 5's second attempt says A again; its first
		// attempt's page, delayed, says B.
		must(t, w.st.ApplyUsersPage(ctx, w.runs[3], []store.DirUser{user("A")}, at))
		must(t, w.st.ApplyUsersPage(ctx, page(w.runs[4], span), []store.DirUser{user("A")}, at))
		must(t, w.st.ApplyUsersPage(ctx, page(w.runs[4], 0), []store.DirUser{user("B")}, at))
		if name, _, _, _ := mirrorRow(t, w.conn, w.tn.ID); name != "A" {
			t.Errorf("mirror after 4:A, 5 (attempt 2):A, 5 (attempt 1):B = %q, want A", name)
		}
		finalize(t, w, w.runs[4], span, 1)
		if name, ok := appName(t, w, userID); name != "A" {
			t.Errorf("run 5 finalized the user as %q (present %v), want A", name, ok)
		}
	})

	t.Run("older run's tombstone after a newer run repeated the row", func(t *testing.T) {
		t.Parallel()
		w := setup(t, 3)
		other := member(userY, "Y", "R&D")
		// Run 1 sees the user; run 2 does not (it was gone for a while);
		// run 3 sees it again, as run 1 did. Run 2 finalizes after run 3's
		// page is in: its tombstone must not hide what run 3 saw.
		must(t, w.st.ApplyUsersPage(ctx, w.runs[0], []store.DirUser{user("A"), other}, at))
		finalize(t, w, w.runs[0], 0, 1)
		must(t, w.st.ApplyUsersPage(ctx, w.runs[2], []store.DirUser{user("A"), other}, at))
		must(t, w.st.ApplyUsersPage(ctx, w.runs[1], []store.DirUser{other}, at))
		finalize(t, w, w.runs[1], 0, 1)
		finalize(t, w, w.runs[2], 0, 1)
		if _, deleted, seq, _ := mirrorRow(t, w.conn, w.tn.ID); deleted || seq != 3 {
			t.Errorf("mirror: deleted %v at run %d, want alive at run 3", deleted, seq)
		}
		if name, ok := appName(t, w, userID); !ok || name != "A" {
			t.Errorf("after run 3 the user is %q (present %v), want A", name, ok)
		}
	})

	t.Run("a replay of the same page writes nothing", func(t *testing.T) {
		t.Parallel()
		w := setup(t, 1)
		must(t, w.st.ApplyUsersPage(ctx, w.runs[0], []store.DirUser{user("A")}, at))
		_, _, _, x := mirrorRow(t, w.conn, w.tn.ID)
		must(t, w.st.ApplyUsersPage(ctx, w.runs[0], []store.DirUser{user("A")}, at))
		if _, _, _, x2 := mirrorRow(t, w.conn, w.tn.ID); x2 != x {
			t.Error("a replayed page wrote the row again")
		}
	})
}

// TestFencedOutAttemptDoesNotFinishTheRun: a fetcher that lost the
// tenant's lease to a later attempt of the same run finishes its read
// anyway and says so (RunFetched); the run must not end on what that
// fetcher read, older than what the latest attempt reads.
func TestFencedOutAttemptDoesNotFinishTheRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	st := storetest.New(t)
	tn := newTenant(t, st, 10)
	r, err := st.CreateRun(ctx, store.NewRun{TenantID: tn.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
	must(t, err)
	ref := store.PageRef{TenantID: tn.ID, RunID: r.ID, RunSeq: r.Seq}

	if a, err := st.BeginFetch(ctx, tn.ID, r.ID); err != nil || a != 1 {
		t.Fatalf("attempt 1: %d %v", a, err)
	}
	must(t, st.ApplyUsersPage(ctx, ref, []store.DirUser{user("Old")}, at))
	// The first fetcher's lease ran out; a second one began.
	if a, err := st.BeginFetch(ctx, tn.ID, r.ID); err != nil || a != 2 {
		t.Fatalf("attempt 2: %d %v", a, err)
	}
	// The first one's RunFetched arrives: the run waits.
	must(t, st.MarkRunFetched(ctx, ref, store.Fetched{FirstPage: 0, Pages: 1}, at))
	if done, err := st.TryFinalize(ctx, tn.ID, r.ID, at); err != nil || done {
		t.Fatalf("the run finished on the fenced-out attempt: %v %v", done, err)
	}
	// The second attempt's page and RunFetched finish it.
	second := ref
	second.Page = span
	must(t, st.ApplyUsersPage(ctx, second, []store.DirUser{user("New")}, at))
	must(t, st.MarkRunFetched(ctx, ref, store.Fetched{FirstPage: span, Pages: 1}, at))
	if done, err := st.TryFinalize(ctx, tn.ID, r.ID, at); err != nil || !done {
		t.Fatalf("the latest attempt did not finish the run: %v %v", done, err)
	}
	users, _, err := st.ListAppUsers(ctx, tn.ID, "", 0)
	must(t, err)
	if len(users) != 1 || users[0].DisplayName != "New" {
		t.Fatalf("app users %+v, want the latest attempt's New", users)
	}
}
