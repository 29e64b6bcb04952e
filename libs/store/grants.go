package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// Roles and sharing permissions through groups. A tenant's catalogue
// holds its custom roles and sharing permissions (the built-in roles
// always exist); an admin binds them to groups; the plan's grants pass
// gives each user what the groups it is in, directly or through nesting,
// are bound to, and takes back what they no longer are. Changing the
// catalogue or a binding changes nobody's grants at once: the next sync
// plans them, with reasons, through the deletion guard.

// ErrStillBound means a role or sharing permission cannot be deleted
// while a group binds it. It is also an ErrConflict.
var ErrStillBound = fmt.Errorf("%w: still bound to a group", ErrConflict)

// ErrBuiltin means a built-in role cannot be deleted. It is also an
// ErrConflict.
var ErrBuiltin = fmt.Errorf("%w: built-in role", ErrConflict)

// PutGrantName adds a custom role or sharing permission to a tenant's
// catalogue; created is false when it was there already (or is built
// in).
func (s *Store) PutGrantName(ctx context.Context, tenantID string, kind plan.GrantKind, name string) (created bool, err error) {
	if !isUUID(tenantID) {
		return false, fmt.Errorf("store: put %s of tenant %q: %w", kind, tenantID, ErrNotFound)
	}
	if err := plan.CheckGrantName(name); err != nil {
		return false, invalidf("%s", err)
	}
	if plan.IsBuiltin(kind, name) {
		return false, s.tenantExists(ctx, tenantID)
	}
	err = s.inTx(ctx, "put "+string(kind)+" "+name, func(q *dbsqlc.Queries) error {
		if err := lockTenant(ctx, q, tenantID, true); err != nil {
			return err
		}
		now := s.clock()
		n, err := q.UpsertGrantName(ctx, dbsqlc.UpsertGrantNameParams{TenantID: tenantID, Kind: string(kind), Name: name,
			At: now})
		if err != nil || n == 0 {
			return err
		}
		created = true
		action := ActivityAddRole
		if kind == plan.KindSharing {
			action = ActivityAddSharing
		}
		return recordActivity(ctx, q, tenantID, action, tenantID, nil, map[string]string{string(kind): name}, "", now)
	})
	return created, err
}

// DeleteGrantName removes a custom role or sharing permission: ErrNotFound
// when the catalogue has none by that name, ErrBuiltin for a built-in
// role, ErrStillBound (naming the groups) while a group binds it.
func (s *Store) DeleteGrantName(ctx context.Context, tenantID string, kind plan.GrantKind, name string) error {
	if !isUUID(tenantID) {
		return fmt.Errorf("store: delete %s of tenant %q: %w", kind, tenantID, ErrNotFound)
	}
	if plan.IsBuiltin(kind, name) {
		if err := s.tenantExists(ctx, tenantID); err != nil {
			return err
		}
		return fmt.Errorf("%w: the role %q is built in and cannot be deleted", ErrBuiltin, name)
	}
	return s.inTx(ctx, "delete "+string(kind)+" "+name, func(q *dbsqlc.Queries) error {
		if err := lockTenant(ctx, q, tenantID, true); err != nil {
			return err
		}
		bound, err := q.GrantNameBindings(ctx, dbsqlc.GrantNameBindingsParams{TenantID: tenantID, Kind: string(kind), Name: name})
		if err != nil {
			return err
		}
		if len(bound) > 0 {
			names := make([]string, len(bound))
			for i, b := range bound {
				names[i] = b.GroupID
				if b.DisplayName != "" {
					names[i] = fmt.Sprintf("%q (%s)", b.DisplayName, b.GroupID)
				}
			}
			return fmt.Errorf("%w: the %s %q is still bound to %s; unbind it first (PATCH .../groups/{entraId})",
				ErrStillBound, kind, name, strings.Join(names, ", "))
		}
		n, err := q.DeleteGrantName(ctx, dbsqlc.DeleteGrantNameParams{TenantID: tenantID, Kind: string(kind), Name: name})
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("store: delete %s %q: %w", kind, name, ErrNotFound)
		}
		action := ActivityDeleteRole
		if kind == plan.KindSharing {
			action = ActivityDeleteSharing
		}
		return recordActivity(ctx, q, tenantID, action, tenantID, map[string]string{string(kind): name}, nil, "", s.clock())
	})
}

// GroupGrants is what a group is bound to, with its kind, status and
// switch.
type GroupGrants struct {
	EntraID     string
	DisplayName string
	Kind        string
	Status      string
	// Enabled is the group's own switch (false: an admin disabled it).
	Enabled bool
	Roles   []string
	Sharing []string
}

