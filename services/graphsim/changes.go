package graphsim

import (
	"fmt"
	"slices"
	"strings"
)

// ChangeKind says what one entry of a Directory's change log records.
type ChangeKind uint8

// The kinds of change the log records. Users and groups are tracked (the
// collections Graph serves delta queries for); devices and contacts are
// not.
const (
	ChangeUser          ChangeKind = iota + 1 // a user created, updated or restored
	ChangeUserDeleted                         // a user soft-deleted (restorable)
	ChangeUserPurged                          // a user deleted for good
	ChangeGroup                               // a group created, updated or restored
	ChangeGroupDeleted                        // a Microsoft 365 group soft-deleted (restorable)
	ChangeGroupPurged                         // a group deleted for good
	ChangeMemberAdded                         // a direct member added to a group
	ChangeMemberRemoved                       // a direct member removed from a group
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeUser:
		return "user"
	case ChangeUserDeleted:
		return "userDeleted"
	case ChangeUserPurged:
		return "userPurged"
	case ChangeGroup:
		return "group"
	case ChangeGroupDeleted:
		return "groupDeleted"
	case ChangeGroupPurged:
		return "groupPurged"
	case ChangeMemberAdded:
		return "memberAdded"
	case ChangeMemberRemoved:
		return "memberRemoved"
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// Change is one entry of a Directory's change log. Seq grows by one with
// every entry. ID is the user or group; for member changes it is the
// group and Member the member. Props are the Graph properties an update
// changed; nil for an object created or restored (all of them).
type Change struct {
	Seq    uint64
	Kind   ChangeKind
	ID     string
	Member Member
	Props  []string
}

// Seq is the sequence number of the newest change (0 before any).
func (d *Directory) Seq() uint64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.seq
}

// Changes returns the change log after sequence number since, oldest first.
func (d *Directory) Changes(since uint64) []Change {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := slices.Clone(d.changesAfterLocked(since, d.seq))
	for i := range out {
		out[i].Props = slices.Clone(out[i].Props)
	}
	return out
}

// changesAfterLocked is the log in (from, to]; the log is dense, so the
// entry with sequence n sits at index n-1.
func (d *Directory) changesAfterLocked(from, to uint64) []Change {
	to = min(to, uint64(len(d.log)))
	if from >= to {
		return nil
	}
	return d.log[from:to]
}

func (d *Directory) logLocked(c Change) {
	d.seq++
	c.Seq = d.seq
	d.log = append(d.log, c)
	d.version++
}

func (d *Directory) logMemberLocked(kind ChangeKind, groupID string, m Member) {
	d.logLocked(Change{Kind: kind, ID: groupID, Member: m})
}

// userDiff names the Graph properties that differ between two versions of
// a user, derived properties included (mail → proxyAddresses, ...).
func userDiff(a, b *User) []string {
	var out []string
	add := func(changed bool, names ...string) {
		if changed {
			out = append(out, names...)
		}
	}
	add(a.DisplayName != b.DisplayName, "displayName")
	add(a.GivenName != b.GivenName, "givenName")
	add(a.Surname != b.Surname, "surname")
	add(a.Mail != b.Mail, "mail", "proxyAddresses")
	add(a.UserPrincipalName != b.UserPrincipalName, "userPrincipalName", "mailNickname")
	add(a.JobTitle != b.JobTitle, "jobTitle")
	add(a.Department != b.Department, "department")
	add(a.UserType != b.UserType, "userType", "creationType", "externalUserState")
	add(a.AccountEnabled != b.AccountEnabled, "accountEnabled")
	add(a.OfficeLocation != b.OfficeLocation, "officeLocation")
	add(a.MobilePhone != b.MobilePhone, "mobilePhone")
	add(a.PreferredLanguage != b.PreferredLanguage, "preferredLanguage")
	return out
}

