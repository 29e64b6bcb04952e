package fleet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/graphsim"
)

// TestGroupGraphWillNotListStaysAsLastReadAndTheRunGoesOn: once the app
// loses Member.Read.Hidden, Graph refuses the member list of a
// hidden-membership group (403). The run still succeeds: that group keeps
// its members as last read and shows Graph's error, every other group is
// synced, and the run's counts say one group could not be read.
func TestGroupGraphWillNotListStaysAsLastReadAndTheRunGoesOn(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	e := h.addEntraTenant(smallSpec)
	users := e.Dir.Users()
	var members []string
	for _, u := range users {
		if u.AccountEnabled && u.UserType == "Member" && len(members) < 3 {
			members = append(members, u.ID)
		}
	}
	board := e.Dir.AddGroup(graphsim.Group{DisplayName: "Board", GroupTypes: []string{"Unified"}, MailEnabled: true,
		MailNickname: "board", Visibility: "HiddenMembership"})
	for _, id := range members {
		if err := e.Dir.AddMember(board.ID, graphsim.Member{ID: id, Type: graphsim.TypeUser}); err != nil {
			t.Fatal(err)
		}
	}
	tenant := h.connect(e, 100)
	h.sync(tenant)
	if got := h.groupMembers(tenant, board.ID); len(got) != 3 {
		t.Fatalf("with Member.Read.Hidden the board has %d members in the app, want 3", len(got))
	}

	// The permission goes; meanwhile a board member leaves the board in
	// Entra, and another group changes.
	if err := h.sim.SetPermissions(e.ID, graphsim.Permissions{NoHiddenMembership: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.Dir.RemoveMember(board.ID, members[0]); err != nil {
		t.Fatal(err)
	}
	var other graphsim.Group
	for _, g := range e.Dir.Groups() {
		if g.MembershipRule == "" && g.ID != board.ID && len(e.Dir.DirectMembers(g.ID)) > 0 {
			other = g
			break
		}
	}
	if err := e.Dir.RemoveMember(other.ID, e.Dir.DirectMembers(other.ID)[0].ID); err != nil {
		t.Fatal(err)
	}
	// Graph has forgotten the tenant's delta state too (410 to both the
	// users and the groups link: the run reads the two rounds side by
	// side), so the full run lists without reading a delta round first:
	// the board's member list is the only place its change could be read,
	// and Graph refuses it.
	h.sim.SetFaults(e.ID, graphsim.Faults{DeltaGoneNext: 2})
	run := h.syncFull(tenant) // member lists are read by full runs
	if run.Counts["groupsUnreadable"] != 1 {
		t.Errorf("run counts %v, want groupsUnreadable 1", run.Counts)
	}
	if got := h.groupMembers(tenant, board.ID); len(got) != 3 {
		t.Errorf("the board has %d members in the app after Graph refused its list, want the 3 last read", len(got))
	}
	if d := diff(h.groups(tenant), expectedGroups(e.Dir), groupKey); !strings.Contains(d, board.ID) || strings.Contains(d, other.ID) {
		t.Errorf("groups differ from Graph beyond the board:\n%s", d)
	}

	// GET .../groups shows the board red with Graph's message, the others
	// green, as of the run.
	type result struct {
		OK    bool       `json:"ok"`
		Error *string    `json:"error"`
		At    *time.Time `json:"at"`
	}
	groups, _ := list[struct {
		EntraID    string  `json:"entraId"`
		LastResult *result `json:"lastResult"`
	}](h, "/v1/tenants/"+tenant+"/groups")
	for _, g := range groups {
		r := g.LastResult
		switch {
		case r == nil || r.At == nil || run.FinishedAt == nil || !r.At.Equal(*run.FinishedAt):
			t.Errorf("group %s: last result %+v, want one as of the run (ended %v)", g.EntraID, r, run.FinishedAt)
		case g.EntraID == board.ID:
			if r.OK || r.Error == nil || !strings.Contains(*r.Error, "Authorization_RequestDenied") ||
				!strings.Contains(*r.Error, "Insufficient privileges") {
				t.Errorf("the board's last result %+v, want red with Graph's 403", r)
			}
		case !r.OK || r.Error != nil:
			t.Errorf("group %s is red: %+v", g.EntraID, r)
		}
	}

	// The permission comes back: the board is read again, and green.
	if err := h.sim.SetPermissions(e.ID, graphsim.Permissions{}); err != nil {
		t.Fatal(err)
	}
	h.sync(tenant)
	if got := h.groupMembers(tenant, board.ID); len(got) != 2 {
		t.Errorf("the board has %d members once readable again, want 2", len(got))
	}
	var ok bool
	if err := h.db.QueryRow(context.Background(), `SELECT last_ok FROM app_groups WHERE tenant_id = $1 AND entra_id = $2`,
		tenant, board.ID).Scan(&ok); err != nil || !ok {
		t.Errorf("the board after the permission came back: ok %v (%v)", ok, err)
	}
}

// groupMembers lists the app users in a group (transitively).
func (h *harness) groupMembers(tenant, group string) []string {
	h.t.Helper()
	rows, err := h.db.Query(context.Background(), `SELECT user_id FROM app_group_members WHERE tenant_id = $1 AND group_id = $2
		ORDER BY user_id`, tenant, group)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}
