package fetcher

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/entrasync/entrasync/libs/budget"
	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/graph"
	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

// errLeaseLost ends a run whose tenant lease could not be renewed: another
// replica may be running the tenant now, so this one must stop.
var errLeaseLost = errors.New("fetcher: tenant lease lost")

// errTooManyPages ends a run whose attempt needs more data pages than the
// page numbers it owns (syncv1.AttemptPageSpan): no retry would fit.
var errTooManyPages = fmt.Errorf("fetcher: the directory takes more than %d pages", syncv1.AttemptPageSpan)

// runFailure ends a run at once with a message for the tenant's admin:
// no retry can help until someone changes the tenant (connects it again,
// fixes its user filter).
type runFailure struct {
	msg string // what RunFailed says
	err error  // the cause, for the logs
}

func (e *runFailure) Error() string { return e.msg + " (" + e.err.Error() + ")" }

func (e *runFailure) Unwrap() error { return e.err }

// msgDisconnected is RunFailed's message for a tenant an admin
// disconnected while its run waited.
const msgDisconnected = "the tenant is disconnected; connect it again to sync"

// handle runs one job. Its return value tells the bus what to do with the
// job: nil acknowledges it (done, failed for good, or obsolete), a
// bus.Retry brings it back later, any other error redelivers it.
//
// Waiting for the tenant's lease, and handing the job back on shutdown,
// are Retries: they never use up the job. Every other failure that may pass
// redelivers the job until its last allowed delivery; on that one the run
// is ended with RunFailed rather than left running behind a dead letter.
func (f *Fetcher) handle(ctx context.Context, job *syncv1.SyncJob) error {
	tenant, runID, seq := job.GetTenantId(), job.GetRunId(), job.GetRunSeq()
	log := f.log.With().Str("tenant", tenant).Str("run", runID).Logger()
	delivery, _ := bus.DeliveryFromContext(ctx)

	// failed sorts a failure that may pass: on shutdown the job goes back
	// at once (as a Retry, so that even a last delivery is requeued); on
	// the last allowed delivery the run fails with the reason; otherwise
	// the job comes back after the bus's backoff.
	failed := func(err error, stats *syncv1.GraphStats) error {
		switch {
		case ctx.Err() != nil:
			log.Info().Err(err).Msg("interrupted by shutdown; job handed back")
			return bus.Retry(fmt.Errorf("fetcher: run %s interrupted: %w", runID, err), 0)
		case delivery.Last():
			log.Error().Err(err).Uint64("delivery", delivery.Num).Msg("the job's last allowed delivery failed; failing the run")
			msg := fmt.Sprintf("gave up after %d deliveries of the run's job; the last one failed: %v", delivery.Num, err)
			return f.publishFailed(ctx, tenant, runID, seq, msg, stats, log)
		default:
			log.Warn().Err(err).Uint64("delivery", delivery.Num).Msg("job failed for now; it will be retried")
			return err
		}
	}

	// storeFailed sorts a failure of the store: a database that is down
	// or restarting is retried by the bus in this process without
	// spending a delivery, so an outage longer than the delivery budget
	// delays the run instead of failing it. Graph's failures are not
	// sorted here: they go through failed.
	storeFailed := func(err error) error {
		if ctx.Err() == nil && store.IsRetryable(err) {
			log.Warn().Err(err).Msg("database unavailable; the job is retried without spending a delivery")
			return bus.Transient(err)
		}
		return failed(err, nil)
	}

	run, err := f.store.GetRun(ctx, tenant, runID)
	if errors.Is(err, store.ErrNotFound) {
		return bus.Permanent(fmt.Errorf("fetcher: run %s of tenant %s does not exist", runID, tenant))
	}
	if err != nil {
		return storeFailed(fmt.Errorf("fetcher: load run %s of tenant %s: %w", runID, tenant, err))
	}
	seq = run.Seq
	if run.Status != store.StatusQueued && run.Status != store.StatusRunning {
		// The reconciler already has the run's last event.
		log.Info().Str("status", run.Status).Msg("run is past fetching; job dropped")
		return nil
	}

	// The store's lease is re-entrant for its holder, this replica: a
	// second job of the same tenant here must wait like anywhere else.
	if !f.claim(tenant) {
		delay := f.leaseWait()
		log.Info().Dur("retry_in", delay).Msg("tenant is being fetched by this replica; job comes back later")
		return bus.Retry(fmt.Errorf("fetcher: tenant %s is being fetched by another run", tenant), delay)
	}
	defer f.unclaim(tenant)

	leased := f.cfg.Clock() // the lease runs its TTL from no earlier than this
	ok, err := f.store.AcquireLease(ctx, tenant, f.cfg.ID, f.cfg.LeaseTTL)
	if err != nil {
		return storeFailed(fmt.Errorf("fetcher: acquire lease of tenant %s: %w", tenant, err))
	}
	if !ok {
		delay := f.leaseWait()
		log.Info().Dur("retry_in", delay).Msg("tenant is leased by another run; job comes back later")
		return bus.Retry(fmt.Errorf("fetcher: tenant %s is leased by another run", tenant), delay)
	}
	rctx, stopRenewing := f.keepLease(ctx, tenant, leased, log)
	defer func() {
		stopRenewing()
		// Let the next run of this tenant start now rather than after
		// the TTL, also when this one is being handed back on shutdown.
		rel, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := f.store.ReleaseLease(rel, tenant, f.cfg.ID); err != nil {
			log.Warn().Err(err).Msg("release tenant lease; it expires on its own")
		}
	}()

	// Count the attempt before publishing anything: its number decides
	// the page numbers, so an earlier attempt's pages, already out, can
	// never pass for this one's.
	attempt, err := f.store.BeginFetch(rctx, tenant, runID)
	switch {
	case errors.Is(err, store.ErrPastFetching):
		log.Info().Err(err).Msg("run is past fetching; job dropped")
		return nil
	case errors.Is(err, store.ErrNotFound):
		return bus.Permanent(fmt.Errorf("fetcher: run %s of tenant %s does not exist", runID, tenant))
	case err != nil:
		return storeFailed(fmt.Errorf("fetcher: begin fetching run %s: %w", runID, err))
	}
	log = log.With().Int("attempt", attempt).Logger()
	first, ok := syncv1.AttemptFirstPage(attempt)
	if !ok {
		msg := fmt.Sprintf("the run's job was fetched %d times without finishing; giving up", attempt-1)
		log.Error().Msg(msg)
		return f.publishFailed(ctx, tenant, runID, seq, msg, nil, log)
	}

	window, err := f.bus.EventWindow(tenant, f.cfg.EventsInFlight)
	if err != nil {
		return bus.Permanent(fmt.Errorf("fetcher: run %s: %w", runID, err))
	}
	r := &runner{f: f, tenant: tenant, runID: runID, seq: seq, kind: run.Kind, strategy: run.ReadStrategy, attempt: attempt, first: first, log: log, window: window,
		listSlots: make(chan struct{}, f.cfg.GroupConcurrency)}
	r.next.Store(first)
	err = r.run(rctx)
	var rf *runFailure
	switch {
	case err == nil:
		return nil
	case errors.Is(context.Cause(rctx), errLeaseLost) && ctx.Err() == nil:
		err = fmt.Errorf("fetcher: run %s: %w", runID, errLeaseLost)
		if delivery.Last() {
			return failed(err, r.stats())
		}
		log.Warn().Err(err).Msg("tenant lease lost mid-run; job comes back later")
		return bus.Retry(err, f.leaseWait())
	case ctx.Err() == nil && errors.Is(err, graph.ErrWaitTooLong):
		// Graph asked for a longer pause than a run holds its lease for:
		// the job comes back when Graph said, and the lease is free
		// meanwhile. Waiting is not failing: it costs no delivery.
		wait := f.leaseWait()
		var ge *graph.Error
		if errors.As(err, &ge) && ge.RetryAfter > wait {
			wait = ge.RetryAfter
		}
		log.Warn().Err(err).Dur("wait", wait).Msg("Graph asked to wait; job comes back then")
		return bus.Retry(fmt.Errorf("fetcher: run %s: %w", runID, err), wait)
	case ctx.Err() == nil && errors.As(err, &rf):
		log.Warn().Err(err).Msg("run failed")
		return f.publishFailed(ctx, tenant, runID, seq, rf.msg, r.stats(), log)
	case ctx.Err() == nil && (graph.IsPermanent(err) || errors.Is(err, errTooManyPages)):
		log.Warn().Err(err).Msg("run failed")
		return f.publishFailed(ctx, tenant, runID, seq, err.Error(), r.stats(), log)
	default:
		return failed(fmt.Errorf("fetcher: run %s: %w", runID, err), r.stats())
	}
}

