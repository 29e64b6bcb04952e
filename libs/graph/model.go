package graph

import "time"

// User is a directory user with the properties entrasync selects.
// AccountEnabled and UserType come only because they are in $select.
type User struct {
	ID                string
	DisplayName       string
	Mail              string // empty when Graph returned null
	UserPrincipalName string
	GivenName         string
	Surname           string
	JobTitle          string
	Department        string
	UserType          string // "Member" or "Guest"
	AccountEnabled    bool
}

// Group is a directory group with the properties entrasync selects.
type Group struct {
	ID              string
	DisplayName     string
	Description     string
	Mail            string
	GroupTypes      []string // "Unified", "DynamicMembership"
	SecurityEnabled bool
	MailEnabled     bool
	MembershipRule  string
	// RenewedDateTime is when the group was last renewed (Graph sets it
	// at creation and each renewal); nil when Graph gave none.
	RenewedDateTime *time.Time
}

// MemberType is the kind of directory object found in a membership list,
// from its @odata.type.
type MemberType string

// Kinds of members Graph returns in /members.
const (
	MemberUser             MemberType = "user"
	MemberGroup            MemberType = "group"
	MemberDevice           MemberType = "device"
	MemberOrgContact       MemberType = "orgContact"
	MemberServicePrincipal MemberType = "servicePrincipal"
	MemberOther            MemberType = "other" // any type entrasync does not model
)

// memberTypeOf maps an @odata.type to a MemberType.
func memberTypeOf(odataType string) MemberType {
	switch odataType {
	case "#microsoft.graph.user":
		return MemberUser
	case "#microsoft.graph.group":
		return MemberGroup
	case "#microsoft.graph.device":
		return MemberDevice
	case "#microsoft.graph.orgContact":
		return MemberOrgContact
	case "#microsoft.graph.servicePrincipal":
		return MemberServicePrincipal
	}
	return MemberOther
}

// Member is one entry of a group's direct membership list.
type Member struct {
	ID   string
	Type MemberType
	// DisplayName is a device's name; "" when Graph withheld it (an app
	// without the permission to read devices sees only the id), and for
	// users and groups, whose names their own listings give: member lists
	// are the largest pages a run holds, and a name is a third of what
	// one of their users takes in memory.
	DisplayName string
}
