package fleet_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/fleet"
	"github.com/entrasync/entrasync/services/graphsim"
)

// TestDemoInstructions follows what `make run` prints, with curl, against a
// fleet that has the demo tenant connected, and expects a finished sync.
func TestDemoInstructions(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	h := newHarness(t, 1, 1)
	dir := fleet.AddDemoDirectory(h.sim, graphsim.DemoSpec())
	tenant, err := fleet.ConnectDemoTenant(context.Background(), h.api, adminToken)
	must(t, err)

	lines := strings.Split(strings.TrimSpace(fleet.Instructions(h.api, adminToken, tenant)), "\n")
	var script []string // export, trigger, watch, users, groups
	for _, l := range lines {
		if !strings.HasPrefix(l, "#") {
			script = append(script, l)
		}
	}
	if len(script) != 5 {
		t.Fatalf("instructions have %d commands, want 5:\n%s", len(script), strings.Join(lines, "\n"))
	}
	sh := func(cmds ...string) string {
		out, err := exec.Command("bash", "-ec", strings.Join(cmds, "\n")).CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return string(out)
	}
	// The trigger line sets RUN; keep it for the next commands.
	runLine := sh(script[0], script[1])
	runID := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(runLine), "run "))
	if len(runID) != 36 {
		t.Fatalf("trigger printed %q, want a run id", runLine)
	}
	env := []string{script[0], "RUN=" + runID}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out := sh(append(env, script[2])...)
		if strings.Contains(out, `"succeeded"`) {
			break
		}
		if strings.Contains(out, `"failed"`) || time.Now().After(deadline) {
			t.Fatalf("demo run did not succeed: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	users := sh(append(env, script[3])...)
	members := 0
	for _, u := range dir.Users() {
		if u.UserType == "Member" {
			members++
		}
	}
	if !strings.Contains(users, `"items"`) || !strings.Contains(users, `"next"`) || members <= 5 {
		t.Fatalf("users answer %s (directory has %d members)", users, members)
	}
	if groups := sh(append(env, script[4])...); !strings.Contains(groups, `"entraMemberCount"`) {
		t.Fatalf("groups answer %s", groups)
	}
}