func groupDiff(a, b *Group) []string {
	var out []string
	add := func(changed bool, names ...string) {
		if changed {
			out = append(out, names...)
		}
	}
	add(a.DisplayName != b.DisplayName, "displayName")
	add(a.Description != b.Description, "description")
	add(a.Mail != b.Mail, "mail", "proxyAddresses")
	add(a.MailNickname != b.MailNickname, "mailNickname")
	add(a.SecurityEnabled != b.SecurityEnabled, "securityEnabled")
	add(a.MailEnabled != b.MailEnabled, "mailEnabled")
	add(a.Visibility != b.Visibility, "visibility")
	return out
}

// deletedUser is a soft-deleted user with the groups it was a direct
// member of, which a restore gives back.
type deletedUser struct {
	user     User
	memberOf []string
}

// deletedGroup is a soft-deleted Microsoft 365 group with its direct
// members.
type deletedGroup struct {
	group   Group
	members []Member
}

// DeletedUsers returns the soft-deleted (restorable) users, sorted by ID.
func (d *Directory) DeletedUsers() []User {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]User, len(d.delUserIDs))
	for i, id := range d.delUserIDs {
		out[i] = d.deletedUsers[id].user
	}
	return out
}

// DeletedGroups returns the soft-deleted (restorable) groups, sorted by ID.
func (d *Directory) DeletedGroups() []Group {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]Group, len(d.delGroupIDs))
	for i, id := range d.delGroupIDs {
		out[i] = cloneGroup(&d.deletedGroups[id].group)
	}
	return out
}

// DeleteUser deletes a user the way Entra ID does: softly. The user
// leaves /users and every member list, and waits in the deleted items,
// from where RestoreUser brings it back with its direct memberships and
// PurgeUser removes it for good. Its userPrincipalName stays taken until
// then. A delta query reports it with "@removed": {"reason": "changed"}.
func (d *Directory) DeleteUser(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id = strings.ToLower(id)
	u, ok := d.users[id]
	if !ok {
		return fmt.Errorf("delete user %s: %w", id, ErrNotFound)
	}
	du := &deletedUser{user: *u, memberOf: d.memberOfLocked(id)}
	delete(d.users, id)
	d.userIDs = removeSorted(d.userIDs, id)
	d.dropMemberEverywhereLocked(id)
	d.deletedUsers[id] = du
	d.delUserIDs = insertSorted(d.delUserIDs, id)
	d.logLocked(Change{Kind: ChangeUserDeleted, ID: id})
	return nil
}

// RestoreUser brings a soft-deleted user back, with its direct
// memberships of groups that still exist (dynamic groups follow their
// rules). A delta query reports it as a new user.
func (d *Directory) RestoreUser(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id = strings.ToLower(id)
	du, ok := d.deletedUsers[id]
	if !ok {
		return fmt.Errorf("restore user %s: no such deleted user: %w", id, ErrNotFound)
	}
	delete(d.deletedUsers, id)
	d.delUserIDs = removeSorted(d.delUserIDs, id)
	u := du.user
	d.insertUserLocked(&u)
	d.logLocked(Change{Kind: ChangeUser, ID: id})
	m := Member{ID: id, Type: TypeUser}
	for _, gid := range du.memberOf {
		if g, ok := d.groups[gid]; ok && !isDynamic(g) && !d.isMemberLocked(gid, id) {
			d.members[gid] = insertMember(d.members[gid], m)
			d.logMemberLocked(ChangeMemberAdded, gid, m)
		}
	}
	d.applyDynamicLocked(&u)
	return nil
}

// PurgeUser deletes a user for good, whether active or soft-deleted; its
// userPrincipalName becomes free. A delta query reports it with
// "@removed": {"reason": "deleted"}.
func (d *Directory) PurgeUser(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id = strings.ToLower(id)
	var upn string
	switch u, du := d.users[id], d.deletedUsers[id]; {
	case u != nil:
		upn = u.UserPrincipalName
		delete(d.users, id)
		d.userIDs = removeSorted(d.userIDs, id)
		d.dropMemberEverywhereLocked(id)
	case du != nil:
		upn = du.user.UserPrincipalName
		delete(d.deletedUsers, id)
		d.delUserIDs = removeSorted(d.delUserIDs, id)
	default:
		return fmt.Errorf("purge user %s: %w", id, ErrNotFound)
	}
	delete(d.upns, strings.ToLower(upn))
	d.logLocked(Change{Kind: ChangeUserPurged, ID: id})
	return nil
}