// GroupBindingPatch replaces a group's roles or sharing permissions, and
// switches it on or off; nil members stay as they are.
type GroupBindingPatch struct {
	Roles   *[]string
	Sharing *[]string
	Enabled *bool
}

// UnknownGrantError names a role or sharing permission the tenant's
// catalogue does not have, by its place in the request ("roles[1]").
type UnknownGrantError struct {
	Field string
	Kind  plan.GrantKind
	Name  string
}

func (e *UnknownGrantError) Error() string {
	return fmt.Sprintf("%s: the %s %q is not in the tenant's catalogue (PUT it first)", e.Field, e.Kind, e.Name)
}

// Unwrap makes it an ErrInvalid.
func (e *UnknownGrantError) Unwrap() error { return ErrInvalid }

// GetGroupGrants returns what a group of the app is bound to, or
// ErrNotFound.
func (s *Store) GetGroupGrants(ctx context.Context, tenantID, groupID string) (GroupGrants, error) {
	if !isUUID(tenantID) {
		return GroupGrants{}, fmt.Errorf("store: get group of tenant %q: %w", tenantID, ErrNotFound)
	}
	return groupGrants(ctx, s.q, tenantID, groupID)
}

func groupGrants(ctx context.Context, q *dbsqlc.Queries, tenantID, groupID string) (GroupGrants, error) {
	g, err := q.AppGroupState(ctx, dbsqlc.AppGroupStateParams{TenantID: tenantID, EntraID: groupID})
	if err != nil {
		return GroupGrants{}, translate(err, "get group "+groupID)
	}
	rows, err := q.GroupBindings(ctx, dbsqlc.GroupBindingsParams{TenantID: tenantID, GroupID: groupID})
	if err != nil {
		return GroupGrants{}, translate(err, "get group bindings "+groupID)
	}
	out := GroupGrants{EntraID: g.EntraID, DisplayName: g.DisplayName, Kind: g.Kind, Status: g.Status,
		Enabled: !g.SwitchedOff, Roles: []string{}, Sharing: []string{}}
	for _, r := range rows {
		if r.Kind == string(plan.KindSharing) {
			out.Sharing = append(out.Sharing, r.Name)
		} else {
			out.Roles = append(out.Roles, r.Name)
		}
	}
	return out, nil
}

// UpdateGroupGrants binds roles and sharing permissions to a group of the
// app, under the tenant's lock. Every name must be a built-in role or in
// the catalogue (an *UnknownGrantError otherwise, and nothing changes).
// Enabled switches the group on or off (setEnabled; ErrGroupState when its
// status or kind forbids it, and nothing changes). A change bumps the app
// side's version, so that plans held before it go stale; users' grants
// and memberships change at the next sync.
func (s *Store) UpdateGroupGrants(ctx context.Context, tenantID, groupID string, p GroupBindingPatch) (GroupGrants, error) {
	if !isUUID(tenantID) {
		return GroupGrants{}, fmt.Errorf("store: update group of tenant %q: %w", tenantID, ErrNotFound)
	}
	var out GroupGrants
	err := s.inTx(ctx, "update group "+groupID, func(q *dbsqlc.Queries) error {
		if err := lockTenant(ctx, q, tenantID, true); err != nil {
			return err
		}
		g, err := q.AppGroupState(ctx, dbsqlc.AppGroupStateParams{TenantID: tenantID, EntraID: groupID})
		if err != nil {
			return err
		}
		if p.Enabled != nil {
			if _, err := setEnabled(ctx, q, tenantID, g, *p.Enabled, s); err != nil {
				return err
			}
		}
		was, err := groupGrants(ctx, q, tenantID, groupID)
		if err != nil {
			return err
		}
		now := s.clock()
		changed := false
		for _, part := range []struct {
			kind  plan.GrantKind
			field string
			names *[]string
		}{{plan.KindRole, "roles", p.Roles}, {plan.KindSharing, "sharing", p.Sharing}} {
			if part.names == nil {
				continue
			}
			if err := knownNames(ctx, q, tenantID, part.kind, part.field, *part.names); err != nil {
				return err
			}
			// A set: a name given twice is bound once; none is an empty
			// list, never NULL.
			names := slices.Compact(slices.Sorted(slices.Values(*part.names)))
			if names == nil {
				names = []string{}
			}
			part.names = &names
			n, err := q.DropGroupBindings(ctx, dbsqlc.DropGroupBindingsParams{TenantID: tenantID, GroupID: groupID,
				Kind: string(part.kind), Names: *part.names})
			if err != nil {
				return err
			}
			m, err := q.AddGroupBindings(ctx, dbsqlc.AddGroupBindingsParams{TenantID: tenantID, GroupID: groupID,
				Kind: string(part.kind), Names: *part.names, At: now})
			if err != nil {
				return err
			}
			changed = changed || n > 0 || m > 0
		}
		if out, err = groupGrants(ctx, q, tenantID, groupID); err != nil || !changed {
			return err
		}
		before, after := map[string][]string{}, map[string][]string{}
		if !slices.Equal(was.Roles, out.Roles) {
			before["roles"], after["roles"] = was.Roles, out.Roles
		}
		if !slices.Equal(was.Sharing, out.Sharing) {
			before["sharing"], after["sharing"] = was.Sharing, out.Sharing
		}
		if err := recordActivity(ctx, q, tenantID, ActivityBindGroup, groupID, before, after, "", now); err != nil {
			return err
		}
		if err := q.MarkGroupDirty(ctx, dbsqlc.MarkGroupDirtyParams{TenantID: tenantID, GroupID: groupID}); err != nil {
			return err
		}
		return q.AppChanged(ctx, dbsqlc.AppChangedParams{TenantID: tenantID, At: now,
			Change: fmt.Sprintf("the roles or sharing permissions of group %s (%s) were changed through the API",
				g.DisplayName, groupID)})
	})
	return out, err
}

