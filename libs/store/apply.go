package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// How the reconciler applies a run's events. Every method is idempotent
// and order-insensitive: an event applied twice, or before an event it
// followed on the wire, leaves the same state as the wire order would.
//
//   - Each mirrored object keeps the version (run seq, page, index) of the
//     newest page entry that wrote it; an entry is written only when it is
//     newer, and then always, even when it repeats what the row says: an
//     older version kept would let a late page or tombstone of a version
//     in between win over it.
//   - Each data page is recorded once per run (sync_run_pages) with the ids
//     it contained; a page seen again is skipped.
//   - Each fetch attempt of a run numbers its pages in a range of its own
//     (AttemptPageSpan numbers per attempt), so a later attempt's
//     entries are newer than an earlier one's. The run's outcome is judged
//     on the pages of the attempt its RunFetched names (MarkRunFetched);
//     pages of other attempts are written to the mirror like any page, as
//     what Graph said at the time, and count for nothing else.
//   - Events of a run that is over, or older than a run of the same tenant
//     that succeeded, change nothing.
//   - The run is finalized, in one transaction, by whichever apply sees
//     the last of its pages (TryFinalize).
//
// The tenant's advisory lock orders page applies (shared) against
// finalization and failure (exclusive).

// Page numbering of a run's fetch attempts. Fetchers number the pages
// they publish by the wire's rule (syncv1.AttemptPageSpan and
// syncv1.MaxFetchAttempts in proto/entrasync/sync/v1/pages.go); the store
// keeps its own copy of the two numbers rather than depend on the wire
// format, and a test of services/reconciler, which sees both, checks that
// they are equal.
const (
	// AttemptPageSpan is how many page numbers each fetch attempt of a run
	// owns: attempt a (from 1) numbers its pages from (a-1)*AttemptPageSpan.
	AttemptPageSpan = 1 << 20
	// MaxFetchAttempts is how many attempts' pages fit below the largest
	// int32, which stays free for the versions of tombstones.
	MaxFetchAttempts = 2047

	// maxFirstPage is the first page of the last attempt allowed.
	maxFirstPage = (MaxFetchAttempts - 1) * AttemptPageSpan
)

// PageRef says which run, and which page of it, an event belongs to.
type PageRef struct {
	TenantID string
	RunID    string
	RunSeq   int64
	// Page is the data page's position in the run, from 0; ignored by the
	// Mark* methods.
	Page int32
}

func (r PageRef) logger(l zerolog.Logger) zerolog.Logger {
	return l.With().Str("tenant", r.TenantID).Str("run", r.RunID).Int32("page", r.Page).Logger()
}

func (r *PageRef) validate(dataPage bool) error {
	var errs []error
	if id, ok := canonicalID(r.TenantID); ok {
		r.TenantID = id
	} else {
		errs = append(errs, invalidf("tenant id %q is not a UUID", r.TenantID))
	}
	if id, ok := canonicalID(r.RunID); ok {
		r.RunID = id
	} else {
		errs = append(errs, invalidf("run id %q is not a UUID", r.RunID))
	}
	if r.RunSeq <= 0 {
		errs = append(errs, invalidf("run seq %d is not positive", r.RunSeq))
	}
	if dataPage && r.Page < 0 {
		errs = append(errs, invalidf("page %d of a data page is negative", r.Page))
	}
	return errors.Join(errs...)
}

// DirUser is a directory user as Graph returned it.
type DirUser = plan.DirUser // Mail is "" when Graph returned null

// DirGroup is a directory group as Graph returned it.
type DirGroup struct {
	ID              string
	DisplayName     string
	Description     string
	Mail            string
	GroupTypes      []string // "Unified", "DynamicMembership"
	SecurityEnabled bool
	MailEnabled     bool
	MembershipRule  string
	// RenewedAt is Graph's renewedDateTime; nil when it gave none.
	RenewedAt *time.Time
}

