// Package budget keeps entrasync's fetchers, all replicas together, inside
// Microsoft Graph's resource-unit limits, so that a tenant's run slows
// down before Graph throttles it rather than after.
//
// # Why
//
// Graph meters the identity and access APIs (users, groups, members) in
// resource units per app registration and tenant: 3,500 per 10 s for a
// tenant under 50 users, 5,000 up to 500, 8,000 above, and 150,000 per
// 20 s per app across all tenants (throttling-limits.md, "Identity and
// access service limits"). A fetcher replica that only reacts to 429s
// learns the limit by hitting it, and every other replica working for the
// same app (the app's bucket is shared by all tenants) hits it too.
// Keeping one count for the whole fleet, below Graph's, means 429s are
// the exception, and when one comes, every replica hears of it.
//
// # How
//
// Every request takes its cost from two token buckets: its app+tenant
// bucket and its app's. A bucket is one key of the JetStream KV bucket
// GRAPH_BUDGET (Config.Bucket), holding {tokens, at, paused_until,
// capacity, users} as JSON. Nothing ticks: a replica refills a bucket when
// it touches it, from the stored instant and the time passed since, at
// capacity per window. Writes are compare-and-set on the key's revision
// (Create for a new key, Update against the revision read); a write that
// lost to another replica's is done again on the newer state. The keys:
//
//	tenant.<app client id>.<entra tenant id>   the app+tenant bucket
//	app.<app client id>                        the app's bucket
//
// The KV keeps one revision per key (history 1, file storage) and drops a
// key 24 h after its last write (Config.TTL): an idle bucket is full
// anyway, and only its tenant size is lost, which the fetcher sets again.
// A replica remembers the last revision it saw of each key and tries its
// write against it, so a Take normally costs two round trips to NATS (one
// write per bucket); its goroutines queue per key rather than collide.
//
// Capacity is Graph's quota times Config.Margin (0.9 by default): Graph
// also counts what entrasync cannot see (another tool under the same app
// registration, a request Graph costs differently than documented). A
// tenant's bucket starts at the smallest tier; SetTenantSize moves it to
// the tier of its user count, for all replicas, and the fetcher calls it
// when it knows the count. A bucket holds at most its capacity, so as in
// Graph's own token bucket a burst never exceeds one window's quota and
// the rate over time never exceeds the quota per window.
//
// Cost estimates a request as Microsoft documents it; Graph's answer says
// what it really cost (x-ms-resource-unit) and Settle takes or gives back
// the difference, a bucket going into debt when a request cost more than
// was left. On a 429 the Transport reads Retry-After (fractional seconds
// or a date) and Pause records "paused until T" in the tenant's bucket (in
// the app's, for a 429 whose x-ms-throttle-scope is Application): no
// replica hands out a unit for that tenant before T, other tenants go on,
// and the bucket restarts empty at T: Graph had no units left when it
// throttled, and it keeps counting requests while it throttles. A 429
// without Retry-After only empties the bucket; the caller backs off. A
// $batch answer may hold 429s of both scopes: each pauses its own bucket
// until the longest Retry-After given for that scope.
//
// Take blocks until both buckets hold the cost: it computes when the
// refill (or the pause's end) will cover it and sleeps until then on the
// Config.Clock, then tries again. The tenant's units are taken first; if
// the app's bucket is short they are given back while the Take waits, so
// a waiting request never holds units another request of its tenant could
// use.
//
// # Time
//
// The clock is injected (Clock), and every wait is a sleep until an
// instant on it, so tests move time by hand and nothing sleeps for real.
// Replicas' clocks differ: a replica whose clock is behind the instant a
// bucket was last written refills nothing (it never counts negative time)
// and counts the refill from that instant, so skew hands out at most
// skew × rate units early, once, and never takes any back. A pause ends
// at an instant of the clock of the replica that got the 429: a replica
// whose clock runs ahead by s resumes s early, so keep fetcher hosts on
// NTP (Margin does not cover a pause).
//
// # Failure
//
// When NATS cannot be reached, Take fails and the Transport returns the
// error without sending the request: libs/graph's retrier treats it as a
// transient transport error and backs off. A budget entrasync cannot
// check is not spent blindly. A correction or pause that cannot be
// written is logged and the response still returned. A pause recorded by
// one replica while another is between its Take and its send cannot stop
// that one request; Graph answers it with a 429 like the first.
//
// # Wiring
//
// Transport slots under any HTTP client, the Graph SDK's included, below
// the retry loop, so that every attempt pays:
//
//	b, err := budget.New(ctx, js, budget.Config{})
//	key := budget.Key{App: clientID, Tenant: entraTenantID}
//	_ = b.SetTenantSize(ctx, key, usersInMirror)
//	hc := &http.Client{Transport: &budget.Transport{
//		Base:   http.DefaultTransport,
//		Budget: b,
//		KeyFor: budget.ForHost("graph.microsoft.com", key),
//	}}
//
// Requests to other hosts (the token authority) pass unbudgeted.
// Config.Observer hears of every Take (units, time waited) and every
// correction, for metrics.
package budget