// knownNames checks that each name is a built-in role or in the tenant's
// catalogue of kind.
func knownNames(ctx context.Context, q *dbsqlc.Queries, tenantID string, kind plan.GrantKind, field string, names []string) error {
	rows, err := q.GrantNames(ctx, dbsqlc.GrantNamesParams{TenantID: tenantID, Names: names})
	if err != nil {
		return err
	}
	for i, n := range names {
		known := plan.IsBuiltin(kind, n) || slices.ContainsFunc(rows, func(r dbsqlc.GrantNamesRow) bool {
			return r.Kind == string(kind) && r.Name == n
		})
		if !known {
			return &UnknownGrantError{Field: fmt.Sprintf("%s[%d]", field, i), Kind: kind, Name: n}
		}
	}
	return nil
}

// Grant is one role or sharing permission a user holds, and how: Via is
// nil for a direct role, else the path of groups from one of the user's
// own groups up to the bound group, as the mirror has it now (empty when
// the mirror no longer leads there: the next sync revokes it).
type Grant struct {
	Kind plan.GrantKind
	Name string
	Via  []plan.GroupRef
}

// UserGrants lists what an app user holds: direct roles, then for each
// role and sharing permission held through groups one grant per bound
// group the user is in, shortest path first. The paths are found on read,
// breadth first over the mirror's group edges from the user's own groups
// (cycles end), so they always describe the directory as last synced.
func (s *Store) UserGrants(ctx context.Context, tenantID, userID string) ([]Grant, error) {
	if _, err := s.GetAppUser(ctx, tenantID, userID); err != nil {
		return nil, err
	}
	direct, err := s.q.UserDirectRoles(ctx, dbsqlc.UserDirectRolesParams{TenantID: tenantID, UserID: userID})
	if err != nil {
		return nil, translate(err, "user roles")
	}
	out := []Grant{}
	for _, r := range direct {
		out = append(out, Grant{Kind: plan.KindRole, Name: r})
	}
	held, err := s.q.UserGroupGrants(ctx, dbsqlc.UserGroupGrantsParams{TenantID: tenantID, UserID: userID})
	if err != nil {
		return nil, translate(err, "user grants")
	}
	if len(held) == 0 {
		return out, nil
	}
	edges, err := s.q.UserGroupAncestry(ctx, dbsqlc.UserGroupAncestryParams{TenantID: tenantID, UserID: userID})
	if err != nil {
		return nil, translate(err, "user groups")
	}
	g := plan.NewGroupGraph()
	var own []string
	for _, e := range edges {
		g.Name(e.ParentID, e.ParentName)
		if e.ChildID == "" {
			own = append(own, e.ParentID)
		} else {
			g.AddEdge(e.ParentID, e.ChildID)
		}
	}
	for _, h := range held {
		paths := g.Paths(own, h.Bound)
		if len(paths) == 0 {
			out = append(out, Grant{Kind: plan.GrantKind(h.Kind), Name: h.Name, Via: []plan.GroupRef{}})
		}
		for _, p := range paths {
			out = append(out, Grant{Kind: plan.GrantKind(h.Kind), Name: h.Name, Via: p})
		}
	}
	return out, nil
}

