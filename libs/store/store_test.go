package store_test

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/secret"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(devenv.RunTests(m)) }

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newTenant(t testing.TB, st *store.Store, seats int) store.Tenant {
	t.Helper()
	tn, err := st.CreateTenant(context.Background(), store.NewTenant{
		Name: "Contoso", EntraTenantID: "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00",
		ClientID: "3b9d2f64-1c8e-4a7b-b5d0-6e2f8a9c4d11", ClientSecret: "s3cret value", Seats: seats,
	})
	must(t, err)
	return tn
}

func TestMigrateIsRepeatableAndEveryQueryPrepares(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, url := storetest.NewWithURL(t)
	// A second migration (another process starting) changes nothing.
	must(t, store.Migrate(ctx, url))

	conn, err := pgx.Connect(ctx, url)
	must(t, err)
	defer conn.Close(ctx)
	queries, copies := generatedQueries(t)
	for name, sql := range queries {
		if _, err := conn.Prepare(ctx, name, sql); err != nil {
			t.Errorf("query %s does not prepare: %v", name, err)
		}
	}
	// The generated code must be that of queries/*.sql: a query added or
	// renamed there without `make sqlc` shows here.
	for name, kind := range sqlQueryNames(t) {
		_, generated := queries[name]
		if kind == ":copyfrom" {
			generated = copies[name]
		}
		if !generated {
			t.Errorf("query %s of queries/*.sql has no generated code: run make sqlc", name)
		}
		delete(queries, name)
		delete(copies, name)
	}
	for name := range queries {
		t.Errorf("generated query %s is in no file of queries/: run make sqlc", name)
	}
	for name := range copies {
		t.Errorf("generated copy %s is in no file of queries/: run make sqlc", name)
	}
}

// generatedQueries reads the statements sqlc generated (string constants
// in internal/dbsqlc that start with their "-- name:" line), by name, and
// the names of the :copyfrom queries, which sqlc turns into COPY rather
// than into a statement that could be prepared.
func generatedQueries(t *testing.T) (map[string]string, map[string]bool) {
	t.Helper()
	files, err := filepath.Glob("internal/dbsqlc/*.go")
	must(t, err)
	queries, copies := map[string]string{}, map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		must(t, err)
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				sql, err := strconv.Unquote(n.Value)
				if n.Kind != token.STRING || err != nil {
					return true
				}
				if head, ok := strings.CutPrefix(sql, "-- name: "); ok {
					queries[strings.Fields(head)[0]] = sql
				}
			case *ast.TypeSpec:
				if name, ok := strings.CutPrefix(n.Name.Name, "iteratorFor"); ok {
					copies[name] = true
				}
			}
			return true
		})
	}
	if len(queries) == 0 {
		t.Fatal("found no generated queries in internal/dbsqlc")
	}
	return queries, copies
}

// sqlQueryNames reads the names of the queries in queries/*.sql, with
// their kind (":one", ":exec", ":copyfrom", …).
func sqlQueryNames(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("queries/*.sql")
	must(t, err)
	out := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		must(t, err)
		for line := range strings.Lines(string(raw)) {
			if head, ok := strings.CutPrefix(line, "-- name: "); ok {
				if w := strings.Fields(head); len(w) == 2 {
					out[w[0]] = w[1]
				} else {
					t.Errorf("%s: %q is not \"-- name: <Name> <kind>\"", f, strings.TrimSpace(line))
				}
			}
		}
	}
	return out
}

func TestTenantSecretIsSealedAndOnlyReturnedByCredentials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, url := storetest.NewWithURL(t)
	tn := newTenant(t, st, 5)
	if tn.SyncInterval != store.DefaultSyncInterval || tn.Seats != 5 || tn.CreatedAt.IsZero() {
		t.Fatalf("tenant = %+v", tn)
	}

	got, err := st.GetTenant(ctx, tn.ID)
	must(t, err)
	if !reflect.DeepEqual(got, tn) {
		t.Fatalf("GetTenant = %+v, want %+v", got, tn)
	}
	creds, err := st.TenantCredentials(ctx, strings.ToUpper(tn.ID))
	must(t, err)
	if creds.ClientSecret != "s3cret value" || creds.ClientID != tn.ClientID {
		t.Fatalf("credentials = %v", creds)
	}
	if strings.Contains(fmt.Sprintf("%v %+v %#v %s", creds, creds, creds, creds), "s3cret") {
		t.Fatal("Credentials.String shows the secret")
	}

	conn, err := pgx.Connect(ctx, url)
	must(t, err)
	defer conn.Close(ctx)
	var sealed []byte
	must(t, conn.QueryRow(ctx, `SELECT client_secret_sealed FROM tenants WHERE id = $1`, tn.ID).Scan(&sealed))
	if strings.Contains(string(sealed), "s3cret") {
		t.Fatal("the secret is stored in clear")
	}
	// A sealed secret moved to another tenant's row does not open.
	other := newTenant(t, st, 1)
	_, err = conn.Exec(ctx, `UPDATE tenants SET client_secret_sealed = $1 WHERE id = $2`, sealed, other.ID)
	must(t, err)
	if _, err := st.TenantCredentials(ctx, other.ID); err == nil {
		t.Fatal("a secret moved to another tenant opened")
	}
}

