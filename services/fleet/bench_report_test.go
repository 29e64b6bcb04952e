package fleet_test

// Shared parts of the report benchmarks (BenchmarkReport*): the §6
// benchmark of issue 8, which scripts/bench.sh turns into the table of
// bench/RESULTS.md. Each benchmark does its measurement once (run them
// with -benchtime 1x, as scripts/bench.sh does) and reports what it saw
// with b.ReportMetric; nothing here asserts a time.

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/entrasync/entrasync/libs/budget"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/metrics"
	"github.com/entrasync/entrasync/services/graphsim"
)

const (
	// benchLatency is what every Graph request of the report takes: a
	// round trip to Graph from outside Microsoft's data centres.
	benchLatency = 100 * time.Millisecond
	// graphTop is the largest $top Graph takes on directory listings.
	graphTop = 999
	// deltaPage is the objects per Graph delta page (the simulator's
	// default, about Graph's own; delta takes no $top).
	deltaPage = 200
)

// benchFaults are the report's Graph: 100 ms per request and Graph's
// documented resource-unit bucket for the tenant's size.
var benchFaults = graphsim.Faults{Latency: benchLatency, EnforceBudget: true}

// benchSizes are the tenant sizes (users) the report syncs, from
// BENCH_SIZES (comma-separated; default 10000,100000), smallest first.
func benchSizes(b *testing.B) []int {
	b.Helper()
	raw := os.Getenv("BENCH_SIZES")
	if strings.TrimSpace(raw) == "" {
		raw = "10000,100000"
	}
	var sizes []int
	for _, f := range strings.Split(raw, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 100 {
			b.Fatalf("BENCH_SIZES: %q is not a tenant size of at least 100 users", f)
		}
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	return slices.Compact(sizes)
}

// benchSpec is a tenant of about n users: 97% enabled members with mail,
// 1% each guests, disabled and without mail; a group per 40 users (at
// least 10), nesting three deep with a cycle, some devices and contacts.
func benchSpec(n int, seed int64) graphsim.Spec {
	return graphsim.Spec{Seed: seed, Users: n - 3*(n/100), Guests: n / 100, Disabled: n / 100, NoMail: n / 100,
		Groups: max(10, n/40), NestingDepth: 3, Devices: n / 2000, Contacts: n / 5000, Cycle: true}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// fullBound is the least Graph work of a full run with the strategy the
// fetcher uses when every group is imported (direct edges only, the
// closure computed locally; member lists read through $batch), for a
// directory of U users, G groups and m_g direct members of group g:
//
//	pages    = 2 + ⌈U/999⌉ + ⌈G/999⌉ + M,   M = Σ_g max(1, ⌈m_g/999⌉)
//	requests = 2 + ⌈U/999⌉ + ⌈G/999⌉ + ⌈M/20⌉
//	RU       = 2 + ⌈U/999⌉·1 + ⌈G/999⌉·1 + M·2
//	chain    = 1 + max(⌈U/999⌉, ⌈G/999⌉ + max_g ⌈m_g/999⌉)
//
// 999 is the largest $top. pages are Graph's answers, each item of a
// $batch counted; requests are HTTP requests, member-list pages 20 to a
// $batch (json-batching.md's limit) and every other page on its own (a
// users or groups page needs the nextLink of the one before). Costs are
// throttling-limits.md's: users 2, groups 1, members 3, each −1 for
// $select, never below 1; a $batch costs its items. The 2 are the users
// and groups delta links taken at "now" ($deltatoken=latest, 1 RU each)
// that let the next run be a delta round; an empty group's member list
// is still one page. chain is the pages that must follow one another:
// the links before the enumeration, then the users' pages, or the
// groups' pages and the longest member list.
type fullBound struct {
	Pages, Requests, RU, Chain int
	Objects                    int // users + groups + direct member edges
}

func boundOf(d *graphsim.Directory) fullBound {
	users, groups := len(d.Users()), d.Groups()
	lists := ceilDiv(users, graphTop) + ceilDiv(len(groups), graphTop)
	b := fullBound{Objects: users + len(groups)}
	members, longest := 0, 0
	for _, g := range groups {
		m := len(d.DirectMembers(g.ID))
		pages := max(1, ceilDiv(m, graphTop))
		members += pages
		longest = max(longest, pages)
		b.Objects += m
	}
	b.Pages = 2 + lists + members
	b.Requests = 2 + lists + ceilDiv(members, 20)
	b.RU = 2 + lists + 2*members
	b.Chain = 1 + max(ceilDiv(users, graphTop), ceilDiv(len(groups), graphTop)+longest)
	return b
}

// floor is the shortest time Graph lets a run take: its resource units
// at the tenant's budget rate (Graph's documented bucket for its size,
// per 10 s), or its chain of pages one after another at latency,
// whichever is longer.
func (b fullBound) floor(users int, latency time.Duration) (floor, byRU, byChain time.Duration) {
	l := budget.Limits{Small: budget.DefaultSmall, Medium: budget.DefaultMedium, Large: budget.DefaultLarge}
	rate := float64(l.Tenant(users)) / budget.DefaultTenantWindow.Seconds() // RU per second
	byRU = time.Duration(float64(b.RU) / rate * float64(time.Second))
	byChain = time.Duration(b.Chain) * latency
	return max(byRU, byChain), byRU, byChain
}

// graphTally is what the simulator answered one tenant since a moment.
type graphTally struct {
	Requests  int // HTTP requests to Graph ($batch items not counted)
	Pages     int // successful answers ($batch items counted, the $batch not)
	RU        int // resource units charged (x-ms-resource-unit)
	Throttled int // 429s
	// Early are requests that arrived after a 429 was answered (its
	// arrival plus benchLatency) and before its Retry-After had passed.
	Early int
	// Answered is when the last request was answered (its arrival plus
	// benchLatency): the end of the run's reading of Graph.
	Answered time.Time
}

func tallyGraph(sim *graphsim.Server, entraTenant string, since time.Time) graphTally {
	var t graphTally
	tenant := strings.ToLower(entraTenant)
	var reqs []graphsim.Request
	for _, r := range sim.Requests() {
		if r.Tenant == tenant && !r.At.Before(since) && strings.HasPrefix(r.Path, "/v1.0/") {
			reqs = append(reqs, r)
		}
	}
	sort.SliceStable(reqs, func(i, j int) bool { return reqs[i].At.Before(reqs[j].At) })
	type window struct{ from, until time.Time }
	var waits []window
	for _, r := range reqs {
		batch := strings.HasSuffix(r.Path, "/$batch")
		if !r.InBatch {
			t.Requests++
		}
		if r.Status == http.StatusOK && !batch {
			t.Pages++
		}
		for _, w := range waits {
			if r.At.After(w.from) && r.At.Before(w.until) {
				t.Early++
				break
			}
		}
		if r.Status == http.StatusTooManyRequests {
			t.Throttled++
			if ra, err := strconv.ParseFloat(r.RetryAfter, 64); err == nil {
				answered := r.At.Add(benchLatency)
				waits = append(waits, window{answered, answered.Add(time.Duration(ra * float64(time.Second)))})
			}
		}
		t.RU += r.ResourceUnits
		if answered := r.At.Add(benchLatency); answered.After(t.Answered) {
			t.Answered = answered
		}
	}
	return t
}

// tableWrites reads n_tup_ins + n_tup_upd + n_tup_del of every table of
// the database. Backends report their counts some time after their
// transactions end (PostgreSQL 15: a second after going idle, or 10 s
// when another backend held the table's entry; at the latest 60 s), so
// it reads every second until the counts have not moved for 11 s.
func tableWrites(b *testing.B, db *pgxpool.Pool) map[string]int64 {
	b.Helper()
	read := func() map[string]int64 {
		rows, err := db.Query(context.Background(), `SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables`)
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int64{}
		for rows.Next() {
			var name string
			var n int64
			if err := rows.Scan(&name, &n); err != nil {
				b.Fatal(err)
			}
			out[name] = n
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		return out
	}
	last, since := read(), time.Now()
	devenv.WaitForEvery(b, 90*time.Second, time.Second, "table write counts still for 11 s", func() bool {
		if now := read(); !mapsEqual(now, last) {
			last, since = now, time.Now()
		}
		return time.Since(since) >= 11*time.Second
	})
	return last
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// isDataTable tells the mirror (dir_*) and the app's tables (app_*) from
// the runs' bookkeeping (runs, pages, leases, links, plans, activity).
func isDataTable(name string) bool {
	return strings.HasPrefix(name, "dir_") || strings.HasPrefix(name, "app_")
}

// rowsWritten sums the writes between two tableWrites readings: the
// mirror's tables, the app's, and all tables.
func rowsWritten(before, after map[string]int64) (mirror, app, all int64) {
	for name, n := range after {
		d := n - before[name]
		all += d
		switch {
		case strings.HasPrefix(name, "dir_"):
			mirror += d
		case strings.HasPrefix(name, "app_"):
			app += d
		}
	}
	return mirror, app, all
}

// jetStreamSeqs maps each stream (KV buckets included) to its last
// sequence number: messages ever stored, whatever the retention since.
func jetStreamSeqs(b *testing.B, url string) map[string]int64 {
	b.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]int64{}
	l := js.ListStreams(context.Background())
	for info := range l.Info() {
		out[info.Config.Name] = int64(info.State.LastSeq)
	}
	if err := l.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}

// applySeconds is the time the fleet's reconcilers spent applying data
// pages so far (the sum of the apply histogram).
func applySeconds(b *testing.B, m *metrics.Metrics) float64 {
	b.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		b.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != metrics.NameApplySeconds {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetHistogram().GetSampleSum()
		}
	}
	return sum
}

// finalizeSeconds is how long a run took from its last data page applied
// (or, without pages, from the fetcher's end) to doneAt, when it was seen
// to have ended: the plan and its application to the app's tables. (The
// run's finished_at is taken as finalizing begins, so it cannot tell.)
func finalizeSeconds(b *testing.B, db *pgxpool.Pool, runID string, doneAt time.Time) float64 {
	b.Helper()
	var last time.Time
	err := db.QueryRow(context.Background(), `
		SELECT COALESCE(
			(SELECT max(p.applied_at) FROM sync_run_pages p WHERE p.tenant_id = r.tenant_id AND p.run_id = r.id),
			r.fetched_at, r.started_at)
		FROM sync_runs r WHERE r.id = $1`, runID).Scan(&last)
	if err != nil {
		b.Fatalf("finalize time of run %s: %v", runID, err)
	}
	return doneAt.Sub(last).Seconds()
}

// dataRows counts the rows of the mirror's and the app's tables that
// hold any.
func dataRows(b *testing.B, db *pgxpool.Pool) map[string]int64 {
	b.Helper()
	ctx := context.Background()
	rows, err := db.Query(ctx, `SELECT relname FROM pg_stat_user_tables`)
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			b.Fatal(err)
		}
		if isDataTable(n) {
			names = append(names, n)
		}
	}
	rows.Close()
	out := map[string]int64{}
	for _, n := range names {
		var c int64
		if err := db.QueryRow(ctx, "SELECT count(*) FROM "+n).Scan(&c); err != nil {
			b.Fatal(err)
		}
		if c > 0 {
			out[n] = c
		}
	}
	return out
}

