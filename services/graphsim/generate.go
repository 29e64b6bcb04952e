package graphsim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Spec describes a tenant to generate. The same Spec always gives the
// same directory (same IDs, names and memberships).
type Spec struct {
	Seed         int64
	Users        int  // member users (enabled, with mail) before the special ones below
	Guests       int  // userType Guest, UPN like first.last_fabrikam.com#EXT#@<tenant domain>
	Disabled     int  // member users with accountEnabled=false
	NoMail       int  // member users with mail = null (UPN only)
	Groups       int  // total groups: security, Microsoft 365, mail-enabled security, distribution lists, dynamic
	NestingDepth int  // a chain of this many groups, each a member of the one before
	Devices      int  // devices that are members of security groups
	Contacts     int  // orgContacts that are members of mail-enabled groups
	Cycle        bool // two groups that contain each other (A ∈ B, B ∈ A)
}

// DemoSpec is a small tenant with every shape the sync meets: guests,
// disabled users, users without mail, every group kind, nesting three
// deep, a cycle, devices and a contact as members.
func DemoSpec() Spec {
	return Spec{
		Seed: 42, Users: 60, Guests: 5, Disabled: 4, NoMail: 3,
		Groups: 12, NestingDepth: 3, Devices: 4, Contacts: 2, Cycle: true,
	}
}

// group kinds the generator mixes.
type groupKind int

const (
	kindSecurity groupKind = iota
	kindM365
	kindDynamic
	kindDistribution
	kindMailSecurity
)

// generator holds the random source and bookkeeping of one Generate call.
type generator struct {
	rng       *rand.Rand
	d         *Directory
	spec      Spec
	nicknames map[string]bool
	names     map[string]bool
	members   map[string]map[string]ObjectType // group → member id → type
	created   []*User                          // users in creation order
}

// Generate builds a directory from a spec. Counts below zero count as
// zero. When Groups is too small to hold the nesting chain and the cycle,
// the directory gets as many groups as those need. Large tenants (100k
// users, 5k groups) take a few seconds at most.
func Generate(spec Spec) *Directory {
	clamp := func(n *int) { *n = max(*n, 0) }
	for _, n := range []*int{&spec.Users, &spec.Guests, &spec.Disabled, &spec.NoMail, &spec.Groups, &spec.NestingDepth, &spec.Devices, &spec.Contacts} {
		clamp(n)
	}
	rng := rand.New(rand.NewPCG(uint64(spec.Seed), 0x5eed_0f_e47a_5c))
	org := orgNames[rng.IntN(len(orgNames))]
	g := &generator{
		rng: rng, spec: spec,
		d:         newDirectory(org + ".onmicrosoft.com"),
		nicknames: map[string]bool{},
		names:     map[string]bool{},
		members:   map[string]map[string]ObjectType{},
	}
	g.users()
	g.devicesAndContacts()
	g.groups()
	for gid, set := range g.members {
		ms := make([]Member, 0, len(set))
		for id, typ := range set {
			ms = append(ms, Member{ID: id, Type: typ})
		}
		slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
		g.d.members[gid] = ms
	}
	return g.d
}

func (g *generator) guid() string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := g.rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return formatGUID(b)
}

func (g *generator) pick(list []string) string { return list[g.rng.IntN(len(list))] }

// chance is true with probability p.
func (g *generator) chance(p float64) bool { return g.rng.Float64() < p }

