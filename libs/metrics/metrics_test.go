package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/metrics"
	"github.com/entrasync/entrasync/libs/secret"
	"github.com/entrasync/entrasync/libs/store"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

func TestMain(m *testing.M) { os.Exit(devenv.RunTests(m)) }

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// sample returns the value of the series name{labels} in a scrape, and
// whether it is there.
func sample(text, name, labels string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// The lag metric reads JetStream at scrape time: it counts a backlog of
// jobs while nobody takes them, and goes back to 0 once they are consumed.
func TestStreamLagRisesWithBacklogAndReturnsToZero(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := bus.Connect(ctx, devenv.NATS(t), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m := metrics.New(metrics.Sources{Lag: b})
	h := m.Handler()
	const fetchers = `consumer="fetchers",stream="SYNC_JOBS"`
	const reconcilers = `consumer="reconcilers",stream="SYNC_EVENTS"`

	lag := func() float64 {
		t.Helper()
		text := scrape(t, h)
		v, ok := sample(text, metrics.NameStreamPending, fetchers)
		if !ok {
			t.Fatalf("no %s{%s} in\n%s", metrics.NameStreamPending, fetchers, text)
		}
		if _, ok := sample(text, metrics.NameStreamPending, reconcilers); !ok {
			t.Fatalf("no %s{%s} in\n%s", metrics.NameStreamPending, reconcilers, text)
		}
		return v
	}
	if v := lag(); v != 0 {
		t.Fatalf("lag of an empty stream = %v, want 0", v)
	}
	const backlog = 7
	for i := range backlog {
		tenant := fmt.Sprintf("tenant-%d", i)
		job := bus.NewJob(tenant, fmt.Sprintf("run-%d", i), 1, false, false, time.Now())
		if err := b.PublishJob(ctx, job); err != nil {
			t.Fatal(err)
		}
		// The consumer's count follows the stream a moment later.
		devenv.WaitFor(t, 10*time.Second, fmt.Sprintf("the lag to count %d jobs", i+1), func() bool { return lag() == float64(i+1) })
	}

	// Taken but not yet acknowledged still counts (num_ack_pending).
	release := make(chan struct{})
	taken := make(chan struct{}, backlog)
	c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{Concurrency: 2}, func(ctx context.Context, _ *syncv1.SyncJob) error {
		taken <- struct{}{}
		<-release
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop(context.Background()) }()
	<-taken
	if v := lag(); v != backlog {
		t.Fatalf("lag with jobs in hand = %v, want %d", v, backlog)
	}
	close(release)

	devenv.WaitFor(t, 30*time.Second, "the lag to return to 0 once the backlog was consumed", func() bool { return lag() == 0 })
}

type runStats metrics.RunStats

func (r runStats) RunStats(context.Context) (metrics.RunStats, error) {
	return metrics.RunStats(r), nil
}

type deadLetters map[string]uint64

func (d deadLetters) DeadLetters(context.Context) (map[string]uint64, error) { return d, nil }

// Every public name is on /metrics once its sources are given and its
// recorders called. Runs and dead letters come from stand-ins here, until
// libs/store and libs/bus export those reads (see the README).
func TestMetricsListsEveryName(t *testing.T) {
	t.Parallel()
	b, err := bus.Connect(context.Background(), devenv.NATS(t), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	at := time.Unix(1764560000, 500_000_000)
	m := metrics.New(metrics.Sources{
		Lag:         b,
		DeadLetters: deadLetters{bus.StreamJobs: 2, bus.StreamEvents: 0},
		Runs: runStats{
			Ended:       map[string]uint64{store.StatusSucceeded: 3, store.StatusFailed: 1},
			LastSuccess: map[string]time.Time{"t1": at},
		},
	})
	m.GraphRequest(200)
	m.GraphRequest(429)
	m.GraphThrottled(1500 * time.Millisecond)
	m.GraphRetryWait(500 * time.Millisecond)
	m.PageApplied(20 * time.Millisecond)
	m.RunEnded(90 * time.Second)
	m.BudgetTaken(3, 0)
	m.BudgetTaken(5, 1500*time.Millisecond)
	m.BudgetCorrected(2)
	m.BudgetCorrected(-1)
	m.BudgetCorrected(-3)
	m.BudgetCorrected(0)
	m.EventsWindowWait(250 * time.Millisecond)
	m.EventsWindowWait(0)

	text := scrape(t, m.Handler())
	for _, name := range metrics.Names {
		if !regexp.MustCompile(`(?m)^# TYPE ` + name + ` `).MatchString(text) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for _, c := range []struct {
		name, labels string
		want         float64
	}{
		{metrics.NameGraphRequests, `code="429"`, 1},
		{metrics.NameDeadLetters, `stream="SYNC_JOBS"`, 2},
		{metrics.NameRuns, `status="succeeded"`, 3},
		{metrics.NameTenantLastSuccess, `tenant="t1"`, 1764560000.5},
		{metrics.NameBudgetCorrected, `direction="taken"`, 2},
		{metrics.NameBudgetCorrected, `direction="returned"`, 4},
	} {
		if v, ok := sample(text, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s{%s} = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	for _, line := range []string{
		metrics.NameGraphThrottled + " 1",
		metrics.NameGraphRetryWait + " 2",
		metrics.NamePagesApplied + " 1",
		metrics.NameApplySeconds + "_count 1",
		metrics.NameRunDuration + "_count 1",
		metrics.NameBudgetUnits + " 8",
		metrics.NameBudgetWait + " 1.5",
		metrics.NameEventsWindowWait + " 0.25",
	} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("/metrics lacks the line %q", line)
		}
	}

	// A nil *Metrics records nothing and does not panic: services built
	// without metrics call the same methods.
	var none *metrics.Metrics
	none.GraphRequest(200)
	none.GraphThrottled(time.Second)
	none.PageApplied(time.Second)
	none.RunEnded(time.Second)
	none.BudgetTaken(1, time.Second)
	none.BudgetCorrected(1)
	none.EventsWindowWait(time.Second)
}

// A worker is ready when Postgres answers, NATS is connected and its
// consumer is bound and consuming in this process; /healthz only says the
// process answers.
func TestWorkerProbes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	box, err := secret.NewBox(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, devenv.Database(t), box, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := bus.Connect(ctx, devenv.NATS(t), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	c, err := b.ConsumeJobs(ctx, bus.ConsumeOptions{}, func(context.Context, *syncv1.SyncJob) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	consuming := func() error {
		if !c.Running() {
			return errors.New("consumer stopped")
		}
		return nil
	}
	_, srv := metrics.Worker(b, st, bus.ConsumerFetchers, consuming, "127.0.0.1:0", zerolog.Nop())
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(ctx)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with everything up: %d %s", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, metrics.NameStreamPending) {
		t.Fatalf("/metrics: %d %s", code, body)
	}

	readiness := func() (int, metrics.Readiness, string) {
		t.Helper()
		code, body := get("/readyz")
		var got metrics.Readiness
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("/readyz: %v: %s", err, body)
		}
		return code, got, body
	}

	// The durable stays bound on the server; this process no longer
	// consumes, and says so.
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	code, got, body := readiness()
	if code != http.StatusServiceUnavailable || got.Checks["consumer fetchers"] != "unavailable" ||
		got.Checks["postgres"] != "ok" || got.Checks["nats"] != "ok" {
		t.Fatalf("/readyz with the consumer stopped: %d %s", code, body)
	}

	st.Close()
	code, got, body = readiness()
	if code != http.StatusServiceUnavailable || got.Checks["postgres"] != "unavailable" || got.Checks["nats"] != "ok" {
		t.Fatalf("/readyz with Postgres closed: %d %s", code, body)
	}

	b.Close()
	code, got, body = readiness()
	if code != http.StatusServiceUnavailable || got.Checks["nats"] != "unavailable" || got.Checks["consumer fetchers"] != "unavailable" {
		t.Fatalf("/readyz with NATS closed: %d %s", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while unready: %d", code)
	}
}

type pingFunc func(context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

// Replicas started on one host without METRICS_ADDR all run: the default
// address gives way to a free port. An address set in METRICS_ADDR never
// does, and a malformed one is refused naming the variable.
func TestWorkerAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := bus.Connect(ctx, devenv.NATS(t), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	db := pingFunc(func(context.Context) error { return nil })
	unset := func(string) string { return "" }

	_, first, err := metrics.WorkerFromEnv(unset, "127.0.0.1:0", b, db, "", nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer first.Stop(ctx)
	taken := first.Addr()

	_, second, err := metrics.WorkerFromEnv(unset, taken, b, db, "", nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(ctx); err != nil {
		t.Fatalf("a second replica on the taken default address: %v", err)
	}
	defer second.Stop(ctx)
	if second.Addr() == taken {
		t.Fatalf("both replicas on %s", taken)
	}

	set := func(v string) func(string) string {
		return func(k string) string {
			if k == metrics.EnvAddr {
				return v
			}
			return ""
		}
	}
	_, third, err := metrics.WorkerFromEnv(set(taken), "127.0.0.1:0", b, db, "", nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := third.Start(ctx); err == nil {
		third.Stop(ctx)
		t.Fatalf("METRICS_ADDR=%s, already taken, was served elsewhere", taken)
	}
	if _, _, err := metrics.WorkerFromEnv(set("9102"), "", b, db, "", nil, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), metrics.EnvAddr) {
		t.Fatalf("METRICS_ADDR=9102: %v, want an error naming %s", err, metrics.EnvAddr)
	}
}

// Go's profiles are served only when DEBUG_PPROF asks for them; a value
// that is not a boolean is refused naming the variable.
func TestWorkerProfilesOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := bus.Connect(ctx, devenv.NATS(t), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	db := pingFunc(func(context.Context) error { return nil })
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == metrics.EnvProfiles {
				return v
			}
			return ""
		}
	}
	heapStatus := func(v string) int {
		t.Helper()
		_, srv, err := metrics.WorkerFromEnv(env(v), "127.0.0.1:0", b, db, "", nil, zerolog.Nop())
		if err != nil {
			t.Fatalf("%s=%q: %v", metrics.EnvProfiles, v, err)
		}
		if err := srv.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer srv.Stop(ctx)
		resp, err := http.Get("http://" + srv.Addr() + "/debug/pprof/heap")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK && len(body) == 0 {
			t.Fatalf("%s=%q: an empty heap profile", metrics.EnvProfiles, v)
		}
		return resp.StatusCode
	}
	for v, want := range map[string]int{"": http.StatusNotFound, "false": http.StatusNotFound, "0": http.StatusNotFound,
		"true": http.StatusOK, "1": http.StatusOK} {
		if got := heapStatus(v); got != want {
			t.Errorf("%s=%q: GET /debug/pprof/heap answered %d, want %d", metrics.EnvProfiles, v, got, want)
		}
	}
	if _, _, err := metrics.WorkerFromEnv(env("yes please"), "127.0.0.1:0", b, db, "", nil, zerolog.Nop()); err == nil ||
		!strings.Contains(err.Error(), metrics.EnvProfiles) {
		t.Fatalf("%s=\"yes please\": %v, want an error naming %s", metrics.EnvProfiles, err, metrics.EnvProfiles)
	}
}

type failingRuns struct{}

func (failingRuns) RunStats(ctx context.Context) (metrics.RunStats, error) {
	<-ctx.Done() // Postgres does not answer
	return metrics.RunStats{}, ctx.Err()
}

// A source that fails or hangs leaves its metrics out of the scrape, within
// the timeout; the others are still served.
func TestFailingSourceLeavesOthersServed(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Sources{
		DeadLetters: deadLetters{bus.StreamEvents: 4},
		Runs:        failingRuns{},
		Timeout:     100 * time.Millisecond,
	})
	start := time.Now()
	text := scrape(t, m.Handler())
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the scrape took %s with a hanging source", took)
	}
	if v, ok := sample(text, metrics.NameDeadLetters, `stream="SYNC_EVENTS"`); !ok || v != 4 {
		t.Fatalf("dead letters = %v (present %v), want 4:\n%s", v, ok, text)
	}
	if strings.Contains(text, metrics.NameRuns+"{") {
		t.Fatalf("runs served from a failed source:\n%s", text)
	}
}

// TestDeployedRulesAndDashboardNameRealMetrics: every entrasync metric the
// alert rules and the Grafana dashboard in deploy/ query is one the
// fleet serves, so that a renamed metric cannot leave an alert that
// never fires or a panel that stays empty.
func TestDeployedRulesAndDashboardNameRealMetrics(t *testing.T) {
	served := map[string]bool{}
	for _, n := range metrics.Names {
		served[n] = true
	}
	name := regexp.MustCompile(`entrasync_[a-z0-9_]+`)
	for _, file := range []string{"../../deploy/prometheus/alerts.yaml", "../../deploy/grafana/entrasync.json"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, n := range name.FindAllString(string(raw), -1) {
			base := n
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(n, suffix); ok && served[b] {
					base = b
				}
			}
			if !served[base] {
				t.Errorf("%s queries %s, which the fleet does not serve", file, n)
			}
			found++
		}
		if found == 0 {
			t.Errorf("%s queries no entrasync metric", file)
		}
	}
}
