package fleet_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/services/graphsim"
)

// TestBinaries runs the real service binaries as separate processes,
// configured by environment variables only, the way production runs them.
// The other tests of this package start the services inside the test
// process, so they cannot catch a main that wires things wrong, reads the
// wrong variable or does not stop on SIGTERM.
func TestBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every service binary")
	}
	t.Parallel()
	bin := buildBinaries(t, append([]string{"graphsim"}, services...)...)
	t.Run("SyncAndStop", func(t *testing.T) {
		t.Parallel()
		testBinariesSyncAndStop(t, bin)
	})
	t.Run("MissingVariable", func(t *testing.T) {
		t.Parallel()
		testBinariesMissingVariable(t, bin)
	})
}

// services are the entrasync commands that run in production.
var services = []string{"api", "scheduler", "fetcher", "reconciler"}

// buildBinaries builds the named commands (services/<name>/cmd/<name>)
// into a temporary directory and returns it.
func buildBinaries(t *testing.T, names ...string) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil {
		t.Fatalf("go env GOWORK: %v", err)
	}
	work := strings.TrimSpace(string(out))
	if work == "" || work == "off" {
		t.Fatalf("go env GOWORK = %q: the test builds the services from the workspace root", work)
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir}
	for _, name := range names {
		args = append(args, "./services/"+name+"/cmd/"+name)
	}
	build := exec.Command("go", args...)
	build.Dir = filepath.Dir(work)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return dir
}

func testBinariesSyncAndStop(t *testing.T, bin string) {
	spec := graphsim.DemoSpec()
	const seats = 50 // fewer than the enabled members: the pool runs out
	e := entraTenant{ID: uuid.NewString(), ClientID: uuid.NewString(), Secret: "s3cret-" + uuid.NewString(),
		Dir: graphsim.Generate(spec)} // the same directory the simulator generates from the same spec
	sim := startProc(t, bin, "graphsim", nil, append(specArgs(spec),
		"-addr", "127.0.0.1:0", "-ca-out", filepath.Join(t.TempDir(), "ca.pem"),
		"-tenant-id", e.ID, "-client-id", e.ClientID, "-client-secret", e.Secret)...)
	simEnv := sim.printedSettings(t, "GRAPH_BASE_URL", "AZURE_AUTHORITY_HOST", "SSL_CERT_FILE")

	apiAddr := freeAddr(t)
	env := map[string]string{
		"DATABASE_URL": devenv.Database(t),
		"NATS_URL":     devenv.NATS(t),
		"SECRET_KEY":   randomHex(t, 32),
		"ADMIN_TOKEN":  adminToken,
		"API_ADDR":     apiAddr,
		"LOG_LEVEL":    "info",
	}
	for k, v := range simEnv {
		env[k] = v
	}
	var procs []*proc
	for _, name := range []string{"api", "fetcher", "reconciler"} {
		procs = append(procs, startProc(t, bin, name, env))
	}
	api := procs[0]
	healthz := "http://" + apiAddr + "/healthz"
	waitHealthy(t, api, healthz)
	h := &harness{t: t, api: "http://" + apiAddr}
	tenant := h.connect(e, seats)

	// The scheduler's first pass, at its start, finds the new tenant due
	// and its run goes through fetcher and reconciler.
	procs = append(procs, startProc(t, bin, "scheduler", env))
	if last := waitScheduledRun(h, tenant); last.Status != "succeeded" {
		t.Fatalf("scheduled run %s: %s", last.RunID, last.Status)
	}

	// A manual sync after it is a run of its own, and the app side is
	// the directory.
	run := h.sync(tenant)
	if run.Trigger != "manual" {
		t.Fatalf("the manual sync ran as %s run %s", run.Trigger, run.RunID)
	}
	wantUsers := expectedUsers(e.Dir, seats)
	users := h.users(tenant)
	if len(users) != len(wantUsers) {
		t.Errorf("/users lists %d users, the directory has %d members", len(users), len(wantUsers))
	}
	if got := run.Counts["usersInScope"]; got != int64(len(wantUsers)) {
		t.Errorf("run counts %d users in scope, the directory has %d members (counts %v)", got, len(wantUsers), run.Counts)
	}
	if d := diff(users, wantUsers, userKey); d != "" {
		t.Fatalf("users differ from Graph:\n%s", d)
	}
	if d := diff(h.groups(tenant), expectedGroups(e.Dir), groupKey); d != "" {
		t.Fatalf("groups differ from Graph:\n%s", d)
	}

	// Every service stops on SIGTERM within process.StopTimeout (30 s) plus
	// the time to close its connections.
	for _, p := range procs {
		p.signal(t, syscall.SIGTERM)
	}
	deadline := time.Now().Add(40 * time.Second)
	for _, p := range procs {
		p.expectCleanExit(t, time.Until(deadline))
	}
	client := &http.Client{Timeout: 5 * time.Second}
	if resp, err := client.Get(healthz); err == nil {
		resp.Body.Close()
		t.Errorf("api still answers after it exited: GET /healthz = %s", resp.Status)
	}
	sim.signal(t, syscall.SIGTERM)
	sim.expectCleanExit(t, 40*time.Second)
}

