package store

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// A group's status as admins change it. A group is enabled, disabled or
// orphaned (plan.StatusEnabled, ...): syncs move it by the tenant's
// `groups` setting and by what Entra ID still has (plan.DecideGroup), and
// an admin switches one group off or on, archives it (orphaned) or deletes
// a group that is not enabled. Each change takes the new status at once
// and bumps the app side's version (held plans go stale); what members
// hold through the group follows at the next sync, through its plan: each
// change marks the group dirty, so that the plan recomputes its members.
// Local groups are the admins' own: created here, never touched by a
// sync, deleted here.

// ErrGroupState means a group's status forbids the change (enabling an
// orphaned group, deleting an enabled one, ...). It is also an
// ErrConflict; the message says why.
var ErrGroupState = fmt.Errorf("%w: group status", ErrConflict)

// MaxGroupNameLen bounds a local group's display name.
const MaxGroupNameLen = 256

// Activity actions of a group's status.
const (
	ActivityEnableGroup      = "enableGroup"
	ActivityDisableGroup     = "disableGroup"
	ActivityArchiveGroup     = "archiveGroup"
	ActivityDeleteGroup      = "deleteGroup"
	ActivityCreateLocalGroup = "createLocalGroup"
)

// setEnabled switches one group on or off under the tenant's lock; it
// returns whether anything changed. Enabling needs its kind synced or the
// group included (plan.CanEnable); orphaned and local groups have no
// switch.
func setEnabled(ctx context.Context, q *dbsqlc.Queries, tenantID string, g dbsqlc.AppGroupStateRow, enabled bool, s *Store) (bool, error) {
	switch {
	case g.Kind == plan.KindLocal && enabled:
		return false, nil
	case g.Kind == plan.KindLocal:
		return false, fmt.Errorf("%w: enabled: a local group cannot be disabled; delete it instead", ErrGroupState)
	case g.Status == plan.StatusOrphaned:
		return false, fmt.Errorf("%w: enabled: the group is orphaned (deleted in Entra ID or archived); it can only be deleted",
			ErrGroupState)
	}
	status := plan.StatusDisabled
	if enabled {
		t, err := q.GetTenant(ctx, tenantID)
		if err != nil {
			return false, err
		}
		settings, err := parseSettings(t.Settings, int(t.Seats), 0)
		if err != nil {
			return false, err
		}
		if err := plan.CanEnable(settings.Groups, plan.AppGroup{EntraID: g.EntraID, Kind: g.Kind, Status: g.Status}); err != nil {
			return false, fmt.Errorf("%w: enabled: %s", ErrGroupState, err)
		}
		status = plan.StatusEnabled
	}
	if g.Status == status && g.SwitchedOff == !enabled {
		return false, nil
	}
	now := s.clock()
	if err := q.SetGroupState(ctx, dbsqlc.SetGroupStateParams{TenantID: tenantID, EntraID: g.EntraID, Status: status,
		SwitchedOff: !enabled, At: now}); err != nil {
		return false, err
	}
	action := ActivityDisableGroup
	if enabled {
		action = ActivityEnableGroup
	}
	if err := recordActivity(ctx, q, tenantID, action, g.EntraID, map[string]string{"status": g.Status},
		map[string]string{"status": status}, "", now); err != nil {
		return false, err
	}
	if err := q.MarkGroupDirty(ctx, dbsqlc.MarkGroupDirtyParams{TenantID: tenantID, GroupID: g.EntraID}); err != nil {
		return false, err
	}
	return true, q.AppChanged(ctx, dbsqlc.AppChangedParams{TenantID: tenantID, At: now,
		Change: fmt.Sprintf("group %s (%s) was %s through the API", g.DisplayName, g.EntraID, map[bool]string{true: "enabled", false: "disabled"}[enabled])})
}

// ArchiveGroup makes a group orphaned: kept, no longer updated, granting
// nothing (the next sync revokes what it gave, through its plan). An
// orphaned group stays so; a local group cannot be archived (delete it).
func (s *Store) ArchiveGroup(ctx context.Context, tenantID, groupID string) (GroupGrants, error) {
	if !isUUID(tenantID) {
		return GroupGrants{}, fmt.Errorf("store: archive group of tenant %q: %w", tenantID, ErrNotFound)
	}
	var out GroupGrants
	err := s.inTx(ctx, "archive group "+groupID, func(q *dbsqlc.Queries) error {
		if err := lockTenant(ctx, q, tenantID, true); err != nil {
			return err
		}
		g, err := q.AppGroupState(ctx, dbsqlc.AppGroupStateParams{TenantID: tenantID, EntraID: groupID})
		if err != nil {
			return err
		}
		if g.Kind == plan.KindLocal {
			return fmt.Errorf("%w: a local group cannot be archived; delete it instead", ErrGroupState)
		}
		if g.Status != plan.StatusOrphaned {
			now := s.clock()
			if err := q.SetGroupState(ctx, dbsqlc.SetGroupStateParams{TenantID: tenantID, EntraID: groupID,
				Status: plan.StatusOrphaned, SwitchedOff: g.SwitchedOff, At: now}); err != nil {
				return err
			}
			if err := recordActivity(ctx, q, tenantID, ActivityArchiveGroup, groupID, map[string]string{"status": g.Status},
				map[string]string{"status": plan.StatusOrphaned}, "", now); err != nil {
				return err
			}
			if err := q.MarkGroupDirty(ctx, dbsqlc.MarkGroupDirtyParams{TenantID: tenantID, GroupID: groupID}); err != nil {
				return err
			}
			if err := q.AppChanged(ctx, dbsqlc.AppChangedParams{TenantID: tenantID, At: now,
				Change: fmt.Sprintf("group %s (%s) was archived through the API", g.DisplayName, groupID)}); err != nil {
				return err
			}
		}
		out, err = groupGrants(ctx, q, tenantID, groupID)
		return err
	})
	return out, err
}

