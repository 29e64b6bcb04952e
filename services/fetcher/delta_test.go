package fetcher

import (
	"slices"
	"strings"
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
	evs = rec.waitEnd(t, r.ID)
	if last := evs[len(evs)-1]; last.GetFetched() == nil {
		t.Fatalf("the resynced run ended with %v", last)
	}
	listed := 0
	for _, ev := range evs {
		listed += len(ev.GetUsers().GetUsers())
	}
	if listed != len(e.dir.Users()) {
		t.Errorf("after the 410 the run listed %d users, the directory has %d", listed, len(e.dir.Users()))
	}
	reqs := e.graphRequestsSince(seen)
	if len(reqs) < 4 || !strings.Contains(reqs[0], "/users/delta") || !strings.Contains(reqs[1], "deltatoken=latest") ||
		!strings.Contains(reqs[2], "deltatoken=latest") || !strings.HasPrefix(reqs[3], "/v1.0/users?") {
		t.Errorf("requests of the resynced run start %q; want the refused round, two fresh links, then the listing", reqs[:min(4, len(reqs))])
	}
	if evs[len(evs)-1].GetFetched().GetCaughtUp() {
		t.Error("the resynced run says it caught up; Graph refused its round")
	}
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
	reqs = e.graphRequestsSince(seen)
	if len(reqs) < 3 || !strings.Contains(reqs[0], "/users/delta") || !strings.Contains(reqs[1], "/groups/delta") ||
		!strings.HasPrefix(reqs[2], "/v1.0/users?") {
		t.Errorf("requests of the full run start %q; want the users and groups rounds from the saved links, then the listing", reqs[:min(3, len(reqs))])
	}
	for _, req := range reqs {
		if strings.Contains(req, "deltatoken=latest") {
			t.Errorf("the caught-up full run took a fresh link: %s", req)
		}
	}
	if fetched.GetUsersDeltaLink() == links.Users || fetched.GetGroupsDeltaLink() == links.Groups {
		t.Errorf("the full run ended with the links it started from")
	}
}
