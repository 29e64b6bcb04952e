package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// Tier is a tenant's product plan.
type Tier string

// Tiers. A Basic tenant syncs groups only (for tagging): no users, no
// seats, no memberships.
const (
	TierBasic    Tier = "basic"
	TierBusiness Tier = "business"
	TierPremium  Tier = "premium"
)

// SyncsMembers reports whether the tier syncs users and memberships.
func (t Tier) SyncsMembers() bool { return t != TierBasic }

// LocalEdits says what a sync does to a name or email edited in the app.
type LocalEdits string

// Local-edit policies.
const (
	// EditsKeep: a display name or email edited through the API survives
	// later syncs.
	EditsKeep LocalEdits = "keep"
	// EditsOverwrite: Entra ID is the source of truth; the next sync
	// overwrites manual edits, and its plan says so.
	EditsOverwrite LocalEdits = "overwrite"
)

// ApplyMode says whether a run's plan is applied at once.
type ApplyMode string

// Apply modes.
const (
	// ApplyAuto applies every plan the guard lets through.
	ApplyAuto ApplyMode = "auto"
	// ApplyReview holds every non-empty plan for an admin's approval.
	ApplyReview ApplyMode = "review"
)

// DeletionGuard is the share of the app's users (and of its licenses and
// role grants) a run may remove, disable or revoke before it is held.
type DeletionGuard struct {
	// Percent of the app's users, licenses or role grants, 0..100.
	Percent int `json:"percent"`
	// Minimum is the least the threshold is, whatever the percentage
	// gives: small tenants are not held for two leavers.
	Minimum int `json:"minimum"`
}

// Scope says which Entra users the app holds.
type Scope struct {
	// Groups: empty means every user; otherwise only members, directly or
	// through any depth of nesting, of at least one of these groups.
	Groups []string `json:"groups"`
	// UserFilter is a Graph $filter expression for /users, applied by
	// Graph itself when the fetcher lists users.
	UserFilter string `json:"userFilter"`
	// EmailInclude and EmailExclude are case-insensitive substrings of a
	// user's email (mail, else the user principal name): with includes,
	// a user must match one; a user matching an exclude is out.
	EmailInclude []string `json:"emailInclude"`
	EmailExclude []string `json:"emailExclude"`
	// IncludeGuests takes guest accounts in (default false).
	IncludeGuests bool `json:"includeGuests"`
	// IncludeDisabled keeps disabled accounts as disabled users without a
	// seat (default true); false takes them out of the app.
	IncludeDisabled bool `json:"includeDisabled"`
	// RequireMailbox takes users without mail out (default false: they
	// fall back to their user principal name).
	RequireMailbox bool `json:"requireMailbox"`
}

// Settings are a tenant's sync rules, as the API shows and takes them.
type Settings struct {
	Seats         int           `json:"seats"`
	Plan          Tier          `json:"plan"`
	LocalEdits    LocalEdits    `json:"localEdits"`
	ApplyMode     ApplyMode     `json:"applyMode"`
	DeletionGuard DeletionGuard `json:"deletionGuard"`
	Scope         Scope         `json:"scope"`
	// Schedule says when the tenant is synced without anyone asking.
	Schedule Schedule `json:"schedule"`
	// Notify says where notifications go and which are written.
	Notify Notify `json:"notify"`
	// Groups says which Entra groups are synced.
	Groups GroupKinds `json:"groups"`
}

// Limits of the settings. The API's openapi.yaml states the same limits
// for its callers; these guard every other writer.
const (
	MaxSeats         = 10_000_000
	MaxGuardMinimum  = 1_000_000
	MaxScopeGroups   = 100
	MaxEmailPatterns = 100
	MaxEmailPattern  = 254
	MaxUserFilter    = 2048
)

// DefaultSettings are a new tenant's rules: a Business tenant that syncs
// every member user, keeps local edits, applies plans at once and holds a
// run that removes more than 10% of its users (at least 5), synced once
// a day.
func DefaultSettings() Settings {
	return Settings{
		Plan:          TierBusiness,
		LocalEdits:    EditsKeep,
		ApplyMode:     ApplyAuto,
		DeletionGuard: DeletionGuard{Percent: 10, Minimum: 5},
		Scope:         Scope{Groups: []string{}, EmailInclude: []string{}, EmailExclude: []string{}, IncludeDisabled: true},
		Schedule:      IntervalSchedule(DefaultSyncInterval),
		Notify:        Notify{CompletionRecipients: []string{}},
		Groups:        DefaultGroupKinds(),
	}
}

// FieldError is a setting that cannot be taken, named by its path in the
// API's JSON ("scope.userFilter").
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Normalize puts equal settings into one form: group ids lower-case,
// blank and duplicate entries dropped, lists never nil.
func (s *Settings) Normalize() {
	for i, g := range s.Scope.Groups {
		if u, err := uuid.Parse(g); err == nil && len(g) == 36 {
			s.Scope.Groups[i] = u.String()
		}
	}
	s.Scope.Groups = dedupe(s.Scope.Groups, func(v string) string { return v })
	s.Scope.EmailInclude = dedupe(s.Scope.EmailInclude, strings.ToLower)
	s.Scope.EmailExclude = dedupe(s.Scope.EmailExclude, strings.ToLower)
	s.Scope.UserFilter = strings.TrimSpace(s.Scope.UserFilter)
	s.Notify.normalize()
	s.Groups.normalize()
}

