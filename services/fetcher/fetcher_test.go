package fetcher

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/graph"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
	"github.com/entrasync/entrasync/services/graphsim"
	"github.com/entrasync/entrasync/services/reconciler"
)

func TestMain(m *testing.M) { os.Exit(devenv.RunTests(m)) }

// pageSize is small so every kind of listing spans several pages.
const pageSize = 5

// spec is a tenant with every shape the sync meets.
var spec = graphsim.Spec{
	Seed: 3, Users: 24, Guests: 3, Disabled: 2, NoMail: 2,
	Groups: 8, NestingDepth: 3, Devices: 2, Contacts: 1, Cycle: true,
}

// env is one test's world: the simulator with a tenant, Postgres with the
// tenant connected, and NATS.
type env struct {
	t     *testing.T
	sim   *graphsim.Server
	dir   *graphsim.Directory
	entra string // Entra tenant id
	st    *store.Store
	dbURL string
	// splitPages says the run's fetcher splits Graph pages to fit a
	// smaller event size: checkRun expects more pages than Graph's.
	splitPages bool
	natsURL    string
	bus        *bus.Bus
	tenant     store.Tenant
	log        zerolog.Logger
	// inScope says which directory users a run lists, when the tenant
	// has a user filter; nil means every user.
	inScope func(graphsim.User) bool
}

// newEnv sets up the world; secret is what the store holds for the app
// registration ("" = the right one).
func newEnv(t *testing.T, secret string) *env {
	t.Helper()
	return newEnvWith(t, secret, graphsim.Options{})
}