// copyBaseline times raw COPY of the same rows into the same tables: it
// copies the tables out, then in one transaction empties them, COPYs the
// rows back in (tables others reference first), checks the constraints a
// commit would, and rolls back. It returns the rows copied and the time
// the COPYs and the checks took.
func copyBaseline(b *testing.B, db *pgxpool.Pool, tables []string) (int64, time.Duration) {
	b.Helper()
	ctx := context.Background()
	order := fkOrder(b, db, tables)
	conn, err := db.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	data := map[string]*bytes.Buffer{}
	var rows int64
	for _, t := range order {
		if triggerFilled[t] {
			continue
		}
		buf := &bytes.Buffer{}
		tag, err := conn.Conn().PgConn().CopyTo(ctx, buf, "COPY "+t+" TO STDOUT")
		if err != nil {
			b.Fatalf("copy %s out: %v", t, err)
		}
		data[t] = buf
		rows += tag.RowsAffected()
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(order, ", ")+" CASCADE"); err != nil {
		b.Fatalf("truncate: %v", err)
	}
	start := time.Now()
	for _, t := range order {
		if triggerFilled[t] {
			continue
		}
		if _, err := conn.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data[t].Bytes()), "COPY "+t+" FROM STDIN"); err != nil {
			b.Fatalf("copy %s in: %v", t, err)
		}
	}
	// What a commit would check: the foreign keys checked at commit
	// (app_user_grants', app_user_roles'), as the reconciler's
	// finalization pays them at its own commit. app_group_members'
	// checks ran with its COPY, as they do with the reconciler's insert.
	if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL IMMEDIATE"); err != nil {
		b.Fatalf("check deferred constraints: %v", err)
	}
	took := time.Since(start)
	if err := tx.Rollback(ctx); err != nil {
		b.Fatal(err)
	}
	return rows, took
}

