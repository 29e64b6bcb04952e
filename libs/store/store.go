package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/secret"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Store is entrasync's access to Postgres. It is safe for concurrent use;
// one Store (one connection pool) per process is enough.
type Store struct {
	pool *pgxpool.Pool
	// q runs the generated queries on the pool; inside a transaction,
	// inTx hands fn queries bound to it.
	q     *dbsqlc.Queries
	box   *secret.Box
	log   zerolog.Logger
	clock func() time.Time
	// attempts is how often a transaction runs when it keeps losing lock
	// races (deadlock, serialization failure) before the error is returned.
	attempts int
	// fullMemberships: see WithFullMemberships.
	fullMemberships bool
}

// Option changes how Open sets up a Store.
type Option func(*options)

type options struct {
	migrate  bool
	clock    func() time.Time
	maxConns int32
	// fullMemberships: every plan recomputes all memberships and grants.
	fullMemberships bool
}

// WithoutMigrate makes Open skip running the migrations, for processes that
// must not change the schema (it is then up to a deploy step to call
// Migrate first).
func WithoutMigrate() Option { return func(o *options) { o.migrate = false } }

// WithClock sets the clock the store reads when the caller does not pass a
// time (tenant creation, leases). Tests use it to move time without
// sleeping.
func WithClock(clock func() time.Time) Option { return func(o *options) { o.clock = clock } }

// WithFullMemberships makes every plan recompute all of a tenant's
// memberships and grants, as if everything had changed, instead of those
// of the groups and users that did. The result is the same, only slower:
// tests compare the two, and operators can rule the shortcut out.
func WithFullMemberships() Option { return func(o *options) { o.fullMemberships = true } }

// WithMaxConns caps the connection pool (default: pgxpool's default, or
// pool_max_conns in the URL).
func WithMaxConns(n int32) Option { return func(o *options) { o.maxConns = n } }

// Open connects to the database at url, runs the migrations (unless
// WithoutMigrate) and returns a Store. box seals and opens tenant secrets.
func Open(ctx context.Context, url string, box *secret.Box, log zerolog.Logger, opts ...Option) (*Store, error) {
	if box == nil {
		return nil, errors.New("store: open: a secret box is required")
	}
	o := options{migrate: true, clock: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.migrate {
		if err := Migrate(ctx, url); err != nil {
			return nil, err
		}
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: open: parse database url: %w", err)
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		registerUUIDStrings(conn.TypeMap())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: open: ping: %w", err)
	}
	return &Store{pool: pool, q: dbsqlc.New(pool), box: box, log: log, clock: o.clock, attempts: 5,
		fullMemberships: o.fullMemberships}, nil
}

// Close closes the connection pool, waiting for connections in use.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Migrate brings the schema at url up to date with the migrations embedded
// in this package. It takes a session-level advisory lock, so processes
// starting together migrate one after the other.
func Migrate(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("store: migrate: parse database url: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	return migrate(ctx, db)
}

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction, with queries bound to it, and commits it.
// When the transaction loses a lock race (deadlock, serialization failure)
// it runs again, a few times, after a short random pause; fn must
// therefore only touch the database.
func (s *Store) inTx(ctx context.Context, what string, fn func(q *dbsqlc.Queries) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(s.q.WithTx(tx)) })
		if err == nil || !isLockConflict(err) || attempt >= s.attempts {
			break
		}
		s.log.Debug().Err(err).Int("attempt", attempt).Str("op", what).Msg("store: transaction lost a lock race; retrying")
		pause := time.Duration(1<<attempt)*5*time.Millisecond + rand.N(10*time.Millisecond)
		select {
		case <-ctx.Done():
			return translate(ctx.Err(), what)
		case <-time.After(pause):
		}
	}
	return translate(err, what)
}

// lockTenant takes the tenant's transaction-scoped advisory lock. Page
// applies take it shared, so they run side by side; what changes a run's
// outcome (finalization, failure) takes it exclusively, so it never
// interleaves with a page of the same tenant.
func lockTenant(ctx context.Context, q *dbsqlc.Queries, tenantID string, exclusive bool) error {
	if exclusive {
		return q.LockTenant(ctx, tenantID)
	}
	return q.LockTenantShared(ctx, tenantID)
}
