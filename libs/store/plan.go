package store

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// The plan step. When a run's pages are all in (TryFinalize), the store
// builds the run's plan in passes over the mirror and the app side, each
// reading facts in chunks of planChunk rows and writing plan items in
// chunks, so that memory holds a chunk, not a tenant:
//
//  1. users, in Entra id order (mirror and app merged): libs/plan's user
//     rules (scope, profile and local edits, account state, licenses that
//     go back or stay disabled) give items and each user's part in the
//     seat hand-out;
//  2. seats: holders oldest grant first, then candidates in Entra id
//     order, through plan.Seats;
//  3. groups, in Entra id order: plan.DecideGroup;
//  4. memberships: Entra ID's nested memberships of the users and groups
//     the app keeps, against the app's, through plan.DecideMembership.
//
// Then plan.Judge holds the plan or lets it through, and applyPlan writes
// it to the app side in bulk, action by action, in the same transaction.

// planChunk is how many rows a plan pass reads, or items it writes, at a
// time.
const planChunk = 2000

// planTenant is the tenant as the plan step sees it.
type planTenant struct {
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
	inScope int64
}

func newPlanner(ctx context.Context, q *dbsqlc.Queries, tenant, run string) *planner {
	return &planner{ctx: ctx, q: q, tenant: tenant, run: run, summary: plan.Summary{}}
}