// MemberType is the kind of directory object in a membership list.
type MemberType string

// Member types as stored in dir_members.
const (
	MemberUser             MemberType = "user"
	MemberGroup            MemberType = "group"
	MemberDevice           MemberType = "device"
	MemberOrgContact       MemberType = "orgContact"
	MemberServicePrincipal MemberType = "servicePrincipal"
	MemberOther            MemberType = "other"
)

func (t MemberType) valid() bool {
	switch t {
	case MemberUser, MemberGroup, MemberDevice, MemberOrgContact, MemberServicePrincipal, MemberOther:
		return true
	}
	return false
}

// DirMember is one entry of a group's direct member list.
type DirMember struct {
	ID   string
	Type MemberType
	// DisplayName is the member's name; kept for devices, which are mirror
	// rows of their own (dir_devices).
	DisplayName string
}

// MembersPage is one page of a group's direct members. Part counts the
// group's pages from 0; Last marks its final page, so finalization knows
// it saw the complete list.
type MembersPage struct {
	GroupID string
	Part    int32
	Last    bool
	Members []DirMember
}

// TransitivePage is one page of the users in a group's nested membership,
// as Graph computes it.
type TransitivePage struct {
	GroupID string
	Part    int32
	Last    bool
	UserIDs []string
}

// GraphStats is what a run cost at Graph.
type GraphStats struct {
	Requests  int64
	Throttled int64
	Retries   int64
}

// Page kinds as recorded in sync_run_pages.
const (
	pageUsers      = "users"
	pageGroups     = "groups"
	pageMembers    = "members"
	pageTransitive = "transitive"
	// pageUnreadable says Graph refused to list a group's members.
	pageUnreadable = "unreadable"
)

// pageRecord is what sync_run_pages keeps of a page.
type pageRecord struct {
	kind    string
	groupID *string
	part    *int32
	last    *bool
	ids     []string
	err     *string // an unreadable page's error
}

func (p pageRecord) String() string {
	if p.groupID == nil {
		return p.kind + " page"
	}
	if p.part == nil {
		return fmt.Sprintf("%s page of group %s", p.kind, *p.groupID)
	}
	return fmt.Sprintf("%s page %d of group %s", p.kind, *p.part, *p.groupID)
}

func (p pageRecord) same(kind string, groupID *string, part *int32) bool {
	return p.kind == kind && eqPtr(p.groupID, groupID) && eqPtr(p.part, part)
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// runState is a run as seen by an event.
type runState struct {
	seq          int64
	status       string
	pagesFirst   *int32 // set together with pagesTotal, by MarkRunFetched
	pagesTotal   *int32
	supersededBy *int64
	// fetchAttempts counts the attempts fetchers began (BeginFetch).
	fetchAttempts int32
}

// beyondFetched reports whether page belongs to the attempt whose
// RunFetched was applied but lies past its last page: a contradiction.
func (r runState) beyondFetched(page int32) bool {
	if r.pagesFirst == nil || r.pagesTotal == nil {
		return false
	}
	first := *r.pagesFirst
	return page >= first && page-first < AttemptPageSpan && page-first >= *r.pagesTotal
}

// closed reports whether events of the run no longer change anything.
func (r runState) closed() bool {
	return runOver(r.status) || r.supersededBy != nil
}

// readRunState reads a run as an event sees it.
func readRunState(ctx context.Context, q *dbsqlc.Queries, tenantID, runID string) (runState, error) {
	row, err := q.RunState(ctx, dbsqlc.RunStateParams{TenantID: tenantID, RunID: runID})
	if err != nil {
		return runState{}, err
	}
	st := runState{seq: row.Seq, status: row.Status, pagesFirst: row.PagesFirst, pagesTotal: row.PagesTotal,
		fetchAttempts: row.FetchAttempts}
	if row.SupersededBy > 0 {
		st.supersededBy = &row.SupersededBy
	}
	return st, nil
}

// loadRun reads the run an event belongs to, under its row lock when
// forUpdate, and checks the event's sequence number against it.
func loadRun(ctx context.Context, q *dbsqlc.Queries, ref PageRef, forUpdate bool) (runState, error) {
	if forUpdate {
		if err := q.LockRunForNoKeyUpdate(ctx, dbsqlc.LockRunForNoKeyUpdateParams{TenantID: ref.TenantID, RunID: ref.RunID}); err != nil {
			return runState{}, err
		}
	}
	st, err := readRunState(ctx, q, ref.TenantID, ref.RunID)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return st, fmt.Errorf("run %s of tenant %s: %w", ref.RunID, ref.TenantID, ErrNotFound)
		}
		return st, err
	}
	if st.seq != ref.RunSeq {
		return st, invalidf("event says run %s has seq %d, the run has seq %d", ref.RunID, ref.RunSeq, st.seq)
	}
	return st, nil
}

