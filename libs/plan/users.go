package plan

import (
	"fmt"
	"strings"
	"time"
)

// License states of an app user.
const (
	LicenseAssigned = "assigned" // holds one of the tenant's seats
	LicenseNone     = "none"     // enabled, without a seat
	LicenseDisabled = "disabled" // cannot hold one: account disabled, or license disabled by an admin
)

// DirUser is a user as Entra ID last showed it (the mirror).
type DirUser struct {
	ID                string
	DisplayName       string
	Mail              string
	UserPrincipalName string
	GivenName         string
	Surname           string
	JobTitle          string
	Department        string
	UserType          string // "Member" or "Guest"
	AccountEnabled    bool
}

// Email is the address the app knows the user by: mail, else the user
// principal name.
func (u DirUser) Email() string {
	if u.Mail != "" {
		return u.Mail
	}
	return u.UserPrincipalName
}

// AppUser is a user of the application as it stands before the plan.
type AppUser struct {
	EntraID     string
	Email       string
	DisplayName string
	GivenName   string
	Surname     string
	JobTitle    string
	Department  string
	Enabled     bool
	License     string
	// LicenseDisabledAt is when an admin disabled the user's license; no
	// sync enables it again.
	LicenseDisabledAt *time.Time
	// DisplayNameEditedAt and EmailEditedAt are when an admin edited them
	// through the API.
	DisplayNameEditedAt *time.Time
	EmailEditedAt       *time.Time
	// Roles are the roles the user holds, sorted.
	Roles []string
}

// UserFacts is everything the user rules look at for one Entra id.
type UserFacts struct {
	EntraID string
	// Dir is nil when Entra ID no longer has the user (deleted, or not
	// returned for the tenant's user filter).
	Dir *DirUser
	// App is nil when the app does not have the user.
	App *AppUser
	// InScopeGroups says the user is a member, directly or through any
	// depth of nesting, of a group in Scope.Groups.
	InScopeGroups bool
}

// SeatRole is how a user takes part in the seat hand-out after the user
// rules: holding a seat the plan keeps, wanting one, or neither.
type SeatRole int

// Seat roles.
const (
	SeatNone SeatRole = iota
	// SeatHolder: in the app, enabled, holding a seat; keeps it while the
	// pool has room (see Seats).
	SeatHolder
	// SeatCandidate: in the app after the plan, enabled, no seat, and no
	// admin disabled the license: gets one if one is free.
	SeatCandidate
)

// UserDecision is what the user rules decided for one user.
type UserDecision struct {
	Items []Item
	Seat  SeatRole
	// InScope says the user is in the app after the plan.
	InScope bool
}

// InScope applies the tenant's scope to a user Entra ID has. It returns
// whether the user belongs in the app and, when not, why.
func InScope(sc Scope, u DirUser, inScopeGroups bool) (bool, string) {
	email := strings.ToLower(u.Email())
	switch {
	case u.UserType == "Guest" && !sc.IncludeGuests:
		return false, "guest account; guests are not synced (scope.includeGuests is off)"
	case !u.AccountEnabled && !sc.IncludeDisabled:
		return false, "account disabled in Entra ID; disabled accounts are not synced (scope.includeDisabled is off)"
	case sc.RequireMailbox && u.Mail == "":
		return false, "no mailbox in Entra ID; scope.requireMailbox is on"
	case len(sc.Groups) > 0 && !inScopeGroups:
		return false, "not a member of any selected group"
	}
	if len(sc.EmailInclude) > 0 {
		matched := false
		for _, p := range sc.EmailInclude {
			if strings.Contains(email, strings.ToLower(p)) {
				matched = true
				break
			}
		}
		if !matched {
			return false, fmt.Sprintf("email %s matches none of scope.emailInclude", u.Email())
		}
	}
	for _, p := range sc.EmailExclude {
		if strings.Contains(email, strings.ToLower(p)) {
			return false, fmt.Sprintf("email %s matches %q of scope.emailExclude", u.Email(), p)
		}
	}
	return true, ""
}

