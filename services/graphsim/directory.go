package graphsim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// ObjectType names the kind of a directory object as it appears in a
// group's member list ("#microsoft.graph.<type>" on the wire).
type ObjectType string

// The directory object types a group can hold as members in Graph v1.0.
const (
	TypeUser       ObjectType = "user"
	TypeGroup      ObjectType = "group"
	TypeDevice     ObjectType = "device"
	TypeOrgContact ObjectType = "orgContact"
)

// User is an Entra ID user. Empty strings are sent as JSON null, the way
// Graph sends unset properties (Mail "" is "mail": null).
type User struct {
	ID                string
	DisplayName       string
	GivenName         string
	Surname           string
	Mail              string
	UserPrincipalName string
	JobTitle          string
	Department        string
	UserType          string // "Member" or "Guest"
	AccountEnabled    bool
	OfficeLocation    string
	MobilePhone       string
	PreferredLanguage string
}

// Group is an Entra ID group. Its kind follows from GroupTypes,
// SecurityEnabled and MailEnabled as in Graph (see README).
type Group struct {
	ID              string
	DisplayName     string
	Description     string
	Mail            string
	MailNickname    string
	GroupTypes      []string
	SecurityEnabled bool
	MailEnabled     bool
	MembershipRule  string // set for groups whose GroupTypes contain "DynamicMembership"
	Visibility      string // "Public", "Private", "HiddenMembership" or "" (null)
}

// Device is a registered device; devices can be members of security groups.
type Device struct {
	ID                     string
	DisplayName            string
	DeviceID               string
	OperatingSystem        string
	OperatingSystemVersion string
	TrustType              string
	AccountEnabled         bool
}

// OrgContact is an organisational contact (a mail address outside the
// tenant); contacts can be members of mail-enabled groups.
type OrgContact struct {
	ID          string
	DisplayName string
	GivenName   string
	Surname     string
	Mail        string
	CompanyName string
	JobTitle    string
}

// Member is one entry of a group's member list.
type Member struct {
	ID   string
	Type ObjectType
}

// Errors returned by the Directory's mutations; wrap-checked with errors.Is.
var (
	ErrNotFound      = errors.New("graphsim: object not found")
	ErrAlreadyMember = errors.New("graphsim: already a member")
	ErrNotMember     = errors.New("graphsim: not a member")
	ErrInvalid       = errors.New("graphsim: invalid change")
)

// Directory is one Entra tenant's objects. It is safe for concurrent use:
// the server reads it while a test mutates it.
type Directory struct {
	mu     sync.RWMutex
	domain string
	epoch  string // random; delta tokens of another directory are refused

	users    map[string]*User
	userIDs  []string // sorted
	upns     map[string]string
	groups   map[string]*Group
	groupIDs []string
	devices  map[string]*Device
	devIDs   []string
	contacts map[string]*OrgContact
	conIDs   []string

	members map[string][]Member // group id → direct members, sorted by id

	chain []string // generated nesting chain, outermost first
	cycle []string // generated membership cycle

	version uint64 // bumped by every mutation

	// The change log (changes.go): every mutation of a user, a group or
	// a membership, seq numbering them from 1.
	seq uint64
	log []Change

	// Soft-deleted objects, restorable (changes.go).
	deletedUsers  map[string]*deletedUser
	delUserIDs    []string // sorted
	deletedGroups map[string]*deletedGroup
	delGroupIDs   []string // sorted

	cacheMu      sync.Mutex
	cacheVersion uint64
	transitive   map[string][]Member
}

func newDirectory(domain string) *Directory {
	return &Directory{
		domain:     domain,
		epoch:      randomGUID(),
		users:      map[string]*User{},
		upns:       map[string]string{},
		groups:     map[string]*Group{},
		devices:    map[string]*Device{},
		contacts:   map[string]*OrgContact{},
		members:    map[string][]Member{},
		transitive: map[string][]Member{},

		deletedUsers:  map[string]*deletedUser{},
		deletedGroups: map[string]*deletedGroup{},
	}
}

// NewDirectory returns an empty directory for the given verified domain
// (for example "contoso.onmicrosoft.com"), to be filled by a test.
func NewDirectory(domain string) *Directory { return newDirectory(domain) }