// testBinariesMissingVariable starts services without a variable they
// need, with NATS and Postgres otherwise there, and expects them to refuse
// to run and say why.
func testBinariesMissingVariable(t *testing.T, bin string) {
	env := map[string]string{
		"DATABASE_URL": devenv.Database(t),
		"NATS_URL":     devenv.NATS(t),
		"SECRET_KEY":   randomHex(t, 32),
		"ADMIN_TOKEN":  adminToken,
		"LOG_LEVEL":    "info",
	}
	for _, c := range []struct{ service, missing string }{
		{"fetcher", "DATABASE_URL"},
		{"api", "ADMIN_TOKEN"},
		{"reconciler", "NATS_URL"},
		{"scheduler", "SECRET_KEY"},
	} {
		t.Run(c.service+"Without"+c.missing, func(t *testing.T) {
			vars := map[string]string{"API_ADDR": freeAddr(t)}
			for k, v := range env {
				if k != c.missing {
					vars[k] = v
				}
			}
			p := startProc(t, bin, c.service, vars)
			code, ok := p.wait(15 * time.Second)
			switch {
			case !ok:
				t.Fatalf("%s without %s still runs after 15 s", c.service, c.missing)
			case code == 0:
				t.Fatalf("%s without %s exited with status 0", c.service, c.missing)
			case !strings.Contains(p.all.String(), c.missing):
				t.Fatalf("%s without %s exited with status %d but its output does not name %s:\n%s",
					c.service, c.missing, code, c.missing, p.all.String())
			}
		})
	}
}

// proc is a binary running as a child process, its output kept for the
// test's log.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *syncBuffer // standard output only
	all    *syncBuffer // standard output and error, interleaved
	done   chan struct{}
}

// startProc starts bin/name with exactly the variables in env (nothing is
// inherited from the test) and stops it, if still running, when the test
// ends. When the test failed, the process's output goes to the test log.
func startProc(t *testing.T, bin, name string, env map[string]string, args ...string) *proc {
	t.Helper()
	// Should the test binary die, its children die with it.
	return startProcAttr(t, bin, name, env, &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}, args...)
}

// startProcAttr is startProc with the process attributes given.
func startProcAttr(t *testing.T, bin, name string, env map[string]string, attr *syscall.SysProcAttr, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, stdout: &syncBuffer{}, all: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(bin, name), args...)
	p.cmd.Env = []string{}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	sort.Strings(p.cmd.Env)
	p.cmd.Stdout = io.MultiWriter(p.stdout, p.all)
	p.cmd.Stderr = p.all
	p.cmd.SysProcAttr = attr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if _, exited := p.wait(0); !exited {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s %s\nenvironment: %s\noutput:\n%s", name, strings.Join(args, " "),
				strings.Join(p.cmd.Env, " "), p.all.String())
		}
	})
	return p
}

// wait waits up to limit for the process to exit and returns its exit
// status (-1 when a signal killed it) and whether it has exited.
func (p *proc) wait(limit time.Duration) (int, bool) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), true
	case <-timer.C:
		return 0, false
	}
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Errorf("signal %s: %v", p.name, err)
	}
}

// expectCleanExit fails the test unless the process exits with status 0
// within limit.
func (p *proc) expectCleanExit(t *testing.T, limit time.Duration) {
	t.Helper()
	code, exited := p.wait(limit)
	switch {
	case !exited:
		t.Errorf("%s did not exit within 40 s of SIGTERM", p.name)
	case code != 0:
		t.Errorf("%s stopped with %s, want exit status 0", p.name, p.cmd.ProcessState)
	}
}

// printedSettings waits for the process to print a NAME=value line for
// each of names on its standard output and returns them.
func (p *proc) printedSettings(t *testing.T, names ...string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got := map[string]string{}
		out := p.stdout.String()
		complete := out[:strings.LastIndex(out, "\n")+1] // a line is read once it has ended
		for _, line := range strings.Split(complete, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				got[k] = v
			}
		}
		missing := 0
		for _, n := range names {
			if got[n] == "" {
				missing++
			}
		}
		if missing == 0 {
			return got
		}
		if code, exited := p.wait(0); exited {
			t.Fatalf("%s exited with status %d before printing %s", p.name, code, strings.Join(names, ", "))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has not printed %s after a minute", p.name, strings.Join(names, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runSummary is a tenant's lastRun in the api.
type runSummary struct {
	RunID   string `json:"runId"`
	Status  string `json:"status"`
	Trigger string `json:"trigger"`
}

// waitScheduledRun polls the tenant until its latest run is a scheduled
// one that has finished, and returns it.
func waitScheduledRun(h *harness, tenantID string) runSummary {
	h.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var v struct {
			LastRun *runSummary `json:"lastRun"`
		}
		if code := h.do("GET", "/v1/tenants/"+tenantID, nil, &v); code != http.StatusOK {
			h.t.Fatalf("GET tenant = %d", code)
		}
		if l := v.LastRun; l != nil && l.Trigger == "schedule" && (l.Status == "succeeded" || l.Status == "failed") {
			return *l
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no finished scheduled run after 2 minutes; last run %+v", v.LastRun)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitHealthy polls the api's health check until it answers 200.
func waitHealthy(t *testing.T, api *proc, url string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if code, exited := api.wait(0); exited {
			t.Fatalf("api exited with status %d before it was healthy", code)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s not 200 after a minute (last error %v)", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// specArgs are the graphsim flags that generate the tenant of spec.
func specArgs(s graphsim.Spec) []string {
	return []string{
		"-seed", strconv.FormatInt(s.Seed, 10), "-users", itoa(s.Users), "-guests", itoa(s.Guests),
		"-disabled", itoa(s.Disabled), "-nomail", itoa(s.NoMail), "-groups", itoa(s.Groups),
		"-depth", itoa(s.NestingDepth), "-devices", itoa(s.Devices), "-contacts", itoa(s.Contacts),
		"-cycle=" + strconv.FormatBool(s.Cycle),
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// syncBuffer is a bytes.Buffer that a process can write to while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
