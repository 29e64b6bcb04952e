package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Queryer is a connection or pool to inspect tables through.
type Queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// TableHashes returns an md5 of every table's rows in the public schema,
// migrations' bookkeeping left out, so tests can tell whether two databases,
// or one database before and after, hold the same bytes. The tenants'
// sealed secrets are left out too: each seal has a random nonce.
func TableHashes(t testing.TB, db Queryer) map[string]string {
	t.Helper()
	ctx := context.Background()
	rows, err := db.Query(ctx, `SELECT tablename FROM pg_tables
		WHERE schemaname = 'public' AND tablename <> 'goose_db_version' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) == 0 {
		t.Fatal("storetest: no tables to hash: is the database migrated?")
	}
	out := map[string]string{}
	for _, tbl := range tables {
		row := "t::text"
		if tbl == "tenants" {
			row = "(to_jsonb(t) - 'client_secret_sealed')::text"
		}
		var sum *string
		q := fmt.Sprintf(`SELECT md5(string_agg(%s, E'\n' ORDER BY %s)) FROM %q t`, row, row, tbl)
		if err := db.QueryRow(ctx, q).Scan(&sum); err != nil {
			t.Fatal(err)
		}
		out[tbl] = "empty"
		if sum != nil {
			out[tbl] = *sum
		}
	}
	return out
}

// DiffHashes fails the test for every table whose hash in got differs
// from want, and when the two have different tables.
func DiffHashes(t testing.TB, what string, got, want map[string]string) {
	t.Helper()
	for tbl, h := range want {
		if got[tbl] != h {
			t.Errorf("%s: table %s differs", what, tbl)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d tables, want %d", what, len(got), len(want))
	}
}

// RowVersions runs a query returning (key, xmin::text::bigint) and maps each
// key to its xmin, the transaction that last wrote the row: a row whose
// xmin did not move was not rewritten.
func RowVersions(t testing.TB, db Queryer, query string, args ...any) map[string]uint32 {
	t.Helper()
	rows, err := db.Query(context.Background(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]uint32{}
	for rows.Next() {
		var k string
		var x uint32
		if err := rows.Scan(&k, &x); err != nil {
			t.Fatal(err)
		}
		out[k] = x
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
