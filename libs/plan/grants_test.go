package plan

import (
	"reflect"
	"testing"
)

func TestGrantGoesToMembersOfABoundGroupWithThePathInTheReason(t *testing.T) {
	via := []GroupRef{{"emea", "Finance EMEA"}, {"fin", "Finance"}}
	it, ok := DecideGrant(GrantFacts{UserID: "u", UserName: "Ada", Kind: KindRole, Name: "Editor", Via: via, UserStays: true})
	if !ok || it.Action != GrantRole || it.Role != "Editor" || it.EntraID != "u" {
		t.Fatalf("item %+v %v", it, ok)
	}
	if want := "member of \u201cFinance\u201d through \u201cFinance EMEA\u201d; \u201cFinance\u201d grants role \u201cEditor\u201d"; it.Reason != want {
		t.Fatalf("reason %q, want %q", it.Reason, want)
	}
	if it.After["group"] != "fin" || !reflect.DeepEqual(it.After["via"], []string{"\u201cFinance EMEA\u201d", "\u201cFinance\u201d"}) {
		t.Fatalf("after %v", it.After)
	}
}

func TestDirectMemberOfABoundGroupGetsSharingWithoutThrough(t *testing.T) {
	it, ok := DecideGrant(GrantFacts{UserID: "u", Kind: KindSharing, Name: "Export", Via: []GroupRef{{"fin", "Finance"}}, UserStays: true})
	if !ok || it.Action != GrantSharing || it.Reason != "member of \u201cFinance\u201d; \u201cFinance\u201d grants sharing permission \u201cExport\u201d" {
		t.Fatalf("item %+v %v", it, ok)
	}
}

func TestGrantHeldAndStillWantedChangesNothing(t *testing.T) {
	if it, ok := DecideGrant(GrantFacts{UserID: "u", Kind: KindRole, Name: "Editor", Via: []GroupRef{{"fin", "Finance"}},
		UserStays: true, Held: true, HeldGroupBinds: true, HeldGroupStays: true}); ok {
		t.Fatalf("unexpected item %+v", it)
	}
	if it, ok := DecideGrant(GrantFacts{UserID: "u", Kind: KindRole, Name: "Editor"}); ok {
		t.Fatalf("neither held nor wanted gave %+v", it)
	}
}

func TestGrantIsRevokedAndTheReasonSaysWhy(t *testing.T) {
	held := GrantFacts{UserID: "u", Kind: KindRole, Name: "Editor", Held: true, HeldGroup: GroupRef{"fin", "Finance"},
		UserStays: true, HeldGroupBinds: true, HeldGroupStays: true}
	for _, tc := range []struct {
		name   string
		change func(*GrantFacts)
		reason string
	}{
		{"left the group", func(*GrantFacts) {},
			"no longer a member of \u201cFinance\u201d in Entra ID, directly or through nested groups; \u201cFinance\u201d granted role \u201cEditor\u201d"},
		{"user leaves", func(f *GrantFacts) { f.UserStays = false; f.Via = []GroupRef{{"fin", "Finance"}} }, "user leaves the app"},
		{"binding removed", func(f *GrantFacts) { f.HeldGroupBinds = false },
			"\u201cFinance\u201d no longer grants role \u201cEditor\u201d, and no other group of the user does"},
		{"group leaves", func(f *GrantFacts) { f.HeldGroupStays = false },
			"group \u201cFinance\u201d leaves the app; it granted role \u201cEditor\u201d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := held
			tc.change(&f)
			it, ok := DecideGrant(f)
			if !ok || it.Action != RevokeRole || it.Role != "Editor" || it.Reason != tc.reason || it.Before["group"] != "fin" {
				t.Fatalf("item %+v %v", it, ok)
			}
		})
	}
	it, ok := DecideGrant(GrantFacts{UserID: "u", Kind: KindSharing, Name: "Export", Held: true, UserStays: true})
	if !ok || it.Action != RevokeSharing {
		t.Fatalf("sharing revoke %+v %v", it, ok)
	}
}

// chain builds a graph from child -> parent edges.
func chain(edges ...[2]string) *GroupGraph {
	g := NewGroupGraph()
	for _, e := range edges {
		g.AddEdge(e[1], e[0])
		g.Name(e[0], "G-"+e[0])
		g.Name(e[1], "G-"+e[1])
	}
	return g
}

func ids(path []GroupRef) []string {
	out := []string{}
	for _, g := range path {
		out = append(out, g.ID)
	}
	return out
}

func TestPathsWalkUpThreeLevels(t *testing.T) {
	g := chain([2]string{"a", "b"}, [2]string{"b", "c"}, [2]string{"c", "d"})
	ps := g.Paths([]string{"a"}, []string{"d"})
	if len(ps) != 1 || !reflect.DeepEqual(ids(ps[0]), []string{"a", "b", "c", "d"}) || ps[0][3].Name != "G-d" {
		t.Fatalf("paths %v", ps)
	}
}

func TestPathsEndInACycle(t *testing.T) {
	// a -> b -> c -> a, and c -> top.
	g := chain([2]string{"a", "b"}, [2]string{"b", "c"}, [2]string{"c", "a"}, [2]string{"c", "top"})
	ps := g.Paths([]string{"a"}, []string{"top", "missing"})
	if len(ps) != 1 || !reflect.DeepEqual(ids(ps[0]), []string{"a", "b", "c", "top"}) {
		t.Fatalf("paths %v", ps)
	}
}

func TestPathsShortestFirstFromAnyOwnGroup(t *testing.T) {
	// x -> y -> top (2 steps); z -> top (1 step); x -> far -> mid -> bound2.
	g := chain([2]string{"x", "y"}, [2]string{"y", "top"}, [2]string{"z", "top"},
		[2]string{"x", "far"}, [2]string{"far", "bound2"}, [2]string{"z", "z2"})
	ps := g.Paths([]string{"x", "z"}, []string{"bound2", "top", "z"})
	got := [][]string{}
	for _, p := range ps {
		got = append(got, ids(p))
	}
	want := [][]string{{"z"}, {"z", "top"}, {"x", "far", "bound2"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("paths %v, want %v", got, want)
	}
}

func TestGrantNamesAreChecked(t *testing.T) {
	for _, bad := range []string{"", " Editor", "Edi\ttor", string(make([]rune, 101))} {
		if CheckGrantName(bad) == nil {
			t.Errorf("%q was taken", bad)
		}
	}
	if err := CheckGrantName("Finance editor"); err != nil {
		t.Fatal(err)
	}
	if !IsBuiltin(KindRole, RoleAdministrator) || IsBuiltin(KindSharing, RoleAdministrator) || IsBuiltin(KindRole, "Editor") {
		t.Fatal("built-ins")
	}
}

func TestGuardHoldsManySharingRevocations(t *testing.T) {
	s := DefaultSettings()
	v := Judge(s, Summary{RevokeSharing: 6}, GuardFacts{SharingGrants: 10, AppUsers: 10})
	if !v.Hold || v.Reason != HeldDeletionGuard {
		t.Fatalf("verdict %+v", v)
	}
	if v := Judge(s, Summary{RevokeSharing: 5}, GuardFacts{SharingGrants: 10, AppUsers: 10}); v.Hold {
		t.Fatalf("verdict %+v", v)
	}
}