// users creates the member, disabled, mail-less and guest users. IDs are
// random, so their sorted order mixes the kinds.
func (g *generator) users() {
	d := g.d
	n := g.spec.Users + g.spec.Disabled + g.spec.NoMail + g.spec.Guests
	d.userIDs = make([]string, 0, n)
	for i := range n {
		first, last := g.pick(firstNames), g.pick(lastNames)
		u := &User{
			ID: g.guid(), DisplayName: first + " " + last, GivenName: first, Surname: last,
			UserType: "Member", AccountEnabled: true,
		}
		local := asciiFold(first) + "." + asciiFold(last)
		switch {
		case i < g.spec.Users+g.spec.Disabled+g.spec.NoMail:
			u.UserPrincipalName = g.uniqueUPN(local, func(l string) string { return l + "@" + d.domain })
			u.Mail = u.UserPrincipalName
			u.Department = g.pick(departments)
			if g.chance(0.9) {
				u.JobTitle = g.pick(jobTitles[u.Department])
			}
			if g.chance(0.05) {
				u.Department = "" // some directories are not fully filled in
			}
			if g.chance(0.8) {
				u.OfficeLocation = g.pick(offices)
			}
			if g.chance(0.3) {
				u.MobilePhone = fmt.Sprintf("+1 555 01%02d %04d", g.rng.IntN(100), g.rng.IntN(10000))
			}
			if g.chance(0.6) {
				u.PreferredLanguage = "en-US"
			}
			if i >= g.spec.Users && i < g.spec.Users+g.spec.Disabled {
				u.AccountEnabled = false
			}
			if i >= g.spec.Users+g.spec.Disabled {
				u.Mail = ""
			}
		default:
			ext := g.pick(externalDomains)
			u.UserType = "Guest"
			u.Mail = local + "@" + ext
			extLocal := local + "_" + ext
			u.UserPrincipalName = g.uniqueUPN(extLocal, func(l string) string { return l + "#EXT#@" + d.domain })
			u.DisplayName += " (" + strings.SplitN(ext, ".", 2)[0] + ")"
		}
		d.users[u.ID] = u
		d.upns[strings.ToLower(u.UserPrincipalName)] = u.ID
		d.userIDs = append(d.userIDs, u.ID)
		g.created = append(g.created, u)
	}
	slices.Sort(d.userIDs)
}

// uniqueUPN returns build(local), or build(local + n) for the smallest n
// that makes it unused.
func (g *generator) uniqueUPN(local string, build func(string) string) string {
	upn := build(local)
	for n := 2; g.d.upns[strings.ToLower(upn)] != ""; n++ {
		upn = build(fmt.Sprintf("%s%d", local, n))
	}
	return upn
}

func (g *generator) devicesAndContacts() {
	d := g.d
	for range g.spec.Devices {
		dev := &Device{ID: g.guid(), DeviceID: g.guid(), AccountEnabled: true, TrustType: "AzureAd"}
		switch g.rng.IntN(3) {
		case 0:
			dev.DisplayName = fmt.Sprintf("DESKTOP-%06X", g.rng.IntN(1<<24))
			dev.OperatingSystem, dev.OperatingSystemVersion = "Windows", "10.0.22631.4317"
		case 1:
			dev.DisplayName = fmt.Sprintf("MBP-%04d", g.rng.IntN(10000))
			dev.OperatingSystem, dev.OperatingSystemVersion, dev.TrustType = "MacMDM", "14.6.1", "Workplace"
		default:
			dev.DisplayName = fmt.Sprintf("iPhone-%04d", g.rng.IntN(10000))
			dev.OperatingSystem, dev.OperatingSystemVersion, dev.TrustType = "iOS", "17.6.1", "Workplace"
		}
		d.devices[dev.ID] = dev
		d.devIDs = append(d.devIDs, dev.ID)
	}
	slices.Sort(d.devIDs)
	for range g.spec.Contacts {
		first, last := g.pick(firstNames), g.pick(lastNames)
		company := g.pick(companyNames)
		c := &OrgContact{
			ID: g.guid(), GivenName: first, Surname: last,
			DisplayName: first + " " + last + " (" + company + ")",
			Mail:        asciiFold(first) + "." + asciiFold(last) + "@" + g.pick(externalDomains),
			CompanyName: company, JobTitle: "External Consultant",
		}
		d.contacts[c.ID] = c
		d.conIDs = append(d.conIDs, c.ID)
	}
	slices.Sort(d.conIDs)
}

func (g *generator) addMember(groupID, id string, typ ObjectType) {
	set := g.members[groupID]
	if set == nil {
		set = map[string]ObjectType{}
		g.members[groupID] = set
	}
	set[id] = typ
}

