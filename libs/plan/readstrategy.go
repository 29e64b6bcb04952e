package plan

import (
	"fmt"
	"time"
)

// Read strategies: how a full run reads the directory.
const (
	// ReadFull lists every user and group and every group's direct
	// members; nested memberships and the scope follow from the direct
	// edges in the store.
	ReadFull = "full"
	// ReadTransitive lists only the users in the scope groups' nested
	// memberships, through each scope group's transitiveMembers.
	ReadTransitive = "transitive"
)

// GraphPageSize is the $top of every listing the fetcher sends: the most
// objects a Graph page of users, groups or members holds.
const GraphPageSize = 999

// ReadFacts are what the choice of a read strategy depends on: the
// tenant's rules, and its size as the last applied run left the mirror.
type ReadFacts struct {
	// LastWholeReadAt is when the last run that read the whole
	// directory (strategy full) succeeded; zero when none did. Before
	// that the sizes are unknown, not zero; after a transitive run they
	// are as that whole read left them.
	LastWholeReadAt time.Time
	// Users and Groups are how many the mirror holds (deleted ones left
	// out).
	Users, Groups int
	// MemberPages is Σ_g ⌈max(E_g,1)/GraphPageSize⌉ over the mirror's
	// groups, E_g the direct edges of group g: the pages of a listing of
	// every group's direct members (an empty list is one page too).
	MemberPages int
	// ScopeUsers is T_s for each scope group s (scope.groups): the users
	// in its nested membership, by the mirror's direct edges; 0 for a
	// group the mirror does not have.
	ScopeUsers []int
	// SyncsMembers is the tier's Tier.SyncsMembers.
	SyncsMembers bool
	// ImportsGroups: the tenant imports groups into the app (a group kind
	// switched on in settings.groups, or groups.include): their
	// memberships need the direct edges of every group.
	ImportsGroups bool
	// UserFilter is scope.userFilter, which Graph applies to /users.
	UserFilter string
}

// ReadFactsOf fills the rule-given parts of ReadFacts from a tenant's
// settings; the sizes are the caller's.
func ReadFactsOf(s Settings) ReadFacts {
	g := s.Groups
	return ReadFacts{
		SyncsMembers:  s.Plan.SyncsMembers(),
		ImportsGroups: g.Microsoft365 || g.Security || g.Distribution || len(g.Include) > 0,
		UserFilter:    s.Scope.UserFilter,
		ScopeUsers:    make([]int, len(s.Scope.Groups)),
	}
}

// ReadChoice is a strategy and what each strategy costs at least.
type ReadChoice struct {
	Strategy string
	// Why says, for a person, why Strategy was chosen.
	Why string
	// FullRU and TransitiveRU are the two lower bounds in Graph resource
	// units (see ReadStrategy); TransitiveRU is 0 when the transitive
	// strategy cannot serve the tenant.
	FullRU, TransitiveRU int
}

// pages is how many Graph pages a listing of n objects takes: an empty
// listing is one page.
func pages(n int) int { return max(1, (n+GraphPageSize-1)/GraphPageSize) }

// FullReadRU is the full strategy's lower bound in resource units:
//
//	2 + ⌈U/999⌉ + ⌈G/999⌉ + 2·Σ_g ⌈max(E_g,1)/999⌉
//
// two delta links taken with $deltatoken=latest (1 RU each), the users
// and groups listings (users 2 RU a page, $select −1; groups 1, minimum
// 1), and every group's direct member list (members 3, $select −1).
func FullReadRU(f ReadFacts) int {
	ru := 2 + (f.Users+GraphPageSize-1)/GraphPageSize + (f.Groups+GraphPageSize-1)/GraphPageSize
	return ru + 2*f.MemberPages
}

// TransitiveReadRU is the transitive strategy's lower bound in resource
// units:
//
//	4·Σ_s ⌈max(T_s,1)/999⌉
//
// each scope group's transitiveMembers cast to users (5 RU a page,
// $select −1). It takes no delta links: Graph's groups delta does not
// report nested changes, so such a tenant is read by full runs only.
func TransitiveReadRU(f ReadFacts) int {
	ru := 0
	for _, t := range f.ScopeUsers {
		ru += 4 * pages(t)
	}
	return ru
}

// transitiveRefused says why the transitive strategy cannot serve a
// tenant with these facts; "" when it can.
func (f ReadFacts) transitiveRefused() string {
	switch {
	case !f.SyncsMembers:
		return "the tenant syncs groups only"
	case len(f.ScopeUsers) == 0:
		return "the tenant syncs every user (no scope.groups)"
	case f.ImportsGroups:
		return "the tenant imports groups, whose memberships need every group's direct members"
	case f.UserFilter != "":
		return "scope.userFilter applies to the users listing only"
	}
	return ""
}

// TransitiveRefused says why the transitive strategy cannot serve a
// tenant with settings s, whatever its size; "" when it can. The fetcher
// asks it again at a run's start: settings changed since the run was
// created win.
func TransitiveRefused(s Settings) string { return ReadFactsOf(s).transitiveRefused() }

// ReadStrategy chooses at now how a tenant's next full run reads the
// directory, and says why. Each strategy is measured against its own
// lower bound (FullReadRU, TransitiveReadRU); transitive is chosen only
// where it can serve the tenant and is strictly cheaper:
//
//   - the tenant syncs users (a Basic tenant syncs groups only);
//   - it syncs only the members of selected groups (scope.groups);
//   - it imports no groups: an imported group's memberships, and roles
//     through groups, need the direct edges of every group below it,
//     which only the full read gives;
//   - it has no scope.userFilter, which Graph applies to /users only;
//   - a whole read succeeded within FullSyncEvery: it gives the sizes
//     the bounds are computed from, and it is the only read that finds
//     users who left Entra ID altogether (a transitive read never judges
//     a user gone for being outside the scope groups), so it comes back
//     weekly.
//
// Example: 100,000 users and 5,000 groups of at most 999 direct members
// each cost 10,109 RU the full way; 3 scope groups of 2,000 users (3
// pages each) cost 36 the transitive way.
func ReadStrategy(f ReadFacts, now time.Time) ReadChoice {
	c := ReadChoice{Strategy: ReadFull, FullRU: FullReadRU(f)}
	if c.Why = f.transitiveRefused(); c.Why != "" {
		return c
	}
	switch {
	case f.LastWholeReadAt.IsZero():
		c.Why = "the directory's size is not known before a first whole read"
		return c
	case now.Sub(f.LastWholeReadAt) >= FullSyncEvery:
		c.Why = "the weekly whole read is due"
		return c
	}
	c.TransitiveRU = TransitiveReadRU(f)
	if c.TransitiveRU >= c.FullRU {
		c.Why = fmt.Sprintf("reading the scope groups' nested members (%d RU) costs no less than the whole directory (%d RU)",
			c.TransitiveRU, c.FullRU)
		return c
	}
	c.Strategy = ReadTransitive
	c.Why = fmt.Sprintf("reading the scope groups' nested members (%d RU) costs less than the whole directory (%d RU)",
		c.TransitiveRU, c.FullRU)
	return c
}
