package fleet_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/devenv"
)

// TestMetricsAfterASync reads the api's /metrics after a sync: runs by
// status, the tenant's last success, dead letters and stream lag come from
// Postgres and JetStream at scrape time; Graph requests, pages applied and
// the run's duration were recorded by the fetcher and reconciler.
func TestMetricsAfterASync(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	e := h.addEntraTenant(smallSpec)
	tenant := h.connect(e, 100)
	h.sync(tenant)
	want := []string{
		`entrasync_runs_total{status="succeeded"} 1`,
		`entrasync_tenant_last_success_timestamp_seconds{tenant="` + tenant + `"}`,
		`entrasync_dead_letters_total{stream="SYNC_EVENTS"} 0`,
		`entrasync_stream_pending_messages{consumer="reconcilers",stream="SYNC_EVENTS"}`,
		`entrasync_graph_requests_total{code="200"}`,
		`entrasync_pages_applied_total`,
		`entrasync_apply_seconds_count`,
		`entrasync_run_duration_seconds_count 1`,
	}
	// The reconciler records the run's end just after the api can show
	// it succeeded: scrape until everything is there.
	var body string
	var missing []string
	devenv.WaitFor(t, 10*time.Second, "every metric on /metrics", func() bool {
		resp, err := http.Get(h.api + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body, missing = string(raw), nil
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = append(missing, w)
			}
		}
		if len(missing) > 0 {
			t.Logf("/metrics still lacks %v", missing)
		}
		return len(missing) == 0
	})
}
