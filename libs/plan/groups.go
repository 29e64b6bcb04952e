package plan

import "slices"

// Group kinds as the app shows them.
const (
	KindMicrosoft365        = "microsoft365"
	KindSecurity            = "security"
	KindMailEnabledSecurity = "mailEnabledSecurity"
	KindDistribution        = "distribution"
)

// DirGroup is a group as Entra ID last showed it.
type DirGroup struct {
	ID              string
	DisplayName     string
	GroupTypes      []string
	SecurityEnabled bool
	MailEnabled     bool
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
}

// GroupFacts is one group Entra ID or the app has.
type GroupFacts struct {
	EntraID string
	Dir     *DirGroup // nil: deleted in Entra ID
	App     *AppGroup // nil: not in the app yet
	// EntraMemberCount is Graph's count of users in the group's nested
	// membership, when this run read it.
	EntraMemberCount *int
}

// DecideGroup keeps the app's groups equal to Entra ID's: created,
// renamed or reclassified, removed when deleted there. Member counts are
// observations, refreshed when a plan is applied, not plan items.
func DecideGroup(f GroupFacts) (Item, bool) {
	switch {
	case f.Dir == nil && f.App == nil:
		return Item{}, false
	case f.Dir == nil:
		return Item{Action: RemoveGroup, EntraID: f.EntraID, DisplayName: f.App.DisplayName,
			Before: Fields{"displayName": f.App.DisplayName, "kind": f.App.Kind}, Reason: "deleted in Entra ID"}, true
	case f.App == nil:
		after := Fields{"displayName": f.Dir.DisplayName, "kind": f.Dir.Kind(), "dynamic": f.Dir.Dynamic()}
		if f.EntraMemberCount != nil {
			after["entraMemberCount"] = *f.EntraMemberCount
		}
		return Item{Action: CreateGroup, EntraID: f.EntraID, DisplayName: f.Dir.DisplayName, After: after,
			Reason: "new in Entra ID"}, true
	}
	before, after := Fields{}, Fields{}
	if f.App.DisplayName != f.Dir.DisplayName {
		before["displayName"], after["displayName"] = f.App.DisplayName, f.Dir.DisplayName
	}
	if k := f.Dir.Kind(); f.App.Kind != k {
		before["kind"], after["kind"] = f.App.Kind, k
	}
	if d := f.Dir.Dynamic(); f.App.Dynamic != d {
		before["dynamic"], after["dynamic"] = f.App.Dynamic, d
	}
	if len(after) == 0 {
		return Item{}, false
	}
	return Item{Action: UpdateGroup, EntraID: f.EntraID, DisplayName: f.Dir.DisplayName, Before: before, After: after,
		Reason: "changed in Entra ID"}, true
}
