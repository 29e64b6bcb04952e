package store_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
)

// Groups of the grants tests: bottom ⊂ mid ⊂ top, and a cycle c1 ⊂ c2 ⊂
// c1 with c2 ⊂ top.
const (
	gBottom = "00000002-0000-4000-8000-000000000001"
	gMid    = "00000002-0000-4000-8000-000000000002"
	gTop    = "00000002-0000-4000-8000-000000000003"
	gC1     = "00000002-0000-4000-8000-000000000004"
	gC2     = "00000002-0000-4000-8000-000000000005"
)

// runWithGroups syncs users, the grants tests' groups and their direct
// members (group id -> members), and returns the finished run.
func (s *syncer) runWithGroups(users []store.DirUser, members map[string][]store.DirMember) store.Run {
	s.t.Helper()
	ctx := context.Background()
	r, err := s.st.CreateRun(ctx, store.NewRun{TenantID: s.tenant, Kind: store.KindFull, Trigger: store.TriggerManual})
	must(s.t, err)
	ref := store.PageRef{TenantID: s.tenant, RunID: r.ID, RunSeq: r.Seq}
	must(s.t, s.st.ApplyUsersPage(ctx, ref, users, s.at))
	ref.Page = 1
	var groups []store.DirGroup
	for id, name := range map[string]string{gBottom: "Bottom", gMid: "Mid", gTop: "Top", gC1: "C1", gC2: "C2"} {
		groups = append(groups, store.DirGroup{ID: id, DisplayName: name, SecurityEnabled: true})
	}
	must(s.t, s.st.ApplyGroupsPage(ctx, ref, groups, s.at))
	ids := []string{gBottom, gMid, gTop, gC1, gC2}
	for _, g := range ids {
		ref.Page++
		must(s.t, s.st.ApplyMembersPage(ctx, ref, store.MembersPage{GroupID: g, Last: true, Members: members[g]}, s.at))
	}
	must(s.t, s.st.MarkRunFetched(ctx, ref, store.Fetched{Pages: int(ref.Page) + 1}, s.at))
	done, err := s.st.TryFinalize(ctx, s.tenant, r.ID, s.at)
	if err != nil || !done {
		s.t.Fatalf("finalize run %d: %v %v", r.Seq, done, err)
	}
	run, err := s.st.GetRun(ctx, s.tenant, r.ID)
	must(s.t, err)
	return run
}

func grp(id string) store.DirMember { return store.DirMember{ID: id, Type: store.MemberGroup} }
func usr(id string) store.DirMember { return store.DirMember{ID: id, Type: store.MemberUser} }

func (s *syncer) planItems(runID string) []store.PlanItem {
	s.t.Helper()
	items, _, err := s.st.ListPlanItems(context.Background(), s.tenant, runID, -1, 1000)
	must(s.t, err)
	return items
}

func pathIDs(via []plan.GroupRef) []string {
	out := []string{}
	for _, g := range via {
		out = append(out, g.ID)
	}
	return out
}