// publishFailed ends a run with RunFailed and msg. It returns nil once the
// event is stored, so the job is acknowledged.
func (f *Fetcher) publishFailed(ctx context.Context, tenant, runID string, seq int64, msg string,
	stats *syncv1.GraphStats, log zerolog.Logger,
) error {
	ev := &syncv1.SyncEvent{
		TenantId: tenant, RunId: runID, RunSeq: seq, Page: -1, ObservedAt: timestamppb.New(f.cfg.Clock()),
		Body: &syncv1.SyncEvent_Failed{Failed: &syncv1.RunFailed{Error: msg, Stats: stats}},
	}
	if err := f.bus.PublishEvent(ctx, ev); err != nil {
		log.Error().Err(err).Str("reason", msg).Msg("could not publish RunFailed")
		return fmt.Errorf("fetcher: publish failed event of run %s: %w", runID, err)
	}
	log.Info().Str("reason", msg).Msg("RunFailed published")
	return nil
}

// claim marks a tenant as being fetched by this replica; false if it is
// already.
func (f *Fetcher) claim(tenant string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.busy[tenant] {
		return false
	}
	f.busy[tenant] = true
	return true
}

func (f *Fetcher) unclaim(tenant string) {
	f.mu.Lock()
	delete(f.busy, tenant)
	f.mu.Unlock()
}

