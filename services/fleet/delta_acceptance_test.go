package fleet_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/store/storetest"
	"github.com/entrasync/entrasync/services/fleet"
	"github.com/entrasync/entrasync/services/graphsim"
)

// The acceptance tests of delta sync (issue 8): whatever way a tenant's
// rows got where they are (a full read, delta rounds, a resync Graph asked
// for, every event replayed), they hold what a fresh full read of the same
// directory gives; and a change made while a resync reads the whole
// directory is not lost.
//
// "A membership change three levels down reaches the top group's members
// and its role grants through a delta round" is
// TestRoleBoundThreeLevelsUpReachesTheBottomAndLeavesWithIt (grants_test.go,
// a user leaving the bottom group in a delta round loses the top group's
// role); TestDeltaRoundsResyncAndReplayEqualAFreshFullSync checks the other
// direction on the way (a user joining the bottom of the nesting chain in a
// delta round becomes a member of the top group and gets its role).

// contentTable says how one table's rows count as a tenant's content: the
// columns compared as they are (cols), those compared only as set or not
// (flags), and those left out (skip) with why in a comment. Every column
// of the table is in one of the three, so that a column added later has to
// be placed before the comparison passes again.
type contentTable struct {
	name  string
	where string // which rows count ("" = all of the tenant's)
	cols  []string
	flags []string
	skip  []string
}

// tenantContent lists every table holding a tenant's rows: mirror and app
// side compared by content keyed by Entra ids, never by what legitimately
// differs between two tenants fed the same directory by different
// histories (versions, run seqs, timestamps, links).
var tenantContent = []contentTable{
	// The tenant's own row: its seats and settings; ids, names, secrets
	// and bookkeeping differ by tenant.
	{name: "tenants", cols: []string{"seats", "sync_interval", "settings", "seat_shortage", "memberships_stale"},
		flags: []string{"disconnected_at"},
		skip: []string{"id", "name", "entra_tenant_id", "client_id", "client_secret_sealed", "notify_secret_sealed",
			"last_run_seq", "created_at", "updated_at", "app_version", "app_changed_at", "app_change",
			"memberships_run_seq"}},
	// Mirror rows keep the version of the page that last wrote them;
	// tombstones are what a history deleted, which a fresh read never saw.
	{name: "dir_users", where: "NOT deleted",
		cols: []string{"entra_id", "display_name", "mail", "user_principal_name", "given_name", "surname",
			"job_title", "department", "user_type", "account_enabled"},
		skip: []string{"tenant_id", "deleted", "v_run_seq", "v_page", "v_idx", "changed_run_seq"}},
	{name: "dir_groups", where: "NOT deleted",
		cols: []string{"entra_id", "display_name", "description", "mail", "group_types", "security_enabled",
			"mail_enabled", "membership_rule", "renewed_at"},
		skip: []string{"tenant_id", "deleted", "v_run_seq", "v_page", "v_idx"}},
	{name: "dir_members", cols: []string{"group_id", "member_id", "member_type"},
		skip: []string{"tenant_id", "v_run_seq", "v_page", "v_idx", "changed_run_seq", "changed_page"}},
	{name: "dir_devices", cols: []string{"entra_id", "display_name"},
		skip: []string{"tenant_id", "v_run_seq", "v_page", "v_idx"}},
	// Removals and dirty marks are work left for a later run: none once
	// every run is over, in either tenant.
	{name: "dir_member_removals", cols: []string{"group_id", "member_id"},
		skip: []string{"tenant_id", "v_run_seq", "v_page", "v_idx"}},
	{name: "dir_dirty_groups", cols: []string{"group_id"}, skip: []string{"tenant_id", "run_seq"}},
	{name: "dir_edge_changes", cols: []string{"group_id", "member_id"},
		skip: []string{"tenant_id", "run_seq", "type_before", "counted"}},
	{name: "app_dirty_users", cols: []string{"entra_id"}, skip: []string{"tenant_id"}},
	// App rows: when they were created, changed or licensed, and by which
	// run, is history.
	{name: "app_users",
		cols: []string{"entra_id", "email", "display_name", "given_name", "surname", "job_title", "department",
			"enabled", "license"},
		flags: []string{"license_disabled_at", "display_name_edited_at", "email_edited_at"},
		skip:  []string{"tenant_id", "license_run_seq", "licensed_at", "created_at", "updated_at"}},
	// The counts of app users by seat state; a state a history emptied
	// keeps a row of zero.
	{name: "app_user_states", where: "users > 0", cols: []string{"enabled", "license", "sticky", "users"},
		skip: []string{"tenant_id"}},
	{name: "app_groups",
		cols: []string{"entra_id", "display_name", "kind", "dynamic", "entra_member_count", "synced_member_count",
			"last_ok", "last_error", "status", "switched_off", "mail", "description", "membership_rule",
			"entra_updated_at", "counted"},
		skip: []string{"tenant_id", "created_at", "updated_at"}},
	{name: "app_group_members", cols: []string{"group_id", "user_id"}, skip: []string{"tenant_id"}},
	{name: "app_user_roles", cols: []string{"user_id", "role"}, skip: []string{"tenant_id", "granted_at"}},
	{name: "app_grant_names", cols: []string{"kind", "name"}, skip: []string{"tenant_id", "created_at"}},
	{name: "app_group_grants", cols: []string{"group_id", "kind", "name"}, skip: []string{"tenant_id", "created_at"}},
	// group_id is the group a grant was first given through, kept for the
	// reason of a later revocation: it depends on the order groups came.
	{name: "app_user_grants", cols: []string{"user_id", "kind", "name"},
		skip: []string{"tenant_id", "group_id", "granted_at"}},
	// An exclusion counts while Entra ID has the group: one of a group
	// gone from Entra ID excludes nothing.
	{name: "app_group_exclusions", cols: []string{"entra_id"}, skip: []string{"tenant_id", "deleted_at"},
		where: `entra_id IN (SELECT g.entra_id FROM dir_groups g
			WHERE g.tenant_id = app_group_exclusions.tenant_id AND NOT g.deleted)`},
}

