package fetcher

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/store"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
	"github.com/entrasync/entrasync/services/graphsim"
)

// queueRunOf is queueRun for a run of kind.
func (e *env) queueRunOf(kind string) store.Run {
	e.t.Helper()
	run, err := e.st.CreateRun(e.t.Context(), store.NewRun{TenantID: e.tenant.ID, Kind: kind, Trigger: store.TriggerManual})
	if err != nil {
		e.t.Fatal(err)
	}
	jk := syncv1.JobKind_JOB_KIND_FULL
	if kind == store.KindDelta {
		jk = syncv1.JobKind_JOB_KIND_DELTA
	}
	if err := e.bus.PublishJob(e.t.Context(), &syncv1.SyncJob{TenantId: run.TenantID, RunId: run.ID, RunSeq: run.Seq,
		Kind: jk, Trigger: syncv1.Trigger_TRIGGER_MANUAL}); err != nil {
		e.t.Fatal(err)
	}
	return run
}

// savedLinks waits until an applied run saved the tenant's delta links,
// other than old ones.
func (e *env) savedLinks(old store.DeltaLinks) store.DeltaLinks {
	e.t.Helper()
	var l store.DeltaLinks
	devenv.WaitFor(e.t, 30*time.Second, "the run's delta links to be saved", func() bool {
		var err error
		if l, err = e.st.DeltaLinks(e.t.Context(), e.tenant.ID); err != nil {
			e.t.Fatal(err)
		}
		return l.Users != "" && l.Groups != "" && l.RunSeq != old.RunSeq
	})
	return l
}

// graphRequestsSince are the Graph requests of the tenant after the first
// n of the simulator's log, as "path?query".
func (e *env) graphRequestsSince(n int) []string {
	var out []string
	for _, r := range e.sim.Requests()[n:] {
		if strings.HasPrefix(r.Path, "/v1.0/") && strings.EqualFold(r.Tenant, e.entra) {
			out = append(out, r.Path+"?"+r.RawQuery)
		}
	}
	return out
}