// grants is the plan's grants pass, after the memberships pass: what the
// bindings give the users the app keeps through their nested memberships
// (plan_work_members), against what they hold through groups, merged in
// (user, kind, name) order through plan.DecideGrant. The group graph for
// the reasons' paths is read only when some binding gives something.
func (p *planner) grants() error {
	if err := p.flush(); err != nil {
		return err
	}
	// A tenant that binds no grant to a group, and whose users hold none
	// through one, gets no grant item from this pass: skip it, and the
	// grantees it would write first (in a full plan every user the plan
	// touches; 100k users: a second).
	if has, err := p.q.TenantHasGrants(p.ctx, p.tenant); err != nil || !has {
		return err
	}
	if err := p.q.PlanAffectGrantees(p.ctx, dbsqlc.PlanAffectGranteesParams{TenantID: p.tenant, RunID: p.run}); err != nil {
		return fmt.Errorf("affected grantees: %w", err)
	}
	if err := p.q.Analyze(p.ctx, "plan_work_affected"); err != nil {
		return err
	}
	var graph *plan.GroupGraph
	loadGraph := func() error {
		graph = plan.NewGroupGraph()
		err := scanCursor(p, "plan_group_edges", func(q *dbsqlc.Queries) ([]dbsqlc.PlanGroupEdgesRow, error) {
			return q.PlanGroupEdges(p.ctx, p.tenant)
		}, func(r dbsqlc.PlanGroupEdgesRow) error {
			graph.AddEdge(r.ParentID, r.ChildID)
			return nil
		})
		if err != nil {
			return err
		}
		return scanCursor(p, "plan_group_names", func(q *dbsqlc.Queries) ([]dbsqlc.PlanGroupNamesRow, error) {
			return q.PlanGroupNames(p.ctx, p.tenant)
		}, func(r dbsqlc.PlanGroupNamesRow) error {
			graph.Name(r.EntraID, r.DisplayName)
			return nil
		})
	}
	wantQ, heldQ := p.q.Cursor("plan_wanted_grants", planChunk), p.q.Cursor("plan_held_grants", planChunk)
	wanted := &chunks[dbsqlc.PlanWantedGrantsRow]{fetch: func() ([]dbsqlc.PlanWantedGrantsRow, error) {
		return wantQ.PlanWantedGrants(p.ctx, dbsqlc.PlanWantedGrantsParams{TenantID: p.tenant, RunID: p.run})
	}}
	held := &chunks[dbsqlc.PlanHeldGrantsRow]{fetch: func() ([]dbsqlc.PlanHeldGrantsRow, error) {
		return heldQ.PlanHeldGrants(p.ctx, dbsqlc.PlanHeldGrantsParams{TenantID: p.tenant, RunID: p.run})
	}}
	key := func(user, kind, name string) string { return user + "\x00" + kind + "\x00" + name }
	err := merge(wanted, held, func(w dbsqlc.PlanWantedGrantsRow) string { return key(w.UserID, w.Kind, w.Name) },
		func(h dbsqlc.PlanHeldGrantsRow) string { return key(h.UserID, h.Kind, h.Name) },
		func(w *dbsqlc.PlanWantedGrantsRow, h *dbsqlc.PlanHeldGrantsRow) error {
			var f plan.GrantFacts
			if h != nil {
				f = plan.GrantFacts{UserID: h.UserID, UserName: h.UserName, Kind: plan.GrantKind(h.Kind), Name: h.Name,
					Held: true, HeldGroup: plan.GroupRef{ID: h.GroupID, Name: h.GroupName}, UserStays: h.UserStays,
					HeldGroupBinds: h.GroupBinds, HeldGroupStays: h.GroupStays, HeldGroupOrphaned: h.GroupOrphaned}
			}
			if w != nil {
				f.UserID, f.UserName, f.Kind, f.Name, f.UserStays = w.UserID, w.UserName, plan.GrantKind(w.Kind), w.Name, true
				if h == nil { // a grant held already needs no path: nothing is emitted for it
					if graph == nil {
						if err := loadGraph(); err != nil {
							return fmt.Errorf("group graph: %w", err)
						}
					}
					if f.Via = firstPath(graph.Paths(w.Direct, w.Bound)); f.Via == nil {
						// The walk and the memberships pass read the same
						// edges; should they ever differ, the grant still
						// goes, named by its bound group.
						f.Via = []plan.GroupRef{{ID: w.Bound[0], Name: graph.NameOf(w.Bound[0])}}
					}
				} else {
					f.Via = []plan.GroupRef{{ID: w.Bound[0]}} // wanted: kept as it is
				}
			}
			return p.emitIf(plan.DecideGrant(f))
		})
	return errors.Join(err, wantQ.CloseCursor(p.ctx), heldQ.CloseCursor(p.ctx))
}

// firstPath is the shortest of paths, nil when there is none.
func firstPath(paths [][]plan.GroupRef) []plan.GroupRef {
	if len(paths) == 0 {
		return nil
	}
	return paths[0]
}
