package store

import (
	"context"
	"crypto/sha1"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/plan"
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
	tx      pgx.Tx
	tenant  string
	run     string
	summary plan.Summary
	next    int32 // seq of the next item
	items   [][]any
	work    [][]any // plan_work_users rows waiting to be written
	inScope int64
}

func newPlanner(ctx context.Context, tx pgx.Tx, tenant, run string) *planner {
	return &planner{ctx: ctx, tx: tx, tenant: tenant, run: run, summary: plan.Summary{}}
}

// emit queues items and writes them once a chunk is full.
func (p *planner) emit(items ...plan.Item) error {
	for _, it := range items {
		p.summary.Add(it)
		p.items = append(p.items, []any{p.tenant, p.run, p.next, string(it.Action), it.EntraID,
			nullIfEmpty(it.GroupID), nullIfEmpty(it.Role), it.DisplayName, jsonOrNil(it.Before), jsonOrNil(it.After), it.Reason})
		p.next++
	}
	if len(p.items) >= planChunk {
		return p.flush()
	}
	return nil
}

func (p *planner) flush() error {
	if len(p.items) > 0 {
		if _, err := p.tx.CopyFrom(p.ctx, pgx.Identifier{"sync_plan_items"},
			[]string{"tenant_id", "run_id", "seq", "action", "entra_id", "group_id", "role", "display_name", "before", "after", "reason"},
			pgx.CopyFromRows(p.items)); err != nil {
			return fmt.Errorf("write plan items: %w", err)
		}
		p.items = p.items[:0]
	}
	if len(p.work) > 0 {
		if _, err := p.tx.CopyFrom(p.ctx, pgx.Identifier{"plan_work_users"},
			[]string{"tenant_id", "run_id", "entra_id", "display_name", "seat", "license_run_seq"},
			pgx.CopyFromRows(p.work)); err != nil {
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
	p.work = append(p.work, []any{p.tenant, p.run, id, name, int16(seat), licenseRunSeq})
	if len(p.work) >= planChunk {
		return p.flush()
	}
	return nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func jsonOrNil(f plan.Fields) any {
	if f == nil {
		return nil
	}
	return map[string]any(f)
}

// buildPlan plans a complete run ($pr is the page range of its attempt).
func buildPlan(ctx context.Context, tx pgx.Tx, ref PageRef, pr pageRange) (planResult, error) {
	var res planResult
	t, err := loadPlanTenant(ctx, tx, ref, pr)
	if err != nil {
		return res, err
	}
	res.tenant = t
	p := newPlanner(ctx, tx, ref.TenantID, ref.RunID)
	if _, err := tx.Exec(ctx, qDeletePlanItems, ref.TenantID, ref.RunID); err != nil {
		return res, fmt.Errorf("clear plan: %w", err)
	}
	if len(t.settings.Scope.Groups) > 0 {
		if _, err := tx.Exec(ctx, qPlanScopeUsers, ref.TenantID, ref.RunID, t.settings.Scope.Groups); err != nil {
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
	for _, q := range []string{qPlanDeleteWork, qPlanDeleteWorkUsers, qPlanDeleteWorkGroups, qPlanDeleteWorkMembers} {
		if _, err := tx.Exec(ctx, q, ref.TenantID, ref.RunID); err != nil {
			return res, fmt.Errorf("clear plan work: %w", err)
		}
	}
	res.summary = p.summary
	res.counts = p.summary.Counts(seats.Unlicensed, p.inScope)
	res.verdict = plan.Judge(t.settings, p.summary, t.guard)
	return res, nil
}

func loadPlanTenant(ctx context.Context, tx pgx.Tx, ref PageRef, pr pageRange) (planTenant, error) {
	var t planTenant
	var seats int
	var raw []byte
	if err := tx.QueryRow(ctx, qPlanTenant, ref.TenantID).Scan(&t.name, &seats, &raw, &t.appVersion, &t.shortage,
		&t.guard.AppUsers, &t.guard.Licenses, &t.guard.RoleGrants); err != nil {
		return t, fmt.Errorf("read tenant: %w", err)
	}
	var err error
	if t.settings, err = parseSettings(raw, seats); err != nil {
		return t, err
	}
	var pages int64
	if err := tx.QueryRow(ctx, qPlanUsersListed, ref.TenantID, ref.RunID, pr.lo, pr.hi).Scan(&pages, &t.guard.UsersListed); err != nil {
		return t, fmt.Errorf("count users listed: %w", err)
	}
	t.guard.UsersRead = pages > 0
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
		rows, err := p.tx.Query(p.ctx, qPlanDirUsers, p.tenant, p.run, after, planChunk)
		if err != nil {
			return nil, nil, err
		}
		var out []plan.DirUser
		var scoped []bool
		for rows.Next() {
			var d plan.DirUser
			var in bool
			if err := rows.Scan(&d.ID, &d.DisplayName, &d.Mail, &d.UserPrincipalName, &d.GivenName, &d.Surname,
				&d.JobTitle, &d.Department, &d.UserType, &d.AccountEnabled, &in); err != nil {
				rows.Close()
				return nil, nil, err
			}
			out, scoped = append(out, d), append(scoped, in)
		}
		return out, scoped, rows.Err()
	}, func(d plan.DirUser) string { return d.ID })
	apps := newCursor(func(after string) ([]appUserFacts, []bool, error) {
		rows, err := p.tx.Query(p.ctx, qPlanAppUsers, p.tenant, after, planChunk)
		if err != nil {
			return nil, nil, err
		}
		var out []appUserFacts
		for rows.Next() {
			var a appUserFacts
			if err := rows.Scan(&a.EntraID, &a.Email, &a.DisplayName, &a.GivenName, &a.Surname, &a.JobTitle,
				&a.Department, &a.Enabled, &a.License, &a.LicenseDisabledAt, &a.DisplayNameEditedAt,
				&a.EmailEditedAt, &a.Roles, &a.licenseRunSeq); err != nil {
				rows.Close()
				return nil, nil, err
			}
			out = append(out, a)
		}
		return out, nil, rows.Err()
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
		rows, err := p.tx.Query(p.ctx, qPlanSeatHolders, p.tenant, p.run, afterSeq, afterID, planChunk)
		if err != nil {
			return err
		}
		var holders []plan.SeatUser
		for rows.Next() {
			var u plan.SeatUser
			if err := rows.Scan(&u.EntraID, &u.DisplayName, &afterSeq); err != nil {
				rows.Close()
				return err
			}
			afterID = u.EntraID
			holders = append(holders, u)
		}
		if err := rows.Err(); err != nil {
			return err
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
		rows, err := p.tx.Query(p.ctx, qPlanSeatCandidates, p.tenant, p.run, after, planChunk)
		if err != nil {
			return err
		}
		var cands []plan.SeatUser
		for rows.Next() {
			var u plan.SeatUser
			if err := rows.Scan(&u.EntraID, &u.DisplayName); err != nil {
				rows.Close()
				return err
			}
			after = u.EntraID
			cands = append(cands, u)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, u := range cands {
			if it, ok := seats.Candidate(u); ok {
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
	dirs := newCursor(func(after string) ([]plan.DirGroup, []bool, error) {
		rows, err := p.tx.Query(p.ctx, qPlanDirGroups, p.tenant, after, planChunk)
		if err != nil {
			return nil, nil, err
		}
		out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (plan.DirGroup, error) {
			var g plan.DirGroup
			err := r.Scan(&g.ID, &g.DisplayName, &g.GroupTypes, &g.SecurityEnabled, &g.MailEnabled)
			return g, err
		})
		return out, nil, err
	}, func(g plan.DirGroup) string { return g.ID })
	apps := newCursor(func(after string) ([]plan.AppGroup, []bool, error) {
		rows, err := p.tx.Query(p.ctx, qPlanAppGroups, p.tenant, after, planChunk)
		if err != nil {
			return nil, nil, err
		}
		out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (plan.AppGroup, error) {
			var g plan.AppGroup
			err := r.Scan(&g.EntraID, &g.DisplayName, &g.Kind, &g.Dynamic)
			return g, err
		})
		return out, nil, err
	}, func(g plan.AppGroup) string { return g.EntraID })

	var kept [][]any
	writeKept := func() error {
		if len(kept) == 0 {
			return nil
		}
		_, err := p.tx.CopyFrom(p.ctx, pgx.Identifier{"plan_work_groups"},
			[]string{"tenant_id", "run_id", "entra_id", "display_name"}, pgx.CopyFromRows(kept))
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
			kept = append(kept, []any{p.tenant, p.run, f.EntraID, f.Dir.DisplayName})
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
	if err := setNestLoop(p.ctx, p.tx, true); err != nil {
		return err
	}
	if _, err := p.tx.Exec(p.ctx, qPlanEntraMembers, p.tenant, p.run); err != nil {
		return fmt.Errorf("nested memberships: %w", err)
	}
	for _, q := range []string{qPlanMembershipsToAdd, qPlanAppMemberships} {
		afterGroup, afterUser := "", ""
		for {
			rows, err := p.tx.Query(p.ctx, q, p.tenant, p.run, afterGroup, afterUser, planChunk)
			if err != nil {
				return err
			}
			var facts []plan.MembershipFacts
			for rows.Next() {
				f := plan.MembershipFacts{InEntra: true, UserStays: true, GroupStays: true}
				dest := []any{&f.GroupID, &f.GroupName, &f.UserID, &f.UserName}
				if q == qPlanAppMemberships {
					f.InApp = true
					dest = append(dest, &f.InEntra, &f.UserStays, &f.GroupStays)
				}
				if err := rows.Scan(dest...); err != nil {
					rows.Close()
					return err
				}
				afterGroup, afterUser = f.GroupID, f.UserID
				facts = append(facts, f)
			}
			if err := rows.Err(); err != nil {
				return err
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
func applyPlan(ctx context.Context, tx pgx.Tx, ref PageRef, pr pageRange, res planResult, at time.Time) error {
	t, r := ref.TenantID, ref.RunID
	for _, a := range plan.Actions {
		if res.summary[a] == 0 {
			continue
		}
		q := applyQueries[a]
		args := []any{t, r, at, ref.RunSeq}[:q.args]
		if _, err := tx.Exec(ctx, q.sql, args...); err != nil {
			return fmt.Errorf("apply %s: %w", a, err)
		}
	}
	if _, err := tx.Exec(ctx, qRefreshGroupCounts, t, r, pr.lo, pr.hi, at); err != nil {
		return fmt.Errorf("refresh group counts: %w", err)
	}
	if res.summary.Total() > 0 {
		if _, err := tx.Exec(ctx, qAppChanged, t, at, fmt.Sprintf("run %d applied its plan", ref.RunSeq)); err != nil {
			return fmt.Errorf("bump app version: %w", err)
		}
	}
	notice, short := plan.SeatShortage(res.tenant.shortage, res.counts["unlicensed"], res.tenant.settings.Seats, res.tenant.name)
	if _, err := tx.Exec(ctx, qSetSeatShortage, t, short); err != nil {
		return fmt.Errorf("seat shortage: %w", err)
	}
	if notice != nil {
		if err := notify(ctx, tx, t, r, *notice, at); err != nil {
			return err
		}
	}
	return nil
}

// notify writes a notification task for the tenant's Administrators and
// License managers. Its id comes from the run and the kind, so a
// transaction run again writes the same task.
func notify(ctx context.Context, tx pgx.Tx, tenantID, runID string, n plan.Notice, at time.Time) error {
	rows, err := tx.Query(ctx, qNotifiedEmails, tenantID, plan.BuiltinRoles)
	if err != nil {
		return fmt.Errorf("notification recipients: %w", err)
	}
	emails, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("notification recipients: %w", err)
	}
	if emails == nil {
		emails = []string{}
	}
	id := uuid.NewHash(sha1.New(), uuid.MustParse(runID), []byte(n.Kind), 5).String()
	if _, err := tx.Exec(ctx, qInsertNotification, tenantID, id, n.Kind, runID, emails, n.Subject, n.Text, at); err != nil {
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

// applyQuery is the statement that applies one action, and how many of
// (tenant, run, time, run seq) it takes.
type applyQuery struct {
	sql  string
	args int
}

var applyQueries = map[plan.Action]applyQuery{
	plan.RevokeRole:       {query("ApplyRevokeRole"), 2},
	plan.RemoveMembership: {query("ApplyRemoveMembership"), 2},
	plan.RevokeLicense:    {query("ApplyRevokeLicense"), 3},
	plan.RemoveUser:       {query("ApplyRemoveUser"), 2},
	plan.RemoveGroup:      {query("ApplyRemoveGroup"), 2},
	plan.CreateGroup:      {query("ApplyCreateGroup"), 3},
	plan.UpdateGroup:      {query("ApplyUpdateGroup"), 3},
	plan.CreateUser:       {query("ApplyCreateUser"), 3},
	plan.UpdateUser:       {query("ApplyUpdateUser"), 3},
	plan.DisableUser:      {query("ApplyDisableUser"), 3},
	plan.EnableUser:       {query("ApplyEnableUser"), 3},
	plan.AssignLicense:    {query("ApplyAssignLicense"), 4},
	plan.AddMembership:    {query("ApplyAddMembership"), 2},
	plan.GrantRole:        {query("ApplyGrantRole"), 3},
}

var (
	qPlanTenant            = query("PlanTenant")
	qPlanUsersListed       = query("PlanUsersListed")
	qPlanScopeUsers        = query("PlanScopeUsers")
	qPlanDirUsers          = query("PlanDirUsers")
	qPlanAppUsers          = query("PlanAppUsers")
	qPlanSeatHolders       = query("PlanSeatHolders")
	qPlanSeatCandidates    = query("PlanSeatCandidates")
	qPlanDirGroups         = query("PlanDirGroups")
	qPlanAppGroups         = query("PlanAppGroups")
	qPlanEntraMembers      = query("PlanEntraMembers")
	qPlanMembershipsToAdd  = query("PlanMembershipsToAdd")
	qPlanAppMemberships    = query("PlanAppMemberships")
	qPlanDeleteWork        = query("PlanDeleteWork")
	qPlanDeleteWorkUsers   = query("PlanDeleteWorkUsers")
	qPlanDeleteWorkGroups  = query("PlanDeleteWorkGroups")
	qPlanDeleteWorkMembers = query("PlanDeleteWorkMembers")
	qDeletePlanItems       = query("DeletePlanItems")
	qHoldRun               = query("HoldRun")
	qRecordPlan            = query("RecordPlan")
	qRefreshGroupCounts    = query("RefreshGroupCounts")
	qAppChanged            = query("AppChanged")
	qSetSeatShortage       = query("SetSeatShortage")
	qNotifiedEmails        = query("NotifiedEmails")
	qInsertNotification    = query("InsertNotification")
	qRunPlanState          = query("RunPlanState")
	qDecideRun             = query("DecideRun")
	qListPlanItems         = query("ListPlanItems")
	qListNotifications     = query("ListNotifications")
)
