package plan

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Group kinds as the app shows them.
const (
	KindMicrosoft365        = "microsoft365"
	KindSecurity            = "security"
	KindMailEnabledSecurity = "mailEnabledSecurity"
	KindDistribution        = "distribution"
	// KindLocal is a group created through the API, not in Entra ID: no
	// sync changes or removes it.
	KindLocal = "local"
)

// Group statuses, as stored and shown by the API.
const (
	// StatusEnabled: synced every run.
	StatusEnabled = "enabled"
	// StatusDisabled: switched off here (its kind, or the group itself):
	// kept as last synced, no longer updated, still granting what it is
	// bound to its members as last synced.
	StatusDisabled = "disabled"
	// StatusOrphaned: deleted in Entra ID, or archived here: kept, no
	// longer updated, granting nothing. Only a DELETE takes it away.
	StatusOrphaned = "orphaned"
)

// GroupKinds is the tenant's `groups` setting: which Entra groups are
// synced. Security covers mail-enabled security groups; a group listed in
// Include is synced whatever its kind.
type GroupKinds struct {
	Microsoft365 bool     `json:"microsoft365"`
	Security     bool     `json:"security"`
	Distribution bool     `json:"distribution"`
	Include      []string `json:"include"`
}

// MaxIncludeGroups bounds groups.include.
const MaxIncludeGroups = 100

// DefaultGroupKinds syncs every group.
func DefaultGroupKinds() GroupKinds {
	return GroupKinds{Microsoft365: true, Security: true, Distribution: true, Include: []string{}}
}

// KindOn reports whether the setting syncs groups of kind (ignoring
// Include).
func (k GroupKinds) KindOn(kind string) bool {
	switch kind {
	case KindMicrosoft365:
		return k.Microsoft365
	case KindSecurity, KindMailEnabledSecurity:
		return k.Security
	case KindDistribution:
		return k.Distribution
	}
	return false
}

// Syncs reports whether the setting syncs the Entra group id of kind: its
// kind is switched on, or the group is listed in Include.
func (k GroupKinds) Syncs(id, kind string) bool {
	return k.KindOn(kind) || k.Included(id)
}

// Included reports whether Include lists the Entra group id.
func (k GroupKinds) Included(id string) bool { return slices.Contains(k.Include, strings.ToLower(id)) }

// kindSetting names the member of the setting that switches kind.
func kindSetting(kind string) string {
	switch kind {
	case KindMicrosoft365:
		return "groups.microsoft365"
	case KindDistribution:
		return "groups.distribution"
	}
	return "groups.security"
}

func (k *GroupKinds) normalize() {
	for i, g := range k.Include {
		if u, err := uuid.Parse(g); err == nil && len(g) == 36 {
			k.Include[i] = u.String()
		}
	}
	k.Include = dedupe(k.Include, func(v string) string { return v })
}

func (k GroupKinds) validate() error {
	if len(k.Include) > MaxIncludeGroups {
		return fieldErr("groups.include", "groups.include may list at most %d groups", MaxIncludeGroups)
	}
	for _, g := range k.Include {
		if u, err := uuid.Parse(g); err != nil || len(g) != 36 || u.String() != g {
			return fieldErr("groups.include", "groups.include: %q is not a group id (a GUID like 00000000-0000-0000-0000-000000000000)", g)
		}
	}
	return nil
}

// CanEnable says why an admin cannot switch a group back on, or returns
// nil: a group of a kind the tenant does not sync stays disabled unless
// groups.include lists it, whatever its own switch says. Orphaned and
// local groups have no switch.
func CanEnable(k GroupKinds, g AppGroup) error {
	switch {
	case g.Kind == KindLocal:
		return fmt.Errorf("a local group is always enabled")
	case g.Status == StatusOrphaned:
		return fmt.Errorf("the group is orphaned (deleted in Entra ID or archived); it can only be deleted")
	case !k.Syncs(g.EntraID, g.Kind):
		return fmt.Errorf("the tenant does not sync %s groups (%s is false) and groups.include does not list this group; "+
			"switch the kind on or include the group first", g.Kind, kindSetting(g.Kind))
	}
	return nil
}