func dedupe(in []string, key func(string) string) []string {
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for _, v := range in {
		k := key(v)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, v)
	}
	return out
}

// Validate returns the first setting that cannot be taken, as a
// *FieldError, or nil. Call Normalize first.
func (s Settings) Validate() error {
	if s.Seats < 0 || s.Seats > MaxSeats {
		return fieldErr("seats", "seats must be an integer from 0 to %d", MaxSeats)
	}
	if !slices.Contains([]Tier{TierBasic, TierBusiness, TierPremium}, s.Plan) {
		return fieldErr("plan", `plan must be "basic", "business" or "premium"`)
	}
	if s.LocalEdits != EditsKeep && s.LocalEdits != EditsOverwrite {
		return fieldErr("localEdits", `localEdits must be "keep" or "overwrite"`)
	}
	if s.ApplyMode != ApplyAuto && s.ApplyMode != ApplyReview {
		return fieldErr("applyMode", `applyMode must be "auto" or "review"`)
	}
	if g := s.DeletionGuard; g.Percent < 0 || g.Percent > 100 {
		return fieldErr("deletionGuard.percent", "deletionGuard.percent must be an integer from 0 to 100")
	}
	if g := s.DeletionGuard; g.Minimum < 0 || g.Minimum > MaxGuardMinimum {
		return fieldErr("deletionGuard.minimum", "deletionGuard.minimum must be an integer from 0 to %d", MaxGuardMinimum)
	}
	if err := s.Scope.validate(s.Plan); err != nil {
		return err
	}
	if err := s.Schedule.Validate(); err != nil {
		return err
	}
	if err := s.Notify.validate(); err != nil {
		return err
	}
	return s.Groups.validate()
}

func (sc Scope) validate(tier Tier) error {
	if len(sc.Groups) > MaxScopeGroups {
		return fieldErr("scope.groups", "scope.groups may list at most %d groups", MaxScopeGroups)
	}
	for _, g := range sc.Groups {
		if u, err := uuid.Parse(g); err != nil || len(g) != 36 || u.String() != g {
			return fieldErr("scope.groups", "scope.groups: %q is not a group id (a GUID like 00000000-0000-0000-0000-000000000000)", g)
		}
	}
	if len(sc.UserFilter) > MaxUserFilter {
		return fieldErr("scope.userFilter", "scope.userFilter must be at most %d characters", MaxUserFilter)
	}
	if err := CheckUserFilter(sc.UserFilter); err != nil {
		return fieldErr("scope.userFilter", "scope.userFilter is not a valid Graph $filter: %v", err)
	}
	for _, l := range []struct {
		name string
		list []string
	}{{"scope.emailInclude", sc.EmailInclude}, {"scope.emailExclude", sc.EmailExclude}} {
		if len(l.list) > MaxEmailPatterns {
			return fieldErr(l.name, "%s may list at most %d patterns", l.name, MaxEmailPatterns)
		}
		for _, p := range l.list {
			if strings.TrimSpace(p) == "" || len(p) > MaxEmailPattern {
				return fieldErr(l.name, "%s: each pattern must be 1 to %d characters, not blank", l.name, MaxEmailPattern)
			}
		}
	}
	if !tier.SyncsMembers() {
		def := DefaultSettings().Scope
		switch {
		case len(sc.Groups) > 0:
			return fieldErr("scope.groups", "member synchronization needs the Business or Premium plan; a Basic tenant syncs groups only")
		case sc.UserFilter != "":
			return fieldErr("scope.userFilter", "member synchronization needs the Business or Premium plan; a Basic tenant syncs groups only")
		case len(sc.EmailInclude) > 0:
			return fieldErr("scope.emailInclude", "member synchronization needs the Business or Premium plan; a Basic tenant syncs groups only")
		case len(sc.EmailExclude) > 0:
			return fieldErr("scope.emailExclude", "member synchronization needs the Business or Premium plan; a Basic tenant syncs groups only")
		case sc.IncludeGuests != def.IncludeGuests:
			return fieldErr("scope.includeGuests", "member synchronization needs the Business or Premium plan; a Basic tenant syncs groups only")
		case sc.IncludeDisabled != def.IncludeDisabled:
			return fieldErr("scope.includeDisabled", "member synchronization needs the Business or Premium plan; a Basic tenant syncs groups only")
		case sc.RequireMailbox != def.RequireMailbox:
			return fieldErr("scope.requireMailbox", "member synchronization needs the Business or Premium plan; a Basic tenant syncs groups only")
		}
	}
	return nil
}

// Roles every tenant has. Their holders are the people told when seats
// run out, a run is held, or a sync fails.
const (
	RoleAdministrator  = "Administrator"
	RoleLicenseManager = "License manager"
)

// BuiltinRoles are the roles an app user can be given directly.
var BuiltinRoles = []string{RoleAdministrator, RoleLicenseManager}

// IsNotified reports whether holders of role are told about seats, held
// runs and failed syncs.
func IsNotified(role string) bool { return role == RoleAdministrator || role == RoleLicenseManager }
