package fleet_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/services/fleet"
	"github.com/entrasync/entrasync/services/graphsim"
)

// TestPowerCut kills what `make run` runs, as a power cut would: the fleet
// with its embedded NATS and its private Postgres, the whole process
// group at once, in the middle of the demo tenant's first run. Started
// again on the same state, the interrupted run finishes and succeeds,
// and the app side is the directory.
func TestPowerCut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the whole fleet")
	}
	t.Parallel()
	bin := buildBinaries(t, "fleet")
	const demoUsers = "3000" // a run long enough to be cut in the middle
	apiAddr := freeAddr(t)
	runDir := t.TempDir()
	env := map[string]string{
		"ENTRASYNC_RUN_DIR": runDir,
		"API_ADDR":          apiAddr,
		"ADMIN_TOKEN":       adminToken,
		"DEMO_USERS":        demoUsers,
		"LOG_LEVEL":         "warn",
		"PATH":              os.Getenv("PATH"),
	}
	for k, v := range chaosTimings {
		env[k] = v
	}
	// Its own process group, as make run's: Postgres and its backends are
	// children of the fleet and share the group.
	group := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	healthz := "http://" + apiAddr + "/healthz"
	h := &harness{t: t, api: "http://" + apiAddr}

	first := startProcAttr(t, bin, "fleet", env, group)
	waitHealthy(t, first, healthz)
	var tenant string
	devenv.WaitFor(t, time.Minute, "the demo tenant to be connected", func() bool {
		b, err := os.ReadFile(filepath.Join(runDir, "demo-tenant"))
		tenant = strings.TrimSpace(string(b))
		return err == nil && tenant != ""
	})
	// The cut comes as soon as the scheduler's first run is under way.
	var run runSummary
	devenv.WaitFor(t, time.Minute, "the demo tenant's first run to be under way", func() bool {
		var v struct {
			LastRun *runSummary `json:"lastRun"`
		}
		if code := h.do("GET", "/v1/tenants/"+tenant, nil, &v); code != http.StatusOK {
			t.Fatalf("GET tenant = %d", code)
		}
		if v.LastRun == nil {
			return false
		}
		run = *v.LastRun
		switch run.Status {
		case "succeeded", "failed":
			t.Fatalf("the first run %s ended %s before the cut: make it longer", run.RunID, run.Status)
		}
		return run.Status == "running" || run.Status == "applying"
	})
	if err := syscall.Kill(-first.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, exited := first.wait(30 * time.Second); !exited {
		t.Fatal("the fleet still runs 30 s after SIGKILL")
	}
	t.Logf("cut the power while run %s was %s", run.RunID, run.Status)

	second := startProcAttr(t, bin, "fleet", env, group)
	waitHealthy(t, second, healthz)
	if v := h.wait(tenant, run.RunID); v.Status != "succeeded" {
		t.Fatalf("the interrupted run %s ended %s: %s", v.RunID, v.Status, v.Error)
	}
	spec, err := fleet.DemoSpec(demoUsers)
	if err != nil {
		t.Fatal(err)
	}
	want := expectedUsers(graphsim.Generate(spec), fleet.DemoSeats)
	if d := diff(h.users(tenant), want, userKey); d != "" {
		t.Fatalf("after the power cut, users differ from Graph:\n%s", d)
	}

	second.signal(t, syscall.SIGTERM)
	second.expectCleanExit(t, 40*time.Second)
}