// DeleteGroup takes a disabled, orphaned or local group out of the app,
// with its memberships and bindings (never anything in Entra ID); an
// enabled group synced from Entra ID is refused with ErrGroupState. What
// users held through it is revoked at the next sync, through its plan.
// No sync brings the group back unless groups.include lists it.
func (s *Store) DeleteGroup(ctx context.Context, tenantID, groupID string) error {
	if !isUUID(tenantID) {
		return fmt.Errorf("store: delete group of tenant %q: %w", tenantID, ErrNotFound)
	}
	return s.inTx(ctx, "delete group "+groupID, func(q *dbsqlc.Queries) error {
		if err := lockTenant(ctx, q, tenantID, true); err != nil {
			return err
		}
		g, err := q.AppGroupState(ctx, dbsqlc.AppGroupStateParams{TenantID: tenantID, EntraID: groupID})
		if err != nil {
			return err
		}
		if g.Status == plan.StatusEnabled && g.Kind != plan.KindLocal {
			return fmt.Errorf("%w: the group is enabled, and the next sync would bring it back; disable it "+
				"(PATCH {\"enabled\": false}) or archive it first", ErrGroupState)
		}
		ids := dbsqlc.DeleteGroupMembersParams{TenantID: tenantID, GroupID: groupID}
		if err := q.DeleteGroupMembers(ctx, ids); err != nil {
			return err
		}
		if err := q.DeleteGroupBindings(ctx, dbsqlc.DeleteGroupBindingsParams(ids)); err != nil {
			return err
		}
		if err := q.DeleteAppGroup(ctx, dbsqlc.DeleteAppGroupParams{TenantID: tenantID, EntraID: groupID}); err != nil {
			return err
		}
		now := s.clock()
		if g.Kind != plan.KindLocal {
			if err := q.ExcludeGroup(ctx, dbsqlc.ExcludeGroupParams{TenantID: tenantID, EntraID: groupID, At: now}); err != nil {
				return err
			}
		}
		if err := recordActivity(ctx, q, tenantID, ActivityDeleteGroup, groupID,
			map[string]string{"displayName": g.DisplayName, "kind": g.Kind, "status": g.Status}, nil, "", now); err != nil {
			return err
		}
		if err := q.MarkGroupDirty(ctx, dbsqlc.MarkGroupDirtyParams{TenantID: tenantID, GroupID: groupID}); err != nil {
			return err
		}
		return q.AppChanged(ctx, dbsqlc.AppChangedParams{TenantID: tenantID, At: now,
			Change: fmt.Sprintf("group %s (%s) was deleted through the API", g.DisplayName, groupID)})
	})
}

// CheckGroupName says why name cannot name a local group, or returns nil.
func CheckGroupName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return fmt.Errorf("displayName is blank")
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("displayName starts or ends with a space")
	case len([]rune(name)) > MaxGroupNameLen:
		return fmt.Errorf("displayName is longer than %d characters", MaxGroupNameLen)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("displayName has a control character")
	}
	return nil
}

// CreateLocalGroup adds a local group (kind local, enabled) with a new
// id; no sync changes or removes it.
func (s *Store) CreateLocalGroup(ctx context.Context, tenantID, displayName string) (GroupGrants, error) {
	if !isUUID(tenantID) {
		return GroupGrants{}, fmt.Errorf("store: create group of tenant %q: %w", tenantID, ErrNotFound)
	}
	if err := CheckGroupName(displayName); err != nil {
		return GroupGrants{}, invalidf("%s", err)
	}
	var out GroupGrants
	err := s.inTx(ctx, "create local group", func(q *dbsqlc.Queries) error {
		if err := lockTenant(ctx, q, tenantID, true); err != nil {
			return err
		}
		if _, err := q.GetTenant(ctx, tenantID); err != nil {
			return err
		}
		id, now := newID(), s.clock()
		if err := q.InsertLocalGroup(ctx, dbsqlc.InsertLocalGroupParams{TenantID: tenantID, EntraID: id,
			DisplayName: displayName, At: now}); err != nil {
			return err
		}
		if err := recordActivity(ctx, q, tenantID, ActivityCreateLocalGroup, id, nil,
			map[string]string{"displayName": displayName, "kind": plan.KindLocal}, "", now); err != nil {
			return err
		}
		if err := q.AppChanged(ctx, dbsqlc.AppChangedParams{TenantID: tenantID, At: now,
			Change: fmt.Sprintf("local group %s (%s) was created through the API", displayName, id)}); err != nil {
			return err
		}
		var err error
		out, err = groupGrants(ctx, q, tenantID, id)
		return err
	})
	return out, err
}
