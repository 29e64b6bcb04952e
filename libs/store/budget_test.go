package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

func TestMirrorUserCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, url := storetest.NewWithURL(t)
	conn, err := pgx.Connect(ctx, url)
	must(t, err)
	defer conn.Close(ctx)
	tn, other := newTenant(t, st, 1), newTenant(t, st, 1)

	if n, err := st.MirrorUserCount(ctx, tn.ID, 0); err != nil || n != 0 {
		t.Fatalf("before any run: %d, %v", n, err)
	}
	r, err := st.CreateRun(ctx, store.NewRun{TenantID: tn.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
	must(t, err)
	var users []store.DirUser
	for i := range 3 {
		users = append(users, store.DirUser{ID: fmt.Sprintf("00000001-0000-4000-8000-%012d", i), DisplayName: "U",
			UserPrincipalName: "u@x", UserType: "Member", AccountEnabled: true})
	}
	must(t, st.ApplyUsersPage(ctx, store.PageRef{TenantID: tn.ID, RunID: r.ID, RunSeq: r.Seq}, users, time.Now()))
	if n, err := st.MirrorUserCount(ctx, tn.ID, 0); err != nil || n != 3 {
		t.Fatalf("3 users in the mirror: %d, %v", n, err)
	}
	// Counted up to a bound, the count stops there.
	for upTo, want := range map[int]int{2: 2, 3: 3, 4: 3} {
		if n, err := st.MirrorUserCount(ctx, tn.ID, upTo); err != nil || n != want {
			t.Fatalf("3 users counted up to %d: %d, %v; want %d", upTo, n, err, want)
		}
	}
	// A tombstone is a user Entra ID no longer has; another tenant's
	// users are not this one's.
	_, err = conn.Exec(ctx, `UPDATE dir_users SET deleted = true WHERE tenant_id = $1 AND entra_id = $2`, tn.ID, users[0].ID)
	must(t, err)
	if n, err := st.MirrorUserCount(ctx, tn.ID, 0); err != nil || n != 2 {
		t.Fatalf("one of 3 tombstoned: %d, %v", n, err)
	}
	if n, err := st.MirrorUserCount(ctx, other.ID, 0); err != nil || n != 0 {
		t.Fatalf("another tenant: %d, %v", n, err)
	}
	if _, err := st.MirrorUserCount(ctx, "not-a-tenant", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a malformed tenant id: %v", err)
	}
}
