package graphsim

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// prop is one property of a Graph entity type as the simulator serves it:
// its JSON name, whether Graph returns it without $select, and its value
// (nil, string, bool or []string; "" means null for strings).
type prop[T any] struct {
	name string
	def  bool
	val  func(*T) any
}

// str turns "" into a JSON null, the way Graph sends unset strings.
func str(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Properties of microsoft.graph.user. The default set is the one Graph v1.0
// returns without $select (user-list.md, resources/user.md), in Graph's
// order; the rest come only on $select. Properties the simulator does not
// model are served with the empty value Graph gives an unset property.
var userProps = []prop[User]{
	{"businessPhones", true, func(*User) any { return []string{} }},
	{"displayName", true, func(u *User) any { return str(u.DisplayName) }},
	{"givenName", true, func(u *User) any { return str(u.GivenName) }},
	{"jobTitle", true, func(u *User) any { return str(u.JobTitle) }},
	{"mail", true, func(u *User) any { return str(u.Mail) }},
	{"mobilePhone", true, func(u *User) any { return str(u.MobilePhone) }},
	{"officeLocation", true, func(u *User) any { return str(u.OfficeLocation) }},
	{"preferredLanguage", true, func(u *User) any { return str(u.PreferredLanguage) }},
	{"surname", true, func(u *User) any { return str(u.Surname) }},
	{"userPrincipalName", true, func(u *User) any { return str(u.UserPrincipalName) }},
	{"id", true, func(u *User) any { return u.ID }},
	{"accountEnabled", false, func(u *User) any { return u.AccountEnabled }},
	{"userType", false, func(u *User) any { return str(u.UserType) }},
	{"department", false, func(u *User) any { return str(u.Department) }},
	{"companyName", false, func(*User) any { return nil }},
	{"employeeId", false, func(*User) any { return nil }},
	{"mailNickname", false, func(u *User) any { return str(mailNickname(u)) }},
	{"createdDateTime", false, func(u *User) any { return createdAt(u.ID) }},
	{"deletedDateTime", false, func(*User) any { return nil }},
	{"creationType", false, func(u *User) any { return str(ifGuest(u, "Invitation")) }},
	{"externalUserState", false, func(u *User) any { return str(ifGuest(u, "Accepted")) }},
	{"usageLocation", false, func(*User) any { return nil }},
	{"city", false, func(*User) any { return nil }},
	{"country", false, func(*User) any { return nil }},
	{"state", false, func(*User) any { return nil }},
	{"streetAddress", false, func(*User) any { return nil }},
	{"postalCode", false, func(*User) any { return nil }},
	{"faxNumber", false, func(*User) any { return nil }},
	{"employeeType", false, func(*User) any { return nil }},
	{"ageGroup", false, func(*User) any { return nil }},
	{"otherMails", false, func(*User) any { return []string{} }},
	{"proxyAddresses", false, func(u *User) any { return proxyAddresses(u.Mail) }},
	{"imAddresses", false, func(*User) any { return []string{} }},
	{"assignedLicenses", false, func(*User) any { return []string{} }},
	{"onPremisesSyncEnabled", false, func(*User) any { return nil }},
	{"onPremisesImmutableId", false, func(*User) any { return nil }},
	{"onPremisesSamAccountName", false, func(*User) any { return nil }},
	{"onPremisesUserPrincipalName", false, func(*User) any { return nil }},
	{"onPremisesLastSyncDateTime", false, func(*User) any { return nil }},
	{"onPremisesDomainName", false, func(*User) any { return nil }},
	{"securityIdentifier", false, func(u *User) any { return sid(u.ID) }},
	{"showInAddressList", false, func(*User) any { return nil }},
}

// Properties of microsoft.graph.group; the default set follows the
// examples in group-list.md / group-post-groups.md.
var groupProps = []prop[Group]{
	{"id", true, func(g *Group) any { return g.ID }},
	{"deletedDateTime", true, func(*Group) any { return nil }},
	{"classification", true, func(*Group) any { return nil }},
	{"createdDateTime", true, func(g *Group) any { return createdAt(g.ID) }},
	{"creationOptions", true, func(*Group) any { return []string{} }},
	{"description", true, func(g *Group) any { return str(g.Description) }},
	{"displayName", true, func(g *Group) any { return str(g.DisplayName) }},
	{"expirationDateTime", true, func(*Group) any { return nil }},
	{"groupTypes", true, func(g *Group) any { return nonNil(g.GroupTypes) }},
	{"isAssignableToRole", true, func(*Group) any { return nil }},
	{"mail", true, func(g *Group) any { return str(g.Mail) }},
	{"mailEnabled", true, func(g *Group) any { return g.MailEnabled }},
	{"mailNickname", true, func(g *Group) any { return str(g.MailNickname) }},
	{"membershipRule", true, func(g *Group) any { return str(g.MembershipRule) }},
	{"membershipRuleProcessingState", true, func(g *Group) any {
		if isDynamic(g) {
			return "On"
		}
		return nil
	}},
	{"onPremisesDomainName", true, func(*Group) any { return nil }},
	{"onPremisesLastSyncDateTime", true, func(*Group) any { return nil }},
	{"onPremisesNetBiosName", true, func(*Group) any { return nil }},
	{"onPremisesSamAccountName", true, func(*Group) any { return nil }},
	{"onPremisesSecurityIdentifier", true, func(*Group) any { return nil }},
	{"onPremisesSyncEnabled", true, func(*Group) any { return nil }},
	{"preferredDataLocation", true, func(*Group) any { return nil }},
	{"preferredLanguage", true, func(*Group) any { return nil }},
	{"proxyAddresses", true, func(g *Group) any { return proxyAddresses(g.Mail) }},
	{"renewedDateTime", true, func(g *Group) any { return createdAt(g.ID) }},
	{"resourceBehaviorOptions", true, func(*Group) any { return []string{} }},
	{"resourceProvisioningOptions", true, func(*Group) any { return []string{} }},
	{"securityEnabled", true, func(g *Group) any { return g.SecurityEnabled }},
	{"securityIdentifier", true, func(g *Group) any { return sid(g.ID) }},
	{"theme", true, func(*Group) any { return nil }},
	{"visibility", true, func(g *Group) any { return str(g.Visibility) }},
	{"onPremisesProvisioningErrors", true, func(*Group) any { return []string{} }},
	{"serviceProvisioningErrors", true, func(*Group) any { return []string{} }},
	{"assignedLicenses", false, func(*Group) any { return []string{} }},
	{"assignedLabels", false, func(*Group) any { return []string{} }},
	{"licenseProcessingState", false, func(*Group) any { return nil }},
}

// Properties of microsoft.graph.device (resources/device.md).
var deviceProps = []prop[Device]{
	{"id", true, func(d *Device) any { return d.ID }},
	{"deletedDateTime", true, func(*Device) any { return nil }},
	{"accountEnabled", true, func(d *Device) any { return d.AccountEnabled }},
	{"approximateLastSignInDateTime", true, func(*Device) any { return nil }},
	{"complianceExpirationDateTime", true, func(*Device) any { return nil }},
	{"createdDateTime", true, func(d *Device) any { return createdAt(d.ID) }},
	{"deviceCategory", true, func(*Device) any { return nil }},
	{"deviceId", true, func(d *Device) any { return str(d.DeviceID) }},
	{"deviceMetadata", true, func(*Device) any { return nil }},
	{"deviceOwnership", true, func(*Device) any { return nil }},
	{"deviceVersion", true, func(*Device) any { return nil }},
	{"displayName", true, func(d *Device) any { return str(d.DisplayName) }},
	{"isCompliant", true, func(*Device) any { return nil }},
	{"isManaged", true, func(*Device) any { return nil }},
	{"manufacturer", true, func(*Device) any { return nil }},
	{"model", true, func(*Device) any { return nil }},
	{"onPremisesLastSyncDateTime", true, func(*Device) any { return nil }},
	{"onPremisesSyncEnabled", true, func(*Device) any { return nil }},
	{"operatingSystem", true, func(d *Device) any { return str(d.OperatingSystem) }},
	{"operatingSystemVersion", true, func(d *Device) any { return str(d.OperatingSystemVersion) }},
	{"physicalIds", true, func(*Device) any { return []string{} }},
	{"profileType", true, func(*Device) any { return nil }},
	{"registrationDateTime", true, func(*Device) any { return nil }},
	{"systemLabels", true, func(*Device) any { return []string{} }},
	{"trustType", true, func(d *Device) any { return str(d.TrustType) }},
}

// Properties of microsoft.graph.orgContact (resources/orgcontact.md).
var contactProps = []prop[OrgContact]{
	{"id", true, func(c *OrgContact) any { return c.ID }},
	{"deletedDateTime", true, func(*OrgContact) any { return nil }},
	{"companyName", true, func(c *OrgContact) any { return str(c.CompanyName) }},
	{"department", true, func(*OrgContact) any { return nil }},
	{"displayName", true, func(c *OrgContact) any { return str(c.DisplayName) }},
	{"givenName", true, func(c *OrgContact) any { return str(c.GivenName) }},
	{"jobTitle", true, func(c *OrgContact) any { return str(c.JobTitle) }},
	{"mail", true, func(c *OrgContact) any { return str(c.Mail) }},
	{"mailNickname", true, func(c *OrgContact) any { return str(strings.SplitN(c.Mail, "@", 2)[0]) }},
	{"onPremisesLastSyncDateTime", true, func(*OrgContact) any { return nil }},
	{"onPremisesSyncEnabled", true, func(*OrgContact) any { return nil }},
	{"surname", true, func(c *OrgContact) any { return str(c.Surname) }},
	{"addresses", true, func(*OrgContact) any { return []string{} }},
	{"onPremisesProvisioningErrors", true, func(*OrgContact) any { return []string{} }},
	{"phones", true, func(*OrgContact) any { return []string{} }},
	{"proxyAddresses", true, func(c *OrgContact) any { return proxyAddresses(c.Mail) }},
}

// propIndex maps lower-case property names to their canonical spelling;
// Graph matches $select and $filter names case-insensitively.
func propIndex[T any](props []prop[T]) map[string]string {
	m := make(map[string]string, len(props))
	for _, p := range props {
		m[strings.ToLower(p.name)] = p.name
	}
	return m
}

var (
	userPropNames    = propIndex(userProps)
	groupPropNames   = propIndex(groupProps)
	devicePropNames  = propIndex(deviceProps)
	contactPropNames = propIndex(contactProps)
)

// lookup returns the value of the named property of an object, and
// whether the object's type has it.
func lookup[T any](props []prop[T], o *T, name string) (any, bool) {
	for _, p := range props {
		if p.name == name {
			return p.val(o), true
		}
	}
	return nil, false
}

// appendEntity writes one object's JSON: @odata.type first when asked
// (mixed collections), then the selected properties in Graph's order,
// or the default set when sel is nil.
func appendEntity[T any](b []byte, props []prop[T], o *T, sel map[string]bool, odataType string) []byte {
	b = append(b, '{')
	first := true
	if odataType != "" {
		b = append(b, `"@odata.type":`...)
		b = appendString(b, "#microsoft.graph."+odataType)
		first = false
	}
	for _, p := range props {
		if sel == nil && !p.def || sel != nil && !sel[p.name] {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, p.name)
		b = append(b, ':')
		b = appendValue(b, p.val(o))
	}
	return append(b, '}')
}

// appendLimited writes an object the app may not read the way Graph
// does ("Limited information returned for inaccessible member objects",
// concepts/permissions-overview.md): @odata.type when asked, then id
// (even when $select leaves it out), then every other property the
// object would have served, as null.
func appendLimited[T any](b []byte, props []prop[T], id string, sel map[string]bool, odataType string) []byte {
	b = append(b, '{')
	if odataType != "" {
		b = append(b, `"@odata.type":`...)
		b = appendString(b, "#microsoft.graph."+odataType)
		b = append(b, ',')
	}
	b = append(b, `"id":`...)
	b = appendString(b, id)
	for _, p := range props {
		if p.name == "id" || sel == nil && !p.def || sel != nil && !sel[p.name] {
			continue
		}
		b = append(b, ',')
		b = appendString(b, p.name)
		b = append(b, ":null"...)
	}
	return append(b, '}')
}

func appendValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendString(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case []string:
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, s)
		}
		return append(b, ']')
	}
	panic(fmt.Sprintf("graphsim: no JSON form for %T", v))
}