// keepLease renews the tenant's lease, taken at leased, every third of
// its TTL until the returned stop is called. If the lease is lost, or
// cannot be renewed before it could expire, the returned context is
// cancelled with errLeaseLost.
//
// A lease runs its TTL from when the database wrote it, which is no
// earlier than when its request was sent: the run counts from the
// sending. A renewal that has not answered when the lease has a third of
// its TTL left (a hung or slow connection) is given up, and the run
// stops: past that, another replica may take the tenant over.
func (f *Fetcher) keepLease(ctx context.Context, tenant string, leased time.Time, log zerolog.Logger) (context.Context, func()) {
	rctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	ttl := f.cfg.LeaseTTL
	go func() {
		defer close(done)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		renewed := leased
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			sent := f.cfg.Clock()
			cctx, stop := context.WithTimeout(rctx, renewed.Add(ttl-ttl/3).Sub(sent))
			ok, err := f.store.RenewLease(cctx, tenant, f.cfg.ID, ttl)
			stop()
			switch {
			case err == nil && ok:
				renewed = sent
			case err == nil:
				log.Warn().Msg("tenant lease taken over; stopping the run")
				cancel(errLeaseLost)
				return
			case rctx.Err() != nil:
				return
			default:
				log.Warn().Err(err).Msg("renew tenant lease")
				// Stop before the lease can expire under us: past that,
				// another replica may already be running the tenant.
				if f.cfg.Clock().Sub(renewed) >= ttl-ttl/3 {
					cancel(errLeaseLost)
					return
				}
			}
		}
	}()
	return rctx, func() {
		cancel(nil)
		<-done
	}
}

// runner reads one run's directory and publishes it.
type runner struct {
	f      *Fetcher
	tenant string
	runID  string
	seq    int64
	kind   string // store.KindFull or store.KindDelta
	// strategy is how a full run reads the directory: store.ReadFull or
	// store.ReadTransitive.
	strategy string
	log      zerolog.Logger
	client   *graph.Client
	// attempt is this fetch attempt of the run, from 1; its data pages
	// are numbered from first (see syncv1.AttemptPageSpan).
	attempt int
	first   int32
	next    atomic.Int32 // the next data page number to hand out
	// window holds the run's events back while the tenant has
	// Config.EventsInFlight of them in SYNC_EVENTS.
	window *bus.EventWindow
	// listSlots holds one token per member (or scope) list page being
	// published: GroupConcurrency at once (eachPart).
	listSlots chan struct{}
	// budgetKey names the tenant's Graph budget, nil when the run goes
	// unbudgeted; sizedFor is the user count it is sized for.
	budgetKey *budget.Key
	sizedFor  int
}