// notContent are the tables with a tenant's rows that record its history
// or its runs' working state, not what the tenant holds.
var notContent = []string{
	"sync_runs", "sync_run_pages", "sync_run_drift", "sync_plan_items", "notification_tasks", "activity_log",
	"tenant_leases", "tenant_delta_links",
	"plan_work_scope", "plan_work_users", "plan_work_groups", "plan_work_members", "plan_work_affected",
	// A view of dir_members' and dir_edge_changes' rows (placed above)
	// that the next plan recomputes.
	"dir_changed_edges",
}

// content reads a tenant's content: each table's rows as text, sorted.
// It fails the test when a table or column of the schema is not placed
// in tenantContent or notContent.
func content(t *testing.T, db storetest.Queryer, tenantID string) map[string][]string {
	t.Helper()
	ctx := context.Background()
	rows, err := db.Query(ctx, `SELECT table_name::text, column_name::text FROM information_schema.columns
		WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`)
	must(t, err)
	type col struct{ Table, Column string }
	all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[col])
	must(t, err)
	schema := map[string][]string{}
	for _, c := range all {
		schema[c.Table] = append(schema[c.Table], c.Column)
	}
	placed := map[string]bool{"goose_db_version": true}
	for _, n := range notContent {
		placed[n] = true
	}
	out := map[string][]string{}
	for _, tbl := range tenantContent {
		placed[tbl.name] = true
		cols, ok := schema[tbl.name]
		if !ok {
			t.Fatalf("content: table %s is not in the schema", tbl.name)
		}
		known := slices.Concat(tbl.cols, tbl.flags, tbl.skip)
		for _, c := range cols {
			if !slices.Contains(known, c) {
				t.Errorf("content: column %s.%s is neither compared nor left out (tenantContent)", tbl.name, c)
			}
		}
		exprs := slices.Clone(tbl.cols)
		for _, f := range tbl.flags {
			exprs = append(exprs, f+" IS NOT NULL")
		}
		key := "tenant_id"
		if tbl.name == "tenants" {
			key = "id"
		}
		where := key + " = $1"
		if tbl.where != "" {
			where += " AND (" + tbl.where + ")"
		}
		q := fmt.Sprintf(`SELECT ROW(%s)::text FROM %q WHERE %s ORDER BY 1`, strings.Join(exprs, ", "), tbl.name, where)
		rows, err := db.Query(ctx, q, tenantID)
		must(t, err)
		out[tbl.name], err = pgx.CollectRows(rows, pgx.RowTo[string])
		must(t, err)
	}
	for tbl := range schema {
		if !placed[tbl] {
			t.Errorf("content: table %s is neither compared nor left out (tenantContent, notContent)", tbl)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// contentHash is one md5 per table of a tenant's content.
func contentHash(c map[string][]string) map[string]string {
	out := map[string]string{}
	for tbl, rows := range c {
		out[tbl] = fmt.Sprintf("%x (%d rows)", md5.Sum([]byte(strings.Join(rows, "\n"))), len(rows))
	}
	return out
}

// contentDiff says, table by table, which rows only one of two tenants'
// contents has; "" when they are equal.
func contentDiff(got, want map[string][]string) string {
	var b strings.Builder
	gh, wh := contentHash(got), contentHash(want)
	for _, tbl := range tenantContent {
		if gh[tbl.name] == wh[tbl.name] {
			continue
		}
		fmt.Fprintf(&b, "%s: %s, want %s\n", tbl.name, gh[tbl.name], wh[tbl.name])
		n := 0
		for _, side := range []struct {
			label     string
			rows, not []string
		}{{"  only got:  ", got[tbl.name], want[tbl.name]}, {"  only want: ", want[tbl.name], got[tbl.name]}} {
			for _, r := range side.rows {
				if _, found := slices.BinarySearch(side.not, r); !found && n < 12 {
					b.WriteString(side.label + r + "\n")
					n++
				}
			}
		}
	}
	return b.String()
}

// capturedEvent is a message the fetchers published on sync.events.>, as
// it went on the wire.
type capturedEvent struct {
	subject, id string
	header      nats.Header
	data        []byte
}

// eventTap records every event published on a tenant's subject through a
// plain subscription, each once (a publish the fetcher retried is one
// event; the test's own copies are not recorded).
type eventTap struct {
	nc     *nats.Conn
	sub    *nats.Subscription
	mu     sync.Mutex
	seen   map[string]bool
	events []capturedEvent
	echoes chan capturedEvent // while echoing: events to publish again
}

func tapEvents(t *testing.T, h *harness, tenantID string) *eventTap {
	t.Helper()
	nc, err := nats.Connect(h.natsURL)
	must(t, err)
	t.Cleanup(nc.Close)
	tap := &eventTap{nc: nc, seen: map[string]bool{}}
	tap.sub, err = nc.Subscribe("sync.events."+tenantID, func(m *nats.Msg) {
		tap.mu.Lock()
		defer tap.mu.Unlock()
		id := m.Header.Get(nats.MsgIdHdr)
		if tap.seen[id] || strings.Contains(id, "/replay/") || strings.HasSuffix(id, "/echo") {
			return
		}
		tap.seen[id] = true
		ev := capturedEvent{subject: m.Subject, id: id, header: m.Header, data: m.Data}
		tap.events = append(tap.events, ev)
		if tap.echoes != nil {
			tap.echoes <- ev
		}
	})
	must(t, err)
	must(t, nc.Flush())
	return tap
}

// echo publishes every event the tap records from now on once more, at
// once, with a message id of its own, so that the reconcilers get each
// event of a run twice while the run is going on, either copy first. The
// returned stop ends it, waits for the copies to be published and says
// how many were.
func (tap *eventTap) echo(t *testing.T, h *harness) (stop func() int) {
	t.Helper()
	nc, err := nats.Connect(h.natsURL)
	must(t, err)
	js, err := jetstream.New(nc)
	must(t, err)
	ch := make(chan capturedEvent, 100_000)
	tap.mu.Lock()
	tap.echoes = ch
	tap.mu.Unlock()
	var n int
	var errs []error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range ch {
			msg := &nats.Msg{Subject: ev.subject, Data: ev.data, Header: nats.Header{}}
			if _, err := js.PublishMsg(context.Background(), msg, jetstream.WithMsgID(ev.id+"/echo")); err != nil {
				errs = append(errs, err)
				continue
			}
			n++
		}
	}()
	return func() int {
		t.Helper()
		must(t, tap.nc.Flush()) // every event published so far has reached the tap
		tap.mu.Lock()
		tap.echoes = nil
		tap.mu.Unlock()
		close(ch)
		<-done
		nc.Close()
		if len(errs) > 0 {
			t.Fatalf("%d events could not be published again: %v", len(errs), errs)
		}
		return n
	}
}

// stop ends the capture and returns the events, in the order they came.
func (tap *eventTap) stop(t *testing.T) []capturedEvent {
	t.Helper()
	must(t, tap.sub.Drain())
	devenv.WaitFor(t, time.Minute, "the event tap to drain", func() bool { return !tap.sub.IsValid() })
	tap.mu.Lock()
	defer tap.mu.Unlock()
	return slices.Clone(tap.events)
}

// replayEvents publishes every event again, in an order shuffled by seed,
// each with a fresh Nats-Msg-Id so JetStream's dedup window keeps them,
// and waits until the reconcilers have taken every one of them.
func replayEvents(t *testing.T, h *harness, events []capturedEvent, seed uint64) {
	t.Helper()
	nc, err := nats.Connect(h.natsURL)
	must(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	must(t, err)
	ctx := context.Background()
	order := slices.Clone(events)
	rng := rand.New(rand.NewPCG(seed, 8))
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for i, ev := range order {
		msg := &nats.Msg{Subject: ev.subject, Data: ev.data, Header: nats.Header{}}
		for k, vs := range ev.header {
			if k != nats.MsgIdHdr {
				msg.Header[k] = slices.Clone(vs)
			}
		}
		ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(fmt.Sprintf("%s/replay/%d", ev.id, i)))
		must(t, err)
		if ack.Duplicate {
			t.Fatalf("replayed event %s was taken for a duplicate", ev.id)
		}
	}
	// A work queue deletes a message once it is acknowledged (the
	// stream does so after the consumer counts the ack): an empty stream
	// is every replayed event handled.
	stream, err := js.Stream(ctx, "SYNC_EVENTS")
	must(t, err)
	devenv.WaitFor(t, 2*time.Minute, "the reconcilers to take every replayed event", func() bool {
		info, err := stream.Info(ctx)
		must(t, err)
		return info.State.Msgs == 0
	})
	waitIdle(t, js, "SYNC_EVENTS", "reconcilers")
	dlq, err := js.Stream(ctx, "SYNC_DLQ")
	must(t, err)
	info, err := dlq.Info(ctx)
	must(t, err)
	if info.State.Msgs != 0 {
		t.Fatalf("the replay put %d events in the dead letters", info.State.Msgs)
	}
}

// bindRole creates a role and binds it to a group of the app.
func bindRole(h *harness, tenant, group, role string) {
	h.t.Helper()
	T := "/v1/tenants/" + tenant
	if code := h.do("PUT", T+"/roles/"+url.PathEscape(role), nil, nil); code != http.StatusCreated {
		h.t.Fatalf("PUT role = %d", code)
	}
	if code := h.do("PATCH", T+"/groups/"+group, map[string]any{"roles": []string{role}}, nil); code != http.StatusOK {
		h.t.Fatalf("PATCH group %s = %d", group, code)
	}
}

// graphRequests are the simulator's logged Graph requests of an Entra
// tenant since the log was last reset.
func graphRequests(h *harness, entraTenant string) []graphsim.Request {
	var out []graphsim.Request
	for _, r := range h.sim.Requests() {
		if r.Tenant == strings.ToLower(entraTenant) && strings.HasPrefix(r.Path, "/v1.0/") {
			out = append(out, r)
		}
	}
	return out
}

// isDelta tells a delta request (a round's page, or $deltatoken=latest)
// from a listing.
func isDelta(r graphsim.Request) bool { return strings.Contains(r.Path, "/delta") }

// readWhole reports whether requests read the whole directory: a users
// listing, not a delta round.
func readWhole(reqs []graphsim.Request) bool {
	return slices.ContainsFunc(reqs, func(r graphsim.Request) bool { return r.Path == "/v1.0/users" && r.Status == http.StatusOK })
}

// TestDeltaRoundsResyncAndReplayEqualAFreshFullSync: a tenant synced
// full, then by delta rounds over churn (joiners, leavers soft-deleted,
// purged and restored, renames, moves between dynamic groups, a nested
// membership, a group deleted for good and one deleted and restored), a
// resync Graph forced (resyncRequired: the run reads the whole directory
// again), one more delta round with replayed pages, and then every event
// of all those runs replayed in a shuffled order: its mirror and app
// tables hold what a second tenant holds after a full read of the same
// directory, row for row by Entra id.
func TestDeltaRoundsResyncAndReplayEqualAFreshFullSync(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 2)
	e := h.addEntraTenant(graphsim.DemoSpec())
	dir := e.Dir
	const seats = 1000
	tenant := h.connect(e, seats)
	tap := tapEvents(t, h, tenant)

	if run := h.sync(tenant); run.Kind != "full" {
		t.Fatalf("the first run is %s", run.Kind)
	}
	chain := dir.NestedChain()
	if len(chain) < 3 {
		t.Fatalf("nesting chain %v", chain)
	}
	top, bottom := chain[0], chain[len(chain)-1]
	bindRole(h, tenant, top, "Auditor")
	if run := h.sync(tenant); run.Kind != "delta" || run.Counts["rolesGranted"] == 0 {
		t.Fatalf("the run after the binding: %s, counts %v", run.Kind, run.Counts)
	}
	base := content(t, h.db, tenant)

	// Round 1: churn; a user joins the bottom of the chain; a user leaves
	// (soft-deleted, restored in round 2); a group is deleted for good and
	// a Microsoft 365 group deleted and restored before anyone looks.
	inTop := map[string]bool{}
	for _, u := range dir.TransitiveUsers(top) {
		inTop[u.ID] = true
	}
	var joiner, leaver graphsim.User
	for _, u := range members(dir) {
		switch {
		case joiner.ID == "" && !inTop[u.ID]:
			joiner = u
		case leaver.ID == "" && u.ID != joiner.ID:
			leaver = u
		}
	}
	var gone, m365 graphsim.Group
	for _, g := range dir.Groups() {
		switch {
		case slices.Contains(chain, g.ID) || slices.Contains(dir.CycleGroups(), g.ID):
		case m365.ID == "" && slices.Contains(g.GroupTypes, "Unified") && len(dir.DirectMembers(g.ID)) > 0:
			m365 = g
		case gone.ID == "" && !slices.Contains(g.GroupTypes, "Unified") && !slices.Contains(g.GroupTypes, "DynamicMembership"):
			gone = g
		}
	}
	if joiner.ID == "" || leaver.ID == "" || gone.ID == "" || m365.ID == "" {
		t.Fatalf("no joiner %q, leaver %q, group to delete %q or Microsoft 365 group %q", joiner.ID, leaver.ID, gone.ID, m365.ID)
	}
	must(t, dir.AddMember(bottom, graphsim.Member{ID: joiner.ID, Type: graphsim.TypeUser}))
	must(t, dir.DeleteUser(leaver.ID))
	rep := dir.Churn(1, 0.1)
	t.Logf("churn 1: %s", rep)
	must(t, dir.DeleteGroup(gone.ID))
	must(t, dir.DeleteGroup(m365.ID))
	must(t, dir.RestoreGroup(m365.ID))
	run := h.sync(tenant)
	if run.Kind != "delta" {
		t.Fatalf("the run after churn 1 is %s; want a delta round", run.Kind)
	}
	// Three levels down to the top group, in one delta round: the joiner
	// is among its members and holds its role.
	var isMember bool
	must(t, h.db.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM app_group_members
		WHERE tenant_id = $1 AND group_id = $2 AND user_id = $3)`, tenant, top, joiner.ID).Scan(&isMember))
	var grants struct{ Items []grant }
	if code := h.do("GET", "/v1/tenants/"+tenant+"/users/"+joiner.ID+"/grants", nil, &grants); code != http.StatusOK {
		t.Fatalf("GET grants = %d", code)
	}
	if !isMember || len(grants.Items) != 1 || grants.Items[0].Name != "Auditor" {
		t.Fatalf("the user who joined %s three levels below %s: member of the top %v, grants %+v", bottom, top, isMember, grants.Items)
	}
	// The deleted group is kept as orphaned (the product's rule); an admin
	// deletes it here, as a fresh tenant never had it.
	if code := h.do("DELETE", "/v1/tenants/"+tenant+"/groups/"+gone.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE the group deleted in Entra ID = %d; want it orphaned and deletable", code)
	}

	// Round 2: the leaver is restored, more churn, and Graph forces a
	// resync: the delta run reads the whole directory instead.
	must(t, dir.RestoreUser(leaver.ID))
	t.Logf("churn 2: %s", dir.Churn(2, 0.1))
	h.sim.ResetRequests()
	h.sim.SetFaults(e.ID, graphsim.Faults{DeltaResyncNext: 1})
	run = h.sync(tenant)
	h.sim.SetFaults(e.ID, graphsim.Faults{})
	reqs := graphRequests(h, e.ID)
	// It is recorded as what it read: a full run.
	if run.Kind != "full" || !slices.ContainsFunc(reqs, func(r graphsim.Request) bool { return isDelta(r) && r.Status == http.StatusBadRequest }) ||
		!readWhole(reqs) {
		t.Fatalf("the run Graph asked to resync: kind %s, read the whole directory %v", run.Kind, readWhole(reqs))
	}

	// Round 3: a delta round whose pages replay objects of the page
	// before (delta-query-overview.md, "Replays"), and each of whose
	// events the reconcilers get twice while it runs.
	t.Logf("churn 3: %s", dir.Churn(3, 0.05))
	h.sim.ResetRequests()
	h.sim.SetFaults(e.ID, graphsim.Faults{DeltaReplay: true})
	stopEcho := tap.echo(t, h)
	run = h.sync(tenant)
	echoed := stopEcho()
	h.sim.SetFaults(e.ID, graphsim.Faults{})
	if run.Kind != "delta" || readWhole(graphRequests(h, e.ID)) || echoed < 3 {
		t.Fatalf("round 3 is %s, read the whole directory %v, %d events twice; want a delta round, every event twice",
			run.Kind, readWhole(graphRequests(h, e.ID)), echoed)
	}
	if d := diff(h.users(tenant), expectedUsers(dir, seats), userKey); d != "" {
		t.Fatalf("users differ from Graph after the delta rounds:\n%s", d)
	}
	if d := diff(h.groups(tenant), expectedGroups(dir), groupKey); d != "" {
		t.Fatalf("groups differ from Graph after the delta rounds:\n%s", d)
	}

	// Every event of every run, once more, shuffled: nothing changes.
	events := tap.stop(t)
	if len(events) < 6*3 {
		t.Fatalf("captured %d events of 6 runs", len(events))
	}
	before := h.tableHashes()
	replayEvents(t, h, events, 8)
	storetest.DiffHashes(t, fmt.Sprintf("after replaying %d events", len(events)), h.tableHashes(), before)

	// A fresh tenant reads the same directory whole (a second Entra
	// tenant, its app registration, the very same directory).
	fresh := entraTenant{ID: uuid.NewString(), ClientID: uuid.NewString(), Secret: "s3cret-" + uuid.NewString(), Dir: dir}
	h.sim.AddTenant(fresh.ID, fresh.ClientID, fresh.Secret, dir)
	other := h.connect(fresh, seats)
	if run := h.syncFull(other); run.Kind != "full" {
		t.Fatalf("the fresh tenant's run is %s", run.Kind)
	}
	bindRole(h, other, top, "Auditor")
	if run := h.syncFull(other); run.Kind != "full" || run.Counts["rolesGranted"] == 0 {
		t.Fatalf("the fresh tenant's run after the binding: %s, counts %v", run.Kind, run.Counts)
	}

	got, want := content(t, h.db, tenant), content(t, h.db, other)
	if d := contentDiff(got, want); d != "" {
		t.Fatalf("after delta rounds, a resync and a replay, the tenant's tables differ from a fresh full sync:\n%s", d)
	}
	// The comparison sees changes: the tenant's content before the churn
	// is not the directory's now.
	if contentDiff(base, want) == "" {
		t.Fatal("the content before the churn equals the content after it: the comparison sees nothing")
	}
	t.Logf("%d events of round 3 twice while it ran, %d events replayed after; content %v", echoed, len(events), contentHash(got))
}

// simClock is a simulator clock a test moves forward.
type simClock struct{ offset atomic.Int64 }

func (c *simClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *simClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// graphHook sits between the fetchers and Graph. It runs an action at a
// chosen moment of a run: before a request is sent (so the request sees
// the action's changes) or after its response was read whole (so it does
// not). Actions match the paths a request asks for: its own, or those of
// the items of a $batch. Each action runs once.
type graphHook struct {
	base http.RoundTripper

	mu      sync.Mutex
	before  []hookAction
	after   []hookAction
	fired   []string
	visited []string // Graph paths and queries asked for, in order
	errs    []error  // requests the hook could not read
}

type hookAction struct {
	name  string
	match func(path string) bool
	do    func()
	done  bool
}

func (g *graphHook) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.URL.Path, "/v1.0/") {
		return g.base.RoundTrip(req)
	}
	asked, req, err := askedFor(req)
	g.mu.Lock()
	if err != nil {
		// Sent all the same: the test fails on the actions that did not
		// run, rather than on a run that cannot reach Graph.
		g.errs = append(g.errs, err)
	}
	g.visited = append(g.visited, asked...)
	g.mu.Unlock()
	g.fire(&g.before, asked)
	resp, err := g.base.RoundTrip(req)
	if err != nil || !g.wants(&g.after, asked) {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	g.fire(&g.after, asked)
	return resp, nil
}

// askedFor returns the paths and queries a request asks Graph for, and
// the request to send (a $batch's body read and put back).
func askedFor(req *http.Request) ([]string, *http.Request, error) {
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/$batch") || req.Body == nil {
		return []string{req.URL.Path + "?" + req.URL.RawQuery}, req, nil
	}
	raw, err := io.ReadAll(req.Body)
	req.Body.Close()
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(raw))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }
	if err != nil {
		return nil, out, err
	}
	body := raw
	if strings.EqualFold(req.Header.Get("Content-Encoding"), "gzip") { // the SDK compresses bodies
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, out, fmt.Errorf("graph hook: $batch body: %w", err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			return nil, out, fmt.Errorf("graph hook: $batch body: %w", err)
		}
	}
	var batch struct {
		Requests []struct {
			URL string `json:"url"`
		} `json:"requests"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		return nil, out, fmt.Errorf("graph hook: $batch body: %w", err)
	}
	var asked []string
	for _, it := range batch.Requests {
		u, err := url.Parse(it.URL)
		if err != nil {
			return nil, out, fmt.Errorf("graph hook: $batch item %q: %w", it.URL, err)
		}
		path := u.Path
		if !strings.HasPrefix(path, "/v1.0/") {
			path = "/v1.0" + path
		}
		asked = append(asked, path+"?"+u.RawQuery)
	}
	return asked, out, nil
}

