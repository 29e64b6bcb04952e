package plan

import (
	"fmt"
	"strings"
)

// HeldReason says why a run's plan waits for an admin.
type HeldReason string

// Reasons a plan is held.
const (
	HeldDeletionGuard HeldReason = "deletion_guard"
	HeldReview        HeldReason = "review"
)

// GuardFacts is what the guard weighs besides the plan.
type GuardFacts struct {
	// AppUsers, Licenses, RoleGrants and SharingGrants are what the app
	// holds before the plan: users, assigned seats, role grants (direct
	// and through groups), sharing permissions granted through groups.
	AppUsers      int64
	Licenses      int64
	RoleGrants    int64
	SharingGrants int64
	// UsersRead says the run read Entra ID's users listing; UsersListed is
	// how many users it returned.
	UsersRead   bool
	UsersListed int64
}

// Verdict is the guard's judgement of a plan.
type Verdict struct {
	// Hold is false when the plan is applied at once.
	Hold    bool
	Reason  HeldReason
	Message string
}

// Threshold is how many of total a run may take away before the guard
// holds it: Percent of total, rounded down, and never below Minimum.
func (g DeletionGuard) Threshold(total int64) int64 {
	return max(int64(g.Minimum), total*int64(g.Percent)/100)
}

// Judge holds a plan, even in auto mode, when it takes away more than the
// tenant's deletion guard allows (users removed or disabled, licenses
// revoked, role grants and sharing grants revoked, each against its own
// total), or when Entra ID's users listing came back empty while the app
// has users: a cut-short listing or a narrowed permission must never empty
// the app. Otherwise a tenant in review mode holds every plan that changes
// something.
func Judge(s Settings, sum Summary, f GuardFacts) Verdict {
	if s.Plan.SyncsMembers() && f.UsersRead && f.UsersListed == 0 && f.AppUsers > 0 {
		return Verdict{Hold: true, Reason: HeldDeletionGuard, Message: fmt.Sprintf(
			"Entra ID listed no users while the app has %d; nothing is removed until an admin approves", f.AppUsers)}
	}
	var over []string
	check := func(n, total int64, what string) {
		if t := s.DeletionGuard.Threshold(total); n > t {
			over = append(over, fmt.Sprintf("%s %d of %d %s (threshold %d)", verbOf(what), n, total, what, t))
		}
	}
	check(sum[RemoveUser]+sum[DisableUser], f.AppUsers, "users")
	check(sum[RevokeLicense], f.Licenses, "licenses")
	check(sum[RevokeRole], f.RoleGrants, "role grants")
	check(sum[RevokeSharing], f.SharingGrants, "sharing grants")
	if len(over) > 0 {
		return Verdict{Hold: true, Reason: HeldDeletionGuard, Message: "the plan would " + strings.Join(over, ", ") +
			fmt.Sprintf("; the deletion guard allows %d%% (at least %d)", s.DeletionGuard.Percent, s.DeletionGuard.Minimum)}
	}
	if s.ApplyMode == ApplyReview && sum.Total() > 0 {
		return Verdict{Hold: true, Reason: HeldReview, Message: fmt.Sprintf(
			"the tenant reviews every sync; the plan has %d changes", sum.Total())}
	}
	return Verdict{}
}

func verbOf(what string) string {
	if what == "users" {
		return "remove or disable"
	}
	return "revoke"
}