// DeleteGroup deletes a group the way Entra ID does: a Microsoft 365
// group is soft-deleted (restorable with RestoreGroup, its members kept
// aside; delta "@removed" reason "changed"), any other group is deleted
// for good (reason "deleted"). Either way it leaves /groups and the
// member lists of the groups it belonged to.
func (d *Directory) DeleteGroup(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id = strings.ToLower(id)
	g, ok := d.groups[id]
	if !ok {
		return fmt.Errorf("delete group %s: %w", id, ErrNotFound)
	}
	soft := slices.Contains(g.GroupTypes, "Unified")
	members := d.members[id]
	delete(d.groups, id)
	delete(d.members, id)
	d.groupIDs = removeSorted(d.groupIDs, id)
	d.dropMemberEverywhereLocked(id)
	if !soft {
		d.logLocked(Change{Kind: ChangeGroupPurged, ID: id})
		return nil
	}
	d.deletedGroups[id] = &deletedGroup{group: cloneGroup(g), members: members}
	d.delGroupIDs = insertSorted(d.delGroupIDs, id)
	d.logLocked(Change{Kind: ChangeGroupDeleted, ID: id})
	return nil
}

// RestoreGroup brings a soft-deleted Microsoft 365 group back with those
// of its direct members that still exist. A delta query reports it as a
// new group.
func (d *Directory) RestoreGroup(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id = strings.ToLower(id)
	dg, ok := d.deletedGroups[id]
	if !ok {
		return fmt.Errorf("restore group %s: no such deleted group: %w", id, ErrNotFound)
	}
	delete(d.deletedGroups, id)
	d.delGroupIDs = removeSorted(d.delGroupIDs, id)
	g := dg.group
	d.insertGroupLocked(&g)
	var ms []Member
	for _, m := range dg.members {
		if d.existsLocked(m) {
			ms = append(ms, m)
		}
	}
	if len(ms) > 0 {
		d.members[id] = ms
	}
	d.logLocked(Change{Kind: ChangeGroup, ID: id})
	return nil
}

// PurgeGroup deletes a soft-deleted group for good (a group that is not
// soft-deleted is deleted with DeleteGroup).
func (d *Directory) PurgeGroup(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id = strings.ToLower(id)
	if _, ok := d.deletedGroups[id]; !ok {
		return fmt.Errorf("purge group %s: no such deleted group: %w", id, ErrNotFound)
	}
	delete(d.deletedGroups, id)
	d.delGroupIDs = removeSorted(d.delGroupIDs, id)
	d.logLocked(Change{Kind: ChangeGroupPurged, ID: id})
	return nil
}

// UpdateGroup changes a group through f, which gets a copy. The ID, the
// group types and the membership rule cannot change (the simulator does
// not model a group changing kind).
func (d *Directory) UpdateGroup(id string, f func(*Group)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	id = strings.ToLower(id)
	old, ok := d.groups[id]
	if !ok {
		return fmt.Errorf("update group %s: %w", id, ErrNotFound)
	}
	g := cloneGroup(old)
	f(&g)
	switch {
	case g.ID != old.ID:
		return fmt.Errorf("update group %s: the id cannot change: %w", id, ErrInvalid)
	case !slices.Equal(nonNil(g.GroupTypes), nonNil(old.GroupTypes)) || g.MembershipRule != old.MembershipRule:
		return fmt.Errorf("update group %s: groupTypes and membershipRule cannot change: %w", id, ErrInvalid)
	}
	props := groupDiff(old, &g)
	*old = g
	if len(props) > 0 {
		d.logLocked(Change{Kind: ChangeGroup, ID: id, Props: props})
	}
	return nil
}

// memberOfLocked lists the groups an object is a direct member of.
func (d *Directory) memberOfLocked(id string) []string {
	var out []string
	for _, gid := range d.groupIDs {
		if d.isMemberLocked(gid, id) {
			out = append(out, gid)
		}
	}
	return out
}
