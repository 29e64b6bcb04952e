package graphsim_test

import (
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/entrasync/entrasync/services/graphsim"
)

var guidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func kindOf(g graphsim.Group) string {
	switch {
	case slices.Contains(g.GroupTypes, "DynamicMembership"):
		return "dynamic"
	case slices.Contains(g.GroupTypes, "Unified"):
		return "m365"
	case g.SecurityEnabled && g.MailEnabled:
		return "mailSecurity"
	case g.SecurityEnabled:
		return "security"
	case g.MailEnabled:
		return "distribution"
	}
	return "none"
}

var ruleClauseRe = regexp.MustCompile(`user\.(department|jobTitle) -eq "([^"]*)"`)

// ruleMatches evaluates the generator's rules (clauses joined by -and) on
// their own, to check the simulator's evaluation.
func ruleMatches(t *testing.T, rule string, u graphsim.User) bool {
	clauses := ruleClauseRe.FindAllStringSubmatch(rule, -1)
	if len(clauses) == 0 || len(clauses) != strings.Count(rule, "-and")+1 {
		t.Fatalf("rule %q is not of the generator's form", rule)
	}
	for _, c := range clauses {
		v := u.Department
		if c[1] == "jobTitle" {
			v = u.JobTitle
		}
		if v != c[2] {
			return false
		}
	}
	return true
}