// wants reports whether an action not done yet matches a path asked for.
func (g *graphHook) wants(actions *[]hookAction, asked []string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range *actions {
		if !a.done && slices.ContainsFunc(asked, func(p string) bool { return a.match(strings.SplitN(p, "?", 2)[0]) }) {
			return true
		}
	}
	return false
}

// fire runs the actions not done yet that match a path asked for.
func (g *graphHook) fire(actions *[]hookAction, asked []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range *actions {
		a := &(*actions)[i]
		if !a.done && slices.ContainsFunc(asked, func(p string) bool { return a.match(strings.SplitN(p, "?", 2)[0]) }) {
			a.done = true
			a.do()
			g.fired = append(g.fired, a.name)
		}
	}
}

// arm adds an action run before the first request that asks for a path
// that matches.
func (g *graphHook) arm(name string, match func(path string) bool, do func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.before = append(g.before, hookAction{name: name, match: match, do: do})
}

// armAfter adds an action run once the response of the first request
// that asks for a path that matches has been read.
func (g *graphHook) armAfter(name string, match func(path string) bool, do func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.after = append(g.after, hookAction{name: name, match: match, do: do})
}

// reset forgets the paths visited.
func (g *graphHook) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.visited = nil
}

func (g *graphHook) paths() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.visited)
}

