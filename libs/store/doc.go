// Package store is entrasync's only access to Postgres: the schema and its
// migrations, and every query the services run.
//
// The schema has three parts:
//
//   - tenants, sync runs and fetcher leases;
//   - the directory mirror (dir_users, dir_groups, dir_members): Graph's
//     view of each tenant, written page by page as events arrive, in any
//     order and any number of times. Each row keeps the version (run seq,
//     page, index) of the newest entry that wrote it; a write lands only
//     when it is newer, and always advances the version, even when it
//     repeats the row (else a late page of a version in between would
//     win); deletions are versioned tombstones;
//   - the application side (app_users with their seats, app_groups,
//     app_group_members with nested membership resolved), derived from the
//     mirror in one transaction when a run's last page is in.
//
// A run is full (it lists users, groups and member lists, and whatever
// the lists lack is gone) or delta (it applies what a Graph delta round
// says changed or was removed, and nothing else): see delta.go. Either
// hands in the Graph delta links its fetch ended with; they become the
// tenant's next starting point (DeltaLinks) only when the run's plan is
// applied.
//
// A run may be fetched in several attempts when its job is delivered again
// mid-run. BeginFetch counts them; each attempt owns its own range of page
// numbers (AttemptPageSpan), and a run is complete, and judged, on the
// pages of the attempt its RunFetched names (Fetched.FirstPage) alone.
//
// The store does not know the wire format (it does not import proto):
// callers pass plain values in and get them out, and libs/bus builds jobs
// from them (bus.NewJob). The page numbering the fetchers and the store
// share is the wire's; the store keeps its own copy of its two numbers,
// AttemptPageSpan and MaxFetchAttempts, checked equal to the wire's by a
// test of services/reconciler.
//
// SQL lives in .sql files, not in Go strings: migrations/*.sql (goose,
// embedded in the binary) build the schema, and queries/*.sql hold every
// statement the store runs, compiled by sqlc (sqlc.yaml, `make sqlc`) into
// typed Go in internal/dbsqlc, checked against that schema; the generated
// code is committed. Rows come back as structs, not scanned by position:
// a run is read as its whole sync_runs row (dbsqlc.SyncRun, sqlc.embed)
// wherever it is read. The store's Go turns those rows into its own
// types (runFrom, tenantFrom) and keeps every rule. The generated package
// is internal, so the compiler keeps SQL inside the store.
//
// Postgres text cannot hold NUL (nor jsonb \u0000), and Graph allows it in
// free text: the store writes a NUL in a name, mail, description or rule as
// U+FFFD, so one odd string does not block a tenant's every run, and
// refuses an id with one (ErrInvalid), since a changed id names another
// object.
//
// Errors are translated where they leave SQL: a missing row is
// ErrNotFound, a duplicate is ErrConflict, input the database can never
// take is ErrInvalid; IsRetryable tells transient failures (a database
// that is down, a lost lock race) from the rest.
//
// No statement reads the database's clock: every time is passed in by the
// caller (or comes from the clock given with WithClock), so that two
// databases fed the same events end up byte-for-byte equal. Leases are the
// exception: they coordinate hosts, so their expiry is judged by the one
// clock all hosts share, the database's (leases.go).
package store
