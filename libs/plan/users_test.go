package plan

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func dirUser(id string) DirUser {
	return DirUser{ID: id, DisplayName: "Ada " + id, Mail: id + "@contoso.com", UserPrincipalName: id + "@contoso.onmicrosoft.com",
		GivenName: "Ada", Surname: id, UserType: "Member", AccountEnabled: true}
}

func appUserOf(d DirUser, license string) AppUser {
	return AppUser{EntraID: d.ID, Email: d.Email(), DisplayName: d.DisplayName, GivenName: d.GivenName, Surname: d.Surname,
		JobTitle: d.JobTitle, Department: d.Department, Enabled: d.AccountEnabled, License: license}
}

func actions(items []Item) []Action {
	out := make([]Action, len(items))
	for i, it := range items {
		out[i] = it.Action
	}
	return out
}

func sameActions(t *testing.T, got []Item, want ...Action) {
	t.Helper()
	g := actions(got)
	if len(g) != len(want) {
		t.Fatalf("actions = %v, want %v (items %+v)", g, want, got)
	}
	for i := range g {
		if g[i] != want[i] {
			t.Fatalf("actions = %v, want %v", g, want)
		}
	}
}

func TestNewEnabledUserIsCreatedAndWantsASeat(t *testing.T) {
	d := dirUser("u1")
	dec := DecideUser(DefaultSettings(), UserFacts{EntraID: d.ID, Dir: &d})
	sameActions(t, dec.Items, CreateUser)
	if dec.Seat != SeatCandidate || !dec.InScope {
		t.Fatalf("decision = %+v", dec)
	}
	if got := dec.Items[0].After["license"]; got != LicenseNone {
		t.Fatalf("created with license %v; the seat pass assigns it", got)
	}
}

func TestUserWithoutMailIsKnownByUPN(t *testing.T) {
	d := dirUser("u1")
	d.Mail = ""
	dec := DecideUser(DefaultSettings(), UserFacts{EntraID: d.ID, Dir: &d})
	if got := dec.Items[0].After["email"]; got != d.UserPrincipalName {
		t.Fatalf("email = %v, want the UPN", got)
	}
}

func TestDisabledAccountIsKeptWithoutSeatByDefault(t *testing.T) {
	d := dirUser("u1")
	d.AccountEnabled = false
	dec := DecideUser(DefaultSettings(), UserFacts{EntraID: d.ID, Dir: &d})
	sameActions(t, dec.Items, CreateUser)
	if dec.Seat != SeatNone || dec.Items[0].After["license"] != LicenseDisabled {
		t.Fatalf("decision = %+v", dec)
	}
}

func TestAccountDisabledInEntraGivesItsSeatBack(t *testing.T) {
	d := dirUser("u1")
	a := appUserOf(d, LicenseAssigned)
	d.AccountEnabled = false
	dec := DecideUser(DefaultSettings(), UserFacts{EntraID: d.ID, Dir: &d, App: &a})
	sameActions(t, dec.Items, RevokeLicense, DisableUser)
	if dec.Items[0].Reason != "account disabled in Entra ID; seat freed" || dec.Seat != SeatNone {
		t.Fatalf("decision = %+v", dec)
	}
}

func TestUserDeletedInEntraIsRemovedWithSeatAndRoles(t *testing.T) {
	d := dirUser("u1")
	a := appUserOf(d, LicenseAssigned)
	a.Roles = []string{RoleAdministrator, RoleLicenseManager}
	dec := DecideUser(DefaultSettings(), UserFacts{EntraID: d.ID, App: &a})
	sameActions(t, dec.Items, RevokeRole, RevokeRole, RevokeLicense, RemoveUser)
	if dec.InScope || dec.Items[3].Reason != "deleted in Entra ID" {
		t.Fatalf("decision = %+v", dec)
	}
}

func TestRemovalUnderAUserFilterSaysSo(t *testing.T) {
	s := DefaultSettings()
	s.Scope.UserFilter = "department eq 'Sales'"
	a := appUserOf(dirUser("u1"), LicenseNone)
	dec := DecideUser(s, UserFacts{EntraID: a.EntraID, App: &a})
	if r := dec.Items[len(dec.Items)-1].Reason; !strings.Contains(r, "scope.userFilter") {
		t.Fatalf("reason = %q", r)
	}
}