// firedActions names the actions that ran, and fails the test when the
// hook could not read a request.
func (g *graphHook) firedActions(t *testing.T) []string {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.errs) > 0 {
		t.Fatalf("the Graph hook could not read %d requests: %v", len(g.errs), g.errs)
	}
	return slices.Clone(g.fired)
}

// newHarnessOnSim is newHarness with a Graph simulator of the test's
// options, whose requests from the fleet pass through hook.
func newHarnessOnSim(t *testing.T, opts graphsim.Options, hook *graphHook) *harness {
	t.Helper()
	opts.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	sim, err := graphsim.New(opts)
	must(t, err)
	must(t, sim.Start())
	t.Cleanup(func() { sim.Close() })
	h := newHarnessWith(t, 1, 1, func(cfg *fleet.Config) {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.TLSClientConfig = &tls.Config{RootCAs: sim.CAPool(), MinVersion: tls.VersionTLS12}
		hook.base = transport
		cfg.GraphBaseURL, cfg.AuthorityHost, cfg.GraphTransport = sim.GraphURL(), sim.AuthorityURL(), hook
	})
	h.sim = sim
	return h
}

// TestResyncFallsBackToAFullReadWithoutLosingAChangeMadeDuringIt: when
// Graph will not serve a tenant's saved delta links (the token expired:
// 400 syncStateNotFound; or 410 Gone), the run reads the whole directory,
// taking fresh links first; changes made while it reads (after the users
// listing passed, after a group's member list was read) are not in what
// it reads, and the next run, a delta round from those links, brings
// every one of them in.
func TestResyncFallsBackToAFullReadWithoutLosingAChangeMadeDuringIt(t *testing.T) {
	t.Parallel()
	const ttl = time.Hour
	for _, tc := range []struct {
		name   string
		status int // what Graph answers the saved link
		expire func(h *harness, e entraTenant, clock *simClock)
	}{
		{"syncStateNotFound", http.StatusBadRequest, func(_ *harness, _ entraTenant, clock *simClock) {
			clock.Advance(ttl + time.Minute) // the simulator's tokens expire; the fleet's links look young
		}},
		{"410 Gone", http.StatusGone, func(h *harness, e entraTenant, _ *simClock) {
			h.sim.SetFaults(e.ID, graphsim.Faults{DeltaGoneNext: 1})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := &simClock{}
			hook := &graphHook{}
			h := newHarnessOnSim(t, graphsim.Options{Clock: clock.Now, DeltaTokenTTL: ttl}, hook)
			e := h.addEntraTenant(smallSpec)
			dir := e.Dir
			const seats = 1000
			tenant := h.connect(e, seats)
			if run := h.sync(tenant); run.Kind != "full" {
				t.Fatalf("the first run is %s", run.Kind)
			}

			// What changes while the fallback reads: a user renamed, one
			// soft-deleted and one new, once the users listing is over;
			// a group renamed and its members changed once its member
			// list was read.
			us := members(dir)
			renamed, leaver := us[0], us[1]
			var group graphsim.Group
			var out graphsim.Member
			for _, g := range dir.Groups() {
				if slices.Contains(g.GroupTypes, "DynamicMembership") {
					continue
				}
				for _, m := range dir.DirectMembers(g.ID) {
					if m.Type == graphsim.TypeUser && m.ID != renamed.ID && m.ID != leaver.ID {
						group, out = g, m
					}
				}
				if group.ID != "" {
					break
				}
			}
			if group.ID == "" {
				t.Fatal("no group with a user member")
			}
			var joiner graphsim.User
			hook.arm("users changed after the users listing", func(path string) bool {
				return path == "/v1.0/groups" // the users listing is over
			}, func() {
				must(t, dir.UpdateUser(renamed.ID, func(u *graphsim.User) { u.DisplayName += " (renamed)" }))
				must(t, dir.DeleteUser(leaver.ID))
				joiner = dir.AddUser(graphsim.User{DisplayName: "Jo Iner", GivenName: "Jo", Surname: "Iner",
					Mail: "jo.iner@" + dir.Domain(), AccountEnabled: true})
			})
			hook.armAfter("group changed after its member list was read", func(path string) bool {
				return path == "/v1.0/groups/"+group.ID+"/members"
			}, func() {
				must(t, dir.RemoveMember(group.ID, out.ID))
				must(t, dir.AddMember(group.ID, graphsim.Member{ID: joiner.ID, Type: graphsim.TypeUser}))
				must(t, dir.UpdateGroup(group.ID, func(g *graphsim.Group) { g.DisplayName += " (renamed)" }))
			})

			tc.expire(h, e, clock)
			h.sim.ResetRequests()
			hook.reset()
			run := h.sync(tenant)
			if fired := hook.firedActions(t); len(fired) != 2 {
				t.Fatalf("the changes were made at %v; want both during the run", fired)
			}
			reqs := graphRequests(h, e.ID)
			// It is recorded as what it read: a full run.
			if run.Kind != "full" || len(reqs) == 0 || !isDelta(reqs[0]) || reqs[0].Status != tc.status || !readWhole(reqs) {
				t.Fatalf("the run that found its links gone: kind %s, read the whole directory %v, requests %+v",
					run.Kind, readWhole(reqs), reqs)
			}
			// Fresh links were taken before the whole directory was read.
			paths := hook.paths()
			latest := slices.IndexFunc(paths, func(p string) bool { return strings.Contains(p, "deltatoken=latest") })
			listing := slices.IndexFunc(paths, func(p string) bool { return strings.HasPrefix(p, "/v1.0/users?") })
			if latest < 0 || listing < 0 || latest > listing {
				t.Fatalf("$deltatoken=latest at %d, the users listing at %d: %v", latest, listing, paths)
			}
			// The full read did not see the changes: they came after it
			// passed.
			users := h.appUsers(tenant)
			if users[renamed.ID].DisplayName != renamed.DisplayName {
				t.Fatalf("the fallback read saw the rename made after the users listing: %+v", users[renamed.ID])
			}
			if _, ok := users[leaver.ID]; !ok {
				t.Fatalf("the fallback read saw the deletion made after the users listing")
			}
			if _, ok := users[joiner.ID]; ok {
				t.Fatalf("the fallback read saw the user added after the users listing")
			}

			// The next run is a delta round from the fallback's links, and
			// it brings every change in.
			hook.reset()
			run = h.sync(tenant)
			if run.Kind != "delta" || slices.ContainsFunc(hook.paths(), func(p string) bool { return strings.HasPrefix(p, "/v1.0/users?") }) {
				t.Fatalf("the run after the fallback: kind %s, requests %v; want a delta round", run.Kind, hook.paths())
			}
			if d := diff(h.users(tenant), expectedUsers(dir, seats), userKey); d != "" {
				t.Fatalf("users differ from Graph after the delta round:\n%s", d)
			}
			if d := diff(h.groups(tenant), expectedGroups(dir), groupKey); d != "" {
				t.Fatalf("groups differ from Graph after the delta round:\n%s", d)
			}
		})
	}
}
