package plan

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSeatsFreedByLeaversGoToJoinersInTheSameRun(t *testing.T) {
	// Two seats: one holder left (the user rules revoked it, so only one
	// holder remains); two joiners want seats. The freed seat goes to the
	// first joiner in Entra id order.
	s := NewSeats(2)
	if _, revoked := s.Holder(SeatUser{EntraID: "h1"}); revoked {
		t.Fatal("the remaining holder lost its seat")
	}
	it, ok := s.Candidate(SeatUser{EntraID: "j1"})
	if !ok || it.Action != AssignLicense || it.Reason != "account enabled in Entra ID and a seat was free (2 of 2 used)" {
		t.Fatalf("first joiner: %+v %v", it, ok)
	}
	if _, ok := s.Candidate(SeatUser{EntraID: "j2"}); ok || s.Unlicensed != 1 {
		t.Fatalf("second joiner got a seat from a full pool (unlicensed %d)", s.Unlicensed)
	}
}

func TestHoldersKeepSeatsAndNewestGrantsGoBackWhenThePoolShrinks(t *testing.T) {
	s := NewSeats(1)
	if _, revoked := s.Holder(SeatUser{EntraID: "oldest"}); revoked {
		t.Fatal("the oldest grant went back")
	}
	it, revoked := s.Holder(SeatUser{EntraID: "newer"})
	if !revoked || it.Action != RevokeLicense || !strings.Contains(it.Reason, "shrank to 1") {
		t.Fatalf("newer grant: %+v %v", it, revoked)
	}
	if _, ok := s.Candidate(SeatUser{EntraID: "a"}); ok {
		t.Fatal("a candidate took a seat from holders")
	}
}

// A plan that counts the holders and candidates it did not decide
// (KeepHolders, Free, Waiting) and names only those whose seat changes
// hands out the seats as one that feeds every user.
func TestCountingSeatsHandsOutWhatNamingEveryUserDoes(t *testing.T) {
	user := func(kind string, i int) SeatUser { return SeatUser{EntraID: fmt.Sprint(kind, i)} }
	for pool := range 5 {
		for holders := range 5 {
			for candidates := range 5 {
				var named, counted []Item
				one := NewSeats(pool)
				for i := range holders {
					if it, ok := one.Holder(user("h", i)); ok {
						named = append(named, it)
					}
				}
				for i := range candidates {
					if it, ok := one.Candidate(user("c", i)); ok {
						named = append(named, it)
					}
				}
				bulk := NewSeats(pool)
				for i := int(bulk.KeepHolders(int64(holders))); i < holders; i++ {
					if it, ok := bulk.Holder(user("h", i)); ok {
						counted = append(counted, it)
					}
				}
				seated := min(bulk.Free(), int64(candidates))
				for i := range int(seated) {
					if it, ok := bulk.Candidate(user("c", i)); ok {
						counted = append(counted, it)
					}
				}
				bulk.Waiting(int64(candidates) - seated)
				what := fmt.Sprintf("pool %d, %d holders, %d candidates", pool, holders, candidates)
				if !reflect.DeepEqual(named, counted) {
					t.Errorf("%s: counting planned %v, naming %v", what, counted, named)
				}
				if bulk.Used() != one.Used() || bulk.Unlicensed != one.Unlicensed {
					t.Errorf("%s: counting used %d, unlicensed %d; naming %d, %d", what, bulk.Used(),
						bulk.Unlicensed, one.Used(), one.Unlicensed)
				}
			}
		}
	}
}

func TestCanAssignNeedsAnEnabledAccountAndAFreeSeat(t *testing.T) {
	if err := CanAssign(true, 99, 100); err != nil {
		t.Fatal(err)
	}
	if err := CanAssign(true, 100, 100); err == nil || err.Error() != "no free seat (100 of 100 used)" {
		t.Fatalf("full pool: %v", err)
	}
	if err := CanAssign(false, 0, 100); err == nil {
		t.Fatal("a disabled account got a seat")
	}
}

