package dbsqlc

// Written by hand, like doc.go: what sqlc does not generate.

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Cursor returns Queries whose every :many query runs as the SQL cursor
// name, in q's transaction: the first call declares the cursor with the
// call's arguments (the query runs once), each call returns the next
// chunk rows (none at the end). Other statements may run between two
// calls, on q. Call CloseCursor when done.
//
// The plan step reads whole tenants this way: one execution per query,
// one chunk in memory, whatever the tenant's size.
func (q *Queries) Cursor(name string, chunk int) *Queries {
	return &Queries{db: &cursorDB{tx: q.db, name: pgx.Identifier{name}.Sanitize(), chunk: chunk}}
}

// CloseCursor closes a cursor Cursor opened, if its query ever ran.
func (q *Queries) CloseCursor(ctx context.Context) error {
	c, ok := q.db.(*cursorDB)
	if !ok {
		return errors.New("dbsqlc: not a cursor")
	}
	if !c.declared {
		return nil
	}
	_, err := c.tx.Exec(ctx, "CLOSE "+c.name)
	return err
}

// Analyze gathers the planner's statistics of tables filled in this
// transaction (ANALYZE sees the transaction's own rows).
func (q *Queries) Analyze(ctx context.Context, tables ...string) error {
	for _, t := range tables {
		if _, err := q.db.Exec(ctx, "ANALYZE "+pgx.Identifier{t}.Sanitize()); err != nil {
			return fmt.Errorf("analyze %s: %w", t, err)
		}
	}
	return nil
}

type cursorDB struct {
	tx       DBTX
	name     string
	chunk    int
	declared bool
}

func (c *cursorDB) Query(ctx context.Context, sql string, args ...interface{}) (pgx.Rows, error) {
	if !c.declared {
		if _, err := c.tx.Exec(ctx, "DECLARE "+c.name+" NO SCROLL CURSOR FOR "+sql, args...); err != nil {
			return nil, err
		}
		c.declared = true
	}
	return c.tx.Query(ctx, fmt.Sprintf("FETCH FORWARD %d FROM %s", c.chunk, c.name))
}

var errNotACursorQuery = errors.New("dbsqlc: a cursor runs :many queries only")

func (c *cursorDB) Exec(context.Context, string, ...interface{}) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, errNotACursorQuery
}

func (c *cursorDB) QueryRow(context.Context, string, ...interface{}) pgx.Row { return errRow{} }

func (c *cursorDB) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, errNotACursorQuery
}

type errRow struct{}

func (errRow) Scan(...any) error { return errNotACursorQuery }