// Domain is the tenant's initial domain, such as "contoso.onmicrosoft.com".
func (d *Directory) Domain() string { return d.domain }

// Users returns a copy of every user, sorted by ID.
func (d *Directory) Users() []User {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]User, len(d.userIDs))
	for i, id := range d.userIDs {
		out[i] = *d.users[id]
	}
	return out
}

// User returns the user with the given ID.
func (d *Directory) User(id string) (User, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	u, ok := d.users[strings.ToLower(id)]
	if !ok {
		return User{}, false
	}
	return *u, true
}

// Groups returns a copy of every group, sorted by ID.
func (d *Directory) Groups() []Group {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]Group, len(d.groupIDs))
	for i, id := range d.groupIDs {
		out[i] = cloneGroup(d.groups[id])
	}
	return out
}

// Group returns the group with the given ID.
func (d *Directory) Group(id string) (Group, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	g, ok := d.groups[strings.ToLower(id)]
	if !ok {
		return Group{}, false
	}
	return cloneGroup(g), true
}

// Devices returns a copy of every device, sorted by ID.
func (d *Directory) Devices() []Device {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]Device, len(d.devIDs))
	for i, id := range d.devIDs {
		out[i] = *d.devices[id]
	}
	return out
}

// Contacts returns a copy of every organisational contact, sorted by ID.
func (d *Directory) Contacts() []OrgContact {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]OrgContact, len(d.conIDs))
	for i, id := range d.conIDs {
		out[i] = *d.contacts[id]
	}
	return out
}

// DirectMembers returns a group's direct members, sorted by ID (nil for
// an unknown group).
func (d *Directory) DirectMembers(groupID string) []Member {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Clone(d.members[strings.ToLower(groupID)])
}

// TransitiveMembers returns every object reachable through the group's
// nested membership, sorted by ID and deduplicated, the group itself
// excluded even when it sits in a cycle. Nested groups are included, as
// in Graph's transitiveMembers.
func (d *Directory) TransitiveMembers(groupID string) []Member {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Clone(d.transitiveLocked(strings.ToLower(groupID)))
}

// TransitiveUsers returns the users among TransitiveMembers.
func (d *Directory) TransitiveUsers(groupID string) []User {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []User
	for _, m := range d.transitiveLocked(strings.ToLower(groupID)) {
		if m.Type == TypeUser {
			out = append(out, *d.users[m.ID])
		}
	}
	return out
}

// NestedChain returns the group IDs of the generated nesting chain,
// outermost first, each group a direct member of the one before. When a
// test has broken the chain, it returns the part that still holds.
func (d *Directory) NestedChain() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []string
	for i, id := range d.chain {
		if _, ok := d.groups[id]; !ok {
			break
		}
		if i > 0 && !d.isMemberLocked(d.chain[i-1], id) {
			break
		}
		out = append(out, id)
	}
	return out
}

// CycleGroups returns the IDs of the groups that contain each other in
// the generated membership cycle (empty when there is none any more).
func (d *Directory) CycleGroups() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := len(d.cycle)
	if n < 2 {
		return nil
	}
	for i, id := range d.cycle {
		next := d.cycle[(i+1)%n]
		if _, ok := d.groups[id]; !ok || !d.isMemberLocked(id, next) {
			return nil
		}
	}
	return slices.Clone(d.cycle)
}

// AddUser adds a user and returns it as stored. An empty ID gets a fresh
// GUID, an empty UserType "Member", an empty UserPrincipalName one made
// from the names and the domain. It panics when the ID or the UPN is
// already taken: that is a mistake in the calling test.
func (d *Directory) AddUser(u User) User {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u.ID == "" {
		u.ID = randomGUID()
	}
	u.ID = strings.ToLower(u.ID)
	if u.UserType == "" {
		u.UserType = "Member"
	}
	if u.UserPrincipalName == "" {
		u.UserPrincipalName = d.freeUPNLocked(strings.ToLower(u.GivenName+"."+u.Surname)) + "@" + d.domain
	}
	if _, dup := d.users[u.ID]; dup {
		panic(fmt.Sprintf("graphsim: AddUser: id %s already exists", u.ID))
	}
	if _, dup := d.upns[strings.ToLower(u.UserPrincipalName)]; dup {
		panic(fmt.Sprintf("graphsim: AddUser: userPrincipalName %s already exists", u.UserPrincipalName))
	}
	d.insertUserLocked(&u)
	d.logLocked(Change{Kind: ChangeUser, ID: u.ID})
	d.applyDynamicLocked(&u)
	return u
}