func TestAdminDisabledLicenseStaysDisabledWhenAccountIsEnabled(t *testing.T) {
	d := dirUser("u1")
	a := appUserOf(d, LicenseDisabled)
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	a.LicenseDisabledAt = &at
	dec := DecideUser(DefaultSettings(), UserFacts{EntraID: d.ID, Dir: &d, App: &a})
	if len(dec.Items) != 0 || dec.Seat != SeatNone {
		t.Fatalf("a sync touched an admin-disabled license: %+v", dec)
	}
	// Disabled and enabled again in Entra ID: the account comes back, the
	// license stays disabled, and the plan says why.
	a.Enabled = false
	dec = DecideUser(DefaultSettings(), UserFacts{EntraID: d.ID, Dir: &d, App: &a})
	sameActions(t, dec.Items, EnableUser)
	if dec.Items[0].After["license"] != LicenseDisabled || dec.Seat != SeatNone ||
		!strings.Contains(dec.Items[0].Reason, "license disabled by an admin on 2026-11-30; kept") {
		t.Fatalf("decision = %+v", dec)
	}
}

func TestAccountEnabledAgainWantsASeat(t *testing.T) {
	d := dirUser("u1")
	a := appUserOf(d, LicenseDisabled)
	a.Enabled = false
	dec := DecideUser(DefaultSettings(), UserFacts{EntraID: d.ID, Dir: &d, App: &a})
	sameActions(t, dec.Items, EnableUser)
	if dec.Seat != SeatCandidate || dec.Items[0].After["license"] != LicenseNone {
		t.Fatalf("decision = %+v", dec)
	}
}

func TestLocalEditKeptUnderKeep(t *testing.T) {
	d := dirUser("u1")
	a := appUserOf(d, LicenseAssigned)
	at := time.Now()
	a.DisplayName, a.DisplayNameEditedAt = "Ada (Finance)", &at
	d.Department = "Finance"
	dec := DecideUser(DefaultSettings(), UserFacts{EntraID: d.ID, Dir: &d, App: &a})
	sameActions(t, dec.Items, UpdateUser)
	if _, touched := dec.Items[0].After["displayName"]; touched || dec.Items[0].After["department"] != "Finance" {
		t.Fatalf("update = %+v", dec.Items[0])
	}
}

func TestLocalEditOverwrittenUnderOverwrite(t *testing.T) {
	s := DefaultSettings()
	s.LocalEdits = EditsOverwrite
	d := dirUser("u1")
	a := appUserOf(d, LicenseAssigned)
	at := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	a.DisplayName, a.DisplayNameEditedAt = "Ada (Finance)", &at
	dec := DecideUser(s, UserFacts{EntraID: d.ID, Dir: &d, App: &a})
	sameActions(t, dec.Items, UpdateUser)
	it := dec.Items[0]
	if it.After["displayName"] != d.DisplayName || it.After["edited"] != false ||
		!strings.Contains(it.Reason, "display name edited in the app on 2026-11-02 is overwritten by Entra ID") {
		t.Fatalf("update = %+v", it)
	}
}

func TestUnchangedUserHasNoItems(t *testing.T) {
	d := dirUser("u1")
	a := appUserOf(d, LicenseAssigned)
	dec := DecideUser(DefaultSettings(), UserFacts{EntraID: d.ID, Dir: &d, App: &a})
	if len(dec.Items) != 0 || dec.Seat != SeatHolder {
		t.Fatalf("decision = %+v", dec)
	}
}

