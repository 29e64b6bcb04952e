// Package plan holds entrasync's sync rules as plain Go: which Entra users
// are in a tenant's scope, who gets a seat, whether a local edit survives
// a sync, which roles a removal revokes, when a plan is held back, and
// who is told about what.
//
// A run's plan is built in passes over facts the store streams in
// chunks (users in Entra id order, seat holders, candidates, memberships,
// groups); each pass calls the rules here item by item and hands the
// resulting plan items back to be written. No rule here touches the
// database, and no SQL statement decides what a rule here decides: the
// store reads and writes in bulk, this package judges.
//
// Every rule is a small function with a unit test named after it, so the
// product's promises ("a license an admin disabled is not re-enabled by
// a sync", "seats freed by leavers go to joiners in the same run") can be
// read here as code.
package plan
