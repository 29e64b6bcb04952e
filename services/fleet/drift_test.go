package fleet_test

import (
	"context"
	"slices"
	"testing"

	"github.com/entrasync/entrasync/services/graphsim"
)

// TestFullRunReportsWhatDeltaRoundsMissed: after a full run and a delta
// run, the mirror goes wrong in ways no delta round would ever report (a
// user's name, an edge lost, as a lost event or a bug would leave it),
// while Entra ID changes too (a renamed user, a new member). The next full
// run reads a delta round first, then the whole directory: it counts as
// drift exactly what the round did not explain (one user, one membership)
// and leaves the tenant as Entra ID has it. The first full run and the
// delta run make no such check and carry no drift counts.
func TestFullRunReportsWhatDeltaRoundsMissed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, 1, 1)
	e := h.addEntraTenant(graphsim.Spec{Seed: 81, Users: 30, Groups: 4})
	tenant := h.connect(e, 100)
	noDrift := func(what string, r runView) {
		t.Helper()
		for _, k := range []string{"driftUsers", "driftGroups", "driftMemberships"} {
			if v, ok := r.Counts[k]; ok {
				t.Errorf("%s: counts[%s] = %d; want no drift counts", what, k, v)
			}
		}
	}
	first := h.syncFull(tenant)
	noDrift("first full run", first)
	users, groups := e.Dir.Users(), e.Dir.Groups()
	if err := e.Dir.UpdateUser(users[0].ID, func(u *graphsim.User) { u.DisplayName = "Renamed In Entra" }); err != nil {
		t.Fatal(err)
	}
	if d := h.sync(tenant); d.Kind != "delta" || d.Status != "succeeded" {
		t.Fatalf("second run: %s %s %q; want a delta run that succeeded", d.Kind, d.Status, d.Error)
	} else {
		noDrift("delta run", d)
	}

	// The mirror goes wrong behind the delta rounds' back.
	var stale string
	if err := h.db.QueryRow(ctx, `UPDATE dir_users SET display_name = 'Stale' WHERE tenant_id = $1 AND entra_id = $2
		RETURNING entra_id`, tenant, users[1].ID).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	var lostGroup, lostMember string
	if err := h.db.QueryRow(ctx, `DELETE FROM dir_members WHERE (tenant_id, group_id, member_id) =
		(SELECT tenant_id, group_id, member_id FROM dir_members WHERE tenant_id = $1 ORDER BY group_id, member_id LIMIT 1)
		RETURNING group_id, member_id`, tenant).Scan(&lostGroup, &lostMember); err != nil {
		t.Fatal(err)
	}
	// Entra ID changes meanwhile: the full run's delta round reports
	// these, so they are not drift.
	if err := e.Dir.UpdateUser(users[2].ID, func(u *graphsim.User) { u.DisplayName = "Renamed Again" }); err != nil {
		t.Fatal(err)
	}
	var other string
	for _, g := range groups {
		if g.ID != lostGroup && g.MembershipRule == "" && !slices.ContainsFunc(e.Dir.DirectMembers(g.ID),
			func(m graphsim.Member) bool { return m.ID == users[3].ID }) {
			other = g.ID
			break
		}
	}
	if err := e.Dir.AddMember(other, graphsim.Member{ID: users[3].ID, Type: graphsim.TypeUser}); err != nil {
		t.Fatal(err)
	}

	full := h.syncFull(tenant)
	if full.Kind != "full" || full.Status != "succeeded" {
		t.Fatalf("third run: %s %s %q", full.Kind, full.Status, full.Error)
	}
	want := map[string]int64{"driftUsers": 1, "driftGroups": 0, "driftMemberships": 1}
	for k, v := range want {
		if got, ok := full.Counts[k]; !ok || got != v {
			t.Errorf("full run's counts[%s] = %d (present %v), want %d; counts %v", k, got, ok, v, full.Counts)
		}
	}
	if d := diff(h.users(tenant), expectedUsers(e.Dir, 100), userKey); d != "" {
		t.Errorf("users after the full run:\n%s", d)
	}
	var back bool
	if err := h.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM dir_members WHERE tenant_id = $1 AND group_id = $2 AND member_id = $3)`,
		tenant, lostGroup, lostMember).Scan(&back); err != nil || !back {
		t.Errorf("the lost edge %s > %s is not back after the full run (%v)", lostGroup, lostMember, err)
	}
}
