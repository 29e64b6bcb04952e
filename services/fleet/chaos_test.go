package fleet_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/services/graphsim"
)

// chaosSpec is big enough that a run lasts long enough to be hit mid-way.
var chaosSpec = graphsim.Spec{
	Seed: 11, Users: 1500, Guests: 20, Disabled: 15, NoMail: 10,
	Groups: 40, NestingDepth: 3, Devices: 4, Contacts: 2, Cycle: true,
}

const chaosSeats = 1200 // fewer than the members: seats are handed out by the rules

// chaosTimings compress production's waits so that the work of a killed
// replica moves on in seconds: its job or events come back after the ack
// wait, its tenant lease expires after the TTL.
var chaosTimings = map[string]string{
	"BUS_JOBS_ACK_WAIT":      "3s",
	"BUS_EVENTS_ACK_WAIT":    "3s",
	"BUS_RETRY_BASE":         "200ms",
	"BUS_RETRY_MAX":          "2s",
	"LEASE_TTL":              "3s",
	"SCHEDULER_TICK":         "1s",
	"SCHEDULER_STALE_QUEUED": "5s",
	"SCHEDULER_STUCK_AFTER":  "2m",
}

// chaosBus is chaosTimings for the test's own bus connection: declaring
// the streams with other settings would change the fleet's consumers.
var chaosBus = bus.Options{JobsAckWait: 3 * time.Second, EventsAckWait: 3 * time.Second,
	RetryBase: 200 * time.Millisecond, RetryMax: 2 * time.Second}

// oldOutageBudget is how long, under chaosTimings, an event kept failing
// on a database outage before outages were told apart from failures: its
// 10 deliveries apart by 0.2, 0.4, 0.8, 1.6 and then 2 s. An outage
// longer than that dead-lettered the run's events.
const oldOutageBudget = 13 * time.Second