// TestDeltaRunReadsOnlyWhatChanged: after a full run whose plan was
// applied, a delta run reads one users and one groups delta round from
// the saved links, and publishes exactly the users and groups the
// directory changed (the simulator's churn report), with no listing; its
// RunFetched carries the rounds' new links. When Graph answers 410 Gone
// to the saved link, the run reads the whole directory instead, links
// first.
func TestDeltaRunReadsOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rec := e.recordAndApply()
	e.startFetcher("fetcher-delta", nil)
	full := e.queueRun()
	rec.waitEnd(t, full.ID)
	links := e.savedLinks(store.DeltaLinks{})

	rep := e.dir.Churn(11, 0.05)
	seen := len(e.sim.Requests())
	d := e.queueRunOf(store.KindDelta)
	evs := rec.waitEnd(t, d.ID)
	var users, groups []string
	var fetched *syncv1.RunFetched
	for _, ev := range evs {
		switch b := ev.GetBody().(type) {
		case *syncv1.SyncEvent_UsersDelta:
			for _, u := range b.UsersDelta.GetUsers() {
				users = append(users, u.GetId())
			}
			for _, rm := range b.UsersDelta.GetRemoved() {
				users = append(users, rm.GetId())
			}
		case *syncv1.SyncEvent_GroupsDelta:
			for _, g := range b.GroupsDelta.GetGroups() {
				groups = append(groups, g.GetId())
			}
			for _, rm := range b.GroupsDelta.GetRemoved() {
				groups = append(groups, rm.GetId())
			}
		case *syncv1.SyncEvent_Fetched:
			fetched = b.Fetched
		case *syncv1.SyncEvent_Started:
		default:
			t.Errorf("a delta run published %T", b)
		}
	}
	if fetched == nil {
		t.Fatalf("the delta run ended without RunFetched: %v", evs[len(evs)-1])
	}
	slices.Sort(users)
	slices.Sort(groups)
	if !slices.Equal(slices.Compact(users), rep.Users) || !slices.Equal(slices.Compact(groups), rep.Groups) {
		t.Errorf("delta run published users %v and groups %v; the churn changed %v and %v (%s)",
			users, groups, rep.Users, rep.Groups, rep)
	}
	for _, req := range e.graphRequestsSince(seen) {
		if !strings.Contains(req, "/delta") || !strings.Contains(req, "deltatoken=") {
			t.Errorf("the delta run sent %s; want delta rounds from the saved links only", req)
		}
	}
	if fetched.GetUsersDeltaLink() == "" || fetched.GetUsersDeltaLink() == links.Users ||
		fetched.GetGroupsDeltaLink() == "" || fetched.GetGroupsDeltaLink() == links.Groups {
		t.Errorf("RunFetched's links %q %q, after %q %q", fetched.GetUsersDeltaLink(), fetched.GetGroupsDeltaLink(),
			links.Users, links.Groups)
	}
	links = e.savedLinks(links)

	// Graph forgets the tenant's state: the run reads everything.
	e.sim.SetFaults(e.entra, graphsim.Faults{DeltaGoneNext: 1})
	seen = len(e.sim.Requests())
	r := e.queueRunOf(store.KindDelta)
	e.checkReadWhole(rec.waitEnd(t, r.ID), seen, "after the 410")
	links = e.savedLinks(links)

	// A full run with usable links reads a delta round first, then the
	// whole directory; its RunFetched says it caught up and carries the
	// round's links (no fresh ones were taken).
	e.dir.Churn(12, 0.05)
	seen = len(e.sim.Requests())
	f := e.queueRunOf(store.KindFull)
	evs = rec.waitEnd(t, f.ID)
	fetched = evs[len(evs)-1].GetFetched()
	if fetched == nil || !fetched.GetCaughtUp() {
		t.Fatalf("the full run ended with %v; want RunFetched that caught up", evs[len(evs)-1])
	}
	checkRun(t, e, f, evs)
	reqs := e.graphRequestsSince(seen)
	rounds, listing := splitAtListing(reqs)
	if len(listing) == 0 || !slices.ContainsFunc(rounds, func(r string) bool { return strings.HasPrefix(r, "/v1.0/users/delta?") }) ||
		!slices.ContainsFunc(rounds, func(r string) bool { return strings.HasPrefix(r, "/v1.0/groups/delta?") }) {
		t.Errorf("requests of the full run before its listing: %q; want the users and groups rounds from the saved links", rounds)
	}
	for _, req := range reqs {
		if strings.Contains(req, "deltatoken=latest") {
			t.Errorf("the caught-up full run took a fresh link: %s", req)
		}
	}
	for _, req := range rounds {
		if !isRoundRequest(req) {
			t.Errorf("the full run sent %s before its listing; want only the rounds", req)
		}
	}
	if fetched.GetUsersDeltaLink() == links.Users || fetched.GetGroupsDeltaLink() == links.Groups {
		t.Errorf("the full run ended with the links it started from")
	}
}

// splitAtListing cuts a run's Graph requests where its listing of the
// directory's users begins.
func splitAtListing(reqs []string) (before, listing []string) {
	i := slices.IndexFunc(reqs, func(r string) bool { return strings.HasPrefix(r, "/v1.0/users?") })
	if i < 0 {
		return reqs, nil
	}
	return reqs[:i], reqs[i:]
}

// latestLinks reports whether the requests a and b ("path?query") take a
// users and a groups delta link at "now", in either order: a run asks
// for both at once.
func latestLinks(a, b string) bool {
	users := func(r string) bool { return strings.HasPrefix(r, "/v1.0/users/delta?") }
	groups := func(r string) bool { return strings.HasPrefix(r, "/v1.0/groups/delta?") }
	return strings.Contains(a, "deltatoken=latest") && strings.Contains(b, "deltatoken=latest") &&
		(users(a) && groups(b) || groups(a) && users(b))
}

// isRoundRequest reports whether req reads a delta round from a link
// (not a fresh link taken at "now").
func isRoundRequest(req string) bool {
	return (strings.HasPrefix(req, "/v1.0/users/delta?") || strings.HasPrefix(req, "/v1.0/groups/delta?")) &&
		!strings.Contains(req, "deltatoken=latest")
}

