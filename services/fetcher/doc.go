// Package fetcher is entrasync's fetcher service: it takes sync jobs from
// the SYNC_JOBS stream, reads the tenant's directory from Microsoft Graph
// through libs/graph, and publishes what it read as events on SYNC_EVENTS,
// one event per Graph page.
//
// A run's events are RunStarted, then the data pages (users, groups, then
// each group's direct members: nested memberships and member counts are
// computed from those edges by the store; every page of the lists, first
// or later, is read twenty to a Graph $batch), then
// RunFetched{first_page: F, pages: N} or, when the run cannot succeed,
// RunFailed. A full run first takes Graph's users and groups delta links
// at "now" ($deltatoken=latest) and sends them on RunFetched, so that a
// later delta round starts from before the enumeration and loses no
// change made during it. A delta run (store.KindDelta) instead reads one
// users and one groups delta round from the links the tenant's last
// applied run saved, and publishes UsersDelta and GroupsDelta pages with
// the rounds' new links; it reads the whole directory when there are no
// links, they are older than plan.MaxDeltaLinkAge, the tenant filters its
// users, or Graph asks for a resync. A full run read transitively
// (store.ReadTransitive, see readScope) reads only each scope group's
// transitiveMembers: users pages and TransitiveMembers pages, no groups,
// no member lists, no delta links. A group's member list ends with a
// page marked last, even when the group is empty, so the reconciler knows
// when it holds a complete list.
//
// Each delivery of a job that gets the tenant's lease is a fetch attempt:
// the fetcher counts it in Postgres (store.BeginFetch) before it publishes
// anything, and attempt a numbers its data pages F..F+N-1 from
// F = (a-1) * syncv1.AttemptPageSpan. Pages of an interrupted attempt are
// already on the stream; the next attempt's never share their numbers
// (their message ids, their mirror versions), and the reconciler judges the
// run on the pages RunFetched names.
//
// Per tenant only one fetcher works at a time: the fetcher holds the
// tenant's lease in Postgres for the whole run and renews it while it
// works. A job whose tenant is leased elsewhere goes back to the stream
// and returns later.
//
// A run reads the tenant's settings once, at its start, and lists only
// the users its Scope.UserFilter (a Graph $filter) lets through.
//
// Every Graph request pays into the Graph budget all replicas share
// (libs/budget on the bus's NATS connection, made at Start unless
// Config.Unbudgeted): budget.Transport sits under libs/graph's retrier,
// keyed by the tenant's client id and Entra tenant id, for requests under
// the Graph base URL only (not the token authority). At the start of a run
// the tenant's bucket is sized by the users its mirror holds
// (store.MirrorUserCount). A 429 with Retry-After pauses the tenant on
// every replica; waiting for the budget is not a failure and holds the
// lease (the run goes on when units are back).
//
// Failures are sorted once. Permanent ones (rejected credentials, a 4xx,
// a malformed Graph response, a directory beyond AttemptPageSpan pages, a
// user filter Graph refuses, a tenant an admin disconnected) end the run
// with RunFailed and the job is acknowledged. A refused filter fails the
// run before any users page is published, so it never reads as a tenant
// without users. Waiting for the
// tenant's lease, and shutdown, hand the job back as a bus.Retry, which
// never uses the job up. Other failures that may pass hand it back to be
// redelivered after a backoff, and the run starts over as a new attempt;
// on the job's last allowed delivery (bus.DeliveryFromContext) the run
// ends with RunFailed saying why, instead of staying running behind a dead
// letter. A job fetched syncv1.MaxFetchAttempts times fails its run too.
//
// Memory holds a few pages per member list being published (a list is
// read up to two pages ahead of its publisher, which holds one page back
// so the last page can be marked), for at most 8 × Config.MemberBatch
// lists at once (graph.ListOptions.Open), of which about
// Config.MemberBatch go on past their first page (graph.ListOptions.Long:
// only those hold full pages), plus the run's group ids, about 50 bytes
// per group.
package fetcher