// MarkRunStarted records that a fetcher took the run: queued → running,
// and the start time. It changes nothing once the run is further along.
func (s *Store) MarkRunStarted(ctx context.Context, ref PageRef, at time.Time) error {
	if err := ref.validate(false); err != nil {
		return fmt.Errorf("store: mark run started: %w", err)
	}
	return s.inTx(ctx, "mark run started", func(q *dbsqlc.Queries) error {
		if err := lockTenant(ctx, q, ref.TenantID, false); err != nil {
			return err
		}
		st, err := loadRun(ctx, q, ref, false)
		if err != nil || st.closed() {
			return err
		}
		return q.MarkRunStarted(ctx, dbsqlc.MarkRunStartedParams{TenantID: ref.TenantID, RunID: ref.RunID, At: at})
	})
}

// Fetched is what a RunFetched event says: which attempt read the whole
// directory, in how many pages, at what cost.
type Fetched struct {
	// FirstPage is the number of the attempt's first data page: a multiple
	// of AttemptPageSpan, 0 for the first attempt.
	FirstPage int
	// Pages is the number of the attempt's data pages, FirstPage ..
	// FirstPage+Pages-1; at most AttemptPageSpan.
	Pages int
	Stats GraphStats
	// UsersDeltaLink and GroupsDeltaLink are the Graph delta links the
	// attempt ended with ("" when it took none): the ends of a delta
	// run's rounds, or the links a full run took before it enumerated.
	// They become the tenant's (DeltaLinks) when the run's plan is
	// applied.
	UsersDeltaLink  string
	GroupsDeltaLink string
	// CaughtUp says the attempt read a delta round from the tenant's
	// saved links before it listed the whole directory: finalization
	// then reports what the listing found beyond that round as drift.
	CaughtUp bool
	// UsersFiltered says the attempt listed users through the tenant's
	// scope.userFilter, so the mirror it leaves lacks the users the
	// filter hid. Such an attempt takes no delta links, and applying its
	// run drops the tenant's (see keepDeltaLinks).
	UsersFiltered bool
}

func (f Fetched) validate() error {
	var errs []error
	if f.FirstPage < 0 || f.FirstPage > maxFirstPage || f.FirstPage%AttemptPageSpan != 0 {
		errs = append(errs, invalidf("first page %d is not the start of an attempt's pages (a multiple of %d up to %d)",
			f.FirstPage, AttemptPageSpan, maxFirstPage))
	}
	if f.Pages < 0 || f.Pages > AttemptPageSpan {
		errs = append(errs, invalidf("page count %d is out of range 0..%d", f.Pages, AttemptPageSpan))
	}
	if f.Stats.Requests < 0 || f.Stats.Throttled < 0 || f.Stats.Retries < 0 {
		errs = append(errs, invalidf("graph stats %+v has a negative count", f.Stats))
	}
	for name, l := range map[string]string{"users": f.UsersDeltaLink, "groups": f.GroupsDeltaLink} {
		if strings.ContainsRune(l, 0) || !utf8.ValidString(l) || strings.TrimSpace(l) != l {
			errs = append(errs, invalidf("%s delta link %q is not a link", name, l))
		}
	}
	if f.CaughtUp && (f.UsersDeltaLink == "" || f.GroupsDeltaLink == "") {
		errs = append(errs, invalidf("a caught-up fetch ends with both delta links"))
	}
	if f.UsersFiltered && (f.UsersDeltaLink != "" || f.GroupsDeltaLink != "") {
		errs = append(errs, invalidf("a fetch that listed users through a filter takes no delta links"))
	}
	return errors.Join(errs...)
}