// DirGroup is a group as Entra ID last showed it.
type DirGroup struct {
	ID              string
	DisplayName     string
	GroupTypes      []string
	SecurityEnabled bool
	MailEnabled     bool
	GroupDetails
}

// GroupDetails are what the app shows of a group besides its name and
// kind. They follow Entra ID while the group is enabled and stay as last
// synced otherwise.
type GroupDetails struct {
	Mail           string
	Description    string
	MembershipRule string
	// UpdatedAt is Graph's renewedDateTime; nil when it gave none.
	UpdatedAt *time.Time
}

// diff records in before and after the details that differ from o's.
func (d GroupDetails) diff(o GroupDetails, before, after Fields) {
	if d.Mail != o.Mail {
		before["mail"], after["mail"] = d.Mail, o.Mail
	}
	if d.Description != o.Description {
		before["description"], after["description"] = d.Description, o.Description
	}
	if d.MembershipRule != o.MembershipRule {
		before["membershipRule"], after["membershipRule"] = d.MembershipRule, o.MembershipRule
	}
	if !sameTime(d.UpdatedAt, o.UpdatedAt) {
		before["entraUpdatedAt"], after["entraUpdatedAt"] = timeField(d.UpdatedAt), timeField(o.UpdatedAt)
	}
}

// fields are the details of a group the app creates.
func (d GroupDetails) fields(f Fields) {
	f["mail"], f["description"], f["membershipRule"] = d.Mail, d.Description, d.MembershipRule
	f["entraUpdatedAt"] = timeField(d.UpdatedAt)
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// timeField is a time as a plan item holds it: RFC 3339 in UTC, or null.
func timeField(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// Kind classifies a group the way Microsoft's groups overview does:
// "Unified" makes a Microsoft 365 group; otherwise security and mail
// flags tell security, mail-enabled security and distribution groups.
func (g DirGroup) Kind() string {
	switch {
	case slices.Contains(g.GroupTypes, "Unified"):
		return KindMicrosoft365
	case g.SecurityEnabled && g.MailEnabled:
		return KindMailEnabledSecurity
	case g.SecurityEnabled:
		return KindSecurity
	}
	return KindDistribution
}

// Dynamic says the group's membership is computed by a rule.
func (g DirGroup) Dynamic() bool { return slices.Contains(g.GroupTypes, "DynamicMembership") }

// AppGroup is a group as the app has it before the plan.
type AppGroup struct {
	EntraID     string
	DisplayName string
	Kind        string
	Dynamic     bool
	// Status is StatusEnabled, StatusDisabled or StatusOrphaned.
	Status string
	// SwitchedOff: an admin disabled this group.
	SwitchedOff bool
	GroupDetails
}

// GroupFacts is one group Entra ID or the app has.
type GroupFacts struct {
	EntraID string
	Dir     *DirGroup // nil: deleted in Entra ID
	App     *AppGroup // nil: not in the app yet
	// EntraMemberCount is Graph's count of users in the group's nested
	// membership, when this run read it.
	EntraMemberCount *int
	// Excluded: an admin deleted the group here; it is not imported again
	// unless groups.include lists it.
	Excluded bool
}

// GroupDecision is what the plan does to one group: its item, if any,
// and how the app has the group after the plan.
type GroupDecision struct {
	Item    Item
	Changed bool
	// Status is the group's status after the plan; "" when the app does
	// not have the group.
	Status string
	// Frozen: the group's memberships stay as the app has them (disabled,
	// orphaned and local groups), instead of following Entra ID.
	Frozen bool
	// Grants: the group still gives its members what it is bound to (every
	// group but an orphaned one).
	Grants bool
}

// MembershipsChange says whether a group's decision can change the app's
// memberships of that group or what it grants: the plan creates it,
// removes it, or changes its status (enabled, disabled, orphaned), which
// says whether its members follow Entra ID and whether it grants. A
// rename, a new description or membership rule, a changed kind that
// the tenant still syncs: the same members, the same grants.
func MembershipsChange(f GroupFacts, d GroupDecision) bool {
	before := ""
	if f.App != nil {
		before = f.App.Status
	}
	return before != d.Status
}

// DecideGroup keeps the app's groups equal to Entra ID's, for the kinds
// the tenant syncs (k): created, renamed or reclassified while enabled;
// a group an admin deleted here is not created again unless Include
// lists it.
// A group is enabled while its kind is on (or groups.include lists it)
// and no admin switched it off; otherwise it is disabled: frozen as last
// synced, never deleted. A group deleted in Entra ID becomes orphaned
// (frozen, granting nothing) and stays so until deleted through the API;
// so does an archived one. Local groups are the API's: no sync touches
// them. Member counts are observations, refreshed when a plan is
// applied, not plan items.
func DecideGroup(k GroupKinds, f GroupFacts) GroupDecision {
	switch {
	case f.Dir == nil && f.App == nil:
		return GroupDecision{}
	case f.App != nil && f.App.Kind == KindLocal:
		return GroupDecision{Status: StatusEnabled, Frozen: true, Grants: true}
	case f.App != nil && f.App.Status == StatusOrphaned:
		return GroupDecision{Status: StatusOrphaned, Frozen: true}
	case f.Dir == nil:
		return GroupDecision{Changed: true, Status: StatusOrphaned, Frozen: true, Item: Item{Action: UpdateGroup,
			EntraID: f.EntraID, DisplayName: f.App.DisplayName,
			Before: Fields{"status": f.App.Status}, After: Fields{"status": StatusOrphaned},
			Reason: "deleted in Entra ID; kept as orphaned, it grants nothing"}}
	case f.App == nil:
		if !k.Syncs(f.EntraID, f.Dir.Kind()) || (f.Excluded && !k.Included(f.EntraID)) {
			return GroupDecision{}
		}
		after := Fields{"displayName": f.Dir.DisplayName, "kind": f.Dir.Kind(), "dynamic": f.Dir.Dynamic()}
		f.Dir.GroupDetails.fields(after)
		if f.EntraMemberCount != nil {
			after["entraMemberCount"] = *f.EntraMemberCount
		}
		return GroupDecision{Changed: true, Status: StatusEnabled, Grants: true, Item: Item{Action: CreateGroup,
			EntraID: f.EntraID, DisplayName: f.Dir.DisplayName, After: after, Reason: "new in Entra ID"}}
	}
	if f.App.SwitchedOff || !k.Syncs(f.EntraID, f.Dir.Kind()) {
		d := GroupDecision{Status: StatusDisabled, Frozen: true, Grants: true}
		if f.App.Status == StatusDisabled {
			return d
		}
		reason := "switched off here; kept as last synced"
		if !f.App.SwitchedOff {
			reason = fmt.Sprintf("the tenant no longer syncs %s groups (%s is false); kept as last synced",
				f.Dir.Kind(), kindSetting(f.Dir.Kind()))
		}
		d.Changed, d.Item = true, Item{Action: UpdateGroup, EntraID: f.EntraID, DisplayName: f.App.DisplayName,
			Before: Fields{"status": f.App.Status}, After: Fields{"status": StatusDisabled}, Reason: reason}
		return d
	}
	d := GroupDecision{Status: StatusEnabled, Grants: true}
	before, after := Fields{}, Fields{}
	reason := "changed in Entra ID"
	if f.App.Status == StatusDisabled {
		before["status"], after["status"] = StatusDisabled, StatusEnabled
		reason = "enabled again; synced from Entra ID"
	}
	if f.App.DisplayName != f.Dir.DisplayName {
		before["displayName"], after["displayName"] = f.App.DisplayName, f.Dir.DisplayName
	}
	if k := f.Dir.Kind(); f.App.Kind != k {
		before["kind"], after["kind"] = f.App.Kind, k
	}
	if dy := f.Dir.Dynamic(); f.App.Dynamic != dy {
		before["dynamic"], after["dynamic"] = f.App.Dynamic, dy
	}
	f.App.GroupDetails.diff(f.Dir.GroupDetails, before, after)
	if len(after) == 0 {
		return d
	}
	d.Changed, d.Item = true, Item{Action: UpdateGroup, EntraID: f.EntraID, DisplayName: f.Dir.DisplayName,
		Before: before, After: after, Reason: reason}
	return d
}