// appendString writes s as a JSON string, escaping only what JSON
// requires (Graph sends & in nextLinks as is).
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func ifGuest(u *User, v string) string {
	if u.UserType == "Guest" {
		return v
	}
	return ""
}

func mailNickname(u *User) string {
	local := strings.SplitN(u.UserPrincipalName, "@", 2)[0]
	return strings.TrimSuffix(local, "#EXT#")
}

func proxyAddresses(mail string) []string {
	if mail == "" {
		return []string{}
	}
	return []string{"SMTP:" + mail}
}

// createdAt derives a stable creation time from an object ID, so that the
// same tenant always serves the same timestamps.
func createdAt(id string) string {
	h := fnv.New64a()
	h.Write([]byte(id))
	base := time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	return base.Add(time.Duration(h.Sum64()%(5*365*24*3600)) * time.Second).Format("2006-01-02T15:04:05Z")
}

// sid builds an S-1-12-1 security identifier from an object ID the way
// Entra does: the GUID's 16 bytes as four little-endian numbers.
func sid(id string) any {
	raw, err := hex.DecodeString(strings.ReplaceAll(id, "-", ""))
	if err != nil || len(raw) != 16 {
		return nil
	}
	// GUID text puts the first three fields big-endian; the SID uses the
	// in-memory (little-endian) layout.
	slices.Reverse(raw[0:4])
	slices.Reverse(raw[4:6])
	slices.Reverse(raw[6:8])
	return fmt.Sprintf("S-1-12-1-%d-%d-%d-%d",
		binary.LittleEndian.Uint32(raw[0:4]), binary.LittleEndian.Uint32(raw[4:8]),
		binary.LittleEndian.Uint32(raw[8:12]), binary.LittleEndian.Uint32(raw[12:16]))
}