// MarkRunFetched records that a fetch attempt read the whole directory,
// in the pages f names, with what it cost, and moves the run to applying.
// The run finishes once all of those pages are applied (see TryFinalize);
// pages of its other attempts do not count.
//
// Normally one attempt per run gets this far. When two do (the job came
// back after its first RunFetched was published, before it was
// acknowledged), the later attempt, which read Graph later, replaces the
// earlier one until the run is finalized; the earlier one's RunFetched
// arriving after the later one's changes nothing.
func (s *Store) MarkRunFetched(ctx context.Context, ref PageRef, f Fetched, at time.Time) error {
	if err := errors.Join(ref.validate(false), f.validate()); err != nil {
		return fmt.Errorf("store: mark run fetched: %w", err)
	}
	first, pages := int32(f.FirstPage), int32(f.Pages)
	log := ref.logger(s.log).With().Int32("first_page", first).Int32("pages", pages).Logger()
	return s.inTx(ctx, "mark run fetched", func(q *dbsqlc.Queries) error {
		if err := lockTenant(ctx, q, ref.TenantID, false); err != nil {
			return err
		}
		st, err := loadRun(ctx, q, ref, true)
		if err != nil {
			return err
		}
		if st.closed() {
			log.Debug().Str("status", st.status).Msg("store: run is over; fetched event changes nothing")
			return nil
		}
		// The fence: once a later attempt began, its fetcher holds the
		// tenant's lease and this attempt's did not (it lost the lease,
		// or died and its RunFetched was late). What a fenced-out fetcher
		// read is older than what the later attempt is reading: the run
		// waits for that one instead of finishing on stale pages.
		if attempt := first/AttemptPageSpan + 1; attempt < st.fetchAttempts {
			log.Info().Int32("attempt", attempt).Int32("fetch_attempts", st.fetchAttempts).
				Msg("store: RunFetched of an attempt a later one replaced; the run waits for the latest")
			return nil
		}
		replaced := st.pagesFirst
		if replaced != nil {
			switch {
			case *st.pagesFirst == first && *st.pagesTotal != pages:
				return fmt.Errorf("%w: run %s was fetched with %d pages from page %d, now %d", ErrConflict,
					ref.RunID, *st.pagesTotal, first, pages)
			case *st.pagesFirst == first:
				return nil // a replay
			case *st.pagesFirst > first:
				log.Info().Int32("fetched_first_page", *st.pagesFirst).
					Msg("store: an earlier attempt's RunFetched after a later one's; the later one stands")
				return nil
			}
		}
		maxPage, err := q.MaxRecordedPageIn(ctx, dbsqlc.MaxRecordedPageInParams{TenantID: ref.TenantID, RunID: ref.RunID,
			Lo: first + pages, Hi: first + AttemptPageSpan})
		if err != nil {
			return err
		}
		if maxPage >= 0 {
			return invalidf("run %s was fetched with %d pages from page %d, but page %d was applied", ref.RunID, pages, first, maxPage)
		}
		if err := q.MarkRunFetched(ctx, dbsqlc.MarkRunFetchedParams{TenantID: ref.TenantID, RunID: ref.RunID,
			PagesFirst: first, PagesTotal: pages, UsersDeltaLink: nullIfEmpty(f.UsersDeltaLink),
			GroupsDeltaLink: nullIfEmpty(f.GroupsDeltaLink), CaughtUp: f.CaughtUp, UsersFiltered: f.UsersFiltered, GraphRequests: f.Stats.Requests, GraphThrottled: f.Stats.Throttled,
			GraphRetries: f.Stats.Retries, At: at}); err != nil {
			return err
		}
		if replaced != nil {
			log.Info().Int32("replaced_first_page", *replaced).
				Msg("store: a later attempt fetched the run too; its pages replace the earlier attempt's")
		}
		return nil
	})
}

