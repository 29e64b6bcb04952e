package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

const userID = "00000001-0000-4000-8000-000000000001"

func user(name string) store.DirUser {
	return store.DirUser{ID: userID, DisplayName: name, UserPrincipalName: "u@x", UserType: "Member", AccountEnabled: true}
}

// mirrorRow reads the user's display name, tombstone, version and xmin.
func mirrorRow(t *testing.T, conn *pgx.Conn, tenant string) (name string, deleted bool, seq int64, xmin uint32) {
	t.Helper()
	err := conn.QueryRow(context.Background(),
		`SELECT display_name, deleted, v_run_seq, xmin::text::bigint FROM dir_users WHERE tenant_id = $1 AND entra_id = $2`,
		tenant, userID).Scan(&name, &deleted, &seq, &xmin)
	must(t, err)
	return
}

func TestMirrorTakesOnlyNewerWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, url := storetest.NewWithURL(t)
	conn, err := pgx.Connect(ctx, url)
	must(t, err)
	defer conn.Close(ctx)
	tn := newTenant(t, st, 1)
	newRun := func() store.PageRef {
		r, err := st.CreateRun(ctx, store.NewRun{TenantID: tn.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
		must(t, err)
		return store.PageRef{TenantID: tn.ID, RunID: r.ID, RunSeq: r.Seq}
	}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	run1, run2 := newRun(), newRun()

	// The newer run's page lands first; the older one's, arriving late,
	// does not overwrite it.
	must(t, st.ApplyUsersPage(ctx, run2, []store.DirUser{user("New")}, at))
	_, _, _, x := mirrorRow(t, conn, tn.ID)
	must(t, st.ApplyUsersPage(ctx, run1, []store.DirUser{user("Old")}, at))
	if name, _, seq, x2 := mirrorRow(t, conn, tn.ID); name != "New" || seq != 2 || x2 != x {
		t.Fatalf("after the older page: %s seq %d (xmin %d→%d)", name, seq, x, x2)
	}

	// A later page of the same run with the same content advances the
	// version (so that nothing between the two wins later); a page number
	// reused for another kind of page is a conflict.
	later := run2
	later.Page = 5
	must(t, st.ApplyUsersPage(ctx, later, []store.DirUser{user("New")}, at))
	var page int32
	must(t, conn.QueryRow(ctx, `SELECT v_page FROM dir_users WHERE tenant_id = $1 AND entra_id = $2`, tn.ID, userID).Scan(&page))
	if page != 5 {
		t.Fatalf("an unchanged user's version stayed at page %d, want 5", page)
	}
	if err := st.ApplyGroupsPage(ctx, later, nil, at); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("page reused for groups: %v", err)
	}

	// Run 2 ends with 6 pages; only when all are in does it finish, and
	// the user it saw survives while nothing is tombstoned.
	must(t, st.MarkRunFetched(ctx, run2, store.Fetched{Pages: 6, Stats: store.GraphStats{Requests: 9}}, at))
	if done, err := st.TryFinalize(ctx, tn.ID, run2.RunID, at); err != nil || done {
		t.Fatalf("finalized with 2 of 6 pages: %v %v", done, err)
	}
	for p := int32(1); p <= 4; p++ {
		ref := run2
		ref.Page = p
		must(t, st.ApplyGroupsPage(ctx, ref, nil, at))
	}
	if done, err := st.TryFinalize(ctx, tn.ID, run2.RunID, at); err != nil || !done {
		t.Fatalf("TryFinalize with every page in = %v, %v", done, err)
	}
	if done, err := st.TryFinalize(ctx, tn.ID, run2.RunID, at); err != nil || done {
		t.Fatalf("a second TryFinalize = %v, %v", done, err)
	}
	r2, err := st.GetRun(ctx, tn.ID, run2.RunID)
	must(t, err)
	if r2.Status != store.StatusSucceeded || r2.PagesApplied != 6 || r2.Counts["usersCreated"] != 1 || r2.GraphRequests != 9 {
		t.Fatalf("run 2 = %+v", r2)
	}
	// Run 1 never finished: run 2 superseded it, and its events are no-ops.
	r1, err := st.GetRun(ctx, tn.ID, run1.RunID)
	must(t, err)
	if r1.Status != store.StatusFailed || !strings.Contains(r1.Error, "superseded by run 2") {
		t.Fatalf("run 1 = %s %q", r1.Status, r1.Error)
	}

	// Run 3 does not see the user: finalization tombstones it, and a late
	// page of run 3 or a replay of run 2 does not bring it back. Its users
	// listing was empty while the app has a user: the guard holds the
	// removal until an admin approves it.
	run3 := newRun()
	run3.Page = 0
	must(t, st.ApplyUsersPage(ctx, run3, nil, at))
	must(t, st.MarkRunFetched(ctx, run3, store.Fetched{Pages: 1}, at))
	if done, err := st.TryFinalize(ctx, tn.ID, run3.RunID, at); err != nil || !done {
		t.Fatalf("run 3: %v %v", done, err)
	}
	r3, err := st.GetRun(ctx, tn.ID, run3.RunID)
	must(t, err)
	if r3.Status != store.StatusAwaitingApproval || r3.HeldReason != "deletion_guard" || r3.PlanSummary["removeUser"] != 1 {
		t.Fatalf("run 3 = %s %q %v", r3.Status, r3.HeldReason, r3.PlanSummary)
	}
	if users, _, err := st.ListAppUsers(ctx, tn.ID, "", 0); err != nil || len(users) != 1 {
		t.Fatalf("app users while run 3 is held: %v %v", users, err)
	}
	if r3, err = st.ApprovePlan(ctx, tn.ID, run3.RunID); err != nil || r3.Status != store.StatusSucceeded {
		t.Fatalf("approve run 3: %+v %v", r3, err)
	}
	if _, deleted, seq, _ := mirrorRow(t, conn, tn.ID); !deleted || seq != 3 {
		t.Fatalf("user not tombstoned by run 3: deleted %v seq %d", deleted, seq)
	}
	must(t, st.ApplyUsersPage(ctx, run2, []store.DirUser{user("New")}, at))
	must(t, st.ApplyUsersPage(ctx, run3, []store.DirUser{user("New")}, at))
	if _, deleted, _, _ := mirrorRow(t, conn, tn.ID); !deleted {
		t.Fatal("a replayed page resurrected a deleted user")
	}
	users, _, err := st.ListAppUsers(ctx, tn.ID, "", 0)
	must(t, err)
	if len(users) != 0 {
		t.Fatalf("app users after deletion: %v", users)
	}

	// A run 4 that sees the user again brings it back.
	run4 := newRun()
	must(t, st.ApplyUsersPage(ctx, run4, []store.DirUser{user("Back")}, at))
	must(t, st.MarkRunFetched(ctx, run4, store.Fetched{Pages: 1}, at))
	if done, err := st.TryFinalize(ctx, tn.ID, run4.RunID, at); err != nil || !done {
		t.Fatalf("run 4: %v %v", done, err)
	}
	users, next, err := st.ListAppUsers(ctx, tn.ID, "", 0)
	must(t, err)
	if len(users) != 1 || users[0].DisplayName != "Back" || users[0].License != store.LicenseAssigned || next != "" {
		t.Fatalf("app users after the return: %+v %q", users, next)
	}
}

func TestListsTellEmptyFromUnknownTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	tn := newTenant(t, st, 1)
	if users, next, err := st.ListAppUsers(ctx, tn.ID, "", 10); err != nil || len(users) != 0 || next != "" {
		t.Fatalf("empty tenant: %v %q %v", users, next, err)
	}
	if _, _, err := st.ListAppGroups(ctx, "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00", "", 10); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	if _, _, err := st.ListAppUsers(ctx, "nope", "", 10); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("malformed tenant id: %v", err)
	}
}