// newEnvWith is newEnv with a simulator of its own options.
func newEnvWith(t *testing.T, secret string, simOpts graphsim.Options) *env {
	t.Helper()
	sim, err := graphsim.New(simOpts)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	e := &env{t: t, sim: sim, dir: graphsim.Generate(spec), entra: guid(), natsURL: devenv.NATS(t),
		log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)}
	e.st, e.dbURL = storetest.NewWithURL(t)
	// An empty group must still get one, last, page of each list.
	e.dir.AddGroup(graphsim.Group{DisplayName: "Nobody Here", SecurityEnabled: true})
	clientID, right := guid(), "right-"+guid()
	sim.AddTenant(e.entra, clientID, right, e.dir)
	if secret == "" {
		secret = right
	}
	e.tenant, err = e.st.CreateTenant(t.Context(), store.NewTenant{
		Name: "Contoso", EntraTenantID: e.entra, ClientID: clientID, ClientSecret: secret, Seats: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.bus = e.connect()
	return e
}

func (e *env) connect() *bus.Bus {
	e.t.Helper()
	return e.connectWith(bus.Options{})
}

// connectWith connects to NATS with the test's short retry delays and
// opts. Connecting declares the consumers: settings such as
// JobsMaxDeliver last until the next connection changes them.
func (e *env) connectWith(opts bus.Options) *bus.Bus {
	e.t.Helper()
	opts.RetryBase, opts.RetryMax = 100*time.Millisecond, time.Second
	b, err := bus.ConnectWith(e.t.Context(), e.natsURL, opts, e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(b.Close)
	return b
}

// startFetcher starts a fetcher replica on its own bus connection and
// stops it when the test ends.
func (e *env) startFetcher(id string, mod func(*Config)) *Fetcher {
	e.t.Helper()
	return e.startFetcherOn(e.connect(), id, mod)
}

// startFetcherOn is startFetcher on a given bus connection.
func (e *env) startFetcherOn(b *bus.Bus, id string, mod func(*Config)) *Fetcher {
	e.t.Helper()
	cfg := Config{ID: id, Graph: e.graphConfig(), LeaseTTL: 3 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	f, err := New(cfg, Deps{Bus: b, Store: e.st, Logger: e.log.With().Str("service", id).Logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := f.Start(context.WithoutCancel(e.t.Context())); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.Stop(ctx); err != nil {
			e.t.Error(err)
		}
	})
	return f
}

// graphConfig reaches the test's Graph simulator.
func (e *env) graphConfig() graph.Config {
	return graph.Config{
		BaseURL:       e.sim.GraphURL(),
		AuthorityHost: e.sim.AuthorityURL(),
		Transport:     e.sim.HTTPClient().Transport,
		PageSize:      pageSize,
	}
}

// queueRun creates a queued run and publishes its job, as the api does.
func (e *env) queueRun() store.Run {
	e.t.Helper()
	run, err := e.st.CreateRun(e.t.Context(), store.NewRun{TenantID: e.tenant.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
	if err != nil {
		e.t.Fatal(err)
	}
	err = e.bus.PublishJob(e.t.Context(), &syncv1.SyncJob{
		TenantId: run.TenantID, RunId: run.ID, RunSeq: run.Seq,
		Kind: syncv1.JobKind_JOB_KIND_FULL, Trigger: syncv1.Trigger_TRIGGER_MANUAL,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return run
}

// recorder keeps every event on SYNC_EVENTS in stream order.
type recorder struct {
	mu     sync.Mutex
	events []*syncv1.SyncEvent
}

func (e *env) record() *recorder {
	e.t.Helper()
	return e.recordWith(nil)
}

// recordAndApply records events and applies each, before recording it,
// through a real reconciler on the test's store.
func (e *env) recordAndApply() *recorder {
	e.t.Helper()
	rc, err := reconciler.New(reconciler.Config{}, reconciler.Deps{Store: e.st, Logger: e.log.With().Str("service", "reconciler").Logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.recordWith(func(ctx context.Context, ev *syncv1.SyncEvent) error {
		err := rc.Apply(ctx, ev)
		if bus.IsPermanent(err) {
			e.t.Errorf("the reconciler rejects page %d of run %s: %v", ev.GetPage(), ev.GetRunId(), err)
		}
		return err
	})
}

func (e *env) recordWith(apply func(context.Context, *syncv1.SyncEvent) error) *recorder {
	e.t.Helper()
	r := &recorder{}
	c, err := e.bus.ConsumeEvents(e.t.Context(), bus.ConsumeOptions{Concurrency: 1}, func(ctx context.Context, ev *syncv1.SyncEvent) error {
		if apply != nil {
			if err := apply(ctx, ev); err != nil {
				return err
			}
		}
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return r
}

func (r *recorder) snapshot() []*syncv1.SyncEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// of returns the events of one run.
func (r *recorder) of(runID string) []*syncv1.SyncEvent {
	var out []*syncv1.SyncEvent
	for _, ev := range r.snapshot() {
		if ev.GetRunId() == runID {
			out = append(out, ev)
		}
	}
	return out
}

// waitEnd waits for the run's RunFetched or RunFailed and returns the run's
// events.
func (r *recorder) waitEnd(t *testing.T, runID string) []*syncv1.SyncEvent {
	t.Helper()
	var evs []*syncv1.SyncEvent
	devenv.WaitFor(t, 45*time.Second, "the run's last event", func() bool {
		evs = r.of(runID)
		return slices.ContainsFunc(evs, func(ev *syncv1.SyncEvent) bool { return ev.GetFetched() != nil || ev.GetFailed() != nil })
	})
	return evs
}

func guid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// checkRun checks one complete run's events against the directory: the
// frame (RunStarted first, RunFetched last with the page count), the page
// numbering, the order of kinds, and the union of every list. Pages of
// interrupted attempts before the one that fetched the run must have
// numbers below its first page; only that attempt's pages are checked.
func checkRun(t *testing.T, e *env, run store.Run, evs []*syncv1.SyncEvent) *syncv1.RunFetched {
	t.Helper()
	if len(evs) < 2 || evs[0].GetStarted() == nil {
		t.Fatalf("first event is not RunStarted: %v", evs)
	}
	last := evs[len(evs)-1]
	fetched := last.GetFetched()
	if fetched == nil {
		t.Fatalf("last event is not RunFetched: %v", last)
	}
	first := fetched.GetFirstPage()
	if first%syncv1.AttemptPageSpan != 0 {
		t.Fatalf("RunFetched.first_page %d is not a multiple of the attempt span", first)
	}
	// Earlier attempts' events may come first; this attempt's RunStarted
	// precedes its data pages, and nothing else comes between them.
	attempt := first/syncv1.AttemptPageSpan + 1
	startedThis := evs[0].GetStarted().GetAttempt() == attempt
	var data []*syncv1.SyncEvent
	for _, ev := range evs[1 : len(evs)-1] {
		switch {
		case ev.GetPage() >= first:
			data = append(data, ev)
		case len(data) > 0:
			t.Errorf("%T with page %d among the data pages of the attempt from page %d", ev.GetBody(), ev.GetPage(), first)
		case ev.GetStarted().GetAttempt() == attempt:
			startedThis = true
		case ev.GetPage() < 0 && ev.GetStarted() == nil:
			t.Errorf("%T before the data pages of the attempt from page %d", ev.GetBody(), first)
		}
	}
	if !startedThis {
		t.Errorf("no RunStarted of attempt %d before its pages", attempt)
	}
	if int(fetched.GetPages()) != len(data) {
		t.Errorf("RunFetched says %d pages, %d data events were published", fetched.GetPages(), len(data))
	}
	for _, ev := range []*syncv1.SyncEvent{evs[0], last} {
		if ev.GetPage() != -1 {
			t.Errorf("%T has page %d, want -1", ev.GetBody(), ev.GetPage())
		}
	}
	for i, ev := range evs {
		if ev.GetTenantId() != e.tenant.ID || ev.GetRunSeq() != run.Seq || ev.GetObservedAt() == nil {
			t.Errorf("event %d: tenant %s, run_seq %d, observed_at %v; want %s, %d, set", i, ev.GetTenantId(), ev.GetRunSeq(), ev.GetObservedAt(), e.tenant.ID, run.Seq)
		}
	}

	// Data pages first..first+N-1: a users page first, then the rest of
	// the users beside the groups, then the member lists (the users and
	// groups listings are read side by side). The member lists are read
	// several groups at a time, so lists of different groups interleave
	// and their pages may reach the stream out of number order; each
	// list's parts follow each other.
	slices.SortFunc(data, func(a, b *syncv1.SyncEvent) int { return int(a.GetPage() - b.GetPage()) })
	var users, groups []string
	members := map[string][]string{}
	stage := 0 // 0 users, 1 groups, 2 memberships
	type list struct {
		part int32
		done bool
	}
	lists := map[string]*list{}
	usersPages := 0
	for i, ev := range data {
		if ev.GetPage() != first+int32(i) {
			t.Fatalf("data event %d has page %d, want %d", i, ev.GetPage(), first+int32(i))
		}
		next := func(kind, gid string, part int32, lastPart bool) {
			k := kind + "/" + gid
			l := lists[k]
			if l == nil {
				l = &list{}
				lists[k] = l
			}
			if l.done || part != l.part {
				t.Errorf("page %d: %s part %d after part %d (done %v)", i, k, part, l.part-1, l.done)
			}
			l.part, l.done = part+1, lastPart
		}
		switch b := ev.GetBody().(type) {
		case *syncv1.SyncEvent_Users:
			usersPages++
			for _, u := range b.Users.GetUsers() {
				users = append(users, u.GetId())
				if want, ok := e.dir.User(u.GetId()); !ok || want.UserPrincipalName != u.GetUserPrincipalName() ||
					want.AccountEnabled != u.GetAccountEnabled() || want.UserType != u.GetUserType() || want.Mail != u.GetMail() {
					t.Errorf("user %s differs from the directory: %v", u.GetId(), u)
				}
			}
		case *syncv1.SyncEvent_Groups:
			if usersPages == 0 {
				t.Errorf("page %d: groups before the first users page", i)
			}
			if stage > 1 {
				t.Errorf("page %d: groups after memberships", i)
			}
			stage = 1
			for _, g := range b.Groups.GetGroups() {
				groups = append(groups, g.GetId())
			}
		case *syncv1.SyncEvent_Members:
			if stage == 0 {
				t.Errorf("page %d: a member list before the groups", i)
			}
			stage = 2
			p := b.Members
			next("members", p.GetGroupId(), p.GetPart(), p.GetLast())
			for _, m := range p.GetMembers() {
				members[p.GetGroupId()] = append(members[p.GetGroupId()], fmt.Sprint(m.GetType(), ":", m.GetId()))
			}
		case *syncv1.SyncEvent_UsersDelta, *syncv1.SyncEvent_GroupsDelta:
			// A full run of a tenant with saved delta links reads a delta
			// round first (its catch-up), before the listing.
			if usersPages > 0 || stage > 0 {
				t.Errorf("page %d: %T after the listing began", i, b)
			}
		default:
			t.Errorf("page %d: unexpected %T among the data pages", i, b)
		}
	}

	var wantUsers []graphsim.User
	for _, u := range e.dir.Users() {
		if e.inScope == nil || e.inScope(u) {
			wantUsers = append(wantUsers, u)
		}
	}
	// One users page per Graph page, or more when pages were split to fit
	// an event (e.splitPages).
	if want := max(1, (len(wantUsers)+pageSize-1)/pageSize); usersPages != want && !(e.splitPages && usersPages > want) {
		t.Errorf("%d users pages, want %d", usersPages, want)
	}
	var wantUserIDs []string
	for _, u := range wantUsers {
		wantUserIDs = append(wantUserIDs, u.ID)
	}
	assertSameSet(t, "users", users, wantUserIDs)
	var wantGroupIDs []string
	for _, g := range e.dir.Groups() {
		wantGroupIDs = append(wantGroupIDs, g.ID)
		if l := lists["members/"+g.ID]; l == nil || !l.done {
			t.Errorf("group %s (%s): members list not complete (no page marked last)", g.ID, g.DisplayName)
		}
		var wantM []string
		for _, m := range e.dir.DirectMembers(g.ID) {
			wantM = append(wantM, fmt.Sprint(memberType(graph.MemberType(m.Type)), ":", m.ID))
		}
		assertSameSet(t, "direct members of "+g.DisplayName, members[g.ID], wantM)
	}
	assertSameSet(t, "groups", groups, wantGroupIDs)
	if fetched.GetStats().GetRequests() == 0 {
		t.Errorf("RunFetched has no Graph request count: %v", fetched.GetStats())
	}
	return fetched
}

func assertSameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func TestRunPublishesEveryPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rec := e.record()
	run := e.queueRun()
	// The fetcher's time is its clock's: a clock years behind the wall's
	// (but moving, for Graph's Retry-After dates) stamps every event.
	epoch := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	began := time.Now()
	clock := func() time.Time { return epoch.Add(time.Since(began)) }
	e.startFetcher("fetcher-a", func(c *Config) { c.Clock = clock })

	evs := rec.waitEnd(t, run.ID)
	if got := evs[0].GetStarted().GetFetcher(); got != "fetcher-a" {
		t.Errorf("RunStarted names fetcher %q, want fetcher-a", got)
	}
	for _, ev := range evs {
		if at := ev.GetObservedAt().AsTime(); at.Before(epoch) || at.After(epoch.Add(time.Hour)) {
			t.Fatalf("event %d observed at %s, not by the fetcher's clock (from %s)", ev.GetPage(), at, epoch)
		}
	}
	fetched := checkRun(t, e, run, evs)

	// The simulator's log agrees with the run's stats: HTTP requests,
	// a $batch counting once (the log lists its items too).
	var graphReqs int64
	for _, r := range e.sim.Requests() {
		if strings.HasPrefix(r.Path, "/v1.0/") && strings.EqualFold(r.Tenant, e.entra) && !r.InBatch {
			graphReqs++
			if !r.Authorized {
				t.Errorf("%s %s went without an accepted token", r.Method, r.Path)
			}
		}
	}
	if fetched.GetStats().GetRequests() != graphReqs {
		t.Errorf("RunFetched counts %d requests, the simulator saw %d", fetched.GetStats().GetRequests(), graphReqs)
	}
	// The delta links were taken before the first listing, and travel on
	// RunFetched.
	var order []string
	for _, r := range e.sim.Requests() {
		if strings.HasPrefix(r.Path, "/v1.0/") && strings.EqualFold(r.Tenant, e.entra) && len(order) < 3 {
			order = append(order, r.Path+"?"+r.RawQuery)
		}
	}
	if len(order) < 3 || !latestLinks(order[0], order[1]) || strings.Contains(order[2], "delta") {
		t.Errorf("the run's first Graph requests: %q; want the users and groups latest delta links first", order)
	}
	for _, l := range []string{fetched.GetUsersDeltaLink(), fetched.GetGroupsDeltaLink()} {
		if !strings.Contains(l, "$deltatoken=") || !strings.HasPrefix(l, "https://") {
			t.Errorf("RunFetched's delta links %q and %q", fetched.GetUsersDeltaLink(), fetched.GetGroupsDeltaLink())
			break
		}
	}
	// The job was acknowledged and the lease released.
	waitJobsDone(t, e)
	ok, err := e.st.AcquireLease(t.Context(), e.tenant.ID, "probe", time.Minute)
	if err != nil || !ok {
		t.Errorf("tenant lease still held after the run: %v, %v", ok, err)
	}
}

// waitJobsDone waits until the fetchers consumer has nothing pending or
// unacknowledged.
func waitJobsDone(t *testing.T, e *env) {
	t.Helper()
	devenv.WaitFor(t, 30*time.Second, "the job to be acknowledged", func() bool {
		lags, err := e.bus.Lag(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lags {
			if l.Consumer == bus.ConsumerFetchers {
				return l.Total() == 0
			}
		}
		return false
	})
}

func TestWrongSecretFailsTheRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "wrong-secret")
	rec := e.record()
	run := e.queueRun()
	e.startFetcher("fetcher-a", nil)

	evs := rec.waitEnd(t, run.ID)
	if len(evs) != 2 || evs[0].GetStarted() == nil || evs[1].GetFailed() == nil {
		t.Fatalf("want RunStarted then RunFailed, got %v", evs)
	}
	if msg := evs[1].GetFailed().GetError(); !strings.Contains(msg, "AADSTS7000215") {
		t.Errorf("RunFailed does not carry the authority's message: %q", msg)
	}
	// The job is done with (acknowledged), not retried.
	waitJobsDone(t, e)
	if n := len(rec.of(run.ID)); n != 2 {
		t.Errorf("%d events after the job was acknowledged, want 2", n)
	}
}

// jobRedelivered says whether the fetchers' consumer has a job delivered
// more than once: one a fetcher handed back.
func (e *env) jobRedelivered() bool {
	e.t.Helper()
	lags, err := e.bus.Lag(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	return slices.ContainsFunc(lags, func(l bus.ConsumerLag) bool {
		return l.Consumer == bus.ConsumerFetchers && l.Redelivered > 0
	})
}

func TestHeldLeaseDelaysTheJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	ctx := t.Context()
	if ok, err := e.st.AcquireLease(ctx, e.tenant.ID, "someone-else", time.Hour); err != nil || !ok {
		t.Fatalf("take the lease: %v, %v", ok, err)
	}
	rec := e.record()
	run := e.queueRun()
	e.startFetcher("fetcher-a", func(c *Config) { c.LeaseTTL = time.Second })

	// The job is tried, handed back, and tried again...
	devenv.WaitFor(t, 30*time.Second, "the job to come back while the lease is held", e.jobRedelivered)
	// ...without running.
	if evs := rec.of(run.ID); len(evs) != 0 {
		t.Fatalf("the run published %d events while another holder had the tenant's lease", len(evs))
	}
	if err := e.st.ReleaseLease(ctx, e.tenant.ID, "someone-else"); err != nil {
		t.Fatal(err)
	}
	checkRun(t, e, run, rec.waitEnd(t, run.ID))
}

func TestOneRunPerTenantAtATime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	// Slow Graph down so the runs would overlap if they could, and let
	// each replica take one job at a time so both replicas get one.
	e.sim.SetFaults(e.entra, graphsim.Faults{Latency: 20 * time.Millisecond})
	rec := e.record()
	first, second := e.queueRun(), e.queueRun()
	for _, id := range []string{"fetcher-a", "fetcher-b"} {
		e.startFetcher(id, func(c *Config) { c.LeaseTTL = time.Second; c.Concurrency = 1 })
	}
	rec.waitEnd(t, first.ID)
	rec.waitEnd(t, second.ID)

	// In the stream, one run's events end before the other's begin.
	var order []string
	for _, ev := range rec.snapshot() {
		if len(order) == 0 || order[len(order)-1] != ev.GetRunId() {
			order = append(order, ev.GetRunId())
		}
	}
	if len(order) != 2 {
		t.Errorf("the runs' events interleave: the stream switches between them %d times", len(order)-1)
	}
	checkRun(t, e, first, rec.of(first.ID))
	checkRun(t, e, second, rec.of(second.ID))
}

func TestThrottledRunStillFetches(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.sim.SetFaults(e.entra, graphsim.Faults{ThrottleEvery: 4, RetryAfter: "0.2", ServiceUnavailableEvery: 7})
	rec := e.record()
	run := e.queueRun()
	e.startFetcher("fetcher-a", nil)

	fetched := checkRun(t, e, run, rec.waitEnd(t, run.ID))
	var throttled int64
	for _, r := range e.sim.Requests() {
		if strings.EqualFold(r.Tenant, e.entra) && r.Status == http.StatusTooManyRequests {
			throttled++
		}
	}
	st := fetched.GetStats()
	if throttled == 0 || st.GetThrottled() != throttled || st.GetRetries() <= st.GetThrottled() {
		t.Errorf("stats %v; the simulator sent %d 429s (and some 503s): want them all counted and retried", st, throttled)
	}
}

// TestStopHandsTheJobBack stops a fetcher in the middle of a run, changes
// the directory, and lets another replica fetch the run again. The second
// attempt publishes its pages under numbers of its own, so none is dropped
// as a duplicate of the first attempt's, and the run, applied by a real
// reconciler, ends as the directory is now.
func TestStopHandsTheJobBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.sim.SetFaults(e.entra, graphsim.Faults{Latency: 50 * time.Millisecond})
	rec := e.recordAndApply()
	run := e.queueRun()
	f := e.startFetcher("fetcher-a", nil)
	if err := f.Ready(); err != nil {
		t.Fatalf("a started fetcher is not ready: %v", err)
	}
	// Members the first attempt published, to change afterwards.
	var published []string
	devenv.WaitFor(t, 30*time.Second, "two users pages of the first attempt", func() bool {
		published = nil
		pages := 0
		for _, ev := range rec.of(run.ID) {
			if ev.GetUsers() != nil {
				pages++
			}
			for _, u := range ev.GetUsers().GetUsers() {
				if u.GetUserType() == "Member" {
					published = append(published, u.GetId())
				}
			}
		}
		return pages >= 2 && len(published) >= 2
	})
	// Slow Graph right down, so the first attempt cannot finish before Stop.
	e.sim.SetFaults(e.entra, graphsim.Faults{Latency: 5 * time.Second})

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := f.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Ready() == nil {
		t.Fatal("a stopped fetcher says it is ready")
	}
	if evs := rec.of(run.ID); slices.ContainsFunc(evs, func(ev *syncv1.SyncEvent) bool { return ev.GetFetched() != nil }) {
		t.Fatal("the first attempt finished before Stop")
	}
	// Stop released the lease on the way out.
	ok, err := e.st.AcquireLease(t.Context(), e.tenant.ID, "probe", time.Minute)
	if err != nil || !ok {
		t.Fatalf("lease still held after Stop: %v, %v", ok, err)
	}
	if err := e.st.ReleaseLease(t.Context(), e.tenant.ID, "probe"); err != nil {
		t.Fatal(err)
	}

	// The directory changes between the attempts: a user the first
	// attempt published is deleted, another is renamed, one is added.
	gone, renamed := published[0], published[1]
	if err := e.dir.DeleteUser(gone); err != nil {
		t.Fatal(err)
	}
	if err := e.dir.UpdateUser(renamed, func(u *graphsim.User) { u.DisplayName = "Renamed Between Attempts" }); err != nil {
		t.Fatal(err)
	}
	added := e.dir.AddUser(graphsim.User{DisplayName: "Added Between Attempts", GivenName: "Added", Surname: "Later", AccountEnabled: true})

	e.sim.SetFaults(e.entra, graphsim.Faults{})
	e.startFetcher("fetcher-b", nil)
	evs := rec.waitEnd(t, run.ID)
	fetched := checkRun(t, e, run, evs)
	if fetched.GetFirstPage() != syncv1.AttemptPageSpan {
		t.Errorf("the second attempt's pages start at %d, want %d", fetched.GetFirstPage(), syncv1.AttemptPageSpan)
	}

	// The reconciler judged the run on the second attempt: the app users
	// are the directory's members as they are now.
	var done store.Run
	devenv.WaitFor(t, 30*time.Second, "the run to succeed", func() bool {
		done, err = e.st.GetRun(t.Context(), e.tenant.ID, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		return done.Terminal()
	})
	if done.Status != store.StatusSucceeded || done.FetchAttempts != 2 || done.PagesFirst == nil || *done.PagesFirst != syncv1.AttemptPageSpan {
		t.Fatalf("run %s (%s), %d attempts, pages from %v", done.Status, done.Error, done.FetchAttempts, done.PagesFirst)
	}
	users, _, err := e.st.ListAppUsers(t.Context(), e.tenant.ID, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, u := range users {
		got = append(got, u.EntraID+" "+u.DisplayName)
	}
	for _, u := range e.dir.Users() {
		if u.UserType == "Member" {
			want = append(want, u.ID+" "+u.DisplayName)
		}
	}
	assertSameSet(t, "app users", got, want)
	for _, w := range []string{renamed + " Renamed Between Attempts", added.ID + " Added Between Attempts"} {
		if !slices.Contains(want, w) {
			t.Errorf("the directory lacks %q: the test changes nothing", w)
		}
	}
}

// TestEachAttemptHasItsOwnPages fetches a run whose job was begun once
// before (by a fetcher that died before publishing): the attempt is the
// second, and its pages start where the second attempt's numbers do.
func TestEachAttemptHasItsOwnPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rec := e.record()
	run := e.queueRun()
	if n, err := e.st.BeginFetch(t.Context(), e.tenant.ID, run.ID); err != nil || n != 1 {
		t.Fatalf("BeginFetch = %d, %v", n, err)
	}
	e.startFetcher("fetcher-a", nil)
	evs := rec.waitEnd(t, run.ID)
	fetched := checkRun(t, e, run, evs)
	if got := evs[0].GetStarted().GetAttempt(); got != 2 {
		t.Errorf("RunStarted says attempt %d, want 2", got)
	}
	if fetched.GetFirstPage() != syncv1.AttemptPageSpan {
		t.Errorf("RunFetched.first_page = %d, want %d", fetched.GetFirstPage(), syncv1.AttemptPageSpan)
	}
}

// TestRunStopsWhenItsLeaseRenewalHangs: a renewal the database does not
// answer (here the lease's row is locked by another transaction, as a
// stalled connection would leave it waiting) is given up while the lease
// still has a third of its TTL, and the run stops: past that point
// another replica could take the tenant over while this one still
// fetches. The job comes back, and a later attempt fetches the run once
// the database answers again.
func TestRunStopsWhenItsLeaseRenewalHangs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	// Slow enough that the run outlasts the lease several times over.
	e.sim.SetFaults(e.entra, graphsim.Faults{Latency: 400 * time.Millisecond})
	rec := e.record()
	run := e.queueRun()
	const ttl = 1500 * time.Millisecond
	e.startFetcher("fetcher-a", func(c *Config) { c.LeaseTTL = ttl })
	devenv.WaitFor(t, 30*time.Second, "the run to start", func() bool { return len(rec.of(run.ID)) > 0 })

	conn, err := pgx.Connect(t.Context(), e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `SELECT 1 FROM tenant_leases WHERE tenant_id = $1 FOR UPDATE`, e.tenant.ID); err != nil {
		t.Fatal(err)
	}
	locked := time.Now()
	// The attempt stops and its job is handed back: it comes back as a
	// redelivery.
	devenv.WaitFor(t, 30*time.Second, "the job to be handed back", func() bool {
		return e.jobRedelivered() ||
			slices.ContainsFunc(rec.of(run.ID), func(ev *syncv1.SyncEvent) bool { return ev.GetFetched() != nil })
	})
	stopped := time.Now()
	for _, ev := range rec.of(run.ID) {
		if ev.GetFetched() != nil {
			t.Fatalf("attempt 1 fetched the whole run while its lease could not be renewed")
		}
		if ev.GetPage() >= 0 && ev.GetObservedAt().AsTime().After(locked.Add(ttl)) {
			t.Errorf("page %d was published %s after the renewal began to hang, past the lease's %s TTL",
				ev.GetPage(), ev.GetObservedAt().AsTime().Sub(locked), ttl)
		}
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("the attempt was handed back %s after the lease's row was locked", stopped.Sub(locked))

	fetched := checkRun(t, e, run, rec.waitEnd(t, run.ID))
	if fetched.GetFirstPage() < syncv1.AttemptPageSpan {
		t.Errorf("RunFetched.first_page = %d: attempt 1 fetched the run", fetched.GetFirstPage())
	}
}

// TestTooManyAttemptsFailTheRun: a job begun as often as attempts have
// page numbers for fails its run instead of fetching.
func TestTooManyAttemptsFailTheRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rec := e.record()
	run := e.queueRun()
	conn, err := pgx.Connect(t.Context(), e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `UPDATE sync_runs SET fetch_attempts = $1 WHERE id = $2`, syncv1.MaxFetchAttempts, run.ID); err != nil {
		t.Fatal(err)
	}
	e.startFetcher("fetcher-a", nil)
	evs := rec.waitEnd(t, run.ID)
	if len(evs) != 1 || evs[0].GetFailed() == nil || !strings.Contains(evs[0].GetFailed().GetError(), "2047 times") {
		t.Fatalf("want one RunFailed saying the job was fetched 2047 times, got %v", evs)
	}
	waitJobsDone(t, e)
}

// TestLastDeliveryFailsTheRun: a run that keeps failing for a reason that
// may pass (Graph answers 503 to everything) is ended with RunFailed on
// its job's last allowed delivery, not left running behind a dead letter.
func TestLastDeliveryFailsTheRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	e.sim.SetFaults(e.entra, graphsim.Faults{ServiceUnavailableEvery: 1})
	rec := e.record()
	run := e.queueRun()
	const deliveries = 2
	e.startFetcherOn(e.connectWith(bus.Options{JobsMaxDeliver: deliveries}), "fetcher-a", func(c *Config) {
		c.Graph.MaxAttempts = 1
	})
	// Each delivery is an attempt with its own RunStarted; the last one
	// ends the run.
	evs := rec.waitEnd(t, run.ID)
	if len(evs) != deliveries+1 || evs[0].GetStarted().GetAttempt() != 1 || evs[1].GetStarted().GetAttempt() != 2 ||
		evs[2].GetFailed() == nil {
		t.Fatalf("want RunStarted of attempts 1 and 2, then RunFailed; got %v", evs)
	}
	failed := evs[deliveries].GetFailed()
	if msg := failed.GetError(); !strings.Contains(msg, fmt.Sprintf("gave up after %d deliveries", deliveries)) || !strings.Contains(msg, "503") {
		t.Errorf("RunFailed does not say why: %q", msg)
	}
	if failed.GetStats().GetRequests() == 0 {
		t.Errorf("RunFailed has no Graph stats: %v", failed.GetStats())
	}
	// The job is done with, and each delivery was an attempt.
	waitJobsDone(t, e)
	got, err := e.st.GetRun(t.Context(), e.tenant.ID, run.ID)
	if err != nil || got.FetchAttempts != deliveries {
		t.Fatalf("run after the last delivery: %+v, %v; want %d attempts", got, err, deliveries)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{Concurrency: -1, LeaseTTL: time.Millisecond}, Deps{}); err == nil ||
		!strings.Contains(err.Error(), "concurrency") || !strings.Contains(err.Error(), "lease TTL") {
		t.Errorf("got %v, want errors naming concurrency and lease TTL", err)
	}
	if _, err := New(Config{}, Deps{}); err == nil || !strings.Contains(err.Error(), "Bus") {
		t.Errorf("got %v, want an error about the missing bus", err)
	}
}

// TestLeaseWait: the wait is an eighth of the TTL within 1 s..15 s, spread
// ±20% by the injected randomness.
func TestLeaseWait(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ ttl, want time.Duration }{
		{time.Second, time.Second},          // at least a second
		{16 * time.Second, 2 * time.Second}, // an eighth
		{DefaultLeaseTTL, 15 * time.Second}, // at most 15 s
		{time.Hour, 15 * time.Second},
	} {
		for _, r := range []struct {
			rand float64
			want time.Duration
		}{{0, c.want * 8 / 10}, {0.5, c.want}, {0.75, c.want * 11 / 10}} {
			f := &Fetcher{cfg: Config{LeaseTTL: c.ttl, Rand: func() float64 { return r.rand }}}
			if got := f.leaseWait(); (got - r.want).Abs() > time.Microsecond {
				t.Errorf("leaseWait with TTL %s and rand %v = %s, want %s", c.ttl, r.rand, got, r.want)
			}
		}
	}
}

// inFlight is a RoundTripper that counts member-list requests in flight
// and remembers the most there were at once.
type inFlight struct {
	next     http.RoundTripper
	mu       sync.Mutex
	now, max int
}

func (c *inFlight) RoundTrip(req *http.Request) (*http.Response, error) {
	lists := strings.Contains(req.URL.Path, "/members") || strings.Contains(req.URL.Path, "/transitiveMembers") ||
		strings.HasSuffix(req.URL.Path, "/$batch")
	if lists {
		c.mu.Lock()
		c.now++
		c.max = max(c.max, c.now)
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.now--
			c.mu.Unlock()
		}()
	}
	return c.next.RoundTrip(req)
}

// TestGroupsAreReadSideBySide: member lists are read several batches at
// once (of two pages here), never more than GroupConcurrency requests,
// and the run still publishes every page, numbered without gaps.
func TestGroupsAreReadSideBySide(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	// Slow enough that lists read side by side overlap.
	e.sim.SetFaults(e.entra, graphsim.Faults{Latency: 30 * time.Millisecond})
	rec := e.record()
	run := e.queueRun()
	const conc = 3
	counter := &inFlight{next: e.sim.HTTPClient().Transport}
	e.startFetcher("fetcher-a", func(c *Config) {
		c.GroupConcurrency = conc
		c.MemberBatch = 2
		c.Graph.Transport = counter
	})
	checkRun(t, e, run, rec.waitEnd(t, run.ID))
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if counter.max < 2 || counter.max > conc {
		t.Fatalf("at most %d member lists were read at once, want 2..%d", counter.max, conc)
	}
}

// TestLongRetryAfterBringsTheJobBackWhenGraphSaid: a Retry-After longer
// than the fetcher waits ends the attempt, and the job comes back when
// Graph said, not after the bus's retry delay (100 ms here), so a
// throttled tenant is not asked again before its time.
func TestLongRetryAfterBringsTheJobBackWhenGraphSaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	const wait = 3 * time.Second
	e.sim.SetFaults(e.entra, graphsim.Faults{FailNext: []int{http.StatusTooManyRequests}, RetryAfter: "3"})
	rec := e.record()
	run := e.queueRun()
	e.startFetcher("fetcher-a", func(c *Config) {
		c.Graph.MaxRetryAfter = time.Second
		// The shared budget would hold a job that came back early until
		// the pause ends: without it, only the job's return time keeps
		// Graph from being asked too soon.
		c.Unbudgeted = true
	})
	checkRun(t, e, run, rec.waitEnd(t, run.ID))

	// A run reads some lists side by side, so requests it sent before the
	// 429's answer reached it may arrive just after the 429: the check is
	// on the throttled request itself, which only a later attempt sends.
	var throttled, retried *graphsim.Request
	for _, r := range e.sim.Requests() {
		if !strings.EqualFold(r.Tenant, e.entra) || !strings.HasPrefix(r.Path, "/v1.0/") {
			continue
		}
		switch {
		case r.Status == http.StatusTooManyRequests && throttled == nil:
			throttled = &r
		case throttled != nil && retried == nil && r.Path == throttled.Path && r.RawQuery == throttled.RawQuery:
			retried = &r
		}
	}
	if throttled == nil || retried == nil {
		t.Fatalf("want a 429 and the same request again after it; requests %+v", e.sim.Requests())
	}
	if gap := retried.At.Sub(throttled.At); gap < wait {
		t.Fatalf("Graph was asked again %s after a 429 with Retry-After %s", gap, wait)
	}
}

// TestRunsOfATenantShareOneGraphToken: a fetcher's runs of one tenant ask
// the token authority once between them (graph.TokenCache), not once
// each.
func TestRunsOfATenantShareOneGraphToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rec := e.recordAndApply()
	e.startFetcher("fetcher-token", nil)
	for range 2 {
		run := e.queueRun()
		checkRun(t, e, run, rec.waitEnd(t, run.ID))
	}
	tokens := 0
	for _, r := range e.sim.Requests() {
		if strings.HasSuffix(r.Path, "/oauth2/v2.0/token") && strings.EqualFold(r.Tenant, e.entra) {
			tokens++
		}
	}
	if tokens != 1 {
		t.Errorf("two runs asked the authority for %d tokens, want 1", tokens)
	}
}