// MarkRunFailed ends a run as failed with msg, unless it is already over.
func (s *Store) MarkRunFailed(ctx context.Context, ref PageRef, msg string, stats GraphStats, at time.Time) error {
	if err := ref.validate(false); err != nil {
		return fmt.Errorf("store: mark run failed: %w", err)
	}
	msg = pgText(msg)
	if strings.TrimSpace(msg) == "" {
		msg = "the run failed without a message"
	}
	return s.inTx(ctx, "mark run failed", func(q *dbsqlc.Queries) error {
		if err := lockTenant(ctx, q, ref.TenantID, true); err != nil {
			return err
		}
		st, err := loadRun(ctx, q, ref, true)
		if err != nil || runOver(st.status) {
			return err
		}
		return failRun(ctx, q, ref.TenantID, ref.RunID, msg, stats, at, true)
	})
}

// failRun ends a run as failed. With notifyAdmins, the tenant's admins get
// a sync_failed task in the same transaction; a run that merely lost to a
// newer one is no news to them.
func failRun(ctx context.Context, q *dbsqlc.Queries, tenantID, runID, msg string, stats GraphStats, at time.Time, notifyAdmins bool) error {
	failed, err := q.MarkRunFailed(ctx, dbsqlc.MarkRunFailedParams{TenantID: tenantID, RunID: runID, Error: msg,
		GraphRequests: stats.Requests, GraphThrottled: stats.Throttled, GraphRetries: stats.Retries, At: at,
		AttemptPageSpan: AttemptPageSpan})
	if err != nil {
		return err
	}
	if err := q.DeleteRunPages(ctx, dbsqlc.DeleteRunPagesParams{TenantID: tenantID, RunID: runID}); err != nil {
		return err
	}
	if !notifyAdmins {
		return nil
	}
	return notify(ctx, q, tenantID, runID, plan.SyncFailed(failed.TenantName, failed.Seq, msg), at)
}

// runOver reports whether a run's events no longer change anything: it
// ended, or its plan was made (held runs wait for an admin, not for
// events).
func runOver(status string) bool {
	switch status {
	case StatusSucceeded, StatusFailed, StatusAwaitingApproval, StatusRejected:
		return true
	}
	return false
}

// ApplyUsersPage applies one page of users to the mirror.
func (s *Store) ApplyUsersPage(ctx context.Context, ref PageRef, users []DirUser, at time.Time) error {
	rows, ids, err := userRows(users)
	if err != nil {
		return fmt.Errorf("store: apply users page: %w", err)
	}
	rec := pageRecord{kind: pageUsers, ids: ids}
	return s.applyPage(ctx, ref, rec, at, func(q *dbsqlc.Queries) error {
		return upsert(rows, func(raw []byte) error {
			return q.UpsertUsers(ctx, dbsqlc.UpsertUsersParams{TenantID: ref.TenantID, RunID: ref.RunID,
				RunSeq: ref.RunSeq, Page: ref.Page, Rows: raw, NoteDrift: true})
		})
	})
}

