package fleet_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestMetricsAfterASync reads the api's /metrics after a sync: runs by
// status, the tenant's last success, dead letters and stream lag come from
// Postgres and JetStream at scrape time.
func TestMetricsAfterASync(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1)
	e := h.addEntraTenant(smallSpec)
	tenant := h.connect(e, 100)
	h.sync(tenant)
	resp, err := http.Get(h.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	body := string(raw)
	for _, want := range []string{
		`entrasync_runs_total{status="succeeded"} 1`,
		`entrasync_tenant_last_success_timestamp_seconds{tenant="` + tenant + `"}`,
		`entrasync_dead_letters_total{stream="SYNC_EVENTS"} 0`,
		`entrasync_stream_pending_messages{consumer="reconcilers",stream="SYNC_EVENTS"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}