func TestGrantsReachNestedMembersAndLeaveWithThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSyncer(t, 10)
	users := people(2)
	u1, u2 := users[0].ID, users[1].ID
	members := map[string][]store.DirMember{
		gBottom: {usr(u1)}, gMid: {grp(gBottom)}, gTop: {grp(gMid), grp(gC2)},
		gC1: {grp(gC2), usr(u2)}, gC2: {grp(gC1)},
	}
	s.runWithGroups(users, members) // the groups come into the app

	// The catalogue: custom names are PUT; built-ins always exist.
	if created, err := s.st.PutGrantName(ctx, s.tenant, plan.KindRole, "Editor"); err != nil || !created {
		t.Fatalf("put Editor: %v %v", created, err)
	}
	if created, err := s.st.PutGrantName(ctx, s.tenant, plan.KindRole, "Editor"); err != nil || created {
		t.Fatalf("put Editor again: %v %v", created, err)
	}
	_, err := s.st.PutGrantName(ctx, s.tenant, plan.KindSharing, "Export")
	must(t, err)
	if _, err := s.st.PutGrantName(ctx, s.tenant, plan.KindRole, " bad"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
	// Binding an unknown name names the field and changes nothing.
	roles := []string{"Editor", "Nope"}
	_, err = s.st.UpdateGroupGrants(ctx, s.tenant, gTop, store.GroupBindingPatch{Roles: &roles})
	var unknown *store.UnknownGrantError
	if !errors.As(err, &unknown) || unknown.Field != "roles[1]" || !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("unknown role: %v", err)
	}
	if g, err := s.st.GetGroupGrants(ctx, s.tenant, gTop); err != nil || len(g.Roles) != 0 {
		t.Fatalf("group after a refused patch: %+v %v", g, err)
	}
	if _, err := s.st.UpdateGroupGrants(ctx, s.tenant, "00000002-0000-4000-8000-0000000000ff", store.GroupBindingPatch{Roles: &roles}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown group: %v", err)
	}
	editor, export, admin := []string{"Editor"}, []string{"Export"}, []string{plan.RoleAdministrator}
	g, err := s.st.UpdateGroupGrants(ctx, s.tenant, gTop, store.GroupBindingPatch{Roles: &editor})
	must(t, err)
	if !reflect.DeepEqual(g.Roles, editor) || len(g.Sharing) != 0 || g.DisplayName != "Top" {
		t.Fatalf("top: %+v", g)
	}
	_, err = s.st.UpdateGroupGrants(ctx, s.tenant, gMid, store.GroupBindingPatch{Sharing: &export})
	must(t, err)
	_, err = s.st.UpdateGroupGrants(ctx, s.tenant, gBottom, store.GroupBindingPatch{Roles: &admin})
	must(t, err)
	if err := s.st.DeleteGrantName(ctx, s.tenant, plan.KindRole, "Editor"); !errors.Is(err, store.ErrStillBound) ||
		!strings.Contains(err.Error(), gTop) {
		t.Fatalf("delete a bound role: %v", err)
	}
	if err := s.st.DeleteGrantName(ctx, s.tenant, plan.KindRole, plan.RoleAdministrator); !errors.Is(err, store.ErrBuiltin) {
		t.Fatalf("delete a built-in: %v", err)
	}

	run := s.runWithGroups(users, members)
	byKey := map[string]store.PlanItem{}
	for _, it := range s.planItems(run.ID) {
		if strings.HasPrefix(it.Action, "grant") {
			byKey[it.Action+" "+it.EntraID+" "+it.Role] = it
		}
	}
	if len(byKey) != 4 {
		t.Fatalf("grants planned: %v", byKey)
	}
	if it := byKey["grantRole "+u1+" Editor"]; it.Reason != "member of \u201cTop\u201d through \u201cBottom\u201d \u203a \u201cMid\u201d; \u201cTop\u201d grants role \u201cEditor\u201d" {
		t.Fatalf("u1's Editor: %+v", it)
	}
	if it := byKey["grantRole "+u2+" Editor"]; !strings.Contains(it.Reason, "through \u201cC1\u201d \u203a \u201cC2\u201d") {
		t.Fatalf("u2's Editor through the cycle: %+v", it)
	}
	if _, ok := byKey["grantSharing "+u1+" Export"]; !ok {
		t.Fatal("no Export for u1")
	}
	grants, err := s.st.UserGrants(ctx, s.tenant, u1)
	must(t, err)
	want := map[string][]string{"role Administrator": {gBottom}, "role Editor": {gBottom, gMid, gTop}, "sharing Export": {gBottom, gMid}}
	got := map[string][]string{}
	for _, g := range grants {
		got[string(g.Kind)+" "+g.Name] = pathIDs(g.Via)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("u1's grants %v, want %v", got, want)
	}
	grants, err = s.st.UserGrants(ctx, s.tenant, u2)
	must(t, err)
	if len(grants) != 1 || !slices.Equal(pathIDs(grants[0].Via), []string{gC1, gC2, gTop}) {
		t.Fatalf("u2's grants %+v", grants)
	}

	// A sync held for review tells the Administrators, u1 among them
	// through Bottom; once approved, u1's grants through groups are gone,
	// each revocation saying why.
	s.settings(func(set *plan.Settings) { set.ApplyMode = plan.ApplyReview })
	members[gBottom] = nil
	held := s.runWithGroups(users, members)
	if held.Status != store.StatusAwaitingApproval {
		t.Fatalf("run %+v", held)
	}
	var told bool
	for _, n := range s.notifications() {
		told = told || (n.Kind == "run_held" && slices.Contains(n.Recipients, users[0].Mail))
	}
	if !told {
		t.Fatalf("u1, Administrator through Bottom, was not told: %+v", s.notifications())
	}
	revoked := map[string]string{}
	for _, it := range s.planItems(held.ID) {
		if strings.HasPrefix(it.Action, "revoke") {
			revoked[it.Action+" "+it.Role] = it.Reason
		}
	}
	if len(revoked) != 3 || revoked["revokeRole Editor"] != "no longer a member of \u201cTop\u201d in Entra ID, directly or through nested groups; \u201cTop\u201d granted role \u201cEditor\u201d" {
		t.Fatalf("revocations %v", revoked)
	}
	_, err = s.st.ApprovePlan(ctx, s.tenant, held.ID)
	must(t, err)
	if grants, err := s.st.UserGrants(ctx, s.tenant, u1); err != nil || len(grants) != 0 {
		t.Fatalf("u1 after approval: %+v %v", grants, err)
	}

	// Unbound, a custom role can go.
	none := []string{}
	_, err = s.st.UpdateGroupGrants(ctx, s.tenant, gTop, store.GroupBindingPatch{Roles: &none})
	must(t, err)
	must(t, s.st.DeleteGrantName(ctx, s.tenant, plan.KindRole, "Editor"))
	if err := s.st.DeleteGrantName(ctx, s.tenant, plan.KindRole, "Editor"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

// Unbinding a tenant's last bound grant takes it back from its holders:
// a tenant with no binding left still runs the grants pass while users
// hold grants through groups.
func TestUnbindingTheLastGrantRevokesIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSyncer(t, 10)
	users := people(1)
	members := map[string][]store.DirMember{gTop: {usr(users[0].ID)}}
	s.runWithGroups(users, members) // the groups come into the app
	_, err := s.st.PutGrantName(ctx, s.tenant, plan.KindRole, "Editor")
	must(t, err)
	editor, none := []string{"Editor"}, []string{}
	_, err = s.st.UpdateGroupGrants(ctx, s.tenant, gTop, store.GroupBindingPatch{Roles: &editor})
	must(t, err)
	s.runWithGroups(users, members)
	if grants, err := s.st.UserGrants(ctx, s.tenant, users[0].ID); err != nil || len(grants) != 1 {
		t.Fatalf("grants while bound: %+v %v", grants, err)
	}

	_, err = s.st.UpdateGroupGrants(ctx, s.tenant, gTop, store.GroupBindingPatch{Roles: &none})
	must(t, err)
	run := s.runWithGroups(users, members)
	var revoked []string
	for _, it := range s.planItems(run.ID) {
		if it.Action == "revokeRole" {
			revoked = append(revoked, it.EntraID+" "+it.Role)
		}
	}
	if !slices.Equal(revoked, []string{users[0].ID + " Editor"}) {
		t.Fatalf("revoked %v, want the user's Editor", revoked)
	}
	if grants, err := s.st.UserGrants(ctx, s.tenant, users[0].ID); err != nil || len(grants) != 0 {
		t.Fatalf("grants after the last binding went: %+v %v", grants, err)
	}
}