// deltaGate is a RoundTripper that lets a test order a delta run's two
// rounds. Once armed, it holds the first request of each round until
// what the test waits for has happened (a closed channel), or until
// patience runs out: then it lets the request go and records that the
// rounds did not overlap. It also records the users round's requests
// that ended in an error.
type deltaGate struct {
	next     http.RoundTripper
	patience time.Duration
	armed    atomic.Bool
	// holdUsers and holdGroups: the channel each round's first request
	// waits for; nil lets it go at once.
	holdUsers, holdGroups <-chan struct{}
	once                  [2]sync.Once
	// sent and answered close when each round's first request reaches
	// the gate and when its answer comes back.
	sent, answered [2]chan struct{}
	apart          atomic.Bool
	usersFailed    atomic.Int32
}

func newDeltaGate(next http.RoundTripper, patience time.Duration) *deltaGate {
	g := &deltaGate{next: next, patience: patience}
	for i := range 2 {
		g.sent[i], g.answered[i] = make(chan struct{}), make(chan struct{})
	}
	return g
}

func (g *deltaGate) RoundTrip(req *http.Request) (*http.Response, error) {
	round := -1
	switch {
	case strings.HasSuffix(req.URL.Path, "/users/delta"):
		round = 0
	case strings.HasSuffix(req.URL.Path, "/groups/delta"):
		round = 1
	}
	if !g.armed.Load() || round < 0 {
		return g.next.RoundTrip(req)
	}
	first := false
	g.once[round].Do(func() { first = true; close(g.sent[round]) })
	if hold := [2]<-chan struct{}{g.holdUsers, g.holdGroups}[round]; first && hold != nil {
		select {
		case <-hold:
		case <-time.After(g.patience):
			g.apart.Store(true)
		}
	}
	resp, err := g.next.RoundTrip(req)
	if first {
		close(g.answered[round])
	}
	if round == 0 && err != nil {
		g.usersFailed.Add(1)
	}
	return resp, err
}

// TestDeltaRoundsAreReadSideBySide: a delta run reads its users round
// and its groups round at the same time, not one after the other, and
// still publishes both rounds' changes. Each round's first request waits
// here until the other's has been sent.
// TestRefusedDeltaRoundFallsBackToAFullRead: a delta round Graph refuses
// with something other than a resync (here a 404 to the saved link)
// would be refused again on every run until the links age out. The run
// reads the whole directory instead, as after a resync, and takes fresh
// links, so the next run goes back to delta rounds.
func TestRefusedDeltaRoundFallsBackToAFullRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rec := e.recordAndApply()
	e.startFetcher("fetcher-refused", nil)
	full := e.queueRun()
	rec.waitEnd(t, full.ID)
	links := e.savedLinks(store.DeltaLinks{})

	e.dir.Churn(17, 0.05)
	e.sim.SetFaults(e.entra, graphsim.Faults{FailNext: []int{http.StatusNotFound}})
	seen := len(e.sim.Requests())
	d := e.queueRunOf(store.KindDelta)
	e.checkReadWhole(rec.waitEnd(t, d.ID), seen, "after the 404")
	e.savedLinks(links)
}

// checkReadWhole checks the events of a run whose delta round Graph
// refused (what tells when, e.g. "after the 410"), and its Graph requests
// after the first seen of the simulator's log: the refused round's
// requests, fresh users and groups links, then a listing of every user;
// a RunFetched that does not say it caught up.
func (e *env) checkReadWhole(evs []*syncv1.SyncEvent, seen int, what string) {
	t := e.t
	t.Helper()
	fetched := evs[len(evs)-1].GetFetched()
	if fetched == nil {
		t.Fatalf("%s the run ended with %v", what, evs[len(evs)-1])
	}
	listed := 0
	for _, ev := range evs {
		listed += len(ev.GetUsers().GetUsers())
	}
	if listed != len(e.dir.Users()) {
		t.Errorf("%s the run listed %d users, the directory has %d", what, listed, len(e.dir.Users()))
	}
	// The rounds are read side by side: the refused request may be
	// either round's, and the other round may have sent one too.
	rounds, listing := splitAtListing(e.graphRequestsSince(seen))
	if n := len(rounds); n < 3 || len(listing) == 0 || !isRoundRequest(rounds[0]) || !latestLinks(rounds[n-2], rounds[n-1]) {
		t.Errorf("%s the requests before the listing: %q; want the refused round, then fresh users and groups links", what, rounds)
	}
	for _, req := range rounds[:max(0, len(rounds)-2)] {
		if !isRoundRequest(req) {
			t.Errorf("%s the run sent %s before its fresh links; want only round requests", what, req)
		}
	}
	if fetched.GetCaughtUp() {
		t.Errorf("%s the run says it caught up; Graph refused its round", what)
	}
}