// TestFaults runs the services as separate binaries against Postgres
// behind a proxy that can take it away and a NATS server that can be
// restarted, and syncs one tenant round after round while:
//   - replicas, the scheduler and the api are killed with SIGKILL at random
//     points and started again;
//   - Postgres is away for twice the old retry budget in the middle of a run;
//   - the NATS server is restarted in the middle of a run.
//
// Beside it, the same directory, changed the same way each round, is
// synced by an undisturbed fleet. After every round both app sides must
// hash equal; at the end every run has succeeded, nothing is left in the
// work queues and nothing was dead-lettered.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the services and kills them")
	}
	t.Parallel()
	bin := buildBinaries(t, services...)
	calm := newHarness(t, 1, 1)
	calmE, wildE := calm.addEntraTenant(chaosSpec), calm.addEntraTenant(chaosSpec)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, calm.sim.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}

	dbURL := devenv.Database(t)
	proxy, proxied := devenv.NewPGProxy(t, dbURL)
	nats := startRestartableNATS(t)

	apiAddr := freeAddr(t)
	env := map[string]string{
		"DATABASE_URL":         proxied,
		"NATS_URL":             nats.url,
		"SECRET_KEY":           randomHex(t, 32),
		"ADMIN_TOKEN":          adminToken,
		"API_ADDR":             apiAddr,
		"LOG_LEVEL":            "warn",
		"GRAPH_BASE_URL":       calm.sim.GraphURL(),
		"AZURE_AUTHORITY_HOST": calm.sim.AuthorityURL(),
		"SSL_CERT_FILE":        caFile,
	}
	for k, v := range chaosTimings {
		env[k] = v
	}
	fl := &procFleet{t: t, bin: bin, env: env, healthz: "http://" + apiAddr + "/healthz", procs: map[string]*proc{}}
	for _, role := range []string{"api", "reconciler-1", "reconciler-2", "fetcher-1", "fetcher-2", "scheduler"} {
		fl.start(role)
	}
	fl.waitHealthy()
	db, err := pgxpool.New(t.Context(), dbURL) // straight to Postgres: the test reads through outages
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	wild := &harness{t: t, api: "http://" + apiAddr, db: db}

	calmID := calm.connect(calmE, chaosSeats)
	wildID := wild.connect(wildE, chaosSeats)
	calm.sync(calmID)

	// CHAOS_SEED replays the kill points of a failed run from its log.
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		if _, err := fmt.Sscan(v, &seed); err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", v, err)
		}
	}
	t.Logf("kill points from CHAOS_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	var kills []killPoint
	runs := 0
	compare := func(what string) {
		t.Helper()
		if got, want := wild.appTables(wildID), calm.appTables(calmID); !maps.Equal(got, want) {
			t.Fatalf("%s: the app side differs from the undisturbed fleet's:\n got %v\nwant %v", what, got, want)
		}
	}

	// Round 0 is the scheduler's first run of the tenant; each later round
	// changes both directories alike, then syncs.
	// Up to 25 rounds, until enough kills landed (delta rounds are short).
	for round := 0; round < 25 && (round < 5 || len(kills) < 24); round++ {
		var runID string
		if round == 0 {
			runID = waitFirstRun(t, db, wildID)
		} else {
			churn(t, calmE.Dir, round)
			churn(t, wildE.Dir, round)
			calm.sync(calmID)
			fl.waitHealthy()
			// Both kinds of run go through the faults: delta rounds (over
			// in a blink) and, every other round, a full read.
			if round%2 == 1 {
				runID = wild.triggerFull(wildID)
			} else {
				runID = wild.trigger(wildID)
			}
		}
		kills = append(kills, fl.monkey(rng, db, round, runID, 6)...)
		expectSucceeded(t, db, runID)
		runs++
		compare(fmt.Sprintf("round %d", round))
	}

	// Postgres goes away mid-run for twice the old budget.
	churn(t, calmE.Dir, 100)
	churn(t, wildE.Dir, 100)
	calm.sync(calmID)
	fl.waitHealthy()
	runID := wild.trigger(wildID)
	waitStatus(t, db, runID, "running", "applying")
	refusedBefore := proxy.Refused()
	proxy.SetDown(true)
	outage := time.NewTimer(2 * oldOutageBudget) // the outage itself: nothing to wait for
	<-outage.C
	proxy.SetDown(false)
	if proxy.Refused() == refusedBefore {
		t.Fatal("no service tried Postgres during the outage: the run was not in the middle of its work")
	}
	expectSucceeded(t, db, runID)
	runs++
	compare("after a Postgres outage")

	// The NATS server restarts mid-run.
	churn(t, calmE.Dir, 101)
	churn(t, wildE.Dir, 101)
	calm.sync(calmID)
	fl.waitHealthy()
	runID = wild.trigger(wildID)
	waitStatus(t, db, runID, "running", "applying")
	nats.restart()
	expectSucceeded(t, db, runID)
	runs++
	compare("after a NATS restart")

	// Every run of the tenant succeeded, nothing is left in flight or
	// stranded, and nothing was dead-lettered.
	var total, succeeded int
	if err := db.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE status = 'succeeded')
		FROM sync_runs WHERE tenant_id = $1`, wildID).Scan(&total, &succeeded); err != nil {
		t.Fatal(err)
	}
	if total != runs || succeeded != runs {
		t.Fatalf("%d runs, %d succeeded; want %d, all succeeded", total, succeeded, runs)
	}
	b, err := bus.ConnectWith(t.Context(), nats.url, chaosBus, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	devenv.WaitFor(t, time.Minute, "the work queues to empty", func() bool {
		jobs, events, err := b.TenantInFlight(t.Context(), wildID)
		return err == nil && jobs == 0 && events == 0
	})
	dead, err := b.DeadLetters(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if dead[bus.StreamJobs] != 0 || dead[bus.StreamEvents] != 0 {
		t.Fatalf("dead letters %v, want none", dead)
	}

	byRole, midRun := map[string]int{}, 0
	for _, k := range kills {
		byRole[strings.TrimRight(k.role, "-0123456789")]++
		if k.status != "succeeded" {
			midRun++
		}
	}
	t.Logf("%d kill points over %d runs (%d mid-run), by service %v; %d runs, all succeeded; "+
		"app side equal to the undisturbed fleet's after every run; %d connections refused in the Postgres outage; "+
		"0 messages left in flight, 0 dead letters", len(kills), runs, midRun, byRole, runs, proxy.Refused()-refusedBefore)
	if len(kills) < 20 {
		t.Errorf("only %d kill points landed in %d runs: the runs end before the kills come", len(kills), runs)
	}
	for _, s := range []string{"api", "scheduler", "fetcher", "reconciler"} {
		if byRole[s] == 0 {
			t.Errorf("the %s was never killed: %v", s, byRole)
		}
	}
}

// killPoint is one SIGKILL: of which process, in which round, and the
// run's status at that moment.
type killPoint struct {
	round  int
	role   string
	status string
}

// procFleet is the fleet as separate processes, each of which the test
// may kill and start again.
type procFleet struct {
	t       *testing.T
	bin     string
	env     map[string]string
	healthz string
	procs   map[string]*proc // by role: api, scheduler, fetcher-1, ...
}

func (f *procFleet) start(role string) {
	f.procs[role] = startProc(f.t, f.bin, strings.TrimRight(role, "-0123456789"), f.env)
}

// kill sends SIGKILL and waits for the process to be gone.
func (f *procFleet) kill(role string) {
	p := f.procs[role]
	_ = p.cmd.Process.Kill()
	if _, exited := p.wait(30 * time.Second); !exited {
		f.t.Fatalf("%s still runs 30 s after SIGKILL", role)
	}
}

func (f *procFleet) waitHealthy() { waitHealthy(f.t, f.procs["api"], f.healthz) }

// monkey kills up to n processes at random points of the run, each after
// a random 10 to 350 ms (a delta round is over in well under a second),
// starting each again after a random 0 to 300 ms, until the run has
// finished. It returns the kill points.
func (f *procFleet) monkey(rng *rand.Rand, db *pgxpool.Pool, round int, runID string, n int) []killPoint {
	roles := make([]string, 0, len(f.procs))
	for r := range f.procs {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	var out []killPoint
	for len(out) < n {
		// The kill point itself, chosen at random: not a wait for anything.
		time.Sleep(time.Duration(10+rng.IntN(340)) * time.Millisecond)
		status := runStatus(f.t, db, runID)
		if status == "succeeded" || status == "failed" {
			break
		}
		role := roles[rng.IntN(len(roles))]
		f.kill(role)
		out = append(out, killPoint{round: round, role: role, status: status})
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond) // dead for a random while
		f.start(role)
	}
	f.t.Logf("round %d: killed %v", round, out)
	return out
}

// restartableNATS is a NATS server on a fixed port and store directory,
// so that it can be stopped and started again as the same server.
type restartableNATS struct {
	t    *testing.T
	dir  string
	port int
	url  string
	ns   *server.Server
}

func startRestartableNATS(t *testing.T) *restartableNATS {
	n := &restartableNATS{t: t, dir: t.TempDir()}
	ns, url, err := devenv.StartNATS(n.dir, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	n.ns, n.url = ns, url
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "nats://"))
	fmt.Sscan(port, &n.port)
	t.Cleanup(func() { n.ns.Shutdown(); n.ns.WaitForShutdown() })
	return n
}

// restart stops the server and starts it again on the same port and store.
func (n *restartableNATS) restart() {
	n.ns.Shutdown()
	n.ns.WaitForShutdown()
	ns, url, err := devenv.StartNATS(n.dir, n.port, -1)
	if err != nil {
		n.t.Fatalf("start NATS again: %v", err)
	}
	if url != n.url {
		n.t.Fatalf("NATS came back at %s, not %s", url, n.url)
	}
	n.ns = ns
}

// churn changes a directory the same way for the same round: a dozen
// joiners, each put in an assigned group, one leaver, one account
// disabled and one job title changed.
func churn(t *testing.T, d *graphsim.Directory, round int) {
	t.Helper()
	var groups []string
	for _, g := range d.Groups() {
		if g.MembershipRule == "" {
			groups = append(groups, g.ID)
		}
	}
	users := d.Users()
	ns := uuid.MustParse("6f1c7d1e-6a55-4c51-9a1e-1f0b6a0c0d11")
	for j := range 12 {
		u := d.AddUser(graphsim.User{
			ID:        uuid.NewSHA1(ns, fmt.Appendf(nil, "%d/%d", round, j)).String(),
			GivenName: "Chaos", Surname: fmt.Sprintf("R%dN%d", round, j),
			DisplayName: fmt.Sprintf("Chaos R%dN%d", round, j), Mail: fmt.Sprintf("chaos.r%dn%d@%s", round, j, d.Domain()),
			UserType: "Member", AccountEnabled: true,
		})
		if err := d.AddMember(groups[(round+j)%len(groups)], graphsim.Member{ID: u.ID, Type: graphsim.TypeUser}); err != nil {
			t.Fatal(err)
		}
	}
	n := len(users)
	if err := d.DisableUser(users[(round*7)%n].ID); err != nil {
		t.Fatal(err)
	}
	if err := d.UpdateUser(users[(round*5+1)%n].ID, func(u *graphsim.User) { u.JobTitle = fmt.Sprintf("Chaos %d", round) }); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteUser(users[(round*11+3)%n].ID); err != nil {
		t.Fatal(err)
	}
}

// runStatus reads a run's status from Postgres.
func runStatus(t *testing.T, db *pgxpool.Pool, runID string) string {
	t.Helper()
	var s string
	if err := db.QueryRow(t.Context(), `SELECT status FROM sync_runs WHERE id = $1`, runID).Scan(&s); err != nil {
		t.Fatalf("run %s: %v", runID, err)
	}
	return s
}

// waitStatus waits until the run is in one of statuses.
func waitStatus(t *testing.T, db *pgxpool.Pool, runID string, statuses ...string) {
	t.Helper()
	devenv.WaitFor(t, 2*time.Minute, "run "+runID+" to be "+strings.Join(statuses, " or "), func() bool {
		s := runStatus(t, db, runID)
		for _, want := range statuses {
			if s == want {
				return true
			}
		}
		return false
	})
}

// expectSucceeded waits for the run to finish and fails the test unless
// it succeeded.
func expectSucceeded(t *testing.T, db *pgxpool.Pool, runID string) {
	t.Helper()
	waitStatus(t, db, runID, "succeeded", "failed", "awaiting_approval", "rejected")
	var status, errText string
	if err := db.QueryRow(context.Background(), `SELECT status, error FROM sync_runs WHERE id = $1`,
		runID).Scan(&status, &errText); err != nil {
		t.Fatal(err)
	}
	if status != "succeeded" {
		t.Fatalf("run %s ended %s: %s", runID, status, errText)
	}
}

// waitFirstRun waits for the tenant's first run to be created and
// returns its id.
func waitFirstRun(t *testing.T, db *pgxpool.Pool, tenantID string) string {
	t.Helper()
	var id string
	devenv.WaitFor(t, time.Minute, "the scheduler to create the tenant's first run", func() bool {
		err := db.QueryRow(t.Context(), `SELECT id FROM sync_runs WHERE tenant_id = $1 AND seq = 1`, tenantID).Scan(&id)
		return err == nil
	})
	return id
}
