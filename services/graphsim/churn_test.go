package graphsim_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/entrasync/entrasync/services/graphsim"
)

var churnSpec = graphsim.Spec{Seed: 41, Users: 600, Guests: 20, Disabled: 10, Groups: 30, NestingDepth: 3, Cycle: true}

func TestChurnIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := graphsim.Generate(churnSpec), graphsim.Generate(churnSpec)
	ra, rb := a.Churn(5, 0.05), b.Churn(5, 0.05)
	if !reflect.DeepEqual(ra, rb) {
		t.Errorf("same seed, different churn:\n%v\n%v", ra, rb)
	}
	if !reflect.DeepEqual(a.Users(), b.Users()) || !reflect.DeepEqual(a.Groups(), b.Groups()) {
		t.Error("same seed, different directories after churn")
	}
	if rc := graphsim.Generate(churnSpec).Churn(6, 0.05); reflect.DeepEqual(ra.Users, rc.Users) {
		t.Error("another seed churns the same users")
	}
	lists := map[string]int{
		"joined": len(ra.Joined), "soft-deleted": len(ra.SoftDeleted), "purged": len(ra.Purged),
		"retitled": len(ra.Retitled), "moved": len(ra.Moved), "disabled": len(ra.Disabled),
		"members added": len(ra.MembersAdded), "members removed": len(ra.MembersRemoved),
		"nesting": len(ra.Nesting), "renamed": len(ra.Renamed),
	}
	for name, n := range lists {
		if n == 0 {
			t.Errorf("churn of 5%% of 630 users: no %s (%v)", name, ra)
		}
	}
	if len(ra.Users) < 15 || len(ra.Users) > 40 {
		t.Errorf("5%% of 630 users churned %d users", len(ra.Users))
	}
	for _, id := range ra.SoftDeleted {
		if !slices.ContainsFunc(a.DeletedUsers(), func(u graphsim.User) bool { return u.ID == id }) {
			t.Errorf("soft-deleted %s is not restorable", id)
		}
	}
	for _, id := range ra.Purged {
		if _, ok := a.User(id); ok || slices.ContainsFunc(a.DeletedUsers(), func(u graphsim.User) bool { return u.ID == id }) {
			t.Errorf("purged %s still there", id)
		}
	}
	for _, id := range ra.Disabled {
		if u, _ := a.User(id); u.AccountEnabled {
			t.Errorf("disabled %s still enabled", id)
		}
	}
}

// TestChurnShowsInTheNextDeltaRound: a delta round from the deltaLink
// taken before Churn returns exactly the users and groups it changed.
func TestChurnShowsInTheNextDeltaRound(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	d := graphsim.Generate(churnSpec)
	tc := s.addTenant(d)
	_, _, ulink := s.deltaRound(tc.token, "/users/delta()")
	_, _, glink := s.deltaRound(tc.token, "/groups/delta()")
	rep := d.Churn(9, 0.04)
	t.Log(rep)

	uitems, _, _ := s.deltaRound(tc.token, ulink)
	got := byID(uitems)
	want := map[string]string{}
	for _, list := range [][]string{rep.Joined, rep.Retitled, rep.Moved, rep.Disabled} {
		for _, id := range list {
			want[id] = ""
		}
	}
	for _, id := range rep.SoftDeleted {
		want[id] = "changed"
	}
	for _, id := range rep.Purged {
		want[id] = "deleted"
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("users delta after churn:\n got %v\nwant %v", got, want)
	}
	if keys := sortedKeys(want); !slices.Equal(keys, rep.Users) {
		t.Errorf("report's Users %v, want %v", rep.Users, keys)
	}

	gitems, _, _ := s.deltaRound(tc.token, glink)
	if got := sortedKeys(byID(gitems)); !slices.Equal(got, rep.Groups) {
		t.Errorf("groups delta after churn: %v, report %v", got, rep.Groups)
	}
	for _, mc := range slices.Concat(rep.MembersAdded, rep.MembersRemoved, rep.Nesting) {
		entries, _ := memberDelta(gitems, mc.Group)
		reason, ok := entries[mc.Member.ID]
		added := slices.Contains(rep.MembersAdded, mc) || slices.Contains(rep.Nesting, mc) && rep.NestingAdded
		if !ok || (reason == "") != added {
			t.Errorf("member change %+v (added %v): members@delta %q present %v", mc, added, reason, ok)
		}
	}
	// Edges counts every membership the round reports changed, those
	// that followed from other changes included.
	edges := 0
	for _, id := range rep.Groups {
		entries, _ := memberDelta(gitems, id)
		edges += len(entries)
	}
	if edges != rep.Edges || rep.Edges <= len(rep.MembersAdded)+len(rep.MembersRemoved)+len(rep.Nesting) {
		t.Errorf("report's Edges %d; members@delta entries %d, explicit member changes %d",
			rep.Edges, edges, len(rep.MembersAdded)+len(rep.MembersRemoved)+len(rep.Nesting))
	}
	for _, id := range rep.Renamed {
		g, _ := d.Group(id)
		if !slices.ContainsFunc(gitems, func(it map[string]any) bool { return it["id"] == id && it["displayName"] == g.DisplayName }) {
			t.Errorf("renamed group %s not in the round with its new name", id)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
