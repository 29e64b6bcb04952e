package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// BenchmarkCopyStringIDs COPYs 2,000 rows keyed by two uuid columns given
// as strings, as the plan's work tables are written, with pgx's codecs
// and with the store's (uuidcodec.go). rows/s is per op.
func BenchmarkCopyStringIDs(b *testing.B) {
	_, url := storetest.NewWithURL(b)
	ctx := context.Background()
	const n = 2_000
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{"01a23b81-da85-70b1-866c-4b1d2fa3b860", "01a23b81-f100-78f4-b1b2-97b4446f8009",
			fmt.Sprintf("0f%06d-aaaa-4bbb-8ccc-dddddddddddd", i), fmt.Sprintf("Group %d", i)}
	}
	for _, bc := range []struct {
		name  string
		codec bool
	}{{"pgx", false}, {"store", true}} {
		b.Run(bc.name, func(b *testing.B) {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(ctx)
			if bc.codec {
				store.RegisterUUIDStrings(conn.TypeMap())
			}
			if _, err := conn.Exec(ctx, `CREATE TEMP TABLE copied (tenant_id uuid, run_id uuid, entra_id text, name text)`); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := conn.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"tenant_id", "run_id", "entra_id", "name"},
					pgx.CopyFromRows(rows)); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if _, err := conn.Exec(ctx, `TRUNCATE copied`); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