func TestBadTenantsAreRejected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	good := store.NewTenant{Name: "A", EntraTenantID: "e", ClientID: "c", ClientSecret: "s", Seats: 1}
	cases := map[string]func(*store.NewTenant){
		"empty name":        func(n *store.NewTenant) { n.Name = " " },
		"no entra tenant":   func(n *store.NewTenant) { n.EntraTenantID = "" },
		"no client id":      func(n *store.NewTenant) { n.ClientID = "" },
		"no secret":         func(n *store.NewTenant) { n.ClientSecret = "" },
		"negative seats":    func(n *store.NewTenant) { n.Seats = -1 },
		"negative interval": func(n *store.NewTenant) { n.SyncInterval = -time.Second },
		"interval under 5m": func(n *store.NewTenant) { n.SyncInterval = 4 * time.Minute },
		"bad id":            func(n *store.NewTenant) { n.ID = "tenant-1" },
		"NUL in name":       func(n *store.NewTenant) { n.Name = "a\x00b" },
	}
	for name, mutate := range cases {
		nt := good
		mutate(&nt)
		if _, err := st.CreateTenant(ctx, nt); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if scheds, err := st.ListTenantSchedules(ctx); err != nil || len(scheds) != 0 {
		t.Fatalf("bad tenants were stored: %v %v", scheds, err)
	}
	if _, err := st.GetTenant(ctx, "not-a-uuid"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetTenant(not-a-uuid) = %v", err)
	}
	if _, err := st.GetTenant(ctx, "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetTenant(unknown) = %v", err)
	}
	// Seat counts the integer column cannot hold are refused, not wrapped.
	tn := newTenant(t, st, 3)
	for _, seats := range []int{-1, math.MaxInt32 + 1} {
		if err := st.SetTenantSeats(ctx, tn.ID, seats); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("SetTenantSeats(%d) = %v, want ErrInvalid", seats, err)
		}
	}
	if got, err := st.GetTenant(ctx, tn.ID); err != nil || got.Seats != 3 {
		t.Errorf("seats after refused changes = %d, %v; want 3", got.Seats, err)
	}
}

func TestRunsGetSequenceNumbersAndOneRunPerSlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newClock()
	st := storetest.New(t, store.WithClock(clock.Now))
	tn := newTenant(t, st, 1)

	// Concurrent creations get distinct, gapless sequence numbers.
	const n = 8
	seqs := make(chan int64, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r, err := st.CreateRun(ctx, store.NewRun{TenantID: tn.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
			if err != nil {
				t.Error(err)
				return
			}
			seqs <- r.Seq
		})
	}
	wg.Wait()
	close(seqs)
	seen := map[int64]bool{}
	for s := range seqs {
		seen[s] = true
	}
	for i := int64(1); i <= n; i++ {
		if !seen[i] {
			t.Fatalf("seqs %v lack %d", seen, i)
		}
	}

	slot := clock.Now().Truncate(time.Hour)
	first, err := st.CreateRun(ctx, store.NewRun{TenantID: tn.ID, Kind: store.KindFull, Trigger: store.TriggerSchedule, Slot: &slot})
	must(t, err)
	if first.Status != store.StatusQueued || first.Seq != n+1 || first.Slot == nil || !first.Slot.Equal(slot) {
		t.Fatalf("scheduled run = %+v", first)
	}
	again, err := st.CreateRun(ctx, store.NewRun{TenantID: tn.ID, Kind: store.KindFull, Trigger: store.TriggerSchedule, Slot: &slot})
	if !errors.Is(err, store.ErrConflict) || again.ID != first.ID {
		t.Fatalf("second run for the slot = %+v, %v; want the first and ErrConflict", again, err)
	}

	got, err := st.GetRun(ctx, tn.ID, first.ID)
	must(t, err)
	if got.ID != first.ID || got.Seq != first.Seq || got.Status != store.StatusQueued {
		t.Fatalf("GetRun = %+v", got)
	}
	other := newTenant(t, st, 1)
	if _, err := st.GetRun(ctx, other.ID, first.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("run read through another tenant: %v", err)
	}

	scheds, err := st.ListTenantSchedules(ctx)
	must(t, err)
	for _, s := range scheds {
		if s.TenantID == tn.ID && (s.LastScheduledSlot == nil || !s.LastScheduledSlot.Equal(slot)) {
			t.Fatalf("schedule = %+v, want last slot %v", s, slot)
		}
		if s.TenantID == other.ID && s.LastScheduledSlot != nil {
			t.Fatalf("other tenant has a slot: %+v", s)
		}
	}

	// Queued runs become stale once older than the cut-off.
	stale, err := st.ListStaleQueuedRuns(ctx, clock.Now())
	must(t, err)
	if len(stale) != 0 {
		t.Fatalf("%d runs stale at their creation time", len(stale))
	}
	clock.Add(time.Minute)
	stale, err = st.ListStaleQueuedRuns(ctx, clock.Now())
	must(t, err)
	if len(stale) != n+1 {
		t.Fatalf("%d stale runs, want %d", len(stale), n+1)
	}

	runs, err := st.ListRuns(ctx, tn.ID, 0, 3)
	must(t, err)
	if len(runs) != 3 || runs[0].Seq != n+1 || runs[2].Seq != n-1 {
		t.Fatalf("ListRuns = %v", runs)
	}

	for name, nr := range map[string]store.NewRun{
		"unknown tenant":   {TenantID: "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00", Kind: store.KindFull, Trigger: store.TriggerManual},
		"bad kind":         {TenantID: tn.ID, Kind: "incremental", Trigger: store.TriggerManual},
		"bad trigger":      {TenantID: tn.ID, Kind: store.KindFull, Trigger: "cron"},
		"schedule no slot": {TenantID: tn.ID, Kind: store.KindFull, Trigger: store.TriggerSchedule},
		"manual with slot": {TenantID: tn.ID, Kind: store.KindFull, Trigger: store.TriggerManual, Slot: &slot},
	} {
		_, err := st.CreateRun(ctx, nr)
		want := store.ErrInvalid
		if name == "unknown tenant" {
			want = store.ErrNotFound
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", name, err, want)
		}
	}
}

func TestLeasesExpireByTheDatabasesClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newClock()
	st, url := storetest.NewWithURL(t, store.WithClock(clock.Now))
	tn := newTenant(t, st, 1)
	const ttl = 30 * time.Second
	// A second host, its clock an hour ahead of the first's.
	box, err := secret.NewBox(storetest.Key)
	must(t, err)
	ahead, err := store.Open(ctx, url, box, zerolog.Nop(), store.WithoutMigrate(),
		store.WithClock(func() time.Time { return clock.Now().Add(time.Hour) }))
	must(t, err)
	defer ahead.Close()

	ok, err := st.AcquireLease(ctx, tn.ID, "fetcher-1", ttl)
	must(t, err)
	if !ok {
		t.Fatal("first acquire failed")
	}
	if ok, _ := st.AcquireLease(ctx, tn.ID, "fetcher-2", ttl); ok {
		t.Fatal("a second holder got a held lease")
	}
	if ok, _ := ahead.AcquireLease(ctx, tn.ID, "fetcher-2", ttl); ok {
		t.Fatal("a host whose clock runs ahead took a live lease")
	}
	if ok, _ := st.AcquireLease(ctx, tn.ID, "fetcher-1", ttl); !ok {
		t.Fatal("the holder could not take its own lease again")
	}
	if ok, _ := st.RenewLease(ctx, tn.ID, "fetcher-1", ttl); !ok {
		t.Fatal("renew by the holder failed")
	}
	// A short lease runs out by the database's clock: whoever asks then
	// gets it, and the former holder can no longer renew it.
	const short = 200 * time.Millisecond
	if ok, _ := st.AcquireLease(ctx, tn.ID, "fetcher-1", short); !ok {
		t.Fatal("the holder could not shorten its lease")
	}
	devenv.WaitFor(t, 10*time.Second, "the expired lease to be taken by another holder", func() bool {
		ok, err := st.AcquireLease(ctx, tn.ID, "fetcher-2", ttl)
		must(t, err)
		return ok
	})
	if ok, _ := st.RenewLease(ctx, tn.ID, "fetcher-1", ttl); ok {
		t.Fatal("the former holder renewed a lease it lost")
	}
	must(t, st.ReleaseLease(ctx, tn.ID, "fetcher-1")) // not its lease: no effect
	if ok, _ := st.AcquireLease(ctx, tn.ID, "fetcher-3", ttl); ok {
		t.Fatal("release by a non-holder freed the lease")
	}
	must(t, st.ReleaseLease(ctx, tn.ID, "fetcher-2"))
	if ok, _ := st.AcquireLease(ctx, tn.ID, "fetcher-3", ttl); !ok {
		t.Fatal("a released lease could not be taken")
	}

	if _, err := st.AcquireLease(ctx, tn.ID, "", ttl); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty holder: %v", err)
	}
	if _, err := st.AcquireLease(ctx, "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00", "x", ttl); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown tenant: %v", err)
	}
}

func TestIsRetryable(t *testing.T) {
	t.Parallel()
	for _, err := range []error{store.ErrNotFound, store.ErrConflict, store.ErrInvalid, context.Canceled, nil} {
		if store.IsRetryable(err) {
			t.Errorf("IsRetryable(%v) = true", err)
		}
	}
	// A connection cut mid-statement, however it is wrapped, is too.
	for _, err := range []error{io.ErrUnexpectedEOF, io.EOF, net.ErrClosed, pgconn.ErrConnClosed} {
		if err := fmt.Errorf("store: apply users page: %w", err); !store.IsRetryable(err) {
			t.Errorf("IsRetryable(%v) = false", err)
		}
	}
	// A database that is not there is worth trying again later.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := store.Migrate(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	if err == nil || !store.IsRetryable(err) {
		t.Errorf("unreachable database: IsRetryable(%v) = false", err)
	}
}
