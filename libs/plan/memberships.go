package plan

// MembershipFacts is one (group, user) pair that Entra ID's nested
// membership or the app has.
type MembershipFacts struct {
	GroupID   string
	GroupName string
	UserID    string
	UserName  string
	// InEntra: the user is a member of the group in Entra ID, directly or
	// through any depth of nesting.
	InEntra bool
	// InApp: the app has the membership now.
	InApp bool
	// UserStays and GroupStays: the user and the group are in the app
	// after the plan.
	UserStays  bool
	GroupStays bool
}

// DecideMembership says whether a membership is added or removed: the app
// holds exactly the nested memberships of its users in its groups.
func DecideMembership(f MembershipFacts) (Item, bool) {
	want := f.InEntra && f.UserStays && f.GroupStays
	switch {
	case want && !f.InApp:
		return Item{Action: AddMembership, EntraID: f.UserID, DisplayName: f.UserName, GroupID: f.GroupID,
			GroupName: f.GroupName, After: Fields{"group": f.GroupID, "groupName": f.GroupName},
			Reason: "member of " + quoteName(f.GroupName) + " in Entra ID"}, true
	case !want && f.InApp:
		reason := "no longer a member of " + quoteName(f.GroupName) + " in Entra ID"
		switch {
		case !f.UserStays:
			reason = "user leaves the app"
		case !f.GroupStays:
			reason = "group " + quoteName(f.GroupName) + " leaves the app"
		}
		return Item{Action: RemoveMembership, EntraID: f.UserID, DisplayName: f.UserName, GroupID: f.GroupID,
			GroupName: f.GroupName, Before: Fields{"group": f.GroupID, "groupName": f.GroupName}, Reason: reason}, true
	}
	return Item{}, false
}

func quoteName(s string) string {
	if s == "" {
		return "the group"
	}
	return "\u201c" + s + "\u201d"
}
