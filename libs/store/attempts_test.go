package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// The tests of this file feed a run whose job was delivered twice: a
// first fetch attempt cut off after some pages, then a second attempt that
// read the directory after it changed. The run must end as the second
// attempt saw the directory, whatever became of the first one's pages.

const span = store.AttemptPageSpan

// Fixed ids and times, so that databases fed apart can be compared.
const (
	attemptsTenant = "7e57e57e-0000-4000-8000-0000000000a1"
	userW          = "00000001-0000-4000-8000-00000000000a"
	userX          = "00000001-0000-4000-8000-00000000000b"
	userY          = "00000001-0000-4000-8000-00000000000c"
	userZ          = "00000001-0000-4000-8000-00000000000d"
	groupG         = "00000002-0000-4000-8000-00000000000a"
)

var fixedAt = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

func attemptsRunID(seq int) string { return fmt.Sprintf("1d000000-0000-4000-8000-0000000000%02d", seq) }

func member(id, name, dept string) store.DirUser {
	return store.DirUser{ID: id, DisplayName: name, UserPrincipalName: name + "@contoso.example", Department: dept,
		UserType: "Member", AccountEnabled: true}
}

// step is one event of a run as the reconciler applies it: the store call
// for the event, then TryFinalize.
type step struct {
	name  string
	run   string
	apply func(ctx context.Context, st *store.Store) error
}

type runSteps struct {
	ref   store.PageRef
	steps []step
}

func (r *runSteps) started() {
	r.steps = append(r.steps, step{"started", r.ref.RunID, func(ctx context.Context, st *store.Store) error {
		return st.MarkRunStarted(ctx, r.ref, fixedAt)
	}})
}

func (r *runSteps) users(page int32, us ...store.DirUser) {
	ref := r.ref
	ref.Page = page
	r.steps = append(r.steps, step{fmt.Sprintf("users page %d", page), r.ref.RunID, func(ctx context.Context, st *store.Store) error {
		return st.ApplyUsersPage(ctx, ref, us, fixedAt)
	}})
}

func (r *runSteps) groups(page int32, gs ...store.DirGroup) {
	ref := r.ref
	ref.Page = page
	r.steps = append(r.steps, step{fmt.Sprintf("groups page %d", page), r.ref.RunID, func(ctx context.Context, st *store.Store) error {
		return st.ApplyGroupsPage(ctx, ref, gs, fixedAt)
	}})
}

func (r *runSteps) members(page int32, group string, ids ...string) {
	ref := r.ref
	ref.Page = page
	var ms []store.DirMember
	for _, id := range ids {
		ms = append(ms, store.DirMember{ID: id, Type: store.MemberUser})
	}
	r.steps = append(r.steps, step{fmt.Sprintf("members page %d", page), r.ref.RunID, func(ctx context.Context, st *store.Store) error {
		return st.ApplyMembersPage(ctx, ref, store.MembersPage{GroupID: group, Last: true, Members: ms}, fixedAt)
	}})
}

func (r *runSteps) transitive(page int32, group string, ids ...string) {
	ref := r.ref
	ref.Page = page
	r.steps = append(r.steps, step{fmt.Sprintf("transitive page %d", page), r.ref.RunID, func(ctx context.Context, st *store.Store) error {
		return st.ApplyTransitivePage(ctx, ref, store.TransitivePage{GroupID: group, Last: true, UserIDs: ids}, fixedAt)
	}})
}

func (r *runSteps) fetched(first, pages int) {
	r.steps = append(r.steps, step{fmt.Sprintf("fetched %d from %d", pages, first), r.ref.RunID, func(ctx context.Context, st *store.Store) error {
		return st.MarkRunFetched(ctx, r.ref, store.Fetched{FirstPage: first, Pages: pages, Stats: store.GraphStats{Requests: 7}}, fixedAt)
	}})
}