func TestMembershipFollowsEntraForUsersAndGroupsTheAppKeeps(t *testing.T) {
	base := MembershipFacts{GroupID: "g", GroupName: "Sales", UserID: "u", UserStays: true, GroupStays: true}
	for _, tc := range []struct {
		name   string
		change func(*MembershipFacts)
		want   Action
		reason string
	}{
		{"new member is added", func(f *MembershipFacts) { f.InEntra = true }, AddMembership, "member of \u201cSales\u201d in Entra ID"},
		{"existing member stays", func(f *MembershipFacts) { f.InEntra, f.InApp = true, true }, "", ""},
		{"leaver is removed", func(f *MembershipFacts) { f.InApp = true }, RemoveMembership, "no longer a member"},
		{"removed user loses memberships", func(f *MembershipFacts) { f.InEntra, f.InApp, f.UserStays = true, true, false }, RemoveMembership, "user leaves the app"},
		{"removed group loses memberships", func(f *MembershipFacts) { f.InEntra, f.InApp, f.GroupStays = true, true, false }, RemoveMembership, "group \u201cSales\u201d leaves the app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base
			tc.change(&f)
			it, ok := DecideMembership(f)
			if ok != (tc.want != "") || it.Action != tc.want || !strings.Contains(it.Reason, tc.reason) {
				t.Fatalf("DecideMembership = %+v %v", it, ok)
			}
		})
	}
}

func TestGroupKindFollowsMicrosoftsGroupTypes(t *testing.T) {
	for _, tc := range []struct {
		g    DirGroup
		kind string
	}{
		{DirGroup{GroupTypes: []string{"Unified"}, MailEnabled: true}, KindMicrosoft365},
		{DirGroup{SecurityEnabled: true}, KindSecurity},
		{DirGroup{SecurityEnabled: true, MailEnabled: true}, KindMailEnabledSecurity},
		{DirGroup{MailEnabled: true}, KindDistribution},
	} {
		if k := tc.g.Kind(); k != tc.kind {
			t.Errorf("%+v: kind %s, want %s", tc.g, k, tc.kind)
		}
	}
}

func TestGroupsFollowEntra(t *testing.T) {
	k := DefaultGroupKinds()
	d := DirGroup{ID: "g", DisplayName: "Sales", SecurityEnabled: true}
	if dec := DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d}); !dec.Changed || dec.Item.Action != CreateGroup ||
		dec.Status != StatusEnabled || dec.Frozen || !dec.Grants {
		t.Fatalf("new group: %+v", dec)
	}
	a := AppGroup{EntraID: "g", DisplayName: "Sales", Kind: KindSecurity, Status: StatusEnabled}
	if dec := DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d, App: &a}); dec.Changed || dec.Status != StatusEnabled {
		t.Fatalf("unchanged group: %+v", dec)
	}
	d.DisplayName = "Sales EMEA"
	if dec := DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d, App: &a}); !dec.Changed || dec.Item.Action != UpdateGroup ||
		dec.Item.After["displayName"] != "Sales EMEA" {
		t.Fatalf("renamed group: %+v", dec)
	}
}

// TestOnlyAGroupsStatusChangesItsMemberships: a plan recomputes a
// group's memberships and grants when it creates the group, or changes
// its status; not when it renames it or changes its details.
func TestOnlyAGroupsStatusChangesItsMemberships(t *testing.T) {
	k := DefaultGroupKinds()
	k.Distribution = false
	d := DirGroup{ID: "g", DisplayName: "Sales", SecurityEnabled: true}
	enabled := AppGroup{EntraID: "g", DisplayName: "Sales", Kind: KindSecurity, Status: StatusEnabled}
	renamed := d
	renamed.DisplayName, renamed.Description = "Sales EMEA", "Sales in Europe"
	switchedOff, disabled := enabled, enabled
	switchedOff.SwitchedOff = true
	disabled.Status = StatusDisabled
	for _, tc := range []struct {
		name   string
		f      GroupFacts
		change bool
	}{
		{"new", GroupFacts{EntraID: "g", Dir: &d}, true},
		{"unchanged", GroupFacts{EntraID: "g", Dir: &d, App: &enabled}, false},
		{"renamed, new description", GroupFacts{EntraID: "g", Dir: &renamed, App: &enabled}, false},
		{"switched off", GroupFacts{EntraID: "g", Dir: &d, App: &switchedOff}, true},
		{"enabled again", GroupFacts{EntraID: "g", Dir: &renamed, App: &disabled}, true},
		{"deleted in Entra ID", GroupFacts{EntraID: "g", App: &enabled}, true},
		{"not synced", GroupFacts{EntraID: "g", Dir: &DirGroup{ID: "g", DisplayName: "List", MailEnabled: true}}, false},
	} {
		dec := DecideGroup(k, tc.f)
		if got := MembershipsChange(tc.f, dec); got != tc.change {
			t.Errorf("%s: MembershipsChange = %v, want %v (decision %+v)", tc.name, got, tc.change, dec)
		}
	}
}

