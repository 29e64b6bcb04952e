package graphsim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// MemberChange is one membership Churn added or removed.
type MemberChange struct {
	Group  string
	Member Member
}

// ChurnReport says what one Churn call did. The user lists are disjoint:
// each user changed once. Users and Groups are every user and group a
// delta round over the change log from From to To reports (dynamic
// groups following their rules included).
type ChurnReport struct {
	Joined         []string       // new users, each added to one to three groups
	SoftDeleted    []string       // leavers, restorable
	Purged         []string       // leavers deleted for good
	Retitled       []string       // jobTitle changed
	Moved          []string       // department changed (dynamic groups follow)
	Disabled       []string       // accountEnabled set to false
	MembersAdded   []MemberChange // users added to groups (joiners' included)
	MembersRemoved []MemberChange // users removed from groups (leavers' not included)
	Nesting        []MemberChange // the group-in-group edge added or removed
	NestingAdded   bool           // whether that edge was added (else removed)
	Renamed        []string       // groups whose displayName changed

	From, To uint64   // the change log before and after (Seq)
	Users    []string // users changed, sorted
	Groups   []string // groups changed (properties or members), sorted
	// Edges is how many direct memberships (group, member) the change
	// log added or removed: those above, and the ones that followed from
	// other changes (a leaver's, a dynamic group's after a move).
	Edges int
}

// Churn changes about fraction of the directory's users the way an
// organisation changes between two syncs: joiners (new users added to
// some groups), leavers (soft-deleted, a third purged), title and
// department changes, disabled accounts, membership adds and removes, one
// nested-group edge added or removed, and group renames (about fraction
// of the groups, at least one). The same directory, seed and fraction
// give the same changes.
func (d *Directory) Churn(seed int64, fraction float64) ChurnReport {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xc4_2026))
	rep := ChurnReport{From: d.Seq()}
	users := d.Users()
	groups := d.Groups()
	n := max(1, int(math.Round(fraction*float64(len(users)))))

	// Shares of the changes; each user is picked at most once.
	perm := rng.Perm(len(users))
	next := func() (User, bool) {
		if len(perm) == 0 {
			return User{}, false
		}
		u := users[perm[0]]
		perm = perm[1:]
		return u, true
	}
	share := func(p float64) int { return max(1, int(math.Round(p*float64(n)))) }

	// Groups a user can be added to directly: not dynamic.
	var open []Group
	for _, g := range groups {
		if !isDynamic(&g) {
			open = append(open, g)
		}
	}

	for i := range share(0.15) { // leavers: every third purged
		u, ok := next()
		if !ok {
			break
		}
		if i%3 == 1 {
			_ = d.PurgeUser(u.ID)
			rep.Purged = append(rep.Purged, u.ID)
		} else {
			_ = d.DeleteUser(u.ID)
			rep.SoftDeleted = append(rep.SoftDeleted, u.ID)
		}
	}
	for range share(0.15) { // title changes
		u, ok := next()
		if !ok {
			break
		}
		titles := jobTitles[u.Department]
		if len(titles) == 0 {
			titles = jobTitles[departments[0]]
		}
		title := titles[rng.IntN(len(titles))]
		if title == u.JobTitle {
			title = "Senior " + title
		}
		_ = d.UpdateUser(u.ID, func(x *User) { x.JobTitle = title })
		rep.Retitled = append(rep.Retitled, u.ID)
	}
	for range share(0.1) { // department moves
		u, ok := next()
		if !ok {
			break
		}
		dept := departments[rng.IntN(len(departments))]
		if dept == u.Department {
			dept = departments[(slices.Index(departments, dept)+1)%len(departments)]
		}
		_ = d.UpdateUser(u.ID, func(x *User) { x.Department = dept })
		rep.Moved = append(rep.Moved, u.ID)
	}
	for range share(0.1) { // disabled accounts
		u, ok := next()
		for ok && !u.AccountEnabled {
			u, ok = next()
		}
		if !ok {
			break
		}
		_ = d.DisableUser(u.ID)
		rep.Disabled = append(rep.Disabled, u.ID)
	}
	removed := map[MemberChange]bool{}
	for i := range share(0.2) { // membership changes: removals and adds in turn
		if len(open) == 0 {
			break
		}
		g := open[rng.IntN(len(open))]
		if i%2 == 0 {
			var users []Member
			for _, m := range d.DirectMembers(g.ID) {
				if m.Type == TypeUser {
					users = append(users, m)
				}
			}
			if len(users) > 0 {
				mc := MemberChange{Group: g.ID, Member: users[rng.IntN(len(users))]}
				if d.RemoveMember(g.ID, mc.Member.ID) == nil {
					rep.MembersRemoved = append(rep.MembersRemoved, mc)
					removed[mc] = true
				}
				continue
			}
		}
		u, ok := next()
		if !ok {
			break
		}
		mc := MemberChange{Group: g.ID, Member: Member{ID: u.ID, Type: TypeUser}}
		if !removed[mc] && d.AddMember(g.ID, mc.Member) == nil {
			rep.MembersAdded = append(rep.MembersAdded, mc)
		}
	}
	for i := range share(0.15) { // joiners
		first, last := firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
		dept := departments[rng.IntN(len(departments))]
		var id [16]byte
		for j := range id {
			id[j] = byte(rng.UintN(256))
		}
		upn := d.freeUPN(asciiFold(first) + "." + asciiFold(last))
		u := d.AddUser(User{
			ID: formatGUID(id), DisplayName: first + " " + last, GivenName: first, Surname: last,
			UserPrincipalName: upn, Mail: upn, AccountEnabled: true,
			Department: dept, JobTitle: jobTitles[dept][rng.IntN(len(jobTitles[dept]))],
			OfficeLocation: offices[rng.IntN(len(offices))],
		})
		rep.Joined = append(rep.Joined, u.ID)
		for k := range 1 + (i+rng.IntN(3))%3 {
			if len(open) == 0 {
				break
			}
			g := open[(rng.IntN(len(open))+k)%len(open)]
			m := Member{ID: u.ID, Type: TypeUser}
			if d.AddMember(g.ID, m) == nil {
				rep.MembersAdded = append(rep.MembersAdded, MemberChange{Group: g.ID, Member: m})
			}
		}
	}
	rep.NestingAdded, rep.Nesting = d.churnNesting(rng, open)
	for range max(1, int(math.Round(fraction*float64(len(groups))))) {
		if len(groups) == 0 {
			break
		}
		g := groups[rng.IntN(len(groups))]
		if slices.Contains(rep.Renamed, g.ID) {
			continue
		}
		name := g.DisplayName + " (" + projectWords[rng.IntN(len(projectWords))] + ")"
		if d.UpdateGroup(g.ID, func(x *Group) { x.DisplayName = name }) == nil {
			rep.Renamed = append(rep.Renamed, g.ID)
		}
	}

	d.mu.RLock()
	rep.To = d.seq
	us, gs := map[string]bool{}, map[string]bool{}
	edges := map[[2]string]bool{}
	for _, c := range d.changesAfterLocked(rep.From, rep.To) {
		switch c.Kind {
		case ChangeUser, ChangeUserDeleted, ChangeUserPurged:
			us[c.ID] = true
		case ChangeMemberAdded, ChangeMemberRemoved:
			gs[c.ID] = true
			edges[[2]string{c.ID, c.Member.ID}] = true
		default:
			gs[c.ID] = true
		}
	}
	d.mu.RUnlock()
	rep.Edges = len(edges)
	for id := range us {
		rep.Users = append(rep.Users, id)
	}
	for id := range gs {
		rep.Groups = append(rep.Groups, id)
	}
	slices.Sort(rep.Users)
	slices.Sort(rep.Groups)
	return rep
}