// run publishes RunStarted, every data page and RunFetched. Errors are
// returned for handle to sort.
func (r *runner) run(ctx context.Context) error {
	started := r.event(-1)
	started.Body = &syncv1.SyncEvent_Started{Started: &syncv1.RunStarted{Fetcher: r.f.cfg.ID, Attempt: int32(r.attempt)}}
	if err := r.send(ctx, started); err != nil {
		return err
	}
	creds, err := r.f.store.TenantCredentials(ctx, r.tenant)
	if errors.Is(err, store.ErrDisconnected) {
		// An admin disconnected the tenant after the job was queued: its
		// secret is gone, and no redelivery brings it back.
		return &runFailure{msg: msgDisconnected, err: err}
	}
	if err != nil {
		return fmt.Errorf("fetcher: credentials of tenant %s: %w", r.tenant, err)
	}
	// The settings are read once, at the start: a change made during the
	// run applies to the next one, never to half of this one's pages.
	settings, err := r.f.store.TenantSettings(ctx, r.tenant)
	if err != nil {
		return fmt.Errorf("fetcher: settings of tenant %s: %w", r.tenant, err)
	}
	filter := settings.Scope.UserFilter
	gcfg := r.f.cfg.Graph
	gcfg.Logger = r.log // retries are logged with the tenant and run
	if r.f.budget != nil {
		if gcfg.Transport, err = r.budgeted(ctx, gcfg, creds); err != nil {
			return err
		}
	}
	r.client, err = graph.New(gcfg, graph.Credentials{
		TenantID: creds.EntraTenantID, ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
	})
	if err != nil {
		// The stored credentials are unusable as they are: nothing a retry
		// would change.
		return fmt.Errorf("%w: %v", graph.ErrAuth, err)
	}
	r.log.Info().Str("kind", r.kind).Str("read_strategy", r.strategy).Str("user_filter", filter).Msg("run started")

	if r.kind == store.KindFull && r.strategy == store.ReadTransitive {
		// The run was created to read the scope groups' transitive
		// members; settings changed since (groups imported, a filter,
		// no scope any more) make it read the whole directory instead.
		// The store judges the run by the pages it gets.
		if why := plan.TransitiveRefused(settings); why != "" {
			r.log.Info().Str("why", why).Msg("the settings changed since the run was created; reading the whole directory")
		} else {
			// No delta links: the tenant's runs are full while it is
			// read this way, and the links it has stay those of its
			// last whole read, from which a delta round may start again.
			if err := r.readScope(ctx, settings.Scope.Groups); err != nil {
				return err
			}
			return r.fetched(ctx, [2]string{}, false, false)
		}
	}

	// Both kinds begin with a delta round from the tenant's saved links
	// when there are usable ones. A delta run is that round. A full run
	// then lists the whole directory, and whatever the listing finds
	// different beyond the round is drift, which the run reports
	// (plan.Drift); without a round it reports none.
	var links [2]string
	caughtUp, err := r.deltaRounds(ctx, filter, &links)
	if err != nil {
		return err
	}
	if r.kind == store.KindDelta && caughtUp {
		return r.fetched(ctx, links, false, false)
	}
	// A listing through a users filter takes no links: the mirror it
	// leaves lacks the users the filter hid, which no delta round would
	// bring back once the filter goes (see RunFetched.users_filtered).
	if !caughtUp && filter == "" {
		if links, err = r.latestLinks(ctx); err != nil {
			return err
		}
	}
	if err := r.enumerate(ctx, filter); err != nil {
		return err
	}
	return r.fetched(ctx, links, caughtUp, filter != "")
}

// latestLinks takes delta links at "now", before a listing of the whole
// directory: a change made while it runs shows in the next delta round
// rather than being lost between the two (delta-query-overview.md). They
// travel on RunFetched and are kept only once the run's plan is applied.
// A round read first ends with links of that moment, which serve the same.
// The two links are asked for side by side.
func (r *runner) latestLinks(ctx context.Context) ([2]string, error) {
	var links [2]string
	g, gctx := errgroup.WithContext(ctx)
	for i, res := range [2]graph.DeltaResource{graph.DeltaUsers, graph.DeltaGroups} {
		g.Go(func() error {
			var err error
			links[i], err = r.client.LatestDeltaLink(gctx, res)
			return err
		})
	}
	return links, g.Wait()
}

// enumerate publishes every user, group and group's direct member list.
//
// The users listing and the groups listing (then the member lists) are
// read side by side. Each listing is a chain of pages, one nextLink
// leading to the next, so read one after the other a run waited for
// both chains; side by side it takes the longer of the two. The member
// lists, many at once, keep the reconcilers busy while the users chain
// waits on Graph. Pages may be applied in any order (the events
// contract), and both listings share the run's window of events in
// flight, so a tenant gets no more room on the bus for reading faster.
//
// The groups start once the users listing's first page is published: a
// user filter Graph refuses fails the run before any page is out, and a
// run's listing begins with its users, as when the listings ran one
// after the other.
func (r *runner) enumerate(ctx context.Context, filter string) error {
	g, gctx := errgroup.WithContext(ctx)
	usersAccepted := make(chan struct{})
	g.Go(func() error { return r.listUsers(gctx, filter, usersAccepted) })
	g.Go(func() error {
		select {
		case <-usersAccepted:
		case <-gctx.Done():
			return gctx.Err()
		}
		return r.listGroups(gctx)
	})
	return g.Wait()
}