// triggerFilled are tables the store's triggers write as other tables
// change (app_user_states counts app_users, store migration 00027): the
// COPY of those tables fills them again, so they are emptied, not copied.
var triggerFilled = map[string]bool{"app_user_states": true}

// fkOrder sorts tables so that each comes after the tables it references.
func fkOrder(b *testing.B, db *pgxpool.Pool, tables []string) []string {
	b.Helper()
	rows, err := db.Query(context.Background(), `
		SELECT conrelid::regclass::text, confrelid::regclass::text
		FROM pg_constraint WHERE contype = 'f' AND conrelid <> confrelid`)
	if err != nil {
		b.Fatal(err)
	}
	deps := map[string][]string{}
	for rows.Next() {
		var from, to string
		if err := rows.Scan(&from, &to); err != nil {
			b.Fatal(err)
		}
		deps[from] = append(deps[from], to)
	}
	rows.Close()
	// app_group_members' users and groups are checked by statement
	// triggers (store migration 00028), not by constraints.
	deps["app_group_members"] = append(deps["app_group_members"], "app_users", "app_groups")
	in := map[string]bool{}
	for _, t := range tables {
		in[t] = true
	}
	sorted := slices.Clone(tables)
	sort.Strings(sorted)
	var out []string
	done := map[string]bool{}
	var visit func(string)
	visit = func(t string) {
		if done[t] {
			return
		}
		done[t] = true
		for _, d := range deps[t] {
			if in[d] {
				visit(d)
			}
		}
		out = append(out, t)
	}
	for _, t := range sorted {
		visit(t)
	}
	return out
}

