package fleet_test

import (
	"strings"
	"testing"

	"github.com/entrasync/entrasync/services/fleet"
)

// TestSyncThroughAGraphURLWhoseHostIsNotGraphs reaches Graph by a URL
// whose host is not Graph's, as a gateway or proxy in GRAPH_BASE_URL
// would be, with no GRAPH_SCOPE set: the fetcher asks the authority for a
// token for Graph's resource, not for that host (which Entra ID, and the
// simulator, refuse with AADSTS500011), and the run succeeds.
func TestSyncThroughAGraphURLWhoseHostIsNotGraphs(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, 1, 1, func(c *fleet.Config) {
		// localhost is in the simulator's certificate; neither it nor
		// 127.0.0.1 is a host Entra ID knows a resource by.
		c.GraphBaseURL = strings.Replace(c.GraphBaseURL, "://127.0.0.1:", "://localhost:", 1)
		c.GraphScope = ""
	})
	e := h.addEntraTenant(smallSpec)
	tenant := h.connect(e, 1000)
	run := h.sync(tenant)
	if d := diff(h.users(tenant), expectedUsers(e.Dir, 1000), userKey); d != "" {
		t.Fatalf("users differ from Graph after run %s:\n%s", run.RunID, d)
	}
}
