// Package dbsqlc is the store's SQL as typed Go: sqlc generates it from
// ../../queries/*.sql against the schema of ../../migrations (see
// ../../sqlc.yaml). Do not edit the generated files; change the SQL and
// run `make sqlc`. This file is the only one written by hand.
//
// It is internal to libs/store: only the store runs SQL.
package dbsqlc