// listUsers publishes every user that matches filter. It closes accepted
// once the listing's first page is published.
func (r *runner) listUsers(ctx context.Context, filter string, accepted chan<- struct{}) error {
	first, listed := true, 0
	for users, err := range r.client.Users(ctx, filter) {
		if errors.Is(err, graph.ErrFilterRefused) {
			// The run fails before any page is out: a listing cut
			// short must not read as a tenant without those users.
			return &runFailure{msg: refusedFilterMessage(filter, err), err: err}
		}
		if err != nil {
			return err
		}
		listed += len(users)
		r.growBudget(ctx, listed)
		_, err = sendFitting(ctx, r, users, func(ev *syncv1.SyncEvent, us []graph.User, _ int32, _ bool) {
			ev.Body = &syncv1.SyncEvent_Users{Users: &syncv1.UsersPage{Users: usersOf(us)}}
		})
		if err != nil {
			return err
		}
		if first {
			close(accepted)
			first = false
		}
	}
	if first { // a listing of no page at all: nothing to wait for
		close(accepted)
	}
	return nil
}

// listGroups publishes every group, then every group's direct member
// list.
func (r *runner) listGroups(ctx context.Context) error {
	// Group ids are all the run keeps beyond the pages in flight: the
	// member lists are read after the group listing, in the contract's
	// order, and a paused listing's nextLink could go stale meanwhile.
	var groupIDs []string
	for groups, err := range r.client.Groups(ctx) {
		if err != nil {
			return err
		}
		for _, g := range groups {
			groupIDs = append(groupIDs, g.ID)
		}
		_, err = sendFitting(ctx, r, groups, func(ev *syncv1.SyncEvent, gs []graph.Group, _ int32, _ bool) {
			ev.Body = &syncv1.SyncEvent_Groups{Groups: &syncv1.GroupsPage{Groups: groupsOf(gs)}}
		})
		if err != nil {
			return err
		}
	}
	return r.memberBatches(ctx, groupIDs)
}

// fetched publishes RunFetched with the delta links the run ends with,
// whether a full listing followed a delta round (caughtUp) and whether
// its users were listed through a filter (usersFiltered).
func (r *runner) fetched(ctx context.Context, links [2]string, caughtUp, usersFiltered bool) error {
	stats := r.stats()
	fetched := r.event(-1)
	pages := r.next.Load() - r.first
	fetched.Body = &syncv1.SyncEvent_Fetched{Fetched: &syncv1.RunFetched{FirstPage: r.first, Pages: pages, Stats: stats,
		UsersDeltaLink: links[0], GroupsDeltaLink: links[1], CaughtUp: caughtUp, UsersFiltered: usersFiltered}}
	if err := r.send(ctx, fetched); err != nil {
		return err
	}
	r.log.Info().Int32("first_page", r.first).Int32("pages", pages).Int64("requests", stats.GetRequests()).
		Int64("throttled", stats.GetThrottled()).Int64("retries", stats.GetRetries()).Msg("run fetched")
	return nil
}

// budgeted returns gcfg's transport wrapped so that each request of this
// run to Graph pays its resource units into the budget every replica
// shares, under the tenant's app registration and Entra tenant (Graph
// meters them so), before it is sent. It sits below libs/graph's retrier,
// so every attempt pays, as at Graph. Requests to the token authority,
// which Graph's identity budget does not meter, pass unbudgeted, also
// when it shares Graph's host (the simulator): only paths under the base
// URL's pay.
//
// The tenant's bucket is sized by the users its mirror holds now, as of
// the last run applied: Graph gives an app more units per 10 s in a larger
// tenant, and a first run starts in the smallest tier, safe for any. The
// users listing grows it as it goes (growBudget).
func (r *runner) budgeted(ctx context.Context, gcfg graph.Config, creds store.Credentials) (http.RoundTripper, error) {
	key := budget.Key{App: creds.ClientID, Tenant: creds.EntraTenantID}
	users, err := r.f.store.MirrorUserCount(ctx, r.tenant, budget.LargeTenant)
	if err != nil {
		return nil, fmt.Errorf("fetcher: users of tenant %s, to size its Graph budget: %w", r.tenant, err)
	}
	err = r.f.budget.SetTenantSize(ctx, key, users)
	switch {
	case errors.Is(err, budget.ErrInvalidKey):
		// Ids the api would have refused (it takes GUIDs only): Graph
		// will answer for them; the budget cannot name them.
		r.log.Warn().Err(err).Msg("the tenant's ids cannot name a Graph budget; this run goes unbudgeted")
		return gcfg.Transport, nil
	case err != nil:
		return nil, fmt.Errorf("fetcher: size the Graph budget of tenant %s: %w", r.tenant, err)
	}
	base, err := url.Parse(gcfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("fetcher: Graph base URL: %w", err)
	}
	prefix := strings.TrimRight(base.Path, "/") + "/"
	onHost := budget.ForHost(base.Host, key)
	r.budgetKey, r.sizedFor = &key, users
	r.log.Debug().Int("users", users).Str("graph_host", base.Host).Msg("Graph budget sized")
	return &budget.Transport{
		Base:   gcfg.Transport,
		Budget: r.f.budget,
		KeyFor: func(req *http.Request) (budget.Key, bool) {
			k, ok := onHost(req)
			return k, ok && strings.HasPrefix(req.URL.Path, prefix)
		},
		Log: r.log,
	}, nil
}