func TestGenerateShapes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		spec graphsim.Spec
	}{
		{"demo", graphsim.DemoSpec()},
		{"empty", graphsim.Spec{Seed: 1}},
		{"tiny", graphsim.Spec{Seed: 3, Users: 5, Groups: 2}},
		{"few groups for the chain", graphsim.Spec{Seed: 4, Users: 20, Groups: 3, NestingDepth: 4, Cycle: true}},
		{"negative counts", graphsim.Spec{Seed: 5, Users: -3, Groups: -1, Guests: 2}},
		{"e2e size", graphsim.Spec{Seed: 7, Users: 2500, Guests: 40, Disabled: 30, NoMail: 25, Groups: 60, NestingDepth: 3, Devices: 6, Contacts: 2, Cycle: true}},
		{"deep", graphsim.Spec{Seed: 8, Users: 300, Groups: 40, NestingDepth: 9, Devices: 3, Contacts: 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := graphsim.Generate(c.spec)
			spec := c.spec
			for _, n := range []*int{&spec.Users, &spec.Guests, &spec.Disabled, &spec.NoMail, &spec.Groups, &spec.NestingDepth} {
				*n = max(*n, 0)
			}
			if !strings.HasSuffix(d.Domain(), ".onmicrosoft.com") {
				t.Errorf("domain %q", d.Domain())
			}
			users := d.Users()
			if want := spec.Users + spec.Guests + spec.Disabled + spec.NoMail; len(users) != want {
				t.Fatalf("%d users, want %d", len(users), want)
			}
			counts := map[string]int{}
			seenUPN := map[string]bool{}
			for i, u := range users {
				if !guidRe.MatchString(u.ID) {
					t.Fatalf("user id %q is not a v4 GUID", u.ID)
				}
				if i > 0 && users[i-1].ID >= u.ID {
					t.Fatal("users not sorted by id")
				}
				if seenUPN[strings.ToLower(u.UserPrincipalName)] {
					t.Fatalf("duplicate UPN %s", u.UserPrincipalName)
				}
				seenUPN[strings.ToLower(u.UserPrincipalName)] = true
				switch {
				case u.UserType == "Guest":
					counts["guest"]++
					if !strings.HasSuffix(u.UserPrincipalName, "#EXT#@"+d.Domain()) || !strings.Contains(u.UserPrincipalName, "_") || u.Mail == "" {
						t.Errorf("guest %+v: want UPN first.last_domain#EXT#@%s and an external mail", u, d.Domain())
					}
				case !u.AccountEnabled:
					counts["disabled"]++
				case u.Mail == "":
					counts["nomail"]++
				default:
					counts["member"]++
					if u.Mail != u.UserPrincipalName || !strings.HasSuffix(u.Mail, "@"+d.Domain()) {
						t.Errorf("member %+v: want mail = UPN in %s", u, d.Domain())
					}
				}
				if u.UserType == "Member" && !strings.HasSuffix(u.UserPrincipalName, "@"+d.Domain()) {
					t.Errorf("member UPN %s outside the tenant domain", u.UserPrincipalName)
				}
			}
			want := map[string]int{"guest": spec.Guests, "disabled": spec.Disabled, "nomail": spec.NoMail, "member": spec.Users}
			for k, v := range want {
				if counts[k] != v {
					t.Errorf("%d %s users, want %d", counts[k], k, v)
				}
			}

			groups := d.Groups()
			need := spec.NestingDepth
			if spec.Cycle {
				need += 2
			}
			if wantGroups := max(spec.Groups, need); len(groups) != wantGroups {
				t.Errorf("%d groups, want %d", len(groups), wantGroups)
			}
			kinds := map[string]int{}
			memberTypes := map[graphsim.ObjectType]int{}
			for _, g := range groups {
				kinds[kindOf(g)]++
				ms := d.DirectMembers(g.ID)
				for _, m := range ms {
					memberTypes[m.Type]++
					if m.Type == graphsim.TypeGroup && kindOf(g) == "m365" {
						t.Errorf("Microsoft 365 group %s holds group %s", g.DisplayName, m.ID)
					}
					if m.Type == graphsim.TypeDevice && !g.SecurityEnabled {
						t.Errorf("device %s in non-security group %s", m.ID, g.DisplayName)
					}
				}
				if g.MailEnabled != (g.Mail != "") {
					t.Errorf("group %s: mailEnabled %v but mail %q", g.DisplayName, g.MailEnabled, g.Mail)
				}
				if kindOf(g) == "dynamic" {
					if g.MembershipRule == "" {
						t.Errorf("dynamic group %s has no rule", g.DisplayName)
					}
					var wantIDs []string
					for _, u := range users {
						if ruleMatches(t, g.MembershipRule, u) {
							wantIDs = append(wantIDs, u.ID)
						}
					}
					var got []string
					for _, m := range ms {
						got = append(got, m.ID)
					}
					if !slices.Equal(got, wantIDs) {
						t.Errorf("dynamic group %s (%s): %d members, want the %d users the rule matches", g.DisplayName, g.MembershipRule, len(got), len(wantIDs))
					}
				}
			}
			if spec.Groups >= 5 {
				for _, k := range []string{"security", "m365", "dynamic", "distribution", "mailSecurity"} {
					if kinds[k] == 0 {
						t.Errorf("no %s group among %d: %v", k, len(groups), kinds)
					}
				}
			}
			if len(groups) > 0 && spec.Devices > 0 && memberTypes[graphsim.TypeDevice] == 0 {
				t.Error("no device is a member of any group")
			}
			if len(groups) > 0 && spec.Contacts > 0 && memberTypes[graphsim.TypeOrgContact] == 0 {
				t.Error("no contact is a member of any group")
			}

			chain := d.NestedChain()
			if len(chain) != spec.NestingDepth {
				t.Errorf("nested chain of %d groups, want %d", len(chain), spec.NestingDepth)
			}
			for i := 1; i < len(chain); i++ {
				if !slices.Contains(d.DirectMembers(chain[i-1]), graphsim.Member{ID: chain[i], Type: graphsim.TypeGroup}) {
					t.Errorf("chain group %d is not a member of group %d", i, i-1)
				}
			}
			if len(chain) > 0 {
				inner := chain[len(chain)-1]
				hasMember := false
				for _, m := range d.DirectMembers(inner) {
					if u, ok := d.User(m.ID); ok && u.UserType == "Member" {
						hasMember = true
					}
				}
				if !hasMember && spec.Users+spec.Disabled+spec.NoMail > 0 {
					t.Error("innermost chain group has no member user")
				}
				// The outermost group sees every user of the chain.
				outer := d.TransitiveMembers(chain[0])
				for _, g := range chain[1:] {
					if !slices.ContainsFunc(outer, func(m graphsim.Member) bool { return m.ID == g }) {
						t.Errorf("outer chain group does not reach %s transitively", g)
					}
				}
			}
			cycle := d.CycleGroups()
			if spec.Cycle != (len(cycle) == 2) {
				t.Errorf("cycle groups %v, want a cycle: %v", cycle, spec.Cycle)
			}
		})
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	t.Parallel()
	spec := graphsim.Spec{Seed: 99, Users: 400, Guests: 10, Disabled: 5, NoMail: 5, Groups: 30, NestingDepth: 4, Devices: 5, Contacts: 3, Cycle: true}
	a, b := graphsim.Generate(spec), graphsim.Generate(spec)
	if a.Domain() != b.Domain() || !reflect.DeepEqual(a.Users(), b.Users()) || !reflect.DeepEqual(a.Groups(), b.Groups()) ||
		!reflect.DeepEqual(a.Devices(), b.Devices()) || !reflect.DeepEqual(a.Contacts(), b.Contacts()) {
		t.Fatal("two directories from one spec differ")
	}
	for _, g := range a.Groups() {
		if !reflect.DeepEqual(a.DirectMembers(g.ID), b.DirectMembers(g.ID)) {
			t.Fatalf("members of %s differ", g.DisplayName)
		}
	}
	if !slices.Equal(a.NestedChain(), b.NestedChain()) || !slices.Equal(a.CycleGroups(), b.CycleGroups()) {
		t.Fatal("chain or cycle differ")
	}
	spec.Seed++
	c := graphsim.Generate(spec)
	if c.Users()[0].ID == a.Users()[0].ID {
		t.Fatal("another seed gave the same ids")
	}
}

func TestGenerateLargeTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("large tenant")
	}
	t.Parallel()
	d := graphsim.Generate(graphsim.Spec{Seed: 1, Users: 100_000, Groups: 5_000, NestingDepth: 5, Devices: 200, Contacts: 50, Guests: 500, Disabled: 500, NoMail: 500, Cycle: true})
	users, groups := d.Users(), d.Groups()
	if len(users) != 101_500 || len(groups) != 5_000 {
		t.Fatalf("%d users, %d groups", len(users), len(groups))
	}
	sizes := map[string]int{}
	edges, biggest, smallest := 0, 0, len(users)
	for _, g := range groups {
		n := len(d.DirectMembers(g.ID))
		edges += n
		biggest, smallest = max(biggest, n), min(smallest, n)
		switch {
		case n < 10:
			sizes["<10"]++
		case n < 1000:
			sizes["<1000"]++
		default:
			sizes[">=1000"]++
		}
	}
	if biggest < 10_000 || smallest > 5 || sizes["<10"] == 0 || sizes["<1000"] == 0 || sizes[">=1000"] == 0 {
		t.Errorf("group sizes do not vary enough: biggest %d, smallest %d, %v", biggest, smallest, sizes)
	}
	if edges > 20*len(users) {
		t.Errorf("%d membership edges for %d users: too many to serve quickly", edges, len(users))
	}
	if n := len(d.TransitiveMembers(d.NestedChain()[0])); n == 0 {
		t.Error("outer chain group has no transitive members")
	}
}

