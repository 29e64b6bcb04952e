package plan

// Action is what one plan item does to the application side.
type Action string

// Actions, as stored and shown by the API.
const (
	CreateUser       Action = "createUser"
	UpdateUser       Action = "updateUser"
	DisableUser      Action = "disableUser"
	EnableUser       Action = "enableUser"
	RemoveUser       Action = "removeUser"
	AssignLicense    Action = "assignLicense"
	RevokeLicense    Action = "revokeLicense"
	AddMembership    Action = "addMembership"
	RemoveMembership Action = "removeMembership"
	GrantRole        Action = "grantRole"
	RevokeRole       Action = "revokeRole"
	GrantSharing     Action = "grantSharing"
	RevokeSharing    Action = "revokeSharing"
	CreateGroup      Action = "createGroup"
	UpdateGroup      Action = "updateGroup"
	RemoveGroup      Action = "removeGroup"
)

// Actions lists every action in the order a plan is applied: what takes
// away first (so that seats freed by leavers go to joiners, and nothing
// points at a row about to go), then what adds.
var Actions = []Action{
	RevokeRole, RevokeSharing, RemoveMembership, RevokeLicense, RemoveUser, RemoveGroup,
	CreateGroup, UpdateGroup, CreateUser, UpdateUser, DisableUser, EnableUser,
	AssignLicense, AddMembership, GrantRole, GrantSharing,
}

// Fields are the values an item reads or sets, by their API names
// (displayName, email, enabled, license, ...).
type Fields map[string]any

// Item is one change of a plan.
type Item struct {
	Action Action
	// EntraID is the user's, or for group actions the group's.
	EntraID string
	// GroupID is the group of a membership; GroupName its display name.
	GroupID   string
	GroupName string
	// Role is the role or sharing permission a grant or revocation is
	// about.
	Role        string
	DisplayName string
	Before      Fields
	After       Fields
	// Reason says why, for the admin reading the plan.
	Reason string
}

// Summary counts a plan's items per action.
type Summary map[Action]int64

// Add counts items.
func (s Summary) Add(items ...Item) {
	for _, it := range items {
		s[it.Action]++
	}
}

// Total is the number of items.
func (s Summary) Total() int64 {
	var n int64
	for _, v := range s {
		n += v
	}
	return n
}

// Counts are what a run reports it changed, by the names runs have always
// shown (usersCreated, licensesAssigned, ...), from its plan's summary and
// what the seat pass found.
func (s Summary) Counts(unlicensed, inScope int64) map[string]int64 {
	return map[string]int64{
		"usersCreated":       s[CreateUser],
		"usersUpdated":       s[UpdateUser],
		"usersDisabled":      s[DisableUser],
		"usersEnabled":       s[EnableUser],
		"usersRemoved":       s[RemoveUser],
		"licensesAssigned":   s[AssignLicense],
		"licensesRevoked":    s[RevokeLicense],
		"membershipsAdded":   s[AddMembership],
		"membershipsRemoved": s[RemoveMembership],
		"rolesGranted":       s[GrantRole],
		"rolesRevoked":       s[RevokeRole],
		"sharingGranted":     s[GrantSharing],
		"sharingRevoked":     s[RevokeSharing],
		"groupsCreated":      s[CreateGroup],
		"groupsUpdated":      s[UpdateGroup],
		"groupsRemoved":      s[RemoveGroup],
		"unlicensed":         unlicensed,
		"usersInScope":       inScope,
	}
}