// growBudget sizes the tenant's Graph budget for listed users when the
// users listing has shown the tenant to be in a larger tier than its
// budget is sized for: a tenant listing more than 500 users is a large
// tenant for Graph whatever the mirror holds. A first run of a large
// tenant starts in the smallest tier (its mirror is empty) and would
// otherwise read its whole directory at less than half the pace Graph
// allows. The budget never shrinks during a run; a failure to resize
// leaves the smaller, safe, budget and is only logged.
func (r *runner) growBudget(ctx context.Context, listed int) {
	b := r.f.budget
	if r.budgetKey == nil || listed <= r.sizedFor || b.Quota(listed) <= b.Quota(r.sizedFor) {
		return
	}
	if err := b.SetTenantSize(ctx, *r.budgetKey, listed); err != nil {
		r.log.Warn().Err(err).Int("users_listed", listed).Msg("the tenant's Graph budget could not grow with its listing")
		return
	}
	r.log.Info().Int("users_listed", listed).Int("sized_for", r.sizedFor).Int("quota", b.Quota(listed)).
		Msg("the users listing shows a larger tenant: its Graph budget grows")
	r.sizedFor = listed
}

// refusedFilterMessage tells the tenant's admin which setting Graph
// refused, in Graph's own words.
func refusedFilterMessage(filter string, err error) string {
	var ge *graph.Error
	if !errors.As(err, &ge) {
		return fmt.Sprintf("Graph refused the tenant's user filter (scope.userFilter %q): %v", filter, err)
	}
	return fmt.Sprintf("Graph refused the tenant's user filter (scope.userFilter %q): %s: %s", filter, ge.Code, ge.Message)
}

// memberLists publishes a group's direct members, read as list gives
// them. A list Graph refuses to show (403) is one group's problem, not the
// run's: the group is published as unreadable and the run goes on. Many
// groups' lists are published at once (memberBatches).
func (r *runner) memberLists(ctx context.Context, gid string, list iter.Seq2[[]graph.Member, error]) error {
	// Direct members only: nested memberships, and Entra's member counts,
	// follow from the direct edges in the store, cycle-safe. Reading
	// transitiveMembers too would cost 5 resource units a page on top of
	// members' 3, for what the edges already say.
	err := eachPart(ctx, r, gid, list, func(ev *syncv1.SyncEvent, ms []graph.Member, part int32, last bool) {
		ev.Body = &syncv1.SyncEvent_Members{Members: &syncv1.MembersPage{
			GroupId: gid, Members: membersOf(ms), Part: part, Last: last,
		}}
	})
	var ge *graph.Error
	if err == nil || !errors.As(err, &ge) || ge.Status != http.StatusForbidden {
		return err
	}
	r.log.Warn().Str("group", gid).Str("code", ge.Code).Str("graph_message", ge.Message).
		Msg("Graph refused the group's member list; the run goes on without it")
	ev, err := r.dataEvent()
	if err != nil {
		return err
	}
	ev.Body = &syncv1.SyncEvent_Unreadable{Unreadable: &syncv1.GroupUnreadable{
		GroupId: gid, Status: int32(ge.Status), Code: ge.Code, Message: ge.Message,
	}}
	return r.send(ctx, ev)
}