func TestTransitiveMembersAreCycleSafe(t *testing.T) {
	t.Parallel()
	d := graphsim.NewDirectory("cyc.onmicrosoft.com")
	u1 := d.AddUser(graphsim.User{GivenName: "Ann", Surname: "One", DisplayName: "Ann One", AccountEnabled: true})
	u2 := d.AddUser(graphsim.User{GivenName: "Bob", Surname: "Two", DisplayName: "Bob Two", AccountEnabled: true})
	dev := d.AddDevice(graphsim.Device{DisplayName: "DESKTOP-1", AccountEnabled: true})
	a, b, c := d.AddGroup(graphsim.Group{DisplayName: "A", SecurityEnabled: true}), d.AddGroup(graphsim.Group{DisplayName: "B", SecurityEnabled: true}), d.AddGroup(graphsim.Group{DisplayName: "C", SecurityEnabled: true})
	for _, e := range []struct {
		g string
		m graphsim.Member
	}{
		{a.ID, graphsim.Member{ID: b.ID, Type: graphsim.TypeGroup}},
		{b.ID, graphsim.Member{ID: a.ID, Type: graphsim.TypeGroup}},
		{b.ID, graphsim.Member{ID: c.ID, Type: graphsim.TypeGroup}},
		{c.ID, graphsim.Member{ID: a.ID, Type: graphsim.TypeGroup}},
		{c.ID, graphsim.Member{ID: u1.ID, Type: graphsim.TypeUser}},
		{a.ID, graphsim.Member{ID: u2.ID, Type: graphsim.TypeUser}},
		{b.ID, graphsim.Member{ID: u2.ID, Type: graphsim.TypeUser}},
		{c.ID, graphsim.Member{ID: dev.ID, Type: graphsim.TypeDevice}},
	} {
		if err := d.AddMember(e.g, e.m); err != nil {
			t.Fatal(err)
		}
	}
	want := func(members ...string) []string { slices.Sort(members); return members }
	for _, c := range []struct {
		group string
		want  []string
	}{
		{a.ID, want(b.ID, c.ID, u1.ID, u2.ID, dev.ID)},
		{b.ID, want(a.ID, c.ID, u1.ID, u2.ID, dev.ID)},
		{c.ID, want(a.ID, b.ID, u1.ID, u2.ID, dev.ID)},
	} {
		var got []string
		for _, m := range d.TransitiveMembers(c.group) {
			got = append(got, m.ID)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("transitive members of %s = %v, want %v", c.group, got, c.want)
		}
		if us := d.TransitiveUsers(c.group); len(us) != 2 {
			t.Errorf("transitive users of %s: %d, want 2", c.group, len(us))
		}
	}
	// A change shows at once (the cache follows the directory).
	if err := d.RemoveMember(b.ID, c.ID); err != nil {
		t.Fatal(err)
	}
	if got := len(d.TransitiveUsers(a.ID)); got != 1 {
		t.Errorf("after removing C from B, A reaches %d users, want 1", got)
	}
}