// goneReason says why a user Entra ID no longer shows leaves the app.
func goneReason(sc Scope) string {
	if sc.UserFilter != "" {
		return "no longer in Entra ID for the user filter (deleted, or no longer matching scope.userFilter)"
	}
	return "deleted in Entra ID"
}

// DecideUser applies the user rules to one user: scope, profile with the
// local-edit policy, account state, and the license rules that do not
// depend on the seat count (a disabled or removed account gives its seat
// back; a license an admin disabled stays disabled). Seats themselves are
// handed out afterwards, by Seats, from the returned SeatRole.
//
// A Basic tenant syncs no users: nothing changes for any user.
func DecideUser(s Settings, f UserFacts) UserDecision {
	if !s.Plan.SyncsMembers() {
		return UserDecision{InScope: f.App != nil}
	}
	in, why := false, goneReason(s.Scope)
	if f.Dir != nil {
		in, why = InScope(s.Scope, *f.Dir, f.InScopeGroups)
	}
	switch {
	case f.App == nil && !in:
		return UserDecision{}
	case f.App != nil && !in:
		return UserDecision{Items: removeUser(*f.App, why)}
	case f.App == nil:
		return createUser(*f.Dir)
	}
	return updateUser(s, *f.Dir, *f.App)
}

// removeUser takes a user out of the app: roles revoked, seat given back,
// user removed, each with the same reason. Memberships go in the
// membership pass.
func removeUser(a AppUser, why string) []Item {
	var items []Item
	for _, r := range a.Roles {
		items = append(items, Item{Action: RevokeRole, EntraID: a.EntraID, DisplayName: a.DisplayName, Role: r,
			Before: Fields{"role": r}, Reason: "user leaves the app: " + why})
	}
	if a.License == LicenseAssigned {
		items = append(items, Item{Action: RevokeLicense, EntraID: a.EntraID, DisplayName: a.DisplayName,
			Before: Fields{"license": a.License}, After: Fields{"license": LicenseNone}, Reason: "seat freed: " + why})
	}
	return append(items, Item{Action: RemoveUser, EntraID: a.EntraID, DisplayName: a.DisplayName,
		Before: profileOf(a), Reason: why})
}

func createUser(d DirUser) UserDecision {
	after := Fields{
		"email": d.Email(), "displayName": d.DisplayName, "givenName": d.GivenName, "surname": d.Surname,
		"jobTitle": d.JobTitle, "department": d.Department, "enabled": d.AccountEnabled,
		"license": LicenseNone,
	}
	dec := UserDecision{InScope: true, Seat: SeatCandidate}
	reason := "new in Entra ID"
	if !d.AccountEnabled {
		after["license"] = LicenseDisabled
		dec.Seat = SeatNone
		reason = "new in Entra ID; account disabled there, so no seat"
	}
	dec.Items = []Item{{Action: CreateUser, EntraID: d.ID, DisplayName: d.DisplayName, After: after, Reason: reason}}
	return dec
}