// eachPart publishes a group's member list page by page. Each page is held
// back until the next one has arrived, so the final page can say it is the
// last; a group with no members still gets one, empty, last page. A group
// deleted since the group listing reads as empty: the next run sees it gone.
//
// Many lists are read at once, each published by a goroutine of its own,
// but only GroupConcurrency of their pages wait for room in the tenant's
// window at once: the users listing, one chain of pages that sets the
// pace of a run, publishes beside a few lists, not behind a hundred.
func eachPart[T any](ctx context.Context, r *runner, gid string, seq iter.Seq2[[]T, error],
	fill func(ev *syncv1.SyncEvent, items []T, part int32, last bool),
) error {
	var held []T
	part := int32(0)
	have := false
	emit := func(last bool) error {
		select {
		case r.listSlots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-r.listSlots }()
		n, err := sendFitting(ctx, r, held, func(ev *syncv1.SyncEvent, items []T, chunk int32, lastChunk bool) {
			fill(ev, items, part+chunk, last && lastChunk)
		})
		part += n
		return err
	}
	for items, err := range seq {
		if err != nil {
			if !isNotFound(err) {
				return err
			}
			r.log.Info().Str("group", gid).Msg("group vanished during the run; its list ends here")
			break
		}
		if have {
			if err := emit(false); err != nil {
				return err
			}
		}
		held, have = items, true
	}
	return emit(true)
}

// sendFitting publishes one Graph page's items as one data page or, when
// its event would be larger than the bus takes (Config.MaxEventBytes: a
// page of groups with long membership rules can pass NATS's 1 MiB), as
// the fewest consecutive pages that fit, halving until each does. fill
// sets a page's body; lastChunk tells it whether the page is the Graph
// page's last, chunk its place among the pages it became. Page numbers
// are handed out only once the split is known,
// so the run's pages stay numbered without gaps. An item too large to
// travel alone fails the run: no split can carry it.
func sendFitting[T any](ctx context.Context, r *runner, items []T,
	fill func(ev *syncv1.SyncEvent, items []T, chunk int32, lastChunk bool),
) (int32, error) {
	limit := r.f.cfg.MaxEventBytes
	// The size of the fullest event c can become: page and part numbers
	// and the time are not known yet, and take more bytes the larger they
	// are (a page 0 is not even encoded). 1<<28 takes a varint's five
	// bytes, as much as any int32 this side of overflow.
	const widest = 1 << 28
	size := func(c []T) int {
		ev := r.event(widest)
		ev.ObservedAt.Nanos = 999_999_999
		fill(ev, c, widest, true)
		return proto.Size(ev)
	}
	var chunks [][]T
	var split func(c []T) error
	split = func(c []T) error {
		if size(c) <= limit {
			chunks = append(chunks, c)
			return nil
		}
		if len(c) <= 1 {
			return &runFailure{msg: fmt.Sprintf("one object Graph returned is larger than the %d bytes an event may hold", limit),
				err: errTooLargeObject}
		}
		h := len(c) / 2
		if err := split(c[:h]); err != nil {
			return err
		}
		return split(c[h:])
	}
	if err := split(items); err != nil {
		return 0, err
	}
	for i, c := range chunks {
		ev, err := r.dataEvent()
		if err != nil {
			return int32(i), err
		}
		fill(ev, c, int32(i), i == len(chunks)-1)
		if err := r.send(ctx, ev); err != nil {
			return int32(i), err
		}
	}
	return int32(len(chunks)), nil
}

// errTooLargeObject is the cause of a run failed by an object no event
// can carry.
var errTooLargeObject = errors.New("fetcher: object larger than an event")

// event starts an event of this run; the caller sets its body.
func (r *runner) event(page int32) *syncv1.SyncEvent {
	return &syncv1.SyncEvent{
		TenantId:   r.tenant,
		RunId:      r.runID,
		RunSeq:     r.seq,
		Page:       page,
		ObservedAt: timestamppb.New(r.f.cfg.Clock()),
	}
}

// dataEvent starts the run's next data page, numbered after every page
// handed out before it; one past the attempt's page numbers is
// errTooManyPages. A page that is numbered and then not published fails
// the attempt (its error ends the run), so RunFetched never names a gap.
func (r *runner) dataEvent() (*syncv1.SyncEvent, error) {
	page := r.next.Add(1) - 1
	if page-r.first >= syncv1.AttemptPageSpan {
		return nil, errTooManyPages
	}
	return r.event(page), nil
}

// send publishes one event, once the tenant's window has room for it.
func (r *runner) send(ctx context.Context, ev *syncv1.SyncEvent) error {
	kind, items := describe(ev)
	waited, err := r.window.PublishEvent(ctx, ev)
	if waited > 0 {
		if r.f.cfg.Observer != nil {
			r.f.cfg.Observer.EventsWindowWait(waited)
		}
		r.log.Debug().Dur("waited", waited).Int32("page", ev.GetPage()).Msg("waited for the reconcilers to catch up")
	}
	if err != nil {
		return fmt.Errorf("fetcher: publish %s event of run %s: %w", kind, r.runID, err)
	}
	r.log.Debug().Int32("page", ev.GetPage()).Str("kind", kind).Int("items", items).Msg("event published")
	return nil
}