// newGroup creates a group of a kind with a unique display name.
func (g *generator) newGroup(kind groupKind, name, description string) *Group {
	for base, n := name, 2; g.names[name]; n++ {
		name = fmt.Sprintf("%s %d", base, n)
	}
	g.names[name] = true
	nick := nickname(name)
	for base, n := nick, 2; g.nicknames[strings.ToLower(nick)]; n++ {
		nick = fmt.Sprintf("%s%d", base, n)
	}
	g.nicknames[strings.ToLower(nick)] = true
	gr := &Group{ID: g.guid(), DisplayName: name, Description: description, MailNickname: nick, GroupTypes: []string{}}
	switch kind {
	case kindSecurity:
		gr.SecurityEnabled = true
	case kindM365:
		gr.GroupTypes = []string{"Unified"}
		gr.MailEnabled = true
		gr.Visibility = "Public"
		if g.chance(0.3) {
			gr.Visibility = "Private"
		}
	case kindDynamic:
		gr.GroupTypes = []string{"DynamicMembership"}
		gr.SecurityEnabled = true
	case kindDistribution:
		gr.MailEnabled = true
	case kindMailSecurity:
		gr.MailEnabled, gr.SecurityEnabled = true, true
	}
	if gr.MailEnabled {
		gr.Mail = strings.ToLower(nick) + "@" + g.d.domain
	}
	g.d.groups[gr.ID] = gr
	g.d.groupIDs = append(g.d.groupIDs, gr.ID)
	return gr
}

