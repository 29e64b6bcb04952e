package plan

import "fmt"

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
	// Known is false while no run has filled the mirror: the sizes are
	// then unknown, not zero.
	Known bool
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

// ReadStrategy chooses how a tenant's full runs read the directory, and
// says why. Each strategy is measured against its own lower bound
// (FullReadRU, TransitiveReadRU); transitive is chosen only where it can
// serve the tenant and is strictly cheaper:
//
//   - the tenant syncs users (a Basic tenant syncs groups only);
//   - it syncs only the members of selected groups (scope.groups);
//   - it imports no groups: an imported group's memberships, and roles
//     through groups, need the direct edges of every group below it,
//     which only the full read gives;
//   - it has no scope.userFilter, which Graph applies to /users only;
//   - the mirror's sizes are known (a run was applied).
//
// Example: 100,000 users and 5,000 groups of at most 999 direct members
// each cost 10,109 RU the full way; 3 scope groups of 2,000 users (3
// pages each) cost 36 the transitive way.
func ReadStrategy(f ReadFacts) ReadChoice {
	c := ReadChoice{Strategy: ReadFull, FullRU: FullReadRU(f)}
	switch {
	case !f.SyncsMembers:
		c.Why = "the tenant syncs groups only"
		return c
	case len(f.ScopeUsers) == 0:
		c.Why = "the tenant syncs every user (no scope.groups)"
		return c
	case f.ImportsGroups:
		c.Why = "the tenant imports groups, whose memberships need every group's direct members"
		return c
	case f.UserFilter != "":
		c.Why = "scope.userFilter applies to the users listing only"
		return c
	case !f.Known:
		c.Why = "the directory's size is not known before a first run"
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