// userRow is a user as UpsertUsers takes it.
type userRow struct {
	ID             string `json:"id"`
	DisplayName    string `json:"display_name"`
	Mail           string `json:"mail"`
	UPN            string `json:"upn"`
	GivenName      string `json:"given_name"`
	Surname        string `json:"surname"`
	JobTitle       string `json:"job_title"`
	Department     string `json:"department"`
	UserType       string `json:"user_type"`
	AccountEnabled bool   `json:"account_enabled"`
	Idx            int    `json:"idx"`
}

// userRows numbers a page's users from 0 and keeps the last of an id
// (latestByID).
func userRows(users []DirUser) ([]userRow, []string, error) {
	rows := make([]userRow, len(users))
	for i, u := range users {
		rows[i] = userRow{u.ID, pgText(u.DisplayName), pgText(u.Mail), pgText(u.UserPrincipalName), pgText(u.GivenName),
			pgText(u.Surname), pgText(u.JobTitle), pgText(u.Department), pgText(u.UserType), u.AccountEnabled, i}
	}
	return latestByID(rows, func(r userRow) string { return r.ID })
}

// ApplyGroupsPage applies one page of groups to the mirror.
func (s *Store) ApplyGroupsPage(ctx context.Context, ref PageRef, groups []DirGroup, at time.Time) error {
	rows, ids, err := groupRows(groups)
	if err != nil {
		return fmt.Errorf("store: apply groups page: %w", err)
	}
	rec := pageRecord{kind: pageGroups, ids: ids}
	return s.applyPage(ctx, ref, rec, at, func(q *dbsqlc.Queries) error {
		return upsert(rows, func(raw []byte) error {
			return q.UpsertGroups(ctx, dbsqlc.UpsertGroupsParams{TenantID: ref.TenantID, RunID: ref.RunID,
				RunSeq: ref.RunSeq, Page: ref.Page, Rows: raw, NoteDrift: true})
		})
	})
}

// groupRow is a group as UpsertGroups takes it.
type groupRow struct {
	ID              string     `json:"id"`
	DisplayName     string     `json:"display_name"`
	Description     string     `json:"description"`
	Mail            string     `json:"mail"`
	GroupTypes      []string   `json:"group_types"`
	SecurityEnabled bool       `json:"security_enabled"`
	MailEnabled     bool       `json:"mail_enabled"`
	MembershipRule  string     `json:"membership_rule"`
	RenewedAt       *time.Time `json:"renewed_at"`
	Idx             int        `json:"idx"`
}

// groupRows numbers a page's groups from 0 and keeps the last of an id
// (latestByID).
func groupRows(groups []DirGroup) ([]groupRow, []string, error) {
	rows := make([]groupRow, len(groups))
	for i, g := range groups {
		types := g.GroupTypes
		if types == nil {
			types = []string{}
		}
		clean := make([]string, len(types))
		for j, t := range types {
			clean[j] = pgText(t)
		}
		rows[i] = groupRow{g.ID, pgText(g.DisplayName), pgText(g.Description), pgText(g.Mail), clean, g.SecurityEnabled,
			g.MailEnabled, pgText(g.MembershipRule), g.RenewedAt, i}
	}
	return latestByID(rows, func(r groupRow) string { return r.ID })
}