// groups creates the groups and their memberships: the nesting chain,
// the cycle, then plain groups whose sizes follow a power law (a few big
// groups, many small ones), some nested one level into others, devices
// in security groups and contacts in mail-enabled ones.
func (g *generator) groups() {
	d, spec := g.d, g.spec
	var memberUsers []string // enabled or not, userType Member, in creation order
	allUsers := make([]string, 0, len(g.created))
	for _, u := range g.created {
		allUsers = append(allUsers, u.ID)
		if u.UserType == "Member" {
			memberUsers = append(memberUsers, u.ID)
		}
	}
	pickUsers := func(gid string, pool []string, lo, hi int) {
		if len(pool) == 0 {
			return
		}
		for _, i := range g.sample(len(pool), min(lo+g.rng.IntN(hi-lo+1), len(pool))) {
			g.addMember(gid, pool[i], TypeUser)
		}
	}

	// The nesting chain: each group a member of the previous one.
	dept := g.pick(departments)
	var securityLike []string // groups that can hold devices
	var chain []string
	for level := range spec.NestingDepth {
		name := "All " + dept
		if level > 0 {
			name = fmt.Sprintf("%s Level %d", dept, level+1)
		}
		gr := g.newGroup(kindSecurity, name, fmt.Sprintf("Nested group, level %d of %d", level+1, spec.NestingDepth))
		pickUsers(gr.ID, memberUsers, 2, 6)
		if level > 0 {
			g.addMember(chain[level-1], gr.ID, TypeGroup)
		}
		chain = append(chain, gr.ID)
		securityLike = append(securityLike, gr.ID)
	}
	d.chain = chain

	// The cycle: two groups that contain each other.
	if spec.Cycle {
		word := g.pick(projectWords)
		a := g.newGroup(kindSecurity, "Cycle "+word+" A", "Contains and is contained by Cycle "+word+" B")
		b := g.newGroup(kindSecurity, "Cycle "+word+" B", "Contains and is contained by Cycle "+word+" A")
		g.addMember(a.ID, b.ID, TypeGroup)
		g.addMember(b.ID, a.ID, TypeGroup)
		pickUsers(a.ID, memberUsers, 2, 5)
		pickUsers(b.ID, memberUsers, 2, 5)
		d.cycle = []string{a.ID, b.ID}
		securityLike = append(securityLike, a.ID, b.ID)
	}

	// Plain groups. The first five cover every kind; the rest are drawn.
	plain := max(spec.Groups-len(chain)-len(d.cycle), 0)
	type plainGroup struct {
		id     string
		kind   groupKind
		nested bool // a member of another group
		parent bool // holds another group
	}
	var plains []*plainGroup
	var mailEnabled []string
	order := []groupKind{kindSecurity, kindM365, kindDynamic, kindDistribution, kindMailSecurity}
	dynamics := 0
	for i := range plain {
		kind := kindSecurity
		if i < len(order) {
			kind = order[i]
		} else {
			switch r := g.rng.Float64(); {
			case r < 0.40:
				kind = kindSecurity
			case r < 0.70:
				kind = kindM365
			case r < 0.85:
				kind = kindDistribution
			case r < 0.99:
				kind = kindMailSecurity
			default:
				kind = kindDynamic
			}
		}
		dep := g.pick(departments)
		var gr *Group
		switch kind {
		case kindSecurity:
			gr = g.newGroup(kind, "SG-"+strings.ReplaceAll(dep, " ", "")+"-"+strings.ReplaceAll(g.pick(groupSuffixes), " ", ""), "Access for "+dep)
			securityLike = append(securityLike, gr.ID)
		case kindM365:
			gr = g.newGroup(kind, "Project "+g.pick(projectWords), "Collaboration space for the "+dep+" team")
		case kindDynamic:
			// The first dynamic group spans a department; later ones, one
			// job in it, so that they stay small in large tenants.
			if dynamics == 0 {
				gr = g.newGroup(kind, "Dynamic - "+dep, "Everyone in "+dep+", kept up to date by a rule")
				gr.MembershipRule = fmt.Sprintf("user.department -eq %q", dep)
			} else {
				job := g.pick(jobTitles[dep])
				gr = g.newGroup(kind, "Dynamic - "+job, "Every "+job+" in "+dep+", kept up to date by a rule")
				gr.MembershipRule = fmt.Sprintf("(user.department -eq %q) -and (user.jobTitle -eq %q)", dep, job)
			}
			dynamics++
		case kindDistribution:
			gr = g.newGroup(kind, "DL "+dep+" "+g.pick([]string{"All", "Announcements", "Managers", "Social"}), "Mailing list of "+dep)
			mailEnabled = append(mailEnabled, gr.ID)
		case kindMailSecurity:
			gr = g.newGroup(kind, "MESG "+dep+" "+g.pick(groupSuffixes), "Mail-enabled access group for "+dep)
			securityLike = append(securityLike, gr.ID)
			mailEnabled = append(mailEnabled, gr.ID)
		}
		plains = append(plains, &plainGroup{id: gr.ID, kind: kind})
	}

	// Sizes follow a power law over a shuffled rank, so that big and small
	// groups mix across kinds: the biggest holds about a quarter of the
	// users, the thousandth a handful.
	ranks := g.rng.Perm(len(plains))
	for i, p := range plains {
		gr := d.groups[p.id]
		if p.kind == kindDynamic {
			rule, _ := parseRule(gr.MembershipRule)
			for _, u := range g.created {
				if rule.match(u) {
					g.addMember(p.id, u.ID, TypeUser)
				}
			}
			continue
		}
		n := len(allUsers)
		if n == 0 {
			continue
		}
		size := float64(n) * 0.25 / math.Pow(float64(ranks[i]+1), 1.1) * (0.7 + 0.6*g.rng.Float64())
		k := min(max(int(size), 1+g.rng.IntN(min(n, 3))), n)
		for _, j := range g.sample(n, k) {
			g.addMember(p.id, allUsers[j], TypeUser)
		}
	}

	// Some groups nested one level into others (never deeper, so the
	// chain above stays the deepest). Microsoft 365 and dynamic groups
	// cannot hold groups.
	for i, p := range plains {
		if i == 0 || !g.chance(0.15) {
			continue
		}
		var parents []*plainGroup
		for _, q := range plains[:i] {
			if !q.nested && q.kind != kindM365 && q.kind != kindDynamic && q != p {
				parents = append(parents, q)
			}
		}
		if len(parents) == 0 || p.parent {
			continue
		}
		q := parents[g.rng.IntN(len(parents))]
		g.addMember(q.id, p.id, TypeGroup)
		q.parent, p.nested = true, true
	}

	// Devices go into security groups, contacts into mail-enabled ones.
	for _, id := range d.devIDs {
		if len(securityLike) == 0 {
			break
		}
		g.addMember(securityLike[g.rng.IntN(len(securityLike))], id, TypeDevice)
		if g.chance(0.2) {
			g.addMember(securityLike[g.rng.IntN(len(securityLike))], id, TypeDevice)
		}
	}
	if len(mailEnabled) == 0 {
		mailEnabled = securityLike
	}
	for _, id := range d.conIDs {
		if len(mailEnabled) == 0 {
			break
		}
		g.addMember(mailEnabled[g.rng.IntN(len(mailEnabled))], id, TypeOrgContact)
	}
	slices.Sort(d.groupIDs)
}

// sample returns k distinct indexes in [0, n) (Floyd's algorithm: O(k)).
func (g *generator) sample(n, k int) []int {
	if k >= n {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	seen := make(map[int]struct{}, k)
	out := make([]int, 0, k)
	for j := n - k; j < n; j++ {
		t := g.rng.IntN(j + 1)
		if _, dup := seen[t]; dup {
			t = j
		}
		seen[t] = struct{}{}
		out = append(out, t)
	}
	return out
}
