package fleet_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/services/graphsim"
)

// BenchmarkReportRSS runs the api, a fetcher and a reconciler as the
// real binaries, each its own process, through a first full sync of a
// tenant of each of the two largest BENCH_SIZES, and reports each
// process's peak resident set (VmHWM). The Graph simulator runs in the
// benchmark's process, without latency or budget (memory, not time, is
// measured here), and is not counted.
func BenchmarkReportRSS(b *testing.B) {
	sizes := benchSizes(b)
	if len(sizes) > 2 {
		sizes = sizes[len(sizes)-2:]
	}
	bin := buildServices(b, "api", "fetcher", "reconciler")
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) { benchRSS(b, bin, n) })
	}
}

func benchRSS(b *testing.B, bin string, n int) {
	sim, err := graphsim.New(graphsim.Options{Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sim.Close() })
	ca := filepath.Join(b.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, sim.CAPEM(), 0o644); err != nil {
		b.Fatal(err)
	}
	e := entraTenant{ID: uuid.NewString(), ClientID: uuid.NewString(), Secret: "s3cret-" + uuid.NewString(),
		Dir: graphsim.Generate(benchSpec(n, 9_200))}
	sim.AddTenant(e.ID, e.ClientID, e.Secret, e.Dir)

	apiAddr := benchFreeAddr(b)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := []string{
		"DATABASE_URL=" + devenv.Database(b), "NATS_URL=" + devenv.NATS(b),
		"SECRET_KEY=" + hex.EncodeToString(key), "ADMIN_TOKEN=" + adminToken, "API_ADDR=" + apiAddr,
		"LOG_LEVEL=warn", "GRAPH_BASE_URL=" + sim.GraphURL(), "AZURE_AUTHORITY_HOST=" + sim.AuthorityURL(),
		"SSL_CERT_FILE=" + ca,
	}
	names := []string{"api", "fetcher", "reconciler"}
	procs := map[string]*exec.Cmd{}
	for _, name := range names {
		procs[name] = startService(b, bin, name, env)
	}
	h := &harness{t: b, api: "http://" + apiAddr}
	waitAPI(b, h.api+"/healthz")
	tenant := h.connect(e, n)
	start := time.Now()
	v, done := waitRun(h, tenant, h.trigger(tenant))
	b.ReportMetric(float64(n), "users")
	b.ReportMetric(done.Sub(start).Seconds(), "sync-s")
	b.ReportMetric(float64(v.Counts["usersInScope"]), "users-in-scope")
	for _, name := range names {
		kib := peakRSSOf(b, procs[name].Process.Pid)
		b.ReportMetric(float64(kib)/1024, "rss-"+name+"-MB")
	}
}

// buildServices builds services/<name>/cmd/<name> for each name into a
// temporary directory, from the workspace root, and returns it.
func buildServices(b *testing.B, names ...string) string {
	b.Helper()
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil {
		b.Fatalf("go env GOWORK: %v", err)
	}
	work := strings.TrimSpace(string(out))
	if work == "" || work == "off" {
		b.Fatalf("go env GOWORK = %q: the services are built from the workspace root", work)
	}
	dir := b.TempDir()
	args := []string{"build", "-o", dir}
	for _, name := range names {
		args = append(args, "./services/"+name+"/cmd/"+name)
	}
	build := exec.Command("go", args...)
	build.Dir = filepath.Dir(work)
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return dir
}

// startService starts bin/name with exactly env and kills it when the
// benchmark ends (and when the benchmark's process dies).
func startService(b *testing.B, bin, name string, env []string) *exec.Cmd {
	b.Helper()
	var out bytes.Buffer
	cmd := exec.Command(filepath.Join(bin, name))
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if b.Failed() {
			b.Logf("%s output:\n%s", name, out.String())
		}
	})
	return cmd
}

// waitAPI polls the api's health check until it answers 200.
func waitAPI(b *testing.B, url string) {
	b.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	devenv.WaitFor(b, time.Minute, "GET "+url+" to answer 200", func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// peakRSSOf is a process's peak resident set in KiB (VmHWM).
func peakRSSOf(b *testing.B, pid int) uint64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// benchFreeAddr returns a loopback address with a port that was free a
// moment ago.
func benchFreeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