// UpdateUser changes a user through f, which gets a copy; the ID cannot
// change. Dynamic groups are re-evaluated for the user.
func (d *Directory) UpdateUser(id string, f func(*User)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id = strings.ToLower(id)
	old, ok := d.users[id]
	if !ok {
		return fmt.Errorf("update user %s: %w", id, ErrNotFound)
	}
	u := *old
	f(&u)
	if u.ID != old.ID {
		return fmt.Errorf("update user %s: the id cannot change: %w", id, ErrInvalid)
	}
	if u.UserType != "Member" && u.UserType != "Guest" {
		return fmt.Errorf("update user %s: userType %q is neither Member nor Guest: %w", id, u.UserType, ErrInvalid)
	}
	newUPN, oldUPN := strings.ToLower(u.UserPrincipalName), strings.ToLower(old.UserPrincipalName)
	if newUPN == "" {
		return fmt.Errorf("update user %s: empty userPrincipalName: %w", id, ErrInvalid)
	}
	if newUPN != oldUPN {
		if _, taken := d.upns[newUPN]; taken {
			return fmt.Errorf("update user %s: userPrincipalName %s is taken: %w", id, u.UserPrincipalName, ErrInvalid)
		}
		delete(d.upns, oldUPN)
		d.upns[newUPN] = id
	}
	props := userDiff(old, &u)
	*old = u
	if len(props) > 0 {
		d.logLocked(Change{Kind: ChangeUser, ID: id, Props: props})
	}
	d.applyDynamicLocked(old)
	d.version++
	return nil
}

// DisableUser sets accountEnabled to false.
func (d *Directory) DisableUser(id string) error {
	return d.UpdateUser(id, func(u *User) { u.AccountEnabled = false })
}

// AddGroup adds a group and returns it as stored (an empty ID gets a
// fresh GUID). A dynamic group's members are computed from its rule when
// the rule is one the simulator understands (see README).
func (d *Directory) AddGroup(g Group) Group {
	d.mu.Lock()
	defer d.mu.Unlock()
	if g.ID == "" {
		g.ID = randomGUID()
	}
	g.ID = strings.ToLower(g.ID)
	if _, dup := d.groups[g.ID]; dup {
		panic(fmt.Sprintf("graphsim: AddGroup: id %s already exists", g.ID))
	}
	g.GroupTypes = slices.Clone(g.GroupTypes)
	if g.MailNickname == "" {
		g.MailNickname = nickname(g.DisplayName)
	}
	d.insertGroupLocked(&g)
	d.logLocked(Change{Kind: ChangeGroup, ID: g.ID})
	if isDynamic(&g) {
		if rule, err := parseRule(g.MembershipRule); err == nil {
			for _, uid := range d.userIDs {
				if rule.match(d.users[uid]) {
					d.members[g.ID] = append(d.members[g.ID], Member{ID: uid, Type: TypeUser})
				}
			}
		}
	}
	d.version++
	return cloneGroup(&g)
}

// AddMember adds an existing object to a group's direct members. Like
// Graph it refuses duplicates, a group in itself, members of a dynamic
// group, groups inside Microsoft 365 groups, and objects that do not exist.
func (d *Directory) AddMember(groupID string, m Member) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	groupID, m.ID = strings.ToLower(groupID), strings.ToLower(m.ID)
	g, ok := d.groups[groupID]
	if !ok {
		return fmt.Errorf("add member to group %s: group: %w", groupID, ErrNotFound)
	}
	if !d.existsLocked(m) {
		return fmt.Errorf("add member %s %s to group %s: %w", m.Type, m.ID, groupID, ErrNotFound)
	}
	switch {
	case m.ID == groupID:
		return fmt.Errorf("add group %s to itself: %w", groupID, ErrInvalid)
	case isDynamic(g):
		return fmt.Errorf("add member to group %s: its membership is dynamic: %w", groupID, ErrInvalid)
	case m.Type == TypeGroup && slices.Contains(g.GroupTypes, "Unified"):
		return fmt.Errorf("add group %s to group %s: Microsoft 365 groups cannot contain groups: %w", m.ID, groupID, ErrInvalid)
	case d.isMemberLocked(groupID, m.ID):
		return fmt.Errorf("add member %s to group %s: %w", m.ID, groupID, ErrAlreadyMember)
	}
	d.members[groupID] = insertMember(d.members[groupID], m)
	d.logMemberLocked(ChangeMemberAdded, groupID, m)
	return nil
}