func updateUser(s Settings, d DirUser, a AppUser) UserDecision {
	dec := UserDecision{InScope: true}
	if it, ok := profileUpdate(s.LocalEdits, d, a); ok {
		dec.Items = append(dec.Items, it)
	}
	name := a.DisplayName
	switch {
	case !d.AccountEnabled && a.Enabled:
		if a.License == LicenseAssigned {
			dec.Items = append(dec.Items, Item{Action: RevokeLicense, EntraID: a.EntraID, DisplayName: name,
				Before: Fields{"license": a.License}, After: Fields{"license": LicenseDisabled},
				Reason: "account disabled in Entra ID; seat freed"})
		}
		dec.Items = append(dec.Items, Item{Action: DisableUser, EntraID: a.EntraID, DisplayName: name,
			Before: Fields{"enabled": true, "license": a.License}, After: Fields{"enabled": false, "license": LicenseDisabled},
			Reason: "account disabled in Entra ID"})
	case d.AccountEnabled && !a.Enabled:
		it := Item{Action: EnableUser, EntraID: a.EntraID, DisplayName: name,
			Before: Fields{"enabled": false, "license": a.License}, After: Fields{"enabled": true, "license": LicenseNone},
			Reason: "account enabled again in Entra ID"}
		if a.LicenseDisabledAt != nil {
			it.After["license"] = LicenseDisabled
			it.Reason += "; " + stickyReason(*a.LicenseDisabledAt)
		} else {
			dec.Seat = SeatCandidate
		}
		dec.Items = append(dec.Items, it)
	case d.AccountEnabled && a.License == LicenseAssigned:
		dec.Seat = SeatHolder
	case d.AccountEnabled && a.LicenseDisabledAt == nil:
		dec.Seat = SeatCandidate
	}
	return dec
}

// SteadySeat is the seat role DecideUser gives an app user whose facts have
// not changed since the plan the app follows was applied: Entra ID's
// account state is the app's then, and the user rules change nothing (a
// plan applied leaves nothing for the next one to do). A plan that decides
// only the users whose facts changed gives every other app user this
// role in the seat hand-out.
func SteadySeat(enabled bool, license string, licenseDisabled bool) SeatRole {
	switch {
	case enabled && license == LicenseAssigned:
		return SeatHolder
	case enabled && !licenseDisabled:
		return SeatCandidate
	}
	return SeatNone
}

// stickyReason says why a license stays disabled.
func stickyReason(at time.Time) string {
	return fmt.Sprintf("license disabled by an admin on %s; kept", at.UTC().Format("2006-01-02"))
}

// profileUpdate compares what Entra ID says with the app, under the
// tenant's local-edit policy: with "keep", a display name or email an
// admin edited stays; with "overwrite", Entra ID's value wins and the
// edit mark goes.
func profileUpdate(policy LocalEdits, d DirUser, a AppUser) (Item, bool) {
	before, after := Fields{}, Fields{}
	var notes []string
	edited := a.DisplayNameEditedAt != nil || a.EmailEditedAt != nil
	set := func(field, app, entra string, editedAt *time.Time, label string) {
		if editedAt != nil && policy == EditsKeep {
			return // the admin's edit survives
		}
		if app == entra {
			return
		}
		before[field], after[field] = app, entra
		if editedAt != nil {
			notes = append(notes, fmt.Sprintf("%s edited in the app on %s is overwritten by Entra ID (localEdits: overwrite)",
				label, editedAt.UTC().Format("2006-01-02")))
		}
	}
	set("displayName", a.DisplayName, d.DisplayName, a.DisplayNameEditedAt, "display name")
	set("email", a.Email, d.Email(), a.EmailEditedAt, "email")
	set("givenName", a.GivenName, d.GivenName, nil, "")
	set("surname", a.Surname, d.Surname, nil, "")
	set("jobTitle", a.JobTitle, d.JobTitle, nil, "")
	set("department", a.Department, d.Department, nil, "")
	if edited && policy == EditsOverwrite {
		// Entra ID is the source of truth again: the edit marks go, also
		// when the edited value equals Entra's now.
		before["edited"], after["edited"] = true, false
	}
	if len(after) == 0 {
		return Item{}, false
	}
	reason := "changed in Entra ID"
	if len(notes) > 0 {
		reason = strings.Join(notes, "; ")
	} else if _, only := after["edited"]; only && len(after) == 1 {
		reason = "edits in the app match Entra ID; no longer marked edited (localEdits: overwrite)"
	}
	return Item{Action: UpdateUser, EntraID: a.EntraID, DisplayName: a.DisplayName, Before: before, After: after,
		Reason: reason}, true
}

func profileOf(a AppUser) Fields {
	return Fields{
		"email": a.Email, "displayName": a.DisplayName, "enabled": a.Enabled, "license": a.License,
	}
}
