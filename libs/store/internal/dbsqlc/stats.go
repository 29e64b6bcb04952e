package dbsqlc

// Written by hand: the statistics collector's views are not in sqlc's
// catalog, and ANALYZE takes identifiers, not parameters.

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
)

// TableChanges is what the statistics collector knows of a table.
type TableChanges struct {
	Table string
	// ModifiedSinceAnalyze is the rows inserted, updated or deleted since
	// the table was last analyzed.
	ModifiedSinceAnalyze int64
	LiveRows             int64
}

// TablesChanges reads the statistics collector's counts of tables (of the
// current schema; a table it has no counts for yet is left out).
func (q *Queries) TablesChanges(ctx context.Context, tables []string) ([]TableChanges, error) {
	rows, err := q.db.Query(ctx, `SELECT relname::text, n_mod_since_analyze, n_live_tup
FROM pg_stat_user_tables
WHERE schemaname = current_schema() AND relname = ANY($1::text[])
ORDER BY relname`, tables)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableChanges, error) {
		var c TableChanges
		err := r.Scan(&c.Table, &c.ModifiedSinceAnalyze, &c.LiveRows)
		return c, err
	})
}

// RunPageObjects is how many objects a run's pages mention, all its
// attempts together, by page kind.
func (q *Queries) RunPageObjects(ctx context.Context, tenantID, runID string) (map[string]int64, error) {
	rows, err := q.db.Query(ctx, `SELECT kind, COALESCE(sum(cardinality(object_ids)), 0)::bigint
FROM sync_run_pages
WHERE tenant_id = $1 AND run_id = $2
GROUP BY kind`, tenantID, runID)
	if err != nil {
		return nil, err
	}
	byKind := map[string]int64{}
	var kind string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&kind, &n}, func() error {
		byKind[kind] = n
		return nil
	})
	return byKind, err
}

// AnalyzeSkipLocked analyzes tables in one statement, outside any
// transaction of the caller's, skipping a table another session is
// analyzing (or otherwise holds in a conflicting lock) instead of
// waiting for it.
func (q *Queries) AnalyzeSkipLocked(ctx context.Context, tables ...string) error {
	return q.maintain(ctx, "ANALYZE (SKIP_LOCKED)", tables)
}

// VacuumSkipLocked vacuums tables in one statement, outside any
// transaction (VACUUM cannot run in one), skipping a table another
// session holds in a conflicting lock.
func (q *Queries) VacuumSkipLocked(ctx context.Context, tables ...string) error {
	return q.maintain(ctx, "VACUUM (SKIP_LOCKED)", tables)
}

// maintain runs command (ANALYZE or VACUUM, with its options) on tables;
// no tables, no statement.
func (q *Queries) maintain(ctx context.Context, command string, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = pgx.Identifier{t}.Sanitize()
	}
	_, err := q.db.Exec(ctx, command+" "+strings.Join(names, ", "))
	return err
}