func TestDirectoryMutations(t *testing.T) {
	t.Parallel()
	d := graphsim.Generate(graphsim.DemoSpec())
	before := d.Version()
	u := d.AddUser(graphsim.User{GivenName: "Ada", Surname: "Newcomer", DisplayName: "Ada Newcomer", Department: "Sales", AccountEnabled: true})
	if !guidRe.MatchString(u.ID) || u.UserType != "Member" || u.UserPrincipalName != "ada.newcomer@"+d.Domain() {
		t.Fatalf("added user %+v", u)
	}
	if d.Version() == before {
		t.Error("version did not move")
	}
	if got, ok := d.User(u.ID); !ok || got != u {
		t.Fatalf("User(%s) = %+v, %v", u.ID, got, ok)
	}
	twin := d.AddUser(graphsim.User{GivenName: "Ada", Surname: "Newcomer"})
	if twin.UserPrincipalName != "ada.newcomer2@"+d.Domain() {
		t.Errorf("second Ada got UPN %s", twin.UserPrincipalName)
	}

	// Dynamic groups follow the rule.
	var dyn graphsim.Group
	for _, g := range d.Groups() {
		if kindOf(g) == "dynamic" {
			dyn = g
		}
	}
	dept := strings.Trim(strings.TrimPrefix(dyn.MembershipRule, "user.department -eq "), `"`)
	inDyn := func(id string) bool {
		return slices.ContainsFunc(d.DirectMembers(dyn.ID), func(m graphsim.Member) bool { return m.ID == id })
	}
	if err := d.UpdateUser(u.ID, func(x *graphsim.User) { x.Department = dept }); err != nil {
		t.Fatal(err)
	}
	if !inDyn(u.ID) {
		t.Errorf("user moved to %s is not in dynamic group %s", dept, dyn.DisplayName)
	}
	if err := d.UpdateUser(u.ID, func(x *graphsim.User) { x.Department = "Nowhere" }); err != nil {
		t.Fatal(err)
	}
	if inDyn(u.ID) {
		t.Error("user who left the department is still in the dynamic group")
	}

	security := d.NestedChain()[0]
	var m365 string
	for _, g := range d.Groups() {
		if kindOf(g) == "m365" {
			m365 = g.ID
		}
	}
	errCases := []struct {
		name string
		err  error
		want error
	}{
		{"unknown user update", d.UpdateUser("00000000-0000-4000-8000-000000000000", func(*graphsim.User) {}), graphsim.ErrNotFound},
		{"id change", d.UpdateUser(u.ID, func(x *graphsim.User) { x.ID = "x" }), graphsim.ErrInvalid},
		{"UPN taken", d.UpdateUser(u.ID, func(x *graphsim.User) { x.UserPrincipalName = twin.UserPrincipalName }), graphsim.ErrInvalid},
		{"member of unknown group", d.AddMember("00000000-0000-4000-8000-000000000000", graphsim.Member{ID: u.ID, Type: graphsim.TypeUser}), graphsim.ErrNotFound},
		{"unknown member", d.AddMember(security, graphsim.Member{ID: "00000000-0000-4000-8000-000000000000", Type: graphsim.TypeUser}), graphsim.ErrNotFound},
		{"wrong member type", d.AddMember(security, graphsim.Member{ID: u.ID, Type: graphsim.TypeGroup}), graphsim.ErrNotFound},
		{"group in itself", d.AddMember(security, graphsim.Member{ID: security, Type: graphsim.TypeGroup}), graphsim.ErrInvalid},
		{"member of dynamic group", d.AddMember(dyn.ID, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser}), graphsim.ErrInvalid},
		{"group in Microsoft 365 group", d.AddMember(m365, graphsim.Member{ID: security, Type: graphsim.TypeGroup}), graphsim.ErrInvalid},
		{"remove non-member", d.RemoveMember(security, twin.ID), graphsim.ErrNotMember},
		{"delete unknown user", d.DeleteUser("00000000-0000-4000-8000-000000000000"), graphsim.ErrNotFound},
		{"delete unknown group", d.DeleteGroup("00000000-0000-4000-8000-000000000000"), graphsim.ErrNotFound},
	}
	for _, c := range errCases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	if err := d.AddMember(security, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser}); err != nil {
		t.Fatal(err)
	}
	if err := d.AddMember(security, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser}); !errors.Is(err, graphsim.ErrAlreadyMember) {
		t.Errorf("duplicate member: %v", err)
	}
	if err := d.DeleteUser(u.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.User(u.ID); ok {
		t.Error("deleted user still there")
	}
	if slices.ContainsFunc(d.DirectMembers(security), func(m graphsim.Member) bool { return m.ID == u.ID }) {
		t.Error("deleted user still a member")
	}

	// Breaking the chain shortens NestedChain; deleting a cycle group ends the cycle.
	chain := d.NestedChain()
	if err := d.DeleteGroup(chain[1]); err != nil {
		t.Fatal(err)
	}
	if got := d.NestedChain(); !slices.Equal(got, chain[:1]) {
		t.Errorf("chain after deleting its second group: %v, want %v", got, chain[:1])
	}
	if slices.ContainsFunc(d.DirectMembers(chain[0]), func(m graphsim.Member) bool { return m.ID == chain[1] }) {
		t.Error("deleted group still a member of its parent")
	}
	if err := d.DisableUser(twin.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.User(twin.ID); got.AccountEnabled {
		t.Error("DisableUser left the account enabled")
	}
	cycle := d.CycleGroups()
	if err := d.RemoveMember(cycle[0], cycle[1]); err != nil {
		t.Fatal(err)
	}
	if got := d.CycleGroups(); got != nil {
		t.Errorf("cycle after removing one edge: %v", got)
	}
}

// TestDirectoryIsSafeForConcurrentUse is meant for -race: readers and a
// writer at once.
func TestDirectoryIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	d := graphsim.Generate(graphsim.Spec{Seed: 12, Users: 300, Groups: 20, NestingDepth: 3, Cycle: true})
	groups := d.Groups()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				g := groups[i%len(groups)]
				_ = d.TransitiveUsers(g.ID)
				_ = d.Users()
			}
		}()
	}
	for i := range 100 {
		u := d.AddUser(graphsim.User{GivenName: "W", Surname: "Riter", AccountEnabled: true})
		_ = d.AddMember(groups[i%len(groups)].ID, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser})
		if i%3 == 0 {
			_ = d.DeleteUser(u.ID)
		}
	}
	wg.Wait()
}
