package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
)

// TestGroupStatusFreezesAndOrphans: a group switched off keeps its last
// members while Entra ID changes them; an archived group grants nothing
// and the next plan revokes what it gave, with the reason; only groups
// that are not enabled can be deleted; local groups are the API's.
func TestGroupStatusFreezesAndOrphans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSyncer(t, 10)
	users := people(2)
	u1, u2 := users[0].ID, users[1].ID
	members := map[string][]store.DirMember{gBottom: {usr(u1)}, gMid: {grp(gBottom), usr(u2)}}
	s.runWithGroups(users, members)
	editor := []string{"Editor"}
	_, err := s.st.PutGrantName(ctx, s.tenant, plan.KindRole, "Editor")
	must(t, err)
	_, err = s.st.UpdateGroupGrants(ctx, s.tenant, gMid, store.GroupBindingPatch{Roles: &editor})
	must(t, err)
	s.runWithGroups(users, members)

	off := false
	g, err := s.st.UpdateGroupGrants(ctx, s.tenant, gBottom, store.GroupBindingPatch{Enabled: &off})
	if err != nil || g.Status != plan.StatusDisabled || g.Enabled {
		t.Fatalf("switch off: %+v %v", g, err)
	}
	members[gBottom] = []store.DirMember{usr(u2)} // u1 leaves, u2 joins in Entra ID
	s.runWithGroups(users, members)
	if got, _, err := s.st.ListAppGroupMembers(ctx, s.tenant, gBottom, "", 10); err != nil || !slices.Equal(got, []string{u1}) {
		t.Fatalf("disabled group's members %v %v, want its last [%s]", got, err, u1)
	}

	if err := s.st.DeleteGroup(ctx, s.tenant, gMid); !errors.Is(err, store.ErrGroupState) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete an enabled group: %v", err)
	}
	if g, err := s.st.ArchiveGroup(ctx, s.tenant, gMid); err != nil || g.Status != plan.StatusOrphaned {
		t.Fatalf("archive: %+v %v", g, err)
	}
	on := true
	if _, err := s.st.UpdateGroupGrants(ctx, s.tenant, gMid, store.GroupBindingPatch{Enabled: &on}); !errors.Is(err, store.ErrGroupState) {
		t.Fatalf("enable an orphaned group: %v", err)
	}
	run := s.runWithGroups(users, members)
	revoked := 0
	for _, it := range s.planItems(run.ID) {
		if it.Action == string(plan.RevokeRole) {
			revoked++
			if !strings.Contains(it.Reason, "\u201cMid\u201d is orphaned") {
				t.Errorf("revocation reason %q", it.Reason)
			}
		}
	}
	// u1 lost Editor already: Mid is enabled and follows Entra ID, where
	// u1 left Bottom; u2 holds it through Mid directly.
	if revoked != 1 {
		t.Fatalf("%d revocations, want u2's Editor: %+v", revoked, s.planItems(run.ID))
	}
	must(t, s.st.DeleteGroup(ctx, s.tenant, gMid))
	must(t, s.st.DeleteGroup(ctx, s.tenant, gBottom))
	if _, err := s.st.GetGroupGrants(ctx, s.tenant, gMid); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted group: %v", err)
	}

	if _, err := s.st.CreateLocalGroup(ctx, s.tenant, " "); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("blank local group: %v", err)
	}
	local, err := s.st.CreateLocalGroup(ctx, s.tenant, "Auditors")
	if err != nil || local.Kind != plan.KindLocal || local.Status != plan.StatusEnabled {
		t.Fatalf("local group: %+v %v", local, err)
	}
	s.runWithGroups(users, members)
	if g, err := s.st.GetGroupGrants(ctx, s.tenant, local.EntraID); err != nil || g.Status != plan.StatusEnabled || g.DisplayName != "Auditors" {
		t.Fatalf("local group after a sync: %+v %v", g, err)
	}
	must(t, s.st.DeleteGroup(ctx, s.tenant, local.EntraID))
}
