// Package dbsqlc is the store's SQL as typed Go: sqlc generates it from
// ../../queries/*.sql against the schema of ../../migrations (see
// ../../sqlc.yaml). Do not edit the generated files; change the SQL and
// run `make sqlc`. Two files are written by hand: this one, and cursor.go
// (what sqlc does not generate: a :many query run as an SQL cursor).
//
// It is internal to libs/store: only the store runs SQL.
package dbsqlc