// describe names an event's body for the logs.
func describe(ev *syncv1.SyncEvent) (kind string, items int) {
	switch b := ev.GetBody().(type) {
	case *syncv1.SyncEvent_Started:
		return "started", 0
	case *syncv1.SyncEvent_Users:
		return "users", len(b.Users.GetUsers())
	case *syncv1.SyncEvent_Groups:
		return "groups", len(b.Groups.GetGroups())
	case *syncv1.SyncEvent_Members:
		return "members", len(b.Members.GetMembers())
	case *syncv1.SyncEvent_TransitiveMembers:
		return "transitive_members", len(b.TransitiveMembers.GetUserIds())
	case *syncv1.SyncEvent_Fetched:
		return "fetched", 0
	case *syncv1.SyncEvent_Failed:
		return "failed", 0
	case *syncv1.SyncEvent_Unreadable:
		return "unreadable", 0
	case *syncv1.SyncEvent_UsersDelta:
		return "users_delta", len(b.UsersDelta.GetUsers()) + len(b.UsersDelta.GetRemoved())
	case *syncv1.SyncEvent_GroupsDelta:
		return "groups_delta", len(b.GroupsDelta.GetGroups()) + len(b.GroupsDelta.GetRemoved())
	}
	return fmt.Sprintf("%T", ev.GetBody()), 0
}

func (r *runner) stats() *syncv1.GraphStats {
	if r.client == nil {
		return &syncv1.GraphStats{}
	}
	s := r.client.Stats()
	return &syncv1.GraphStats{Requests: s.Requests, Throttled: s.Throttled, Retries: s.Retries}
}

func isNotFound(err error) bool {
	var ge *graph.Error
	return errors.As(err, &ge) && ge.Status == http.StatusNotFound
}

// leaseWait is how long a job that found its tenant leased waits before
// it comes back: an eighth of the lease TTL, between 1 s and 15 s, spread
// by ±20% so jobs waiting for the same lease do not all come back at the
// same moment.
func (f *Fetcher) leaseWait() time.Duration {
	d := min(max(f.cfg.LeaseTTL/8, time.Second), 15*time.Second)
	return time.Duration(float64(d) * (0.8 + 0.4*f.cfg.Rand()))
}

func usersOf(us []graph.User) []*syncv1.User {
	out := make([]*syncv1.User, len(us))
	for i, u := range us {
		out[i] = &syncv1.User{
			Id:                u.ID,
			DisplayName:       u.DisplayName,
			Mail:              u.Mail,
			UserPrincipalName: u.UserPrincipalName,
			GivenName:         u.GivenName,
			Surname:           u.Surname,
			JobTitle:          u.JobTitle,
			Department:        u.Department,
			UserType:          u.UserType,
			AccountEnabled:    u.AccountEnabled,
		}
	}
	return out
}

func groupsOf(gs []graph.Group) []*syncv1.Group {
	out := make([]*syncv1.Group, len(gs))
	for i, g := range gs {
		out[i] = &syncv1.Group{
			Id:              g.ID,
			DisplayName:     g.DisplayName,
			Description:     g.Description,
			Mail:            g.Mail,
			GroupTypes:      g.GroupTypes,
			SecurityEnabled: g.SecurityEnabled,
			MailEnabled:     g.MailEnabled,
			MembershipRule:  g.MembershipRule,
		}
		if g.RenewedDateTime != nil {
			out[i].RenewedDateTime = timestamppb.New(*g.RenewedDateTime)
		}
	}
	return out
}

func membersOf(ms []graph.Member) []*syncv1.Member {
	out := make([]*syncv1.Member, len(ms))
	for i, m := range ms {
		out[i] = &syncv1.Member{Id: m.ID, Type: memberType(m.Type), DisplayName: m.DisplayName}
	}
	return out
}

func memberType(t graph.MemberType) syncv1.MemberType {
	switch t {
	case graph.MemberUser:
		return syncv1.MemberType_MEMBER_TYPE_USER
	case graph.MemberGroup:
		return syncv1.MemberType_MEMBER_TYPE_GROUP
	case graph.MemberDevice:
		return syncv1.MemberType_MEMBER_TYPE_DEVICE
	case graph.MemberOrgContact:
		return syncv1.MemberType_MEMBER_TYPE_ORG_CONTACT
	case graph.MemberServicePrincipal:
		return syncv1.MemberType_MEMBER_TYPE_SERVICE_PRINCIPAL
	}
	return syncv1.MemberType_MEMBER_TYPE_OTHER
}
