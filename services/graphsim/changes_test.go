package graphsim_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/entrasync/entrasync/services/graphsim"
)

// kinds summarises log entries as "kind id[/member]" for comparison.
func kinds(cs []graphsim.Change) []string {
	var out []string
	for _, c := range cs {
		s := c.Kind.String() + " " + c.ID
		if c.Member.ID != "" {
			s += "/" + c.Member.ID
		}
		out = append(out, s)
	}
	return out
}

func TestChangeLogRecordsEveryMutation(t *testing.T) {
	t.Parallel()
	d := graphsim.NewDirectory("contoso.onmicrosoft.com")
	u := d.AddUser(graphsim.User{ID: "00000000-0000-4000-8000-000000000001", GivenName: "Ada", Surname: "Lovelace", AccountEnabled: true})
	v := d.AddUser(graphsim.User{ID: "00000000-0000-4000-8000-000000000002", GivenName: "Alan", Surname: "Turing", AccountEnabled: true})
	sec := d.AddGroup(graphsim.Group{ID: "00000000-0000-4000-8000-00000000000a", DisplayName: "Sec", SecurityEnabled: true})
	m365 := d.AddGroup(graphsim.Group{ID: "00000000-0000-4000-8000-00000000000b", DisplayName: "Team", GroupTypes: []string{"Unified"}, MailEnabled: true})
	start := d.Seq()
	if start != 4 {
		t.Fatalf("Seq after 4 additions = %d", start)
	}

	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"add member", func() error {
			return d.AddMember(sec.ID, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser})
		}, []string{"memberAdded " + sec.ID + "/" + u.ID}},
		{"add member to m365", func() error {
			return d.AddMember(m365.ID, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser})
		}, []string{"memberAdded " + m365.ID + "/" + u.ID}},
		{"title change", func() error {
			return d.UpdateUser(u.ID, func(x *graphsim.User) { x.JobTitle = "Engineer" })
		}, []string{"user " + u.ID}},
		{"update without change logs nothing", func() error {
			return d.UpdateUser(u.ID, func(x *graphsim.User) {})
		}, nil},
		{"disable", func() error { return d.DisableUser(v.ID) }, []string{"user " + v.ID}},
		{"soft delete drops memberships", func() error { return d.DeleteUser(u.ID) }, []string{
			"memberRemoved " + sec.ID + "/" + u.ID, "memberRemoved " + m365.ID + "/" + u.ID, "userDeleted " + u.ID}},
		{"restore gives memberships back", func() error { return d.RestoreUser(u.ID) }, []string{
			"user " + u.ID, "memberAdded " + sec.ID + "/" + u.ID, "memberAdded " + m365.ID + "/" + u.ID}},
		{"remove member", func() error { return d.RemoveMember(sec.ID, u.ID) }, []string{"memberRemoved " + sec.ID + "/" + u.ID}},
		{"rename group", func() error {
			return d.UpdateGroup(sec.ID, func(g *graphsim.Group) { g.DisplayName = "Security" })
		}, []string{"group " + sec.ID}},
		{"m365 group delete is soft", func() error { return d.DeleteGroup(m365.ID) }, []string{"groupDeleted " + m365.ID}},
		{"restore m365 group", func() error { return d.RestoreGroup(m365.ID) }, []string{"group " + m365.ID}},
		{"security group delete is permanent", func() error { return d.DeleteGroup(sec.ID) }, []string{"groupPurged " + sec.ID}},
		{"purge active user", func() error { return d.PurgeUser(v.ID) }, []string{
			"userPurged " + v.ID}},
	}
	for _, st := range steps {
		before := d.Seq()
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := kinds(d.Changes(before))
		if !slices.Equal(got, st.want) {
			t.Errorf("%s: logged %v, want %v", st.name, got, st.want)
		}
	}
	// Sequence numbers are dense and increasing.
	for i, c := range d.Changes(0) {
		if c.Seq != uint64(i+1) {
			t.Fatalf("change %d has seq %d", i, c.Seq)
		}
	}
	if !slices.ContainsFunc(d.DirectMembers(m365.ID), func(m graphsim.Member) bool { return m.ID == u.ID }) {
		t.Error("restored Microsoft 365 group lost its member")
	}
	if err := d.RestoreGroup(sec.ID); !errors.Is(err, graphsim.ErrNotFound) {
		t.Errorf("restoring a permanently deleted security group: %v", err)
	}
	if err := d.RestoreUser(v.ID); !errors.Is(err, graphsim.ErrNotFound) {
		t.Errorf("restoring a purged user: %v", err)
	}
}

func TestSoftDeletedObjectsDisappearAndComeBack(t *testing.T) {
	t.Parallel()
	d := graphsim.Generate(graphsim.Spec{Seed: 3, Users: 40, Groups: 10})
	var m365 graphsim.Group
	for _, g := range d.Groups() {
		if kindOf(g) == "m365" && len(d.DirectMembers(g.ID)) > 0 {
			m365 = g
			break
		}
	}
	if m365.ID == "" {
		t.Fatal("no Microsoft 365 group with members")
	}
	member := d.DirectMembers(m365.ID)[0].ID
	u, _ := d.User(member)
	if err := d.DeleteUser(member); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.User(member); ok {
		t.Error("soft-deleted user still listed")
	}
	if !slices.ContainsFunc(d.DeletedUsers(), func(x graphsim.User) bool { return x.ID == member }) {
		t.Error("soft-deleted user not among the deleted users")
	}
	if slices.ContainsFunc(d.DirectMembers(m365.ID), func(m graphsim.Member) bool { return m.ID == member }) {
		t.Error("soft-deleted user still a member")
	}
	if err := d.RestoreUser(member); err != nil {
		t.Fatal(err)
	}
	if got, ok := d.User(member); !ok || got != u {
		t.Errorf("restored user %+v, want %+v", got, u)
	}
	if !slices.ContainsFunc(d.DirectMembers(m365.ID), func(m graphsim.Member) bool { return m.ID == member }) {
		t.Error("restored user did not get its membership back")
	}

	if err := d.DeleteGroup(m365.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Group(m365.ID); ok || len(d.DeletedGroups()) != 1 {
		t.Errorf("soft-deleted group: listed %v, deleted groups %d", ok, len(d.DeletedGroups()))
	}
	if err := d.PurgeGroup(m365.ID); err != nil {
		t.Fatal(err)
	}
	if len(d.DeletedGroups()) != 0 {
		t.Error("purged group still restorable")
	}
	// A purged user frees its userPrincipalName; a soft-deleted one keeps it.
	if err := d.DeleteUser(member); err != nil {
		t.Fatal(err)
	}
	if err := d.PurgeUser(member); err != nil {
		t.Fatal(err)
	}
	d.AddUser(graphsim.User{UserPrincipalName: u.UserPrincipalName, GivenName: "New"})
}