// waitRun polls a run until it has finished, for up to 30 minutes (a
// 1M-user tenant's first sync outlasts the harness's five), and fails
// unless it succeeded. It returns the run and when it was seen to have
// ended.
func waitRun(h *harness, tenantID, runID string) (runView, time.Time) {
	return waitRunEvery(h, tenantID, runID, 25*time.Millisecond)
}

// waitRunShort is waitRun for a run of a few pages, timed to within a
// few milliseconds: 25 ms steps could add an eighth to a 200 ms round.
func waitRunShort(h *harness, tenantID, runID string) (runView, time.Time) {
	return waitRunEvery(h, tenantID, runID, 5*time.Millisecond)
}

// waitRunEvery looks at the run every `every`. Every 25 ms by default,
// not WaitFor's 10: each look is an api request that counts the run's
// pages, on the machine being measured; a short run's few pages may be
// counted every 5 ms. (The run's finish time is no end mark: it is when
// finalization began.)
func waitRunEvery(h *harness, tenantID, runID string, every time.Duration) (runView, time.Time) {
	h.t.Helper()
	var v runView
	var done time.Time
	devenv.WaitForEvery(h.t, 30*time.Minute, every, "run "+runID+" to succeed", func() bool {
		v = runView{}
		if code := h.do("GET", "/v1/tenants/"+tenantID+"/syncs/"+runID, nil, &v); code != http.StatusOK {
			h.t.Fatalf("GET run = %d", code)
		}
		switch v.Status {
		case "failed", "awaiting_approval", "rejected":
			h.t.Fatalf("run %s: %s: %s %s", runID, v.Status, v.HeldReason, v.Error)
		}
		done = time.Now()
		return v.Status == "succeeded"
	})
	return v, done
}

// sizeName names a sub-benchmark by tenant size.
func sizeName(n int) string { return fmt.Sprintf("users=%d", n) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// logWrites logs the tables a phase wrote to, with their row counts.
func logWrites(b *testing.B, phase string, before, after map[string]int64) {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(after)) {
		if d := after[name] - before[name]; d != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", name, d))
		}
	}
	b.Logf("%s wrote: %s", phase, strings.Join(parts, ", "))
}

// logPlan logs a run's plan summary (the api's counts by kind of item,
// the zero ones left out): what its writes to the app's tables come from.
func logPlan(b *testing.B, phase string, run runView) {
	b.Helper()
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(run.Plan)) {
		if n := run.Plan[name]; n != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", name, n))
		}
	}
	b.Logf("%s plan: %s", phase, strings.Join(parts, ", "))
}
