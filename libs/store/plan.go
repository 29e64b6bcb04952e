package store

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// The plan step. When a run's pages are all in (TryFinalize), the store
// builds the run's plan in passes over the mirror and the app side, each
// reading facts through an SQL cursor planChunk rows at a time and
// writing plan items in chunks, so that memory holds a chunk, not a
// tenant:
//
//  1. users, in Entra id order (mirror and app merged): libs/plan's user
//     rules (scope, profile and local edits, account state, licenses that
//     go back or stay disabled) give items and each user's part in the
//     seat hand-out; only for the users whose facts changed (below);
//  2. seats: holders oldest grant first, then candidates in Entra id
//     order, through plan.Seats;
//  3. groups, in Entra id order: plan.DecideGroup, by the tenant's
//     `groups` setting and each group's status;
//  4. memberships: Entra ID's nested memberships of the users and the
//     enabled groups the app keeps (frozen groups, disabled, orphaned or
//     local, keep the app's), against the app's, through
//     plan.DecideMembership; only for the affected groups and users
//     (below);
//  5. grants: the roles and sharing permissions bound to groups, given to
//     those nested members and taken from users no longer among them,
//     through plan.DecideGrant (grants.go); only for the affected users.
//
// Users are decided again when a run newer than the plan the app follows
// changed them in the mirror (dir_users.changed_run_seq, migration 00021)
// or an admin edited them since (app_dirty_users); every other app user
// stays as it is, with the seat role plan.SteadySeat gives its state,
// which is what deciding it again would give. A tenant with scope groups
// is decided whole: an edge changed anywhere can take a user in or out.
//
// Memberships and grants are recomputed for what changed, not the whole
// tenant: the groups whose bindings or status changed through the API
// (dir_dirty_groups) and every group above them in the nesting, and the
// groups the plan changes; the users below a membership edge added,
// retyped or removed since the plan the app follows (migration 00020),
// and the users who come into the app or leave it; and for grants, every
// member (before and after) of those groups. Everything else stays as the
// app has it, which is what a full recomputation would find. A tenant
// whose settings changed, or a new one, is recomputed whole
// (tenants.memberships_stale), and so is every tenant under
// WithFullMemberships.
//
// Then plan.Judge holds the plan or lets it through, and applyPlan writes
// it to the app side in bulk, action by action, in the same transaction.

// planChunk is how many rows a plan pass reads, or items it writes, at a
// time.
const planChunk = 2000

// planTenant is the tenant as the plan step sees it.
type planTenant struct {
	// fullMemberships: recompute every membership and grant, and decide
	// every user.
	fullMemberships bool
	// since is the run whose applied plan the app follows: users changed
	// by a newer run are decided again.
	since int64
	// userStates counts the app's users by state.
	userStates map[userState]int64
	name       string
	settings   plan.Settings
	appVersion int64
	shortage   bool
	guard      plan.GuardFacts
}

// planResult is what a built plan is.
type planResult struct {
	tenant  planTenant
	summary plan.Summary
	counts  map[string]int64
	verdict plan.Verdict
}

// planner builds one run's plan inside the transaction that finalizes it.
type planner struct {
	ctx     context.Context
	q       *dbsqlc.Queries
	tenant  string
	run     string
	summary plan.Summary
	next    int32 // seq of the next item
	items   []dbsqlc.InsertPlanItemsParams
	work    []dbsqlc.InsertPlanWorkUsersParams // plan_work_users rows waiting to be written
	// moved are plan_work_affected rows waiting to be written: the users
	// who come into the app or leave it.
	moved   []dbsqlc.InsertPlanWorkAffectedParams
	inScope int64
	// holders and candidates count the users the app keeps by their part
	// in the seat hand-out, decided or not (see keepSteadyUsers);
	// steadyCandidates the candidates among those not decided.
	holders, candidates, steadyCandidates int64
	// decidedStates counts the app users the plan decided by state.
	decidedStates map[userState]int64
	// changedGroups are the groups whose membership or grants the groups
	// pass changes (plan.MembershipsChange): their members' memberships
	// and grants are recomputed. A plan that recomputes every group
	// notes none: on a tenant's first plan every group is new, and the
	// list would hold all of a large tenant's group ids until the plan
	// is done.
	changedGroups []string
}

func newPlanner(ctx context.Context, q *dbsqlc.Queries, tenant, run string) *planner {
	return &planner{ctx: ctx, q: q, tenant: tenant, run: run, summary: plan.Summary{},
		decidedStates: map[userState]int64{}}
}

// userState is an app user's state as plan.SteadySeat sees it.
type userState struct {
	enabled bool
	license string
	sticky  bool // license disabled by an admin
}

// steadySeatTable is plan.SteadySeat for every (enabled, license, license
// disabled by an admin) combination, as JSON for the statements that read
// the app users a plan did not decide.
var steadySeatTable = func() []byte {
	type seat struct {
		Enabled bool          `json:"enabled"`
		License string        `json:"license"`
		Sticky  bool          `json:"sticky"`
		Seat    plan.SeatRole `json:"seat"`
	}
	var seats []seat
	for _, enabled := range []bool{true, false} {
		for _, license := range []string{plan.LicenseAssigned, plan.LicenseNone, plan.LicenseDisabled} {
			for _, sticky := range []bool{false, true} {
				seats = append(seats, seat{enabled, license, sticky, plan.SteadySeat(enabled, license, sticky)})
			}
		}
	}
	table, err := json.Marshal(seats)
	if err != nil {
		panic(err) // a fixed table of plain values
	}
	return table
}()