// RemoveMember removes a direct member from a group.
func (d *Directory) RemoveMember(groupID, memberID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	groupID, memberID = strings.ToLower(groupID), strings.ToLower(memberID)
	if _, ok := d.groups[groupID]; !ok {
		return fmt.Errorf("remove member from group %s: group: %w", groupID, ErrNotFound)
	}
	ms := d.members[groupID]
	i, found := searchMember(ms, memberID)
	if !found {
		return fmt.Errorf("remove member %s from group %s: %w", memberID, groupID, ErrNotMember)
	}
	removed := ms[i]
	d.members[groupID] = slices.Delete(ms, i, i+1)
	d.logMemberLocked(ChangeMemberRemoved, groupID, removed)
	return nil
}

// AddDevice adds a device (an empty ID gets a fresh GUID).
func (d *Directory) AddDevice(dev Device) Device {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dev.ID == "" {
		dev.ID = randomGUID()
	}
	dev.ID = strings.ToLower(dev.ID)
	if _, dup := d.devices[dev.ID]; dup {
		panic(fmt.Sprintf("graphsim: AddDevice: id %s already exists", dev.ID))
	}
	d.devices[dev.ID] = &dev
	d.devIDs = insertSorted(d.devIDs, dev.ID)
	d.version++
	return dev
}

// AddContact adds an organisational contact (an empty ID gets a GUID).
func (d *Directory) AddContact(c OrgContact) OrgContact {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.ID == "" {
		c.ID = randomGUID()
	}
	c.ID = strings.ToLower(c.ID)
	if _, dup := d.contacts[c.ID]; dup {
		panic(fmt.Sprintf("graphsim: AddContact: id %s already exists", c.ID))
	}
	d.contacts[c.ID] = &c
	d.conIDs = insertSorted(d.conIDs, c.ID)
	d.version++
	return c
}

func (d *Directory) userCount() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.userIDs)
}

// Version is a counter that grows with every mutation; tests can use it
// to tell whether the directory changed.
func (d *Directory) Version() uint64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.version
}

// --- internals; callers hold d.mu ---

func (d *Directory) insertUserLocked(u *User) {
	d.users[u.ID] = u
	d.upns[strings.ToLower(u.UserPrincipalName)] = u.ID
	d.userIDs = insertSorted(d.userIDs, u.ID)
}

func (d *Directory) insertGroupLocked(g *Group) {
	d.groups[g.ID] = g
	d.groupIDs = insertSorted(d.groupIDs, g.ID)
}

// freeUPNLocked returns local, or local with the smallest number appended
// that is not yet taken in the domain.
func (d *Directory) freeUPNLocked(local string) string {
	local = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return -1
	}, local)
	local = strings.Trim(local, ".")
	if local == "" {
		local = "user"
	}
	candidate := local
	for n := 2; ; n++ {
		if _, taken := d.upns[candidate+"@"+d.domain]; !taken {
			return candidate
		}
		candidate = fmt.Sprintf("%s%d", local, n)
	}
}

func (d *Directory) existsLocked(m Member) bool {
	switch m.Type {
	case TypeUser:
		_, ok := d.users[m.ID]
		return ok
	case TypeGroup:
		_, ok := d.groups[m.ID]
		return ok
	case TypeDevice:
		_, ok := d.devices[m.ID]
		return ok
	case TypeOrgContact:
		_, ok := d.contacts[m.ID]
		return ok
	}
	return false
}

func (d *Directory) isMemberLocked(groupID, memberID string) bool {
	_, found := searchMember(d.members[groupID], memberID)
	return found
}

