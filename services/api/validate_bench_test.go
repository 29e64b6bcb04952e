package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkValidate measures what the contract's check costs a request
// before its handler runs: a run's status, the request a page that
// watches a sync sends again and again (two path parameters), and a
// settings change (a path parameter and a body).
func BenchmarkValidate(b *testing.B) {
	c, err := loadContract(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	const tenant, run = "0198f3c4-1111-7000-8000-000000000001", "0198f3c4-2222-7000-8000-000000000002"
	for _, bc := range []struct {
		name, method, path, url, body string
		values                        map[string]string
	}{
		{"get-run", "GET", "/v1/tenants/{tenantId}/syncs/{runId}", "/v1/tenants/" + tenant + "/syncs/" + run, "",
			map[string]string{"tenantId": tenant, "runId": run}},
		{"patch-settings", "PATCH", "/v1/tenants/{tenantId}", "/v1/tenants/" + tenant,
			`{"seats": 80}`, map[string]string{"tenantId": tenant}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			route, err := c.route(bc.method, bc.path)
			if err != nil {
				b.Fatal(err)
			}
			reached := 0
			h := c.validate(route, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				reached++
				w.WriteHeader(http.StatusNoContent)
			}))
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(bc.method, bc.url, strings.NewReader(bc.body))
				if bc.body != "" {
					r.Header.Set("Content-Type", "application/merge-patch+json")
				}
				for k, v := range bc.values {
					r.SetPathValue(k, v)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusNoContent {
					b.Fatalf("%s %s = %d: %s", bc.method, bc.url, w.Code, w.Body)
				}
			}
			if reached == 0 {
				b.Fatal("the handler was never reached")
			}
		})
	}
}