func TestGroupDetailsFollowEntraWhileEnabledAndStayWhileDisabled(t *testing.T) {
	k := DefaultGroupKinds()
	renewed := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	d := DirGroup{ID: "g", DisplayName: "Sales", SecurityEnabled: true, GroupTypes: []string{"DynamicMembership"},
		GroupDetails: GroupDetails{Mail: "sales@contoso.com", Description: "Sales team",
			MembershipRule: `user.department -eq "Sales"`, UpdatedAt: &renewed}}
	dec := DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d})
	if after := dec.Item.After; after["mail"] != "sales@contoso.com" || after["description"] != "Sales team" ||
		after["membershipRule"] != `user.department -eq "Sales"` || after["entraUpdatedAt"] != "2026-03-01T08:00:00Z" ||
		after["dynamic"] != true {
		t.Fatalf("new group's details: %+v", after)
	}
	a := AppGroup{EntraID: "g", DisplayName: "Sales", Kind: KindSecurity, Dynamic: true, Status: StatusEnabled,
		GroupDetails: d.GroupDetails}
	same := renewed.In(time.FixedZone("CET", 3600)) // the same instant, read back in another zone
	a.UpdatedAt = &same
	if dec := DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d, App: &a}); dec.Changed {
		t.Fatalf("unchanged details changed the group: %+v", dec.Item)
	}
	later := renewed.Add(24 * time.Hour)
	d.Description, d.UpdatedAt, d.Mail = "Sales, EMEA", &later, ""
	dec = DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d, App: &a})
	if !dec.Changed || dec.Item.Action != UpdateGroup || len(dec.Item.After) != 3 ||
		dec.Item.Before["description"] != "Sales team" || dec.Item.After["description"] != "Sales, EMEA" ||
		dec.Item.After["mail"] != "" || dec.Item.After["entraUpdatedAt"] != "2026-03-02T08:00:00Z" {
		t.Fatalf("changed details: before %+v after %+v", dec.Item.Before, dec.Item.After)
	}
	d.UpdatedAt = nil
	if dec := DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d, App: &a}); dec.Item.After["entraUpdatedAt"] != nil ||
		!dec.Changed {
		t.Fatalf("a renewal time Graph no longer gives: %+v", dec.Item)
	}
	a.SwitchedOff, a.Status = true, StatusDisabled
	if dec := DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d, App: &a}); dec.Changed {
		t.Fatalf("a disabled group's details were updated: %+v", dec.Item)
	}
}

func TestGroupDeletedInEntraBecomesOrphanedAndGrantsNothing(t *testing.T) {
	a := AppGroup{EntraID: "g", DisplayName: "Sales", Kind: KindSecurity, Status: StatusDisabled}
	dec := DecideGroup(DefaultGroupKinds(), GroupFacts{EntraID: "g", App: &a})
	if !dec.Changed || dec.Item.Action != UpdateGroup || dec.Item.After["status"] != StatusOrphaned ||
		dec.Item.Before["status"] != StatusDisabled || dec.Status != StatusOrphaned || !dec.Frozen || dec.Grants ||
		!strings.Contains(dec.Item.Reason, "deleted in Entra ID") {
		t.Fatalf("deleted group: %+v", dec)
	}
	// Orphaned stays orphaned, even should Entra ID list the id again.
	a.Status = StatusOrphaned
	d := DirGroup{ID: "g", DisplayName: "Sales", SecurityEnabled: true}
	for _, dir := range []*DirGroup{nil, &d} {
		if dec := DecideGroup(DefaultGroupKinds(), GroupFacts{EntraID: "g", Dir: dir, App: &a}); dec.Changed ||
			dec.Status != StatusOrphaned || dec.Grants || !dec.Frozen {
			t.Fatalf("orphaned group (dir %v): %+v", dir != nil, dec)
		}
	}
}