// dropMemberEverywhereLocked removes an object from every member list,
// logging each removal (in group ID order, so logs are reproducible).
func (d *Directory) dropMemberEverywhereLocked(id string) {
	for _, gid := range d.groupIDs {
		ms := d.members[gid]
		if i, found := searchMember(ms, id); found {
			removed := ms[i]
			d.members[gid] = slices.Delete(ms, i, i+1)
			d.logMemberLocked(ChangeMemberRemoved, gid, removed)
		}
	}
}

// applyDynamicLocked brings u's membership of every dynamic group with an
// understood rule in line with the rule. Entra evaluates rules
// asynchronously; here it happens at once so tests need not wait.
func (d *Directory) applyDynamicLocked(u *User) {
	for _, gid := range d.groupIDs {
		g := d.groups[gid]
		if !isDynamic(g) {
			continue
		}
		rule, err := parseRule(g.MembershipRule)
		if err != nil {
			continue
		}
		in := d.isMemberLocked(gid, u.ID)
		switch want := rule.match(u); {
		case want && !in:
			m := Member{ID: u.ID, Type: TypeUser}
			d.members[gid] = insertMember(d.members[gid], m)
			d.logMemberLocked(ChangeMemberAdded, gid, m)
		case !want && in:
			i, _ := searchMember(d.members[gid], u.ID)
			removed := d.members[gid][i]
			d.members[gid] = slices.Delete(d.members[gid], i, i+1)
			d.logMemberLocked(ChangeMemberRemoved, gid, removed)
		}
	}
}

// transitiveLocked returns the cached flattened membership of a group,
// computing it (breadth first, each group visited once) when the
// directory changed since the cache was filled. Callers hold d.mu for
// reading at least; the cache has its own lock because readers share it.
func (d *Directory) transitiveLocked(groupID string) []Member {
	d.cacheMu.Lock()
	if d.cacheVersion != d.version {
		d.transitive = map[string][]Member{}
		d.cacheVersion = d.version
	}
	if ms, ok := d.transitive[groupID]; ok {
		d.cacheMu.Unlock()
		return ms
	}
	d.cacheMu.Unlock()

	if _, ok := d.groups[groupID]; !ok {
		return nil
	}
	seen := map[string]struct{}{groupID: {}}
	var out []Member
	queue := []string{groupID}
	for len(queue) > 0 {
		gid := queue[0]
		queue = queue[1:]
		for _, m := range d.members[gid] {
			if _, dup := seen[m.ID]; dup {
				continue
			}
			seen[m.ID] = struct{}{}
			out = append(out, m)
			if m.Type == TypeGroup {
				queue = append(queue, m.ID)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })

	d.cacheMu.Lock()
	if d.cacheVersion == d.version {
		d.transitive[groupID] = out
	}
	d.cacheMu.Unlock()
	return out
}

func isDynamic(g *Group) bool { return slices.Contains(g.GroupTypes, "DynamicMembership") }

func cloneGroup(g *Group) Group {
	c := *g
	c.GroupTypes = slices.Clone(g.GroupTypes)
	if c.GroupTypes == nil {
		c.GroupTypes = []string{}
	}
	return c
}

func insertSorted(ids []string, id string) []string {
	i, _ := slices.BinarySearch(ids, id)
	return slices.Insert(ids, i, id)
}

func removeSorted(ids []string, id string) []string {
	if i, found := slices.BinarySearch(ids, id); found {
		return slices.Delete(ids, i, i+1)
	}
	return ids
}

func searchMember(ms []Member, id string) (int, bool) {
	return slices.BinarySearchFunc(ms, id, func(m Member, id string) int { return strings.Compare(m.ID, id) })
}

func insertMember(ms []Member, m Member) []Member {
	i, _ := searchMember(ms, m.ID)
	return slices.Insert(ms, i, m)
}

// randomGUID returns a random version 4 GUID, for objects tests add.
func randomGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return formatGUID(b)
}

func formatGUID(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// nickname derives a mail nickname from a display name: ASCII letters and
// digits only, as Graph's mailNickname rules allow.
func nickname(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "group"
	}
	s := b.String()
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}