// emitIf emits a rule's item when the rule made one.
func (p *planner) emitIf(it plan.Item, ok bool) error {
	if !ok {
		return nil
	}
	return p.emit(it)
}

// emit queues items and writes them once a chunk is full.
func (p *planner) emit(items ...plan.Item) error {
	for _, it := range items {
		p.summary.Add(it)
		before, err := fieldsJSON(it.Before)
		if err != nil {
			return err
		}
		after, err := fieldsJSON(it.After)
		if err != nil {
			return err
		}
		p.items = append(p.items, dbsqlc.InsertPlanItemsParams{TenantID: p.tenant, RunID: p.run, Seq: p.next,
			Action: string(it.Action), EntraID: it.EntraID, GroupID: nullIfEmpty(it.GroupID), Role: nullIfEmpty(it.Role),
			DisplayName: it.DisplayName, Before: before, After: after, Reason: it.Reason})
		p.next++
	}
	if len(p.items) >= planChunk {
		return p.flush()
	}
	return nil
}

func (p *planner) flush() error {
	if len(p.items) > 0 {
		if _, err := p.q.InsertPlanItems(p.ctx, p.items); err != nil {
			return fmt.Errorf("write plan items: %w", err)
		}
		p.items = p.items[:0]
	}
	if len(p.work) > 0 {
		if _, err := p.q.InsertPlanWorkUsers(p.ctx, p.work); err != nil {
			return fmt.Errorf("write plan work: %w", err)
		}
		p.work = p.work[:0]
	}
	if len(p.moved) > 0 {
		if _, err := p.q.InsertPlanWorkAffected(p.ctx, p.moved); err != nil {
			return fmt.Errorf("write affected users: %w", err)
		}
		p.moved = p.moved[:0]
	}
	return nil
}

// keepUser records a user the plan decided the app has after it, with
// its part in the seat hand-out.
func (p *planner) keepUser(id, name string, seat plan.SeatRole, licenseRunSeq *int64) error {
	p.inScope++
	switch seat {
	case plan.SeatHolder:
		p.holders++
	case plan.SeatCandidate:
		p.candidates++
	}
	return p.decided(dbsqlc.InsertPlanWorkUsersParams{TenantID: p.tenant, RunID: p.run, EntraID: id,
		DisplayName: name, Seat: int16(seat), LicenseRunSeq: licenseRunSeq, Stays: true})
}

// dropUser records an app user the plan decided to take out of the app.
func (p *planner) dropUser(id, name string) error {
	return p.decided(dbsqlc.InsertPlanWorkUsersParams{TenantID: p.tenant, RunID: p.run, EntraID: id,
		DisplayName: name, Seat: int16(plan.SeatNone), Stays: false})
}

// decided queues a plan_work_users row.
func (p *planner) decided(row dbsqlc.InsertPlanWorkUsersParams) error {
	p.work = append(p.work, row)
	if len(p.work) >= planChunk {
		return p.flush()
	}
	return nil
}