// attemptsWorld is the tenant and the events of its two runs: run 1 sees
// W, X and Y in group G; run 2's first attempt sees the same directory and
// is cut off before RunFetched; then X is deleted, Y moves to another
// department and Z arrives; run 2's second attempt sees that.
func attemptsWorld() (run1, run2 *runSteps) {
	g := store.DirGroup{ID: groupG, DisplayName: "G", SecurityEnabled: true}
	w, x, y := member(userW, "W", "R&D"), member(userX, "X", "R&D"), member(userY, "Y", "R&D")
	y2, z := member(userY, "Y", "Sales"), member(userZ, "Z", "Sales")

	run1 = &runSteps{ref: store.PageRef{TenantID: attemptsTenant, RunID: attemptsRunID(1), RunSeq: 1}}
	run1.started()
	run1.users(0, w, x, y)
	run1.groups(1, g)
	run1.members(2, groupG, userW, userX, userY)
	run1.transitive(3, groupG, userW, userX, userY)
	run1.fetched(0, 4)

	run2 = &runSteps{ref: store.PageRef{TenantID: attemptsTenant, RunID: attemptsRunID(2), RunSeq: 2}}
	run2.started()
	// Attempt 1: X on page 1, Y on page 2, then G's lists; no RunFetched.
	run2.users(0, w)
	run2.users(1, x)
	run2.users(2, y)
	run2.groups(3, g)
	run2.members(4, groupG, userW, userX, userY)
	run2.transitive(5, groupG, userW, userX, userY)
	// Attempt 2, from page span: X is gone, Y changed, Z is new; G lost
	// W and X and gained Z.
	run2.users(span+0, w, y2)
	run2.users(span+1, z)
	run2.groups(span+2, g)
	run2.members(span+3, groupG, userY, userZ)
	run2.transitive(span+4, groupG, userY, userZ)
	run2.fetched(span, 5)
	return run1, run2
}

// attemptsDB is a database with the tenant of attemptsWorld.
type attemptsDB struct {
	t    *testing.T
	st   *store.Store
	conn *pgx.Conn
}

func newAttemptsDB(t *testing.T) *attemptsDB {
	t.Helper()
	ctx := context.Background()
	st, url := storetest.NewWithURL(t, store.WithClock(func() time.Time { return fixedAt }))
	conn, err := pgx.Connect(ctx, url)
	must(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, err = st.CreateTenant(ctx, store.NewTenant{ID: attemptsTenant, Name: "Contoso", EntraTenantID: "e",
		ClientID: "c", ClientSecret: "s", Seats: 10})
	must(t, err)
	for seq := 1; seq <= 2; seq++ {
		_, err := st.CreateRun(ctx, store.NewRun{ID: attemptsRunID(seq), TenantID: attemptsTenant, Kind: store.KindFull, Trigger: store.TriggerManual})
		must(t, err)
	}
	return &attemptsDB{t: t, st: st, conn: conn}
}

// feed applies the steps in order, each followed by TryFinalize, as the
// reconciler does; every step must succeed.
func (d *attemptsDB) feed(steps []step) {
	d.t.Helper()
	ctx := context.Background()
	for _, s := range steps {
		if err := s.apply(ctx, d.st); err != nil {
			d.t.Fatalf("%s: %v", s.name, err)
		}
		if _, err := d.st.TryFinalize(ctx, attemptsTenant, s.run, fixedAt); err != nil {
			d.t.Fatalf("finalize after %s: %v", s.name, err)
		}
	}
}

// hashes returns an md5 of every table's rows (storetest.TableHashes).
func (d *attemptsDB) hashes() map[string]string {
	d.t.Helper()
	return storetest.TableHashes(d.t, d.conn)
}

// check asserts that the tenant is as run 2's second attempt saw it.
func (d *attemptsDB) check() {
	d.t.Helper()
	ctx := context.Background()
	run, err := d.st.GetRun(ctx, attemptsTenant, attemptsRunID(2))
	must(d.t, err)
	if run.Status != store.StatusSucceeded || run.PagesFirst == nil || *run.PagesFirst != span ||
		run.PagesTotal == nil || *run.PagesTotal != 5 || run.PagesApplied != 5 || run.Counts["pages"] != 5 {
		d.t.Fatalf("run 2 = %s (%s), pages %v from %v, applied %d, counts %v", run.Status, run.Error,
			deref(run.PagesTotal), deref(run.PagesFirst), run.PagesApplied, run.Counts)
	}
	if run.Counts["usersCreated"] != 1 || run.Counts["usersRemoved"] != 1 || run.Counts["usersUpdated"] != 1 {
		d.t.Errorf("run 2 counts %v, want Z created, X removed, Y updated", run.Counts)
	}

	users, _, err := d.st.ListAppUsers(ctx, attemptsTenant, "", 0)
	must(d.t, err)
	var ids []string
	for _, u := range users {
		ids = append(ids, u.EntraID)
	}
	if want := []string{userW, userY, userZ}; !reflect.DeepEqual(ids, want) {
		d.t.Errorf("app users %v, want %v (W, Y, Z)", ids, want)
	}
	var xDeleted bool
	var xSeq int64
	var xPage int32
	must(d.t, d.conn.QueryRow(ctx, `SELECT deleted, v_run_seq, v_page FROM dir_users WHERE tenant_id = $1 AND entra_id = $2`,
		attemptsTenant, userX).Scan(&xDeleted, &xSeq, &xPage))
	if !xDeleted || xSeq != 2 || xPage != 1<<31-1 {
		d.t.Errorf("X in the mirror: deleted %v, version (%d, %d); want a tombstone of run 2", xDeleted, xSeq, xPage)
	}
	var yDept string
	var yPage int32
	must(d.t, d.conn.QueryRow(ctx, `SELECT department, v_page FROM dir_users WHERE tenant_id = $1 AND entra_id = $2`,
		attemptsTenant, userY).Scan(&yDept, &yPage))
	var appDept string
	must(d.t, d.conn.QueryRow(ctx, `SELECT department FROM app_users WHERE tenant_id = $1 AND entra_id = $2`,
		attemptsTenant, userY).Scan(&appDept))
	if yDept != "Sales" || yPage != span || appDept != "Sales" {
		d.t.Errorf("Y: department %q from page %d in the mirror, %q on the app side; want Sales from page %d",
			yDept, yPage, appDept, span)
	}

	members, _, err := d.st.ListAppGroupMembers(ctx, attemptsTenant, groupG, "", 0)
	must(d.t, err)
	if want := []string{userY, userZ}; !reflect.DeepEqual(members, want) {
		d.t.Errorf("members of G %v, want %v (Y, Z)", members, want)
	}
	groups, _, err := d.st.ListAppGroups(ctx, attemptsTenant, "", 0)
	must(d.t, err)
	if len(groups) != 1 || groups[0].EntraMemberCount != 2 || groups[0].SyncedMemberCount != 2 {
		d.t.Errorf("app groups %+v, want G with 2 transitive users (attempt 2's), 2 synced", groups)
	}
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestRetriedFetchEndsAsItsLastAttemptSawTheDirectory(t *testing.T) {
	t.Parallel()
	run1, run2 := attemptsWorld()

	ref := newAttemptsDB(t)
	ref.feed(run1.steps)
	ref.feed(run2.steps)
	ref.check()
	want := ref.hashes()

	// The same events twice over in any order end in the same tables.
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("shuffled ", seed), func(t *testing.T) {
			t.Parallel()
			d := newAttemptsDB(t)
			d.feed(run1.steps)
			steps := append(append([]step{}, run2.steps...), run2.steps...)
			rand.New(rand.NewPCG(seed, 7)).Shuffle(len(steps), func(i, j int) { steps[i], steps[j] = steps[j], steps[i] })
			d.feed(steps)
			d.check()
			got := d.hashes()
			for tbl, h := range want {
				if got[tbl] != h {
					t.Errorf("table %s differs from the one fed in wire order", tbl)
				}
			}
		})
	}
}

func TestRunFetchedOfTwoAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newAttemptsDB(t)
	run1, _ := attemptsWorld()
	d.feed(run1.steps)
	ref := store.PageRef{TenantID: attemptsTenant, RunID: attemptsRunID(2), RunSeq: 2}
	at := func(p int32) store.PageRef { r := ref; r.Page = p; return r }
	fetched := func(first, pages int) error {
		return d.st.MarkRunFetched(ctx, ref, store.Fetched{FirstPage: first, Pages: pages}, fixedAt)
	}
	progress := func() (first, total, applied int) {
		r, err := d.st.GetRun(ctx, attemptsTenant, ref.RunID)
		must(t, err)
		if r.PagesFirst == nil || r.PagesTotal == nil {
			t.Fatalf("run not fetched: %+v", r)
		}
		return *r.PagesFirst, *r.PagesTotal, r.PagesApplied
	}

	// Bad ranges change nothing.
	before := d.hashes()
	for name, f := range map[string]store.Fetched{
		"negative first page":      {FirstPage: -span, Pages: 1},
		"first page mid-attempt":   {FirstPage: span + 3, Pages: 1},
		"first page of no attempt": {FirstPage: store.MaxFetchAttempts * span, Pages: 1},
		"more pages than a span":   {FirstPage: span, Pages: span + 1},
		"negative pages":           {FirstPage: 0, Pages: -1},
	} {
		if err := d.st.MarkRunFetched(ctx, ref, f, fixedAt); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	for tbl, h := range d.hashes() {
		if before[tbl] != h {
			t.Errorf("table %s changed after invalid RunFetched events", tbl)
		}
	}

	// Attempt 1 applied 3 pages and was fetched with 4; attempt 2 applied
	// 1 page and was fetched with 2. The later attempt's RunFetched wins
	// in either order, and only its pages count.
	for p := int32(0); p < 3; p++ {
		must(t, d.st.ApplyGroupsPage(ctx, at(p), nil, fixedAt))
	}
	must(t, d.st.ApplyGroupsPage(ctx, at(span), nil, fixedAt))
	must(t, fetched(0, 4))
	if first, total, applied := progress(); first != 0 || total != 4 || applied != 3 {
		t.Fatalf("after attempt 1's RunFetched: %d pages from %d, %d applied", total, first, applied)
	}
	if err := fetched(0, 5); !errors.Is(err, store.ErrConflict) {
		t.Errorf("attempt 1 fetched again with another page count: %v, want ErrConflict", err)
	}
	// Page 5 of attempt 1 contradicts its RunFetched; page 4 of attempt 2
	// does not (its RunFetched is not known yet).
	if err := d.st.ApplyGroupsPage(ctx, at(5), nil, fixedAt); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a page past attempt 1's last: %v, want ErrInvalid", err)
	}
	must(t, d.st.ApplyGroupsPage(ctx, at(span+4), nil, fixedAt))
	// Attempt 2 recorded page span+4, so it cannot have had 2 pages.
	if err := fetched(span, 2); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("attempt 2 fetched with fewer pages than it applied: %v, want ErrInvalid", err)
	}
	must(t, fetched(span, 6))
	if first, total, applied := progress(); first != span || total != 6 || applied != 2 {
		t.Fatalf("after attempt 2's RunFetched: %d pages from %d, %d applied", total, first, applied)
	}
	must(t, fetched(0, 4)) // attempt 1's, late: the later attempt stands
	if first, _, _ := progress(); first != span {
		t.Fatalf("attempt 1's late RunFetched took over: first page %d", first)
	}
	// Attempt 1's last page completes nothing.
	must(t, d.st.ApplyGroupsPage(ctx, at(3), nil, fixedAt))
	if done, err := d.st.TryFinalize(ctx, attemptsTenant, ref.RunID, fixedAt); err != nil || done {
		t.Fatalf("finalized with attempt 1 complete and attempt 2 not: %v %v", done, err)
	}
	for p := int32(span + 1); p < span+6; p++ {
		if p == span+4 {
			continue
		}
		must(t, d.st.ApplyGroupsPage(ctx, at(p), nil, fixedAt))
	}
	if done, err := d.st.TryFinalize(ctx, attemptsTenant, ref.RunID, fixedAt); err != nil || !done {
		t.Fatalf("TryFinalize with attempt 2 complete = %v, %v", done, err)
	}
	r, err := d.st.GetRun(ctx, attemptsTenant, ref.RunID)
	must(t, err)
	if r.Status != store.StatusSucceeded || r.PagesApplied != 6 || r.Counts["pages"] != 6 {
		t.Fatalf("run 2 = %s, %d pages applied, counts %v", r.Status, r.PagesApplied, r.Counts)
	}
}

func TestBeginFetchCountsAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newClock()
	st := storetest.New(t, store.WithClock(clock.Now))
	tn := newTenant(t, st, 1)
	newRun := func() store.Run {
		r, err := st.CreateRun(ctx, store.NewRun{TenantID: tn.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
		must(t, err)
		return r
	}
	taken, lost, done := newRun(), newRun(), newRun()

	for want := 1; want <= 3; want++ {
		got, err := st.BeginFetch(ctx, tn.ID, taken.ID)
		if err != nil || got != want {
			t.Fatalf("BeginFetch #%d = %d, %v", want, got, err)
		}
	}
	if r, err := st.GetRun(ctx, tn.ID, taken.ID); err != nil || r.FetchAttempts != 3 || r.Status != store.StatusQueued {
		t.Fatalf("run after 3 attempts = %+v, %v", r, err)
	}

	// A queued run a fetcher began is not stale: its job was taken.
	clock.Add(time.Hour)
	stale, err := st.ListStaleQueuedRuns(ctx, clock.Now())
	must(t, err)
	if len(stale) != 2 || stale[0].ID != lost.ID || stale[1].ID != done.ID {
		t.Fatalf("stale runs %+v, want the two that no fetcher began", stale)
	}

	// A run that is over needs no fetching.
	must(t, st.MarkRunFailed(ctx, store.PageRef{TenantID: tn.ID, RunID: done.ID, RunSeq: done.Seq}, "gave up", store.GraphStats{}, clock.Now()))
	if _, err := st.BeginFetch(ctx, tn.ID, done.ID); !errors.Is(err, store.ErrPastFetching) || !errors.Is(err, store.ErrConflict) {
		t.Errorf("BeginFetch of a failed run: %v, want ErrPastFetching", err)
	}
	if r, err := st.GetRun(ctx, tn.ID, done.ID); err != nil || r.FetchAttempts != 0 {
		t.Errorf("a refused BeginFetch counted an attempt: %+v, %v", r, err)
	}
	for name, ids := range map[string][2]string{
		"unknown run":      {tn.ID, "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00"},
		"another's run":    {newTenant(t, st, 1).ID, taken.ID},
		"malformed run id": {tn.ID, "run-1"},
		"malformed tenant": {"contoso", taken.ID},
	} {
		if _, err := st.BeginFetch(ctx, ids[0], ids[1]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
}