func TestKindSwitchedOffDisablesGroupsAndOnEnablesThem(t *testing.T) {
	k := DefaultGroupKinds()
	k.Security = false
	d := DirGroup{ID: "g", DisplayName: "Sales EMEA", SecurityEnabled: true, MailEnabled: true} // mail-enabled security
	a := AppGroup{EntraID: "g", DisplayName: "Sales", Kind: KindMailEnabledSecurity, Status: StatusEnabled}
	dec := DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d, App: &a})
	if !dec.Changed || dec.Item.After["status"] != StatusDisabled || len(dec.Item.After) != 1 ||
		dec.Status != StatusDisabled || !dec.Frozen || !dec.Grants || !strings.Contains(dec.Item.Reason, "groups.security is false") {
		t.Fatalf("kind off: %+v", dec)
	}
	a.Status = StatusDisabled
	if dec := DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d, App: &a}); dec.Changed || dec.Status != StatusDisabled {
		t.Fatalf("disabled group was updated (the rename must wait): %+v", dec)
	}
	if dec := DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d}); dec.Changed || dec.Status != "" {
		t.Fatalf("a group of a kind switched off was imported: %+v", dec)
	}
	k.Include = []string{"g"}
	if dec := DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d}); dec.Item.Action != CreateGroup {
		t.Fatalf("an included group was not imported: %+v", dec)
	}
	k = DefaultGroupKinds()
	dec = DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d, App: &a})
	if dec.Item.Action != UpdateGroup || dec.Item.After["status"] != StatusEnabled || dec.Item.After["displayName"] != "Sales EMEA" ||
		dec.Status != StatusEnabled || dec.Frozen {
		t.Fatalf("kind on again: %+v", dec)
	}
}

func TestGroupSwitchedOffHereIsDisabledEvenWhenIncluded(t *testing.T) {
	k := DefaultGroupKinds()
	k.Include = []string{"g"}
	d := DirGroup{ID: "g", DisplayName: "Sales"}
	a := AppGroup{EntraID: "g", DisplayName: "Sales", Kind: KindDistribution, Status: StatusEnabled, SwitchedOff: true}
	dec := DecideGroup(k, GroupFacts{EntraID: "g", Dir: &d, App: &a})
	if dec.Item.After["status"] != StatusDisabled || dec.Item.Reason != "switched off here; kept as last synced" {
		t.Fatalf("switched off: %+v", dec)
	}
}

func TestGroupDeletedHereIsNotImportedAgainUnlessIncluded(t *testing.T) {
	k := DefaultGroupKinds()
	d := DirGroup{ID: "00000002-0000-4000-8000-000000000001", DisplayName: "Sales", SecurityEnabled: true}
	if dec := DecideGroup(k, GroupFacts{EntraID: d.ID, Dir: &d, Excluded: true}); dec.Changed || dec.Status != "" {
		t.Fatalf("a group deleted here came back: %+v", dec)
	}
	k.Include = []string{d.ID}
	if dec := DecideGroup(k, GroupFacts{EntraID: d.ID, Dir: &d, Excluded: true}); dec.Item.Action != CreateGroup {
		t.Fatalf("an included group deleted here was not imported: %+v", dec)
	}
}

func TestLocalGroupsAreNeverTouchedBySync(t *testing.T) {
	a := AppGroup{EntraID: "l", DisplayName: "Auditors", Kind: KindLocal, Status: StatusEnabled}
	dec := DecideGroup(GroupKinds{}, GroupFacts{EntraID: "l", App: &a})
	if dec.Changed || dec.Status != StatusEnabled || !dec.Frozen || !dec.Grants {
		t.Fatalf("local group: %+v", dec)
	}
}