// ApplyMembersPage applies one page of a group's direct members: it adds
// or updates edges now, and finalization drops the edges the group's
// complete list no longer has.
func (s *Store) ApplyMembersPage(ctx context.Context, ref PageRef, mp MembersPage, at time.Time) error {
	if err := checkPart(mp.GroupID, mp.Part); err != nil {
		return fmt.Errorf("store: apply members page: %w", err)
	}
	rows := make([]memberRow, len(mp.Members))
	for i, m := range mp.Members {
		if !m.Type.valid() {
			return fmt.Errorf("store: apply members page: %w", invalidf("member %q has unknown type %q", m.ID, m.Type))
		}
		rows[i] = memberRow{mp.GroupID, m.ID, m.Type, pgText(m.DisplayName), i}
	}
	rows, ids, err := latestByID(rows, func(r memberRow) string { return r.ID })
	if err != nil {
		return fmt.Errorf("store: apply members page: %w", err)
	}
	rec := pageRecord{kind: pageMembers, groupID: &mp.GroupID, part: &mp.Part, last: &mp.Last, ids: ids}
	devices := slices.ContainsFunc(rows, func(r memberRow) bool { return r.Type == MemberDevice })
	return s.applyPage(ctx, ref, rec, at, func(q *dbsqlc.Queries) error {
		return upsert(rows, func(raw []byte) error {
			if err := q.UpsertMembers(ctx, dbsqlc.UpsertMembersParams{TenantID: ref.TenantID, RunID: ref.RunID,
				RunSeq: ref.RunSeq, Page: ref.Page, Rows: raw, NoteDrift: true}); err != nil {
				return err
			}
			if !devices {
				return nil
			}
			return q.UpsertDevices(ctx, dbsqlc.UpsertDevicesParams{TenantID: ref.TenantID, RunSeq: ref.RunSeq,
				Page: ref.Page, Rows: raw})
		})
	})
}

// ApplyTransitivePage records one page of a group's transitive users. It
// writes no mirror row: finalization counts them for the group.
func (s *Store) ApplyTransitivePage(ctx context.Context, ref PageRef, tp TransitivePage, at time.Time) error {
	if err := checkPart(tp.GroupID, tp.Part); err != nil {
		return fmt.Errorf("store: apply transitive page: %w", err)
	}
	_, ids, err := latestByID(tp.UserIDs, func(id string) string { return id })
	if err != nil {
		return fmt.Errorf("store: apply transitive page: %w", err)
	}
	rec := pageRecord{kind: pageTransitive, groupID: &tp.GroupID, part: &tp.Part, last: &tp.Last, ids: ids}
	return s.applyPage(ctx, ref, rec, at, nil)
}

// UnreadableGroup is a group whose member list Graph refused to show.
type UnreadableGroup struct {
	GroupID string
	Status  int    // Graph's HTTP status
	Code    string // Graph's error code
	Message string // Graph's message
}

// ApplyUnreadableGroup records that Graph refused to list a group's
// members in this run. The group's members stay as last read, and
// applying the run's plan shows the group with Graph's error.
func (s *Store) ApplyUnreadableGroup(ctx context.Context, ref PageRef, u UnreadableGroup, at time.Time) error {
	if err := checkPart(u.GroupID, 0); err != nil {
		return fmt.Errorf("store: apply unreadable group: %w", err)
	}
	if u.Status < 400 || u.Status > 599 {
		return fmt.Errorf("store: apply unreadable group %s: %w", u.GroupID, invalidf("status %d is not an HTTP error", u.Status))
	}
	msg := fmt.Sprintf("Graph refused to list the group's members: HTTP %d %s: %s",
		u.Status, strings.ToValidUTF8(u.Code, "\uFFFD"), strings.ToValidUTF8(u.Message, "\uFFFD"))
	msg = strings.ReplaceAll(msg, "\x00", "\uFFFD")
	rec := pageRecord{kind: pageUnreadable, groupID: &u.GroupID, ids: []string{}, err: &msg}
	return s.applyPage(ctx, ref, rec, at, nil)
}

func checkPart(groupID string, part int32) error {
	if strings.TrimSpace(groupID) == "" {
		return invalidf("group id is empty")
	}
	if strings.ContainsRune(groupID, 0) {
		return invalidf("group id %q contains a NUL character", groupID)
	}
	if part < 0 {
		return invalidf("part %d of group %s is negative", part, groupID)
	}
	return nil
}