func TestDeltaRoundsAreReadSideBySide(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	rec := e.recordAndApply()
	gate := newDeltaGate(e.sim.HTTPClient().Transport, 10*time.Second)
	gate.holdUsers, gate.holdGroups = gate.sent[1], gate.sent[0]
	e.startFetcher("fetcher-side-by-side", func(c *Config) { c.Graph.Transport = gate })
	full := e.queueRun()
	rec.waitEnd(t, full.ID)
	e.savedLinks(store.DeltaLinks{})

	rep := e.dir.Churn(13, 0.1)
	gate.armed.Store(true)
	d := e.queueRunOf(store.KindDelta)
	evs := rec.waitEnd(t, d.ID)
	if gate.apart.Load() {
		t.Fatal("one delta round waited for the other to end; want both read side by side")
	}
	var users, groups int
	for _, ev := range evs {
		users += len(ev.GetUsersDelta().GetUsers()) + len(ev.GetUsersDelta().GetRemoved())
		groups += len(ev.GetGroupsDelta().GetGroups()) + len(ev.GetGroupsDelta().GetRemoved())
	}
	if users == 0 || groups == 0 || evs[len(evs)-1].GetFetched().GetUsersDeltaLink() == "" ||
		evs[len(evs)-1].GetFetched().GetGroupsDeltaLink() == "" {
		t.Fatalf("the delta run published %d user and %d group changes (churn: %s), ending with %v",
			users, groups, rep, evs[len(evs)-1])
	}
}

// TestResyncOfOneRoundLetsTheOtherFinish: Graph sends the groups round
// back to a resync while the users round is under way. The users round
// reads on to its end (stopped in the middle of publishing a page, it
// would leave a page number unpublished and the run waiting for it),
// then the run reads the whole directory and ends.
func TestResyncOfOneRoundLetsTheOtherFinish(t *testing.T) {
	t.Parallel()
	// Three objects to a delta page: the users round spans several.
	e := newEnvWith(t, "", graphsim.Options{DeltaPageSize: 3})
	rec := e.recordAndApply()
	gate := newDeltaGate(e.sim.HTTPClient().Transport, 10*time.Second)
	// The users round starts once the groups round got its answer, the
	// 410, so that the round that goes on is a round of several pages.
	gate.holdUsers = gate.answered[1]
	e.startFetcher("fetcher-resync", func(c *Config) { c.Graph.Transport = gate })
	full := e.queueRun()
	rec.waitEnd(t, full.ID)
	e.savedLinks(store.DeltaLinks{})

	rep := e.dir.Churn(14, 0.5)
	e.sim.SetFaults(e.entra, graphsim.Faults{DeltaGoneNext: 1})
	gate.armed.Store(true)
	seen := len(e.sim.Requests())
	d := e.queueRunOf(store.KindDelta)
	evs := rec.waitEnd(t, d.ID)
	if gate.apart.Load() {
		t.Fatal("the users round never saw the groups round answered")
	}
	if n := gate.usersFailed.Load(); n > 0 {
		t.Fatalf("%d users delta requests failed after the groups round's resync; want the round read to its end", n)
	}
	rounds, _ := splitAtListing(e.graphRequestsSince(seen))
	usersPages := 0
	for _, r := range rounds {
		if isRoundRequest(r) && strings.HasPrefix(r, "/v1.0/users/delta?") {
			usersPages++
		}
	}
	if usersPages < 2 {
		t.Fatalf("the users round read %d pages (churn: %s); want a round of several", usersPages, rep)
	}
	checkRun(t, e, d, evs)
}
