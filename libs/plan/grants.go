package plan

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// GrantKind says what a grant gives: a role or a sharing permission.
type GrantKind string

// Grant kinds, as stored and shown by the API.
const (
	KindRole    GrantKind = "role"
	KindSharing GrantKind = "sharing"
)

// GrantAction is the plan action that gives a grant of kind k.
func (k GrantKind) GrantAction() Action {
	if k == KindSharing {
		return GrantSharing
	}
	return GrantRole
}

// RevokeAction is the plan action that takes a grant of kind k away.
func (k GrantKind) RevokeAction() Action {
	if k == KindSharing {
		return RevokeSharing
	}
	return RevokeRole
}

// noun is how a reason names the kind.
func (k GrantKind) noun() string {
	if k == KindSharing {
		return "sharing permission"
	}
	return "role"
}

// MaxGrantNameLen bounds the name of a custom role or sharing permission.
const MaxGrantNameLen = 100

// IsBuiltin reports whether a role or sharing permission of kind k named
// name is built in: it always exists and cannot be deleted.
func IsBuiltin(k GrantKind, name string) bool {
	return k == KindRole && slices.Contains(BuiltinRoles, name)
}

// CheckGrantName says why name cannot name a role or sharing permission,
// or returns nil: it must be 1 to MaxGrantNameLen characters, without
// surrounding spaces or control characters.
func CheckGrantName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("the name is empty")
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("the name %q starts or ends with a space", name)
	case len([]rune(name)) > MaxGrantNameLen:
		return fmt.Errorf("the name is longer than %d characters", MaxGrantNameLen)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("the name %q has a control character", name)
	}
	return nil
}

// GroupRef is a group on a grant's path: its Entra id and display name.
type GroupRef struct {
	ID   string `json:"entraId"`
	Name string `json:"displayName"`
}

// GrantFacts is one (user, kind, name) that the group bindings give the
// user, or that the user holds through groups, or both.
type GrantFacts struct {
	UserID   string
	UserName string
	Kind     GrantKind
	Name     string
	// Via is the shortest path of groups from one of the user's own
	// groups up to a group bound to the grant (the bound group last);
	// empty when no bound group the app keeps has the user, directly or
	// through any nesting.
	Via []GroupRef
	// Held: the user holds the grant through groups now. HeldGroup is the
	// group it was given through.
	Held      bool
	HeldGroup GroupRef
	// UserStays: the user is in the app after the plan. HeldGroupBinds:
	// HeldGroup still binds the grant. HeldGroupStays: HeldGroup is in the
	// app after the plan.
	UserStays      bool
	HeldGroupBinds bool
	HeldGroupStays bool
	// HeldGroupOrphaned: HeldGroup is orphaned after the plan (deleted in
	// Entra ID or archived): it is kept but grants nothing.
	HeldGroupOrphaned bool
}

// DecideGrant says whether a grant through groups is given or taken away:
// a user holds a role or sharing permission exactly while a group bound
// to it has the user as a member, directly or through nesting. Direct
// roles (given through the API) are not this rule's.
func DecideGrant(f GrantFacts) (Item, bool) {
	want := len(f.Via) > 0 && f.UserStays
	switch {
	case want && !f.Held:
		bound := f.Via[len(f.Via)-1]
		after := Fields{string(f.Kind): f.Name, "group": bound.ID, "groupName": bound.Name, "via": viaNames(f.Via)}
		reason := "member of " + quoteName(bound.Name)
		if len(f.Via) > 1 {
			reason += " through " + strings.Join(viaNames(f.Via[:len(f.Via)-1]), " \u203a ")
		}
		reason += "; " + quoteName(bound.Name) + " grants " + f.Kind.noun() + " " + quoteName(f.Name)
		return Item{Action: f.Kind.GrantAction(), EntraID: f.UserID, DisplayName: f.UserName, Role: f.Name,
			After: after, Reason: reason}, true
	case !want && f.Held:
		g := quoteName(f.HeldGroup.Name)
		what := f.Kind.noun() + " " + quoteName(f.Name)
		var reason string
		switch {
		case !f.UserStays:
			reason = "user leaves the app"
		case !f.HeldGroupBinds:
			reason = g + " no longer grants " + what + ", and no other group of the user does"
		case f.HeldGroupOrphaned:
			reason = "group " + g + " is orphaned (deleted in Entra ID or archived) and grants nothing; it granted " + what
		case !f.HeldGroupStays:
			reason = "group " + g + " leaves the app; it granted " + what
		default:
			reason = "no longer a member of " + g + " in Entra ID, directly or through nested groups; " +
				g + " granted " + what
		}
		return Item{Action: f.Kind.RevokeAction(), EntraID: f.UserID, DisplayName: f.UserName, Role: f.Name,
			Before: Fields{string(f.Kind): f.Name, "group": f.HeldGroup.ID, "groupName": f.HeldGroup.Name},
			Reason: reason}, true
	}
	return Item{}, false
}

// viaNames are the quoted display names of a path, for reasons.
func viaNames(path []GroupRef) []string {
	out := make([]string, len(path))
	for i, g := range path {
		out[i] = quoteName(g.Name)
	}
	return out
}

// GroupGraph is the mirror's nesting of groups, upwards: for each group,
// the groups it is a direct member of; and the groups' display names.
type GroupGraph struct {
	parents map[string][]string
	names   map[string]string
}

// NewGroupGraph returns an empty graph.
func NewGroupGraph() *GroupGraph {
	return &GroupGraph{parents: map[string][]string{}, names: map[string]string{}}
}

// AddEdge records that group child is a direct member of group parent.
func (g *GroupGraph) AddEdge(parent, child string) {
	g.parents[child] = append(g.parents[child], parent)
}

// Name records a group's display name.
func (g *GroupGraph) Name(id, name string) { g.names[id] = name }

// NameOf returns a group's display name ("" when unknown).
func (g *GroupGraph) NameOf(id string) string { return g.names[id] }

// Paths walks up from the groups a user is a direct member of, breadth
// first (each group once: cycles end), and returns for each group of
// targets it reaches the shortest path from one of the user's groups up
// to it (the user's group first, the target last). Paths come shortest
// first, ties in the order of targets; ties between paths of one length
// go to the smallest group ids, so that the answer is the same every
// time.
func (g *GroupGraph) Paths(direct []string, targets []string) [][]GroupRef {
	want := map[string]bool{}
	for _, t := range targets {
		want[t] = true
	}
	from := map[string]string{} // group -> the group below it on its shortest path ("" for a start)
	frontier := slices.Clone(direct)
	slices.Sort(frontier)
	frontier = slices.Compact(frontier)
	for _, d := range frontier {
		from[d] = ""
	}
	for len(frontier) > 0 {
		var next []string
		for _, c := range frontier {
			ps := slices.Clone(g.parents[c])
			slices.Sort(ps)
			for _, p := range ps {
				if _, seen := from[p]; !seen {
					from[p] = c
					next = append(next, p)
				}
			}
		}
		frontier = next
	}
	var out [][]GroupRef
	for _, t := range targets {
		if _, ok := from[t]; !ok || !want[t] {
			continue
		}
		delete(want, t) // a target named twice gives one path
		var path []GroupRef
		for cur := t; ; cur = from[cur] {
			path = append(path, GroupRef{ID: cur, Name: g.names[cur]})
			if from[cur] == "" {
				break
			}
		}
		slices.Reverse(path)
		out = append(out, path)
	}
	slices.SortStableFunc(out, func(a, b []GroupRef) int { return len(a) - len(b) })
	return out
}