// churnNesting removes one group-in-group edge, or adds one when there is
// none to remove (parent neither dynamic nor Microsoft 365, child not a
// Microsoft 365 group).
func (d *Directory) churnNesting(rng *rand.Rand, open []Group) (added bool, changes []MemberChange) {
	var edges []MemberChange
	for _, g := range open {
		for _, m := range d.DirectMembers(g.ID) {
			if m.Type == TypeGroup {
				edges = append(edges, MemberChange{Group: g.ID, Member: m})
			}
		}
	}
	if len(edges) > 0 && rng.IntN(2) == 0 {
		e := edges[rng.IntN(len(edges))]
		if d.RemoveMember(e.Group, e.Member.ID) == nil {
			return false, []MemberChange{e}
		}
	}
	for range 50 {
		if len(open) < 2 {
			break
		}
		p, c := open[rng.IntN(len(open))], open[rng.IntN(len(open))]
		if slices.Contains(p.GroupTypes, "Unified") || slices.Contains(c.GroupTypes, "Unified") {
			continue
		}
		m := Member{ID: c.ID, Type: TypeGroup}
		if d.AddMember(p.ID, m) == nil {
			return true, []MemberChange{{Group: p.ID, Member: m}}
		}
	}
	return false, nil
}

// freeUPN is a userPrincipalName in the directory's domain not yet taken.
func (d *Directory) freeUPN(local string) string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.freeUPNLocked(strings.ToLower(local)) + "@" + d.domain
}

// String summarises a report in one line.
func (r ChurnReport) String() string {
	return fmt.Sprintf("joined %d, soft-deleted %d, purged %d, retitled %d, moved %d, disabled %d, members +%d -%d, nesting %d, renamed %d: %d users, %d groups, %d memberships changed",
		len(r.Joined), len(r.SoftDeleted), len(r.Purged), len(r.Retitled), len(r.Moved), len(r.Disabled),
		len(r.MembersAdded), len(r.MembersRemoved), len(r.Nesting), len(r.Renamed), len(r.Users), len(r.Groups), r.Edges)
}