func TestCanEnableSaysWhyNot(t *testing.T) {
	k := DefaultGroupKinds()
	k.Microsoft365 = false
	g := AppGroup{EntraID: "g", Kind: KindMicrosoft365, Status: StatusDisabled, SwitchedOff: true}
	if err := CanEnable(k, g); err == nil || !strings.Contains(err.Error(), "groups.microsoft365 is false") {
		t.Fatalf("kind off: %v", err)
	}
	k.Include = []string{"g"}
	if err := CanEnable(k, g); err != nil {
		t.Fatalf("included: %v", err)
	}
	g.Status = StatusOrphaned
	if err := CanEnable(k, g); err == nil {
		t.Fatal("an orphaned group was enabled")
	}
}

func TestGroupsSettingValidates(t *testing.T) {
	s := DefaultSettings()
	s.Groups.Include = []string{"8F3C0B7E-5D4A-4F0E-9A61-2B7D4C1E9F00", "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00"}
	s.Normalize()
	if err := s.Validate(); err != nil || len(s.Groups.Include) != 1 {
		t.Fatalf("include = %v, %v", s.Groups.Include, err)
	}
	s.Groups.Include = []string{"nope"}
	var fe *FieldError
	if err := s.Validate(); !errors.As(err, &fe) || fe.Field != "groups.include" {
		t.Fatalf("bad include: %v", err)
	}
}

func TestOrphanedGroupsGrantsAreRevokedWithAReason(t *testing.T) {
	it, ok := DecideGrant(GrantFacts{UserID: "u", Kind: KindRole, Name: "Editor", Held: true, UserStays: true,
		HeldGroup: GroupRef{ID: "g", Name: "Sales"}, HeldGroupBinds: true, HeldGroupOrphaned: true})
	if !ok || it.Action != RevokeRole || !strings.Contains(it.Reason, "\u201cSales\u201d is orphaned") {
		t.Fatalf("orphaned: %+v", it)
	}
}

func TestGuardHoldsMassRemoval(t *testing.T) {
	s := DefaultSettings()
	facts := GuardFacts{AppUsers: 100, Licenses: 90, UsersRead: true, UsersListed: 30}
	v := Judge(s, Summary{RemoveUser: 70, RevokeLicense: 60}, facts)
	if !v.Hold || v.Reason != HeldDeletionGuard || !strings.Contains(v.Message, "remove or disable 70 of 100 users (threshold 10)") {
		t.Fatalf("verdict = %+v", v)
	}
	if v := Judge(s, Summary{RemoveUser: 10}, facts); v.Hold {
		t.Fatalf("10 of 100 held: %+v", v)
	}
}

func TestGuardCountsDisabledAccountsWithRemovals(t *testing.T) {
	v := Judge(DefaultSettings(), Summary{RemoveUser: 3, DisableUser: 3}, GuardFacts{AppUsers: 40, UsersRead: true, UsersListed: 40})
	if !v.Hold {
		t.Fatalf("6 of 40 (threshold 5) not held: %+v", v)
	}
}

func TestGuardMinimumSparesSmallTenants(t *testing.T) {
	v := Judge(DefaultSettings(), Summary{RemoveUser: 5}, GuardFacts{AppUsers: 8, UsersRead: true, UsersListed: 3})
	if v.Hold {
		t.Fatalf("5 of 8 held despite the minimum of 5: %+v", v)
	}
}

func TestGuardHoldsLicenseAndRoleRevocations(t *testing.T) {
	s := DefaultSettings()
	s.DeletionGuard = DeletionGuard{Percent: 10, Minimum: 0}
	f := GuardFacts{AppUsers: 1000, Licenses: 100, RoleGrants: 10, UsersRead: true, UsersListed: 1000}
	if v := Judge(s, Summary{RevokeLicense: 11}, f); !v.Hold || !strings.Contains(v.Message, "revoke 11 of 100 licenses") {
		t.Fatalf("license revocations: %+v", v)
	}
	if v := Judge(s, Summary{RevokeRole: 2}, f); !v.Hold || !strings.Contains(v.Message, "role grants") {
		t.Fatalf("role revocations: %+v", v)
	}
}