// emit queues items and writes them once a chunk is full.
func (p *planner) emit(items ...plan.Item) error {
	for _, it := range items {
		p.summary.Add(it)
		before, err := jsonOrNil(it.Before)
		if err != nil {
			return err
		}
		after, err := jsonOrNil(it.After)
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
	return nil
}

// keepUser records a user the app has after the plan, with its part in
// the seat hand-out.
func (p *planner) keepUser(id, name string, seat plan.SeatRole, licenseRunSeq *int64) error {
	p.inScope++
	p.work = append(p.work, dbsqlc.InsertPlanWorkUsersParams{TenantID: p.tenant, RunID: p.run, EntraID: id,
		DisplayName: name, Seat: int16(seat), LicenseRunSeq: licenseRunSeq})
	if len(p.work) >= planChunk {
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

func jsonOrNil(f plan.Fields) ([]byte, error) {
	if f == nil {
		return nil, nil
	}
	return json.Marshal(map[string]any(f))
}

// buildPlan plans a complete run ($pr is the page range of its attempt).
func buildPlan(ctx context.Context, q *dbsqlc.Queries, ref PageRef, pr pageRange) (planResult, error) {
	var res planResult
	t, err := loadPlanTenant(ctx, q, ref, pr)
	if err != nil {
		return res, err
	}
	res.tenant = t
	p := newPlanner(ctx, q, ref.TenantID, ref.RunID)
	if err := q.DeletePlanItems(ctx, dbsqlc.DeletePlanItemsParams{TenantID: ref.TenantID, RunID: ref.RunID}); err != nil {
		return res, fmt.Errorf("clear plan: %w", err)
	}
	if len(t.settings.Scope.Groups) > 0 {
		if err := q.PlanScopeUsers(ctx, dbsqlc.PlanScopeUsersParams{TenantID: ref.TenantID, RunID: ref.RunID,
			Groups: t.settings.Scope.Groups}); err != nil {
			return res, fmt.Errorf("scope groups: %w", err)
		}
	}
	if err := p.users(t.settings); err != nil {
		return res, fmt.Errorf("plan users: %w", err)
	}
	seats := plan.NewSeats(t.settings.Seats)
	if t.settings.Plan.SyncsMembers() {
		if err := p.seats(seats); err != nil {
			return res, fmt.Errorf("plan seats: %w", err)
		}
	}
	if err := p.groups(); err != nil {
		return res, fmt.Errorf("plan groups: %w", err)
	}
	if t.settings.Plan.SyncsMembers() {
		if err := p.memberships(); err != nil {
			return res, fmt.Errorf("plan memberships: %w", err)
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
	t.guard.AppUsers, t.guard.Licenses, t.guard.RoleGrants = row.AppUsers, row.Licenses, row.RoleGrants
	if t.settings, err = parseSettings(row.Settings, int(row.Seats)); err != nil {
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

// appUserFacts is an app user as the user pass reads it.
type appUserFacts struct {
	plan.AppUser
	licenseRunSeq *int64
}

// users is the first pass: the mirror's users and the app's, merged in
// Entra id order.
func (p *planner) users(s plan.Settings) error {
	dirs := newCursor(func(after string) ([]plan.DirUser, []bool, error) {
		rows, err := p.q.PlanDirUsers(p.ctx, dbsqlc.PlanDirUsersParams{TenantID: p.tenant, RunID: p.run, After: after,
			MaxRows: planChunk})
		if err != nil {
			return nil, nil, err
		}
		out := make([]plan.DirUser, len(rows))
		scoped := make([]bool, len(rows))
		for i, r := range rows {
			out[i] = plan.DirUser{ID: r.ID, DisplayName: r.DisplayName, Mail: r.Mail, UserPrincipalName: r.UserPrincipalName,
				GivenName: r.GivenName, Surname: r.Surname, JobTitle: r.JobTitle, Department: r.Department,
				UserType: r.UserType, AccountEnabled: r.AccountEnabled}
			scoped[i] = r.InScope
		}
		return out, scoped, nil
	}, func(d plan.DirUser) string { return d.ID })
	apps := newCursor(func(after string) ([]appUserFacts, []bool, error) {
		rows, err := p.q.PlanAppUsers(p.ctx, dbsqlc.PlanAppUsersParams{TenantID: p.tenant, After: after, MaxRows: planChunk})
		if err != nil {
			return nil, nil, err
		}
		out := make([]appUserFacts, len(rows))
		for i, r := range rows {
			out[i] = appUserFacts{AppUser: plan.AppUser{EntraID: r.EntraID, Email: r.Email, DisplayName: r.DisplayName,
				GivenName: r.GivenName, Surname: r.Surname, JobTitle: r.JobTitle, Department: r.Department,
				Enabled: r.Enabled, License: r.License, LicenseDisabledAt: r.LicenseDisabledAt,
				DisplayNameEditedAt: r.DisplayNameEditedAt, EmailEditedAt: r.EmailEditedAt, Roles: r.Roles},
				licenseRunSeq: r.LicenseRunSeq}
		}
		return out, nil, nil
	}, func(a appUserFacts) string { return a.EntraID })

	for {
		d, dScoped, dOK, err := dirs.peek()
		if err != nil {
			return err
		}
		a, _, aOK, err := apps.peek()
		if err != nil {
			return err
		}
		if !dOK && !aOK {
			return nil
		}
		f := plan.UserFacts{}
		var seq *int64
		switch {
		case dOK && (!aOK || d.ID <= a.EntraID):
			f.EntraID, f.Dir, f.InScopeGroups = d.ID, &d, dScoped
			dirs.advance()
			if aOK && a.EntraID == d.ID {
				f.App, seq = &a.AppUser, a.licenseRunSeq
				apps.advance()
			}
		default:
			f.EntraID, f.App, seq = a.EntraID, &a.AppUser, a.licenseRunSeq
			apps.advance()
		}
		dec := plan.DecideUser(s, f)
		if err := p.emit(dec.Items...); err != nil {
			return err
		}
		if dec.InScope {
			name := ""
			if f.Dir != nil {
				name = f.Dir.DisplayName
			} else if f.App != nil {
				name = f.App.DisplayName
			}
			if dec.Seat != plan.SeatHolder {
				seq = nil
			}
			if err := p.keepUser(f.EntraID, name, dec.Seat, seq); err != nil {
				return err
			}
		}
	}
}

// seats is the second pass: holders keep their seats while the pool has
// room, oldest grant first; candidates get the free ones in Entra id
// order.
func (p *planner) seats(seats *plan.Seats) error {
	if err := p.flush(); err != nil { // the pass reads what the users pass wrote
		return err
	}
	var afterSeq int64 = -1
	afterID := ""
	for {
		rows, err := p.q.PlanSeatHolders(p.ctx, dbsqlc.PlanSeatHoldersParams{TenantID: p.tenant, RunID: p.run,
			AfterSeq: afterSeq, AfterID: afterID, MaxRows: planChunk})
		if err != nil {
			return err
		}
		holders := make([]plan.SeatUser, len(rows))
		for i, r := range rows {
			if r.LicenseRunSeq == nil {
				return fmt.Errorf("seat holder %s has no license run", r.EntraID)
			}
			holders[i] = plan.SeatUser{EntraID: r.EntraID, DisplayName: r.DisplayName}
			afterSeq, afterID = *r.LicenseRunSeq, r.EntraID
		}
		for _, u := range holders {
			if it, ok := seats.Holder(u); ok {
				if err := p.emit(it); err != nil {
					return err
				}
			}
		}
		if len(holders) < planChunk {
			break
		}
	}
	after := ""
	for {
		cands, err := p.q.PlanSeatCandidates(p.ctx, dbsqlc.PlanSeatCandidatesParams{TenantID: p.tenant, RunID: p.run,
			After: after, MaxRows: planChunk})
		if err != nil {
			return err
		}
		for _, u := range cands {
			after = u.EntraID
			if it, ok := seats.Candidate(plan.SeatUser(u)); ok {
				if err := p.emit(it); err != nil {
					return err
				}
			}
		}
		if len(cands) < planChunk {
			return nil
		}
	}
}

// groups is the third pass: the mirror's groups and the app's, merged in
// Entra id order. Groups the app keeps go to plan_work_groups for the
// membership pass.
func (p *planner) groups() error {
	// The chunks' rows have the fields of libs/plan's types, so they
	// convert to them.
	dirs := newCursor(func(after string) ([]plan.DirGroup, []bool, error) {
		rows, err := p.q.PlanDirGroups(p.ctx, dbsqlc.PlanDirGroupsParams{TenantID: p.tenant, After: after, MaxRows: planChunk})
		return mapRows(rows, func(r dbsqlc.PlanDirGroupsRow) plan.DirGroup { return plan.DirGroup(r) }), nil, err
	}, func(g plan.DirGroup) string { return g.ID })
	apps := newCursor(func(after string) ([]plan.AppGroup, []bool, error) {
		rows, err := p.q.PlanAppGroups(p.ctx, dbsqlc.PlanAppGroupsParams{TenantID: p.tenant, After: after, MaxRows: planChunk})
		return mapRows(rows, func(r dbsqlc.PlanAppGroupsRow) plan.AppGroup { return plan.AppGroup(r) }), nil, err
	}, func(g plan.AppGroup) string { return g.EntraID })

	var kept []dbsqlc.InsertPlanWorkGroupsParams
	writeKept := func() error {
		if len(kept) == 0 {
			return nil
		}
		_, err := p.q.InsertPlanWorkGroups(p.ctx, kept)
		kept = kept[:0]
		return err
	}
	for {
		d, _, dOK, err := dirs.peek()
		if err != nil {
			return err
		}
		a, _, aOK, err := apps.peek()
		if err != nil {
			return err
		}
		if !dOK && !aOK {
			return writeKept()
		}
		f := plan.GroupFacts{}
		switch {
		case dOK && (!aOK || d.ID <= a.EntraID):
			f.EntraID, f.Dir = d.ID, &d
			dirs.advance()
			if aOK && a.EntraID == d.ID {
				f.App = &a
				apps.advance()
			}
		default:
			f.EntraID, f.App = a.EntraID, &a
			apps.advance()
		}
		it, ok := plan.DecideGroup(f)
		if ok {
			if err := p.emit(it); err != nil {
				return err
			}
		}
		if f.Dir != nil {
			kept = append(kept, dbsqlc.InsertPlanWorkGroupsParams{TenantID: p.tenant, RunID: p.run, EntraID: f.EntraID,
				DisplayName: f.Dir.DisplayName})
			if len(kept) >= planChunk {
				if err := writeKept(); err != nil {
					return err
				}
			}
		}
	}
}

// memberships is the last pass: Entra ID's nested memberships of the users
// and groups the app keeps, against the app's memberships.
func (p *planner) memberships() error {
	if err := p.flush(); err != nil {
		return err
	}
	// The closure walks edges through the index: nested loops are right
	// here, whatever finalization set before.
	if err := setNestLoop(p.ctx, p.q, true); err != nil {
		return err
	}
	if err := p.q.PlanEntraMembers(p.ctx, dbsqlc.PlanEntraMembersParams{TenantID: p.tenant, RunID: p.run}); err != nil {
		return fmt.Errorf("nested memberships: %w", err)
	}
	// Entra ID's memberships the app lacks, then the app's: each chunk as
	// libs/plan's facts.
	toAdd := func(after dbsqlc.PlanMembershipsToAddParams) ([]plan.MembershipFacts, error) {
		rows, err := p.q.PlanMembershipsToAdd(p.ctx, after)
		return mapRows(rows, func(r dbsqlc.PlanMembershipsToAddRow) plan.MembershipFacts {
			return plan.MembershipFacts{GroupID: r.GroupID, GroupName: r.GroupName, UserID: r.UserID,
				UserName: r.UserName, InEntra: true, UserStays: true, GroupStays: true}
		}), err
	}
	inApp := func(after dbsqlc.PlanMembershipsToAddParams) ([]plan.MembershipFacts, error) {
		rows, err := p.q.PlanAppMemberships(p.ctx, dbsqlc.PlanAppMembershipsParams(after))
		return mapRows(rows, func(r dbsqlc.PlanAppMembershipsRow) plan.MembershipFacts {
			return plan.MembershipFacts{GroupID: r.GroupID, GroupName: r.GroupName, UserID: r.UserID,
				UserName: r.UserName, InEntra: r.InEntra, InApp: true, UserStays: r.UserStays, GroupStays: r.GroupStays}
		}), err
	}
	for _, chunk := range []func(dbsqlc.PlanMembershipsToAddParams) ([]plan.MembershipFacts, error){toAdd, inApp} {
		afterGroup, afterUser := "", ""
		for {
			facts, err := chunk(dbsqlc.PlanMembershipsToAddParams{TenantID: p.tenant, RunID: p.run,
				AfterGroup: afterGroup, AfterUser: afterUser, MaxRows: planChunk})
			if err != nil {
				return err
			}
			if n := len(facts); n > 0 {
				afterGroup, afterUser = facts[n-1].GroupID, facts[n-1].UserID
			}
			for _, f := range facts {
				if it, ok := plan.DecideMembership(f); ok {
					if err := p.emit(it); err != nil {
						return err
					}
				}
			}
			if len(facts) < planChunk {
				break
			}
		}
	}
	return nil
}

// cursor reads a keyset-paginated stream chunk by chunk: peek shows the
// current row, advance moves past it. extra carries a per-row value the
// query returned beside the row.
type cursor[T any] struct {
	fetch func(after string) ([]T, []bool, error)
	key   func(T) string
	buf   []T
	extra []bool
	i     int
	after string
	done  bool
}

func newCursor[T any](fetch func(after string) ([]T, []bool, error), key func(T) string) *cursor[T] {
	return &cursor[T]{fetch: fetch, key: key}
}

func (c *cursor[T]) peek() (T, bool, bool, error) {
	var zero T
	if c.i >= len(c.buf) {
		if c.done {
			return zero, false, false, nil
		}
		buf, extra, err := c.fetch(c.after)
		if err != nil {
			return zero, false, false, err
		}
		c.buf, c.extra, c.i = buf, extra, 0
		if len(buf) < planChunk {
			c.done = true
		}
		if len(buf) == 0 {
			return zero, false, false, nil
		}
		c.after = c.key(buf[len(buf)-1])
	}
	var x bool
	if c.extra != nil {
		x = c.extra[c.i]
	}
	return c.buf[c.i], x, true, nil
}

func (c *cursor[T]) advance() { c.i++ }

// applyPlan writes a run's stored plan to the app side, action by action
// in plan.Actions' order, then refreshes the groups' member counts, bumps
// the app side's version and tells the admins about a new seat shortage.
func applyPlan(ctx context.Context, q *dbsqlc.Queries, ref PageRef, pr pageRange, res planResult, at time.Time) error {
	t, r := ref.TenantID, ref.RunID
	for _, a := range plan.Actions {
		if res.summary[a] == 0 {
			continue
		}
		if err := applyAction(ctx, q, a, ref, at); err != nil {
			return fmt.Errorf("apply %s: %w", a, err)
		}
	}
	if err := q.RefreshGroupCounts(ctx, dbsqlc.RefreshGroupCountsParams{TenantID: t, RunID: r, Lo: pr.lo, Hi: pr.hi,
		At: at}); err != nil {
		return fmt.Errorf("refresh group counts: %w", err)
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
	return nil
}

// applyAction runs the statement that applies one action of the run's
// stored plan; at is the time, the run's seq marks the seats it grants.
func applyAction(ctx context.Context, q *dbsqlc.Queries, a plan.Action, ref PageRef, at time.Time) error {
	t, r := ref.TenantID, ref.RunID
	switch a {
	case plan.RevokeRole:
		return q.ApplyRevokeRole(ctx, dbsqlc.ApplyRevokeRoleParams{TenantID: t, RunID: r})
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
		return q.ApplyCreateUser(ctx, dbsqlc.ApplyCreateUserParams{TenantID: t, RunID: r, At: at})
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
		return q.ApplyGrantRole(ctx, dbsqlc.ApplyGrantRoleParams{TenantID: t, RunID: r, At: at})
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