// moveUser records a user who comes into the app or leaves it: all its
// memberships and grants are recomputed.
func (p *planner) moveUser(id string) error {
	p.moved = append(p.moved, dbsqlc.InsertPlanWorkAffectedParams{TenantID: p.tenant, RunID: p.run, Kind: "user",
		ID: id})
	if len(p.moved) >= planChunk {
		return p.flush()
	}
	return nil
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// buildPlan plans a complete run ($pr is the page range of its attempt).
func buildPlan(ctx context.Context, q *dbsqlc.Queries, ref PageRef, pr pageRange, full bool) (planResult, error) {
	var res planResult
	t, err := loadPlanTenant(ctx, q, ref, pr)
	if err != nil {
		return res, err
	}
	t.fullMemberships = t.fullMemberships || full
	res.tenant = t
	p := newPlanner(ctx, q, ref.TenantID, ref.RunID)
	if err := q.DeletePlanItems(ctx, dbsqlc.DeletePlanItemsParams{TenantID: ref.TenantID, RunID: ref.RunID}); err != nil {
		return res, fmt.Errorf("clear plan: %w", err)
	}
	if len(t.settings.Scope.Groups) > 0 {
		if err := planScope(ctx, q, ref, pr, t.settings.Scope.Groups); err != nil {
			return res, fmt.Errorf("scope groups: %w", err)
		}
	}
	// Scope groups make a user's scope hang on edges anywhere below them.
	every := t.fullMemberships || len(t.settings.Scope.Groups) > 0
	if err := p.users(t.settings, every, t.since, t.userStates); err != nil {
		return res, fmt.Errorf("plan users: %w", err)
	}
	seats := plan.NewSeats(t.settings.Seats)
	if t.settings.Plan.SyncsMembers() {
		if err := p.seats(seats); err != nil {
			return res, fmt.Errorf("plan seats: %w", err)
		}
	}
	if err := p.groups(t.settings.Groups, t.fullMemberships); err != nil {
		return res, fmt.Errorf("plan groups: %w", err)
	}
	if t.settings.Plan.SyncsMembers() {
		passes := func() error {
			if err := p.memberships(t.fullMemberships); err != nil {
				return fmt.Errorf("plan memberships: %w", err)
			}
			if err := p.grants(); err != nil {
				return fmt.Errorf("plan grants: %w", err)
			}
			return nil
		}
		// A plan that recomputes what changed compares a few groups' and
		// users' memberships and grants with the app's: through indexes,
		// nested loops. Its working tables are analyzed as they fill.
		// One that recomputes everything compares whole sets (see
		// finalize and memberships).
		if err := withNestLoopsUnless(ctx, q, t.fullMemberships, passes); err != nil {
			return res, err
		}
	}
	if err := p.flush(); err != nil {
		return res, err
	}
	work := dbsqlc.PlanDeleteWorkParams{TenantID: ref.TenantID, RunID: ref.RunID}
	for _, clear := range []func() error{
		func() error { return q.PlanDeleteWork(ctx, work) },
		func() error { return q.PlanDeleteWorkUsers(ctx, dbsqlc.PlanDeleteWorkUsersParams(work)) },
		func() error { return q.PlanDeleteWorkGroups(ctx, dbsqlc.PlanDeleteWorkGroupsParams(work)) },
		func() error { return q.PlanDeleteWorkMembers(ctx, dbsqlc.PlanDeleteWorkMembersParams(work)) },
		func() error { return q.PlanDeleteWorkAffected(ctx, dbsqlc.PlanDeleteWorkAffectedParams(work)) },
	} {
		if err := clear(); err != nil {
			return res, fmt.Errorf("clear plan work: %w", err)
		}
	}
	res.summary = p.summary
	res.counts = p.summary.Counts(seats.Unlicensed, p.inScope)
	res.verdict = plan.Judge(t.settings, p.summary, t.guard)
	return res, nil
}

func loadPlanTenant(ctx context.Context, q *dbsqlc.Queries, ref PageRef, pr pageRange) (planTenant, error) {
	var t planTenant
	row, err := q.PlanTenant(ctx, ref.TenantID)
	if err != nil {
		return t, fmt.Errorf("read tenant: %w", err)
	}
	t.name, t.appVersion, t.shortage = row.Name, row.AppVersion, row.SeatShortage
	t.fullMemberships, t.since = row.MembershipsStale, row.MembershipsRunSeq
	t.guard.RoleGrants = row.RoleGrants
	states, err := q.PlanAppUserStates(ctx, ref.TenantID)
	if err != nil {
		return t, fmt.Errorf("count app users: %w", err)
	}
	t.userStates = map[userState]int64{}
	for _, s := range states {
		t.userStates[userState{s.Enabled, s.License, s.Sticky}] = s.Users
		t.guard.AppUsers += s.Users
		if s.License == plan.LicenseAssigned {
			t.guard.Licenses += s.Users
		}
	}
	t.guard.SharingGrants = row.SharingGrants
	// The schedule plays no part in a plan: no interval to default it from.
	if t.settings, err = parseSettings(row.Settings, int(row.Seats), 0); err != nil {
		return t, err
	}
	listed, err := q.PlanUsersListed(ctx, dbsqlc.PlanUsersListedParams{TenantID: ref.TenantID, RunID: ref.RunID,
		Lo: pr.lo, Hi: pr.hi})
	if err != nil {
		return t, fmt.Errorf("count users listed: %w", err)
	}
	t.guard.UsersListed = listed.Users
	t.guard.UsersRead = listed.Pages > 0
	return t, nil
}

// users is the first pass: the mirror's users and the app's, merged in
// Entra id order; every user when every, else those a run newer than
// since changed or an admin edited (the others keep their state: see
// keepSteadyUsers; states counts every app user by state).
func (p *planner) users(s plan.Settings, every bool, since int64, states map[userState]int64) error {
	dirQ, appQ := p.q.Cursor("plan_dir_users", planChunk), p.q.Cursor("plan_app_users", planChunk)
	dirs := &chunks[dbsqlc.PlanDirUsersRow]{fetch: func() ([]dbsqlc.PlanDirUsersRow, error) {
		if every {
			return dirQ.PlanDirUsers(p.ctx, dbsqlc.PlanDirUsersParams{TenantID: p.tenant, RunID: p.run})
		}
		rows, err := dirQ.PlanDirUsersTouched(p.ctx, dbsqlc.PlanDirUsersTouchedParams{TenantID: p.tenant,
			RunID: p.run, Since: since})
		return mapRows(rows, func(r dbsqlc.PlanDirUsersTouchedRow) dbsqlc.PlanDirUsersRow {
			return dbsqlc.PlanDirUsersRow(r)
		}), err
	}}
	apps := &chunks[dbsqlc.PlanAppUsersRow]{fetch: func() ([]dbsqlc.PlanAppUsersRow, error) {
		if every {
			return appQ.PlanAppUsers(p.ctx, p.tenant)
		}
		rows, err := appQ.PlanAppUsersTouched(p.ctx, dbsqlc.PlanAppUsersTouchedParams{TenantID: p.tenant,
			Since: since})
		return mapRows(rows, func(r dbsqlc.PlanAppUsersTouchedRow) dbsqlc.PlanAppUsersRow {
			return dbsqlc.PlanAppUsersRow(r)
		}), err
	}}
	read := func() error {
		err := merge(dirs, apps, func(d dbsqlc.PlanDirUsersRow) string { return d.ID },
			func(a dbsqlc.PlanAppUsersRow) string { return a.EntraID },
			func(d *dbsqlc.PlanDirUsersRow, a *dbsqlc.PlanAppUsersRow) error { return p.decideUser(s, d, a) })
		return errors.Join(err, dirQ.CloseCursor(p.ctx), appQ.CloseCursor(p.ctx))
	}
	// Unless every user is read, a few users, through indexes: nested
	// loops (the cursors are planned when their first chunk is fetched,
	// within the merge).
	if err := withNestLoopsUnless(p.ctx, p.q, every, read); err != nil {
		return err
	}
	return p.keepSteadyUsers(states)
}

// decideUser applies the user rules to one Entra id: the mirror's row d
// and the app's a, either nil when that side lacks the user.
func (p *planner) decideUser(s plan.Settings, d *dbsqlc.PlanDirUsersRow, a *dbsqlc.PlanAppUsersRow) error {
	var f plan.UserFacts
	var seq *int64
	name := ""
	if a != nil {
		p.decidedStates[userState{a.Enabled, a.License, a.LicenseDisabledAt != nil}]++
		f.EntraID, name, seq = a.EntraID, a.DisplayName, a.LicenseRunSeq
		f.App = &plan.AppUser{EntraID: a.EntraID, Email: a.Email, DisplayName: a.DisplayName,
			GivenName: a.GivenName, Surname: a.Surname, JobTitle: a.JobTitle, Department: a.Department,
			Enabled: a.Enabled, License: a.License, LicenseDisabledAt: a.LicenseDisabledAt,
			DisplayNameEditedAt: a.DisplayNameEditedAt, EmailEditedAt: a.EmailEditedAt, Roles: a.Roles}
	}
	if d != nil {
		f.EntraID, name, f.InScopeGroups = d.ID, d.DisplayName, d.InScope
		f.Dir = &plan.DirUser{ID: d.ID, DisplayName: d.DisplayName, Mail: d.Mail,
			UserPrincipalName: d.UserPrincipalName, GivenName: d.GivenName, Surname: d.Surname,
			JobTitle: d.JobTitle, Department: d.Department, UserType: d.UserType, AccountEnabled: d.AccountEnabled}
	}
	dec := plan.DecideUser(s, f)
	if err := p.emit(dec.Items...); err != nil {
		return err
	}
	if (a == nil) == dec.InScope { // comes into the app, or leaves it
		if err := p.moveUser(f.EntraID); err != nil {
			return err
		}
	}
	if !dec.InScope {
		if a != nil {
			return p.dropUser(f.EntraID, name)
		}
		return nil
	}
	if dec.Seat != plan.SeatHolder {
		seq = nil
	}
	return p.keepUser(f.EntraID, name, dec.Seat, seq)
}

// keepSteadyUsers counts the app users the users pass did not decide
// again (states: every app user, by state, as the plan began): they stay
// as they are, with the seat role plan.SteadySeat gives their state. They
// have no row in plan_work_users (migration 00023): the statements that
// need them read app_users, those of the seat hand-out with
// plan.SteadySeat as a table (steadySeatTable).
func (p *planner) keepSteadyUsers(states map[userState]int64) error {
	for st, n := range states {
		steady := n - p.decidedStates[st]
		if steady < 0 {
			return fmt.Errorf("the plan decided %d app users in state %+v, the app has %d", p.decidedStates[st], st, n)
		}
		p.inScope += steady
		switch plan.SteadySeat(st.enabled, st.license, st.sticky) {
		case plan.SeatHolder:
			p.holders += steady
		case plan.SeatCandidate:
			p.candidates += steady
			p.steadyCandidates += steady
		}
	}
	return nil
}

// seats is the second pass: holders keep their seats while the pool has
// room, oldest grant first; candidates get the free ones in Entra id
// order. Only the holders past the pool's room and the candidates a free
// seat goes to are read one by one; the others are counted.
func (p *planner) seats(seats *plan.Seats) error {
	if err := p.flush(); err != nil { // the pass reads what the users pass wrote
		return err
	}
	if kept := seats.KeepHolders(p.holders); kept < p.holders {
		err := scanCursor(p, "plan_seat_holders", func(q *dbsqlc.Queries) ([]dbsqlc.PlanSeatHoldersRow, error) {
			return q.PlanSeatHolders(p.ctx, dbsqlc.PlanSeatHoldersParams{TenantID: p.tenant, RunID: p.run,
				Seats: steadySeatTable, Skip: kept})
		}, func(r dbsqlc.PlanSeatHoldersRow) error {
			return p.emitIf(seats.Holder(plan.SeatUser{EntraID: r.EntraID, DisplayName: r.DisplayName}))
		})
		if err != nil {
			return err
		}
	}
	seated := min(seats.Free(), p.candidates)
	if seated > 0 {
		err := scanCursor(p, "plan_seat_candidates", func(q *dbsqlc.Queries) ([]dbsqlc.PlanSeatCandidatesRow, error) {
			return q.PlanSeatCandidates(p.ctx, dbsqlc.PlanSeatCandidatesParams{TenantID: p.tenant, RunID: p.run,
				Seats: steadySeatTable, MaxRows: seated, Steady: p.steadyCandidates > 0})
		}, func(r dbsqlc.PlanSeatCandidatesRow) error {
			return p.emitIf(seats.Candidate(plan.SeatUser{EntraID: r.EntraID, DisplayName: r.DisplayName}))
		})
		if err != nil {
			return err
		}
	}
	seats.Waiting(p.candidates - seated)
	return nil
}

// groups is the third pass: the mirror's groups and the app's, merged in
// Entra id order. Groups the app keeps go to plan_work_groups for the
// membership and grants passes, marked frozen (their memberships stay as
// the app has them) and whether they grant. whole: the plan recomputes
// every group's memberships, so it notes none as changed.
func (p *planner) groups(k plan.GroupKinds, whole bool) error {
	dirQ, appQ := p.q.Cursor("plan_dir_groups", planChunk), p.q.Cursor("plan_app_groups", planChunk)
	dirs := &chunks[dbsqlc.PlanDirGroupsRow]{fetch: func() ([]dbsqlc.PlanDirGroupsRow, error) {
		return dirQ.PlanDirGroups(p.ctx, p.tenant)
	}}
	apps := &chunks[dbsqlc.PlanAppGroupsRow]{fetch: func() ([]dbsqlc.PlanAppGroupsRow, error) {
		return appQ.PlanAppGroups(p.ctx, p.tenant)
	}}
	var kept []dbsqlc.InsertPlanWorkGroupsParams
	writeKept := func() error {
		if len(kept) == 0 {
			return nil
		}
		_, err := p.q.InsertPlanWorkGroups(p.ctx, kept)
		kept = kept[:0]
		return err
	}
	err := merge(dirs, apps, func(g dbsqlc.PlanDirGroupsRow) string { return g.ID },
		func(g dbsqlc.PlanAppGroupsRow) string { return g.EntraID },
		func(d *dbsqlc.PlanDirGroupsRow, a *dbsqlc.PlanAppGroupsRow) error {
			var f plan.GroupFacts
			if a != nil {
				f.EntraID = a.EntraID
				f.App = &plan.AppGroup{EntraID: a.EntraID, DisplayName: a.DisplayName, Kind: a.Kind, Dynamic: a.Dynamic,
					Status: a.Status, SwitchedOff: a.SwitchedOff, GroupDetails: plan.GroupDetails{Mail: a.Mail,
						Description: a.Description, MembershipRule: a.MembershipRule, UpdatedAt: a.EntraUpdatedAt}}
			}
			if d != nil {
				f.EntraID, f.Excluded = d.ID, d.Excluded
				f.Dir = &plan.DirGroup{ID: d.ID, DisplayName: d.DisplayName, GroupTypes: d.GroupTypes,
					SecurityEnabled: d.SecurityEnabled, MailEnabled: d.MailEnabled, GroupDetails: plan.GroupDetails{
						Mail: d.Mail, Description: d.Description, MembershipRule: d.MembershipRule, UpdatedAt: d.RenewedAt}}
			}
			dec := plan.DecideGroup(k, f)
			if err := p.emitIf(dec.Item, dec.Changed); err != nil {
				return err
			}
			if !whole && plan.MembershipsChange(f, dec) {
				p.changedGroups = append(p.changedGroups, f.EntraID)
			}
			if dec.Status == "" {
				return nil
			}
			name := ""
			if a != nil {
				name = a.DisplayName // frozen groups keep their name
			}
			if d != nil && !dec.Frozen {
				name = d.DisplayName
			}
			kept = append(kept, dbsqlc.InsertPlanWorkGroupsParams{TenantID: p.tenant, RunID: p.run, EntraID: f.EntraID,
				DisplayName: name, Frozen: dec.Frozen, Grants: dec.Grants})
			if len(kept) >= planChunk {
				return writeKept()
			}
			return nil
		})
	return errors.Join(err, writeKept(), dirQ.CloseCursor(p.ctx), appQ.CloseCursor(p.ctx))
}

// memberships is the last pass: Entra ID's nested memberships of the users
// and groups the app keeps, against the app's memberships.
func (p *planner) memberships(full bool) error {
	if err := p.flush(); err != nil {
		return err
	}
	// The walk joins the users and groups the app keeps: without their
	// statistics the planner takes 100k rows for a handful.
	if err := p.q.Analyze(p.ctx, "plan_work_users", "plan_work_groups"); err != nil {
		return err
	}
	if err := p.affected(full); err != nil {
		return fmt.Errorf("affected groups and users: %w", err)
	}
	walks := func() error {
		ids := dbsqlc.PlanEntraMembersParams{TenantID: p.tenant, RunID: p.run}
		if err := p.q.PlanEntraMembers(p.ctx, ids); err != nil {
			return err
		}
		return p.q.PlanNewUsersMembers(p.ctx, dbsqlc.PlanNewUsersMembersParams{TenantID: p.tenant, RunID: p.run,
			AllGroups: full})
	}
	// A plan that recomputes every group walks the whole nesting: hash
	// joins, as for every other whole set. Such a plan is also a tenant's
	// first, when the statistics of the mirror's tables do not know its
	// rows yet and expect a handful of edges: with nested loops allowed
	// the planner then compared the tenant's whole edge list with every
	// group the walk reached, once per group (50k users: 860 million
	// comparisons, 170 s of a 200 s finalization; BenchmarkFirstFinalize).
	// Any other plan runs this pass with nested loops (buildPlan).
	if err := walks(); err != nil {
		return fmt.Errorf("nested memberships: %w", err)
	}
	if err := p.q.PlanFrozenMembers(p.ctx, dbsqlc.PlanFrozenMembersParams{TenantID: p.tenant, RunID: p.run}); err != nil {
		return fmt.Errorf("frozen memberships: %w", err)
	}
	if err := p.q.Analyze(p.ctx, "plan_work_members"); err != nil {
		return err
	}
	err := scanCursor(p, "plan_memberships_to_add", func(q *dbsqlc.Queries) ([]dbsqlc.PlanMembershipsToAddRow, error) {
		return q.PlanMembershipsToAdd(p.ctx, dbsqlc.PlanMembershipsToAddParams{TenantID: p.tenant, RunID: p.run})
	}, func(r dbsqlc.PlanMembershipsToAddRow) error {
		return p.emitIf(plan.DecideMembership(plan.MembershipFacts{GroupID: r.GroupID, GroupName: r.GroupName,
			UserID: r.UserID, UserName: r.UserName, InEntra: true, UserStays: true, GroupStays: true}))
	})
	if err != nil {
		return err
	}
	return scanCursor(p, "plan_app_memberships", func(q *dbsqlc.Queries) ([]dbsqlc.PlanAppMembershipsRow, error) {
		return q.PlanAppMemberships(p.ctx, dbsqlc.PlanAppMembershipsParams{TenantID: p.tenant, RunID: p.run})
	}, func(r dbsqlc.PlanAppMembershipsRow) error {
		return p.emitIf(plan.DecideMembership(plan.MembershipFacts{GroupID: r.GroupID, GroupName: r.GroupName,
			UserID: r.UserID, UserName: r.UserName, InEntra: r.InEntra, InApp: true, UserStays: r.UserStays,
			GroupStays: r.GroupStays}))
	})
}

// affected records what the memberships and grants passes recompute:
// every group when full, else the groups the groups pass changed and the
// ones the api marked (with those above them), and the users below an
// edge that changed. The users who come or go are in already: the users
// pass wrote them.
func (p *planner) affected(full bool) error {
	if full {
		if err := p.q.PlanAffectAllGroups(p.ctx, dbsqlc.PlanAffectAllGroupsParams{TenantID: p.tenant,
			RunID: p.run}); err != nil {
			return err
		}
	} else { // with nested loops: see buildPlan
		if err := p.q.PlanAffectGroups(p.ctx, dbsqlc.PlanAffectGroupsParams{TenantID: p.tenant, RunID: p.run,
			Ids: p.changedGroups}); err != nil {
			return err
		}
		if err := p.q.PlanAffectEdgeUsers(p.ctx, dbsqlc.PlanAffectEdgeUsersParams{TenantID: p.tenant,
			RunID: p.run}); err != nil {
			return err
		}
	}
	return p.q.Analyze(p.ctx, "plan_work_affected")
}

// withNestLoops runs statements that walk nested groups, or read groups
// one by one, through indexes: there nested loops are what the planner
// should pick. Everything else finalization does compares whole sets,
// where it forbids them (see finalize).
func withNestLoops(ctx context.Context, q *dbsqlc.Queries, run func() error) error {
	if err := setNestLoop(ctx, q, true); err != nil {
		return err
	}
	if err := run(); err != nil {
		return err
	}
	return setNestLoop(ctx, q, false)
}

// withNestLoopsUnless runs statements as finalization plans them (whole
// sets, hash joins) when whole, and with nested loops otherwise: a plan
// that recomputes only what changed reads a few rows through indexes.
func withNestLoopsUnless(ctx context.Context, q *dbsqlc.Queries, whole bool, run func() error) error {
	if whole {
		return run()
	}
	return withNestLoops(ctx, q, run)
}

// scanCursor runs a query as the cursor name and calls fn for each row.
func scanCursor[T any](p *planner, name string, query func(*dbsqlc.Queries) ([]T, error), fn func(T) error) error {
	q := p.q.Cursor(name, planChunk)
	err := each(&chunks[T]{fetch: func() ([]T, error) { return query(q) }}, fn)
	return errors.Join(err, q.CloseCursor(p.ctx))
}

// chunks reads a query a chunk at a time (its Queries made by
// dbsqlc.Queries.Cursor): peek shows the current row, advance moves past
// it.
type chunks[T any] struct {
	fetch func() ([]T, error)
	buf   []T
	i     int
	done  bool
}

// peek returns the current row; false when the query has no more.
func (c *chunks[T]) peek() (T, bool, error) {
	var zero T
	if c.i < len(c.buf) {
		return c.buf[c.i], true, nil
	}
	if c.done {
		return zero, false, nil
	}
	buf, err := c.fetch()
	if err != nil {
		return zero, false, err
	}
	c.buf, c.i, c.done = buf, 0, len(buf) < planChunk
	if len(buf) == 0 {
		return zero, false, nil
	}
	return buf[0], true, nil
}

func (c *chunks[T]) advance() { c.i++ }

// each calls fn for every row.
func each[T any](c *chunks[T], fn func(T) error) error {
	for {
		v, ok, err := c.peek()
		if err != nil || !ok {
			return err
		}
		if err := fn(v); err != nil {
			return err
		}
		c.advance()
	}
}

// merge walks two row streams ordered by the same key as one, calling fn
// with the row of each side that has the key (nil for a side that has
// not). Keys compare as bytes, the order of the "C" collation the ids are
// stored in.
func merge[A, B any](as *chunks[A], bs *chunks[B], keyA func(A) string, keyB func(B) string, fn func(*A, *B) error) error {
	for {
		a, aOK, err := as.peek()
		if err != nil {
			return err
		}
		b, bOK, err := bs.peek()
		if err != nil {
			return err
		}
		switch {
		case !aOK && !bOK:
			return nil
		case aOK && bOK && keyA(a) == keyB(b):
			as.advance()
			bs.advance()
			err = fn(&a, &b)
		case aOK && (!bOK || keyA(a) < keyB(b)):
			as.advance()
			err = fn(&a, nil)
		default:
			bs.advance()
			err = fn(nil, &b)
		}
		if err != nil {
			return err
		}
	}
}

// applyPlan writes a run's stored plan to the app side, action by action
// in plan.Actions' order, then keeps the run's delta links for the
// tenant (keepDeltaLinks), refreshes the groups' member counts, bumps the
// app side's version and tells the admins about a new seat shortage.
func applyPlan(ctx context.Context, q *dbsqlc.Queries, ref PageRef, pr pageRange, res planResult, at time.Time) error {
	t, r := ref.TenantID, ref.RunID
	// Each action joins its items with the app's rows. A plan that
	// recomputed everything joins whole sets, which hash joins serve at
	// every size (see finalize); any other plan's items are a few, each
	// found through the app table's index: nested loops (a delta round
	// at 100k users: 300 membership removals in about a millisecond,
	// where a hash join read all 450k memberships in 77 ms).
	apply := func() error {
		for _, a := range plan.Actions {
			if res.summary[a] == 0 {
				continue
			}
			if err := applyAction(ctx, q, a, ref, at); err != nil {
				return fmt.Errorf("apply %s: %w", a, err)
			}
		}
		return nil
	}
	if err := setNestLoop(ctx, q, false); err != nil {
		return err
	}
	if err := withNestLoopsUnless(ctx, q, res.tenant.fullMemberships, apply); err != nil {
		return err
	}
	// The groups' member counts: Entra ID's from the mirror's edges (the
	// fetcher reads no transitiveMembers), the app's from its memberships.
	if err := refreshCounts(ctx, q, ref, at); err != nil {
		return fmt.Errorf("refresh member counts: %w", err)
	}
	if err := q.ClearMembershipChanges(ctx, dbsqlc.ClearMembershipChangesParams{TenantID: t, RunSeq: ref.RunSeq}); err != nil {
		return fmt.Errorf("clear membership changes: %w", err)
	}
	if err := keepDeltaLinks(ctx, q, ref, at); err != nil {
		return err
	}
	if err := q.RecordGroupResults(ctx, dbsqlc.RecordGroupResultsParams{TenantID: t, RunID: r, Lo: pr.lo,
		Hi: pr.hi}); err != nil {
		return fmt.Errorf("record group results: %w", err)
	}
	if res.summary.Total() > 0 {
		if err := q.AppChanged(ctx, dbsqlc.AppChangedParams{TenantID: t, At: at,
			Change: fmt.Sprintf("run %d applied its plan", ref.RunSeq)}); err != nil {
			return fmt.Errorf("bump app version: %w", err)
		}
	}
	notice, short := plan.SeatShortage(res.tenant.shortage, res.counts["unlicensed"], res.tenant.settings.Seats, res.tenant.name)
	if err := q.SetSeatShortage(ctx, dbsqlc.SetSeatShortageParams{TenantID: t, Shortage: short}); err != nil {
		return fmt.Errorf("seat shortage: %w", err)
	}
	if notice != nil {
		if err := notify(ctx, q, t, r, *notice, at); err != nil {
			return err
		}
	}
	if n := res.tenant.settings.Notify; n.OnCompletion {
		done := plan.SyncCompleted(res.tenant.name, ref.RunSeq, res.summary)
		if err := notifyTo(ctx, q, t, r, done, n.CompletionRecipients, at); err != nil {
			return err
		}
	}
	return nil
}

// keepDeltaLinks makes the links the run ended with the tenant's, now
// that the mirror stands for what the run read: the next delta round
// starts from them. A held, rejected or failed run never gets here, so
// its changes are read again. A run that listed users through
// scope.userFilter leaves a mirror without the users the filter hid, and
// a delta round reads only what changed: the tenant's links go, so that
// its next run reads the whole directory (and the hidden users come back
// as soon as the filter is cleared).
func keepDeltaLinks(ctx context.Context, q *dbsqlc.Queries, ref PageRef, at time.Time) error {
	ids := dbsqlc.RunUsersFilteredParams{TenantID: ref.TenantID, RunID: ref.RunID}
	filtered, err := q.RunUsersFiltered(ctx, ids)
	if err != nil {
		return fmt.Errorf("run's users filter: %w", err)
	}
	if filtered {
		err = q.DropDeltaLinks(ctx, dbsqlc.DropDeltaLinksParams{TenantID: ref.TenantID, RunSeq: ref.RunSeq})
	} else {
		err = q.SaveDeltaLinks(ctx, dbsqlc.SaveDeltaLinksParams{TenantID: ref.TenantID, RunID: ref.RunID, At: at})
	}
	if err != nil {
		return fmt.Errorf("keep delta links: %w", err)
	}
	return nil
}

// applyAction runs the statement that applies one action of the run's
// stored plan; at is the time, the run's seq marks the seats it grants.
func applyAction(ctx context.Context, q *dbsqlc.Queries, a plan.Action, ref PageRef, at time.Time) error {
	t, r := ref.TenantID, ref.RunID
	switch a {
	case plan.RevokeRole:
		if err := q.ApplyRevokeRole(ctx, dbsqlc.ApplyRevokeRoleParams{TenantID: t, RunID: r}); err != nil {
			return err
		}
		return q.ApplyRevokeThroughGroups(ctx, dbsqlc.ApplyRevokeThroughGroupsParams{TenantID: t, RunID: r,
			Action: string(a), Kind: string(plan.KindRole)})
	case plan.RevokeSharing:
		return q.ApplyRevokeThroughGroups(ctx, dbsqlc.ApplyRevokeThroughGroupsParams{TenantID: t, RunID: r,
			Action: string(a), Kind: string(plan.KindSharing)})
	case plan.RemoveMembership:
		return q.ApplyRemoveMembership(ctx, dbsqlc.ApplyRemoveMembershipParams{TenantID: t, RunID: r})
	case plan.RevokeLicense:
		return q.ApplyRevokeLicense(ctx, dbsqlc.ApplyRevokeLicenseParams{TenantID: t, RunID: r, At: at})
	case plan.RemoveUser:
		return q.ApplyRemoveUser(ctx, dbsqlc.ApplyRemoveUserParams{TenantID: t, RunID: r})
	case plan.RemoveGroup:
		return q.ApplyRemoveGroup(ctx, dbsqlc.ApplyRemoveGroupParams{TenantID: t, RunID: r})
	case plan.CreateGroup:
		return q.ApplyCreateGroup(ctx, dbsqlc.ApplyCreateGroupParams{TenantID: t, RunID: r, At: at})
	case plan.UpdateGroup:
		return q.ApplyUpdateGroup(ctx, dbsqlc.ApplyUpdateGroupParams{TenantID: t, RunID: r, At: at})
	case plan.CreateUser:
		return q.ApplyCreateUser(ctx, dbsqlc.ApplyCreateUserParams{TenantID: t, RunID: r, At: at, RunSeq: ref.RunSeq})
	case plan.UpdateUser:
		return q.ApplyUpdateUser(ctx, dbsqlc.ApplyUpdateUserParams{TenantID: t, RunID: r, At: at})
	case plan.DisableUser:
		return q.ApplyDisableUser(ctx, dbsqlc.ApplyDisableUserParams{TenantID: t, RunID: r, At: at})
	case plan.EnableUser:
		return q.ApplyEnableUser(ctx, dbsqlc.ApplyEnableUserParams{TenantID: t, RunID: r, At: at})
	case plan.AssignLicense:
		return q.ApplyAssignLicense(ctx, dbsqlc.ApplyAssignLicenseParams{TenantID: t, RunID: r, At: at, RunSeq: ref.RunSeq})
	case plan.AddMembership:
		return q.ApplyAddMembership(ctx, dbsqlc.ApplyAddMembershipParams{TenantID: t, RunID: r})
	case plan.GrantRole:
		if err := q.ApplyGrantRole(ctx, dbsqlc.ApplyGrantRoleParams{TenantID: t, RunID: r, At: at}); err != nil {
			return err
		}
		return q.ApplyGrantThroughGroups(ctx, dbsqlc.ApplyGrantThroughGroupsParams{TenantID: t, RunID: r, At: at,
			Action: string(a), Kind: string(plan.KindRole)})
	case plan.GrantSharing:
		return q.ApplyGrantThroughGroups(ctx, dbsqlc.ApplyGrantThroughGroupsParams{TenantID: t, RunID: r, At: at,
			Action: string(a), Kind: string(plan.KindSharing)})
	}
	return fmt.Errorf("no statement applies action %q", a)
}

// notify writes a notification task for the tenant's Administrators and
// License managers. Its id comes from the run and the kind, so a
// transaction run again writes the same task.
func notify(ctx context.Context, q *dbsqlc.Queries, tenantID, runID string, n plan.Notice, at time.Time) error {
	emails, err := q.NotifiedEmails(ctx, dbsqlc.NotifiedEmailsParams{TenantID: tenantID, Roles: plan.BuiltinRoles})
	if err != nil {
		return fmt.Errorf("notification recipients: %w", err)
	}
	return notifyTo(ctx, q, tenantID, runID, n, emails, at)
}

// notifyTo writes a notification task for recipients, its id derived from
// the run and the kind.
func notifyTo(ctx context.Context, q *dbsqlc.Queries, tenantID, runID string, n plan.Notice, emails []string, at time.Time) error {
	if emails == nil {
		emails = []string{}
	}
	id := uuid.NewHash(sha1.New(), uuid.MustParse(runID), []byte(n.Kind), 5).String()
	if err := q.InsertNotification(ctx, dbsqlc.InsertNotificationParams{TenantID: tenantID, ID: id, Kind: n.Kind,
		RunID: &runID, Recipients: emails, Subject: n.Subject, Body: n.Text, CreatedAt: at}); err != nil {
		return fmt.Errorf("notification task: %w", err)
	}
	return nil
}

// summaryJSON is a plan's summary as stored: counts per action, every
// action present.
func summaryJSON(s plan.Summary) map[string]int64 {
	out := make(map[string]int64, len(plan.Actions))
	for _, a := range plan.Actions {
		out[string(a)] = s[a]
	}
	return out
}

// mapRows turns the rows of a generated query into the values the store
// works with.
func mapRows[R, T any](rows []R, f func(R) T) []T {
	out := make([]T, len(rows))
	for i, r := range rows {
		out[i] = f(r)
	}
	return out
}