func TestGuardAlwaysHoldsAnEmptyUsersListing(t *testing.T) {
	s := DefaultSettings()
	s.DeletionGuard.Percent = 100
	v := Judge(s, Summary{RemoveUser: 3}, GuardFacts{AppUsers: 3, UsersRead: true, UsersListed: 0})
	if !v.Hold || v.Reason != HeldDeletionGuard || !strings.Contains(v.Message, "listed no users") {
		t.Fatalf("verdict = %+v", v)
	}
	if v := Judge(s, Summary{}, GuardFacts{AppUsers: 0, UsersRead: true}); v.Hold {
		t.Fatalf("an empty directory into an empty app was held: %+v", v)
	}
}

func TestReviewModeHoldsEveryNonEmptyPlan(t *testing.T) {
	s := DefaultSettings()
	s.ApplyMode = ApplyReview
	f := GuardFacts{AppUsers: 10, UsersRead: true, UsersListed: 10}
	if v := Judge(s, Summary{UpdateUser: 1}, f); !v.Hold || v.Reason != HeldReview {
		t.Fatalf("verdict = %+v", v)
	}
	if v := Judge(s, Summary{}, f); v.Hold {
		t.Fatalf("an empty plan was held for review: %+v", v)
	}
}

func TestSeatShortageNotifiesOncePerEpisode(t *testing.T) {
	n, short := SeatShortage(false, 3, 100, "Contoso")
	if n == nil || !short || n.Kind != NoticeSeatsExhausted {
		t.Fatalf("first shortage: %+v %v", n, short)
	}
	if n, short = SeatShortage(true, 5, 100, "Contoso"); n != nil || !short {
		t.Fatalf("same shortage again: %+v %v", n, short)
	}
	if n, short = SeatShortage(true, 0, 100, "Contoso"); n != nil || short {
		t.Fatalf("shortage over: %+v %v", n, short)
	}
	if n, _ = SeatShortage(short, 1, 100, "Contoso"); n == nil {
		t.Fatal("a new shortage was not told")
	}
}

func TestSettingsValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		set   func(*Settings)
		field string
	}{
		{"defaults are valid", func(*Settings) {}, ""},
		{"negative seats", func(s *Settings) { s.Seats = -1 }, "seats"},
		{"unknown tier", func(s *Settings) { s.Plan = "gold" }, "plan"},
		{"unknown local edits", func(s *Settings) { s.LocalEdits = "merge" }, "localEdits"},
		{"unknown apply mode", func(s *Settings) { s.ApplyMode = "manual" }, "applyMode"},
		{"percent over 100", func(s *Settings) { s.DeletionGuard.Percent = 101 }, "deletionGuard.percent"},
		{"negative minimum", func(s *Settings) { s.DeletionGuard.Minimum = -1 }, "deletionGuard.minimum"},
		{"group id not a GUID", func(s *Settings) { s.Scope.Groups = []string{"sales"} }, "scope.groups"},
		{"malformed filter", func(s *Settings) { s.Scope.UserFilter = "department eq 'Sales" }, "scope.userFilter"},
		{"blank email pattern", func(s *Settings) { s.Scope.EmailExclude = []string{" "} }, "scope.emailExclude"},
		{"basic with scope groups", func(s *Settings) {
			s.Plan = TierBasic
			s.Scope.Groups = []string{"00000000-0000-0000-0000-000000000001"}
		}, "scope.groups"},
		{"basic with a user filter", func(s *Settings) { s.Plan, s.Scope.UserFilter = TierBasic, "accountEnabled eq true" }, "scope.userFilter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := DefaultSettings()
			tc.set(&s)
			s.Normalize()
			err := s.Validate()
			var fe *FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("valid settings refused: %v", err)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Fatalf("error = %v, want one naming %s", err, tc.field)
			}
			if tc.field == "scope.groups" && s.Plan == TierBasic && !strings.Contains(err.Error(), "Business or Premium") {
				t.Fatalf("basic refusal does not say why: %v", err)
			}
		})
	}
}