func TestScopeRules(t *testing.T) {
	guest := dirUser("g1")
	guest.UserType = "Guest"
	disabled := dirUser("d1")
	disabled.AccountEnabled = false
	noMail := dirUser("n1")
	noMail.Mail = ""
	plain := dirUser("p1")
	for _, tc := range []struct {
		name     string
		scope    func(*Scope)
		user     DirUser
		inGroups bool
		in       bool
		why      string
	}{
		{"guests are out by default", nil, guest, false, false, "guest account"},
		{"guests are in with includeGuests", func(s *Scope) { s.IncludeGuests = true }, guest, false, true, ""},
		{"disabled accounts are in by default", nil, disabled, false, true, ""},
		{"disabled accounts are out without includeDisabled", func(s *Scope) { s.IncludeDisabled = false }, disabled, false, false, "account disabled"},
		{"no mailbox falls back to UPN by default", nil, noMail, false, true, ""},
		{"no mailbox is out with requireMailbox", func(s *Scope) { s.RequireMailbox = true }, noMail, false, false, "no mailbox"},
		{"scope groups keep members", func(s *Scope) { s.Groups = []string{"x"} }, plain, true, true, ""},
		{"scope groups drop the others", func(s *Scope) { s.Groups = []string{"x"} }, plain, false, false, "not a member of any selected group"},
		{"email include matches case-insensitively", func(s *Scope) { s.EmailInclude = []string{"@CONTOSO.com"} }, plain, false, true, ""},
		{"email include misses", func(s *Scope) { s.EmailInclude = []string{"@fabrikam.com"} }, plain, false, false, "matches none of scope.emailInclude"},
		{"email exclude matches", func(s *Scope) { s.EmailExclude = []string{"P1@"} }, plain, false, false, "scope.emailExclude"},
		{"email rules read the UPN without mail", func(s *Scope) { s.EmailInclude = []string{"onmicrosoft"} }, noMail, false, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := DefaultSettings()
			if tc.scope != nil {
				tc.scope(&s.Scope)
			}
			in, why := InScope(s.Scope, tc.user, tc.inGroups)
			if in != tc.in || !strings.Contains(why, tc.why) {
				t.Fatalf("InScope = %v %q, want %v %q", in, why, tc.in, tc.why)
			}
		})
	}
}

func TestUserOutsideSelectedGroupsIsRemoved(t *testing.T) {
	s := DefaultSettings()
	s.Scope.Groups = []string{"00000000-0000-0000-0000-000000000001"}
	d := dirUser("u1")
	a := appUserOf(d, LicenseAssigned)
	dec := DecideUser(s, UserFacts{EntraID: d.ID, Dir: &d, App: &a})
	sameActions(t, dec.Items, RevokeLicense, RemoveUser)
	if dec.Items[1].Reason != "not a member of any selected group" {
		t.Fatalf("reason = %q", dec.Items[1].Reason)
	}
}

func TestBasicTierSyncsNoUsers(t *testing.T) {
	s := DefaultSettings()
	s.Plan = TierBasic
	d := dirUser("u1")
	if dec := DecideUser(s, UserFacts{EntraID: d.ID, Dir: &d}); len(dec.Items) != 0 || dec.InScope {
		t.Fatalf("basic tenant created a user: %+v", dec)
	}
	a := appUserOf(d, LicenseAssigned)
	if dec := DecideUser(s, UserFacts{EntraID: d.ID, App: &a}); len(dec.Items) != 0 {
		t.Fatalf("basic tenant removed a user: %+v", dec)
	}
}

// TestSteadySeatIsDecideUsersSeat: for an app user in any state whose
// Entra ID account agrees with it (nothing changed since the plan the app
// follows), DecideUser changes nothing and gives the seat role
// SteadySeat says, under either local-edit policy and with admin edits.
func TestSteadySeatIsDecideUsersSeat(t *testing.T) {
	disabledAt := time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)
	for _, policy := range []LocalEdits{EditsKeep, EditsOverwrite} {
		for _, enabled := range []bool{true, false} {
			for _, license := range []string{LicenseAssigned, LicenseNone, LicenseDisabled} {
				for _, sticky := range []bool{false, true} {
					d := dirUser("u1")
					d.AccountEnabled = enabled
					a := appUserOf(d, license)
					if sticky {
						a.LicenseDisabledAt = &disabledAt
					}
					s := Settings{Plan: TierBusiness, LocalEdits: policy, Scope: Scope{IncludeDisabled: true}}
					dec := DecideUser(s, UserFacts{EntraID: d.ID, Dir: &d, App: &a})
					name := fmt.Sprintf("%s enabled=%v license=%s sticky=%v", policy, enabled, license, sticky)
					if len(dec.Items) != 0 || !dec.InScope {
						t.Fatalf("%s: DecideUser = %+v, want no items and in scope", name, dec)
					}
					if got := SteadySeat(enabled, license, sticky); got != dec.Seat {
						t.Errorf("%s: SteadySeat = %v, DecideUser's seat = %v", name, got, dec.Seat)
					}
				}
			}
		}
	}
}