// applyPage records a data page and, when it is new for a run that is not
// over, writes its objects.
func (s *Store) applyPage(ctx context.Context, ref PageRef, rec pageRecord, at time.Time, write func(*dbsqlc.Queries) error) error {
	if err := ref.validate(true); err != nil {
		return fmt.Errorf("store: apply %s: %w", rec.kind, err)
	}
	log := ref.logger(s.log)
	return s.inTx(ctx, "apply "+rec.String(), func(q *dbsqlc.Queries) error {
		if err := lockTenant(ctx, q, ref.TenantID, false); err != nil {
			return err
		}
		st, err := loadRun(ctx, q, ref, false)
		if err != nil {
			return err
		}
		if st.closed() {
			log.Debug().Str("status", st.status).Msg("store: run is over; page changes nothing")
			return nil
		}
		if st.beyondFetched(ref.Page) {
			return invalidf("page %d is beyond the run's %d pages from page %d", ref.Page, *st.pagesTotal, *st.pagesFirst)
		}
		_, err = q.RecordPage(ctx, dbsqlc.RecordPageParams{TenantID: ref.TenantID, RunID: ref.RunID, Page: ref.Page,
			Kind: rec.kind, GroupID: rec.groupID, Part: rec.part, Last: rec.last, ObjectIds: rec.ids, AppliedAt: at,
			Error: rec.err})
		if errors.Is(err, pgx.ErrNoRows) {
			got, err := q.GetPage(ctx, dbsqlc.GetPageParams{TenantID: ref.TenantID, RunID: ref.RunID, Page: ref.Page})
			if err != nil {
				return err
			}
			old := pageRecord{kind: got.Kind, groupID: got.GroupID, part: got.Part, last: got.Last}
			if !old.same(rec.kind, rec.groupID, rec.part) {
				return fmt.Errorf("%w: page %d of run %s was applied as %s, now it is a %s", ErrConflict, ref.Page, ref.RunID, old, rec)
			}
			log.Debug().Msg("store: page was applied before")
			return nil
		}
		if err != nil {
			return err
		}
		if err := q.MarkRunStarted(ctx, dbsqlc.MarkRunStartedParams{TenantID: ref.TenantID, RunID: ref.RunID, At: at}); err != nil {
			return err
		}
		if write == nil {
			return nil
		}
		return write(q)
	})
}

// upsert hands write a page's rows as one JSON array, unpacked by
// jsonb_to_recordset in the statement: one round trip per page, whatever
// the page size.
func upsert[T any](rows []T, write func(raw []byte) error) error {
	if len(rows) == 0 {
		return nil
	}
	raw, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	return write(raw)
}

// latestByID drops entries whose id comes again later in the page (the
// later one is the newer), checks ids are present, and returns the rows
// sorted by id (writes in one order everywhere avoid deadlocks between
// concurrent pages) and the ids.
func latestByID[T any](rows []T, id func(T) string) ([]T, []string, error) {
	last := make(map[string]int, len(rows))
	for i, r := range rows {
		k := id(r)
		if strings.TrimSpace(k) == "" {
			return nil, nil, invalidf("entry %d has no id", i)
		}
		if strings.ContainsRune(k, 0) {
			// An id names an object: changing it would name another
			// one, so it is refused, unlike free text (see pgText).
			return nil, nil, invalidf("entry %d's id %q contains a NUL character", i, k)
		}
		last[k] = i
	}
	out := make([]T, 0, len(last))
	for i, r := range rows {
		if last[id(r)] == i {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b T) int { return cmp.Compare(id(a), id(b)) })
	ids := make([]string, len(out))
	for i, r := range out {
		ids[i] = id(r)
	}
	return out, ids, nil
}

// pgText makes a string from Graph storable as Postgres text, which cannot
// hold a NUL character (nor can jsonb, which refuses \u0000). Graph allows
// NUL in free text (a display name, a department); refusing it would fail
// every run of the tenant until someone edits the object in Entra, so each
// NUL becomes U+FFFD, the replacement character, which shows readers that
// something was there. Ids are not free text: an id with a NUL is refused
// (latestByID, checkPart).
func pgText(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}
