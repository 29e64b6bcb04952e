package api

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestOpenAPIDescribesWhatTheHandlersSend keeps openapi.yaml and the code
// from drifting apart: every route and every JSON field the api sends must
// appear in the spec.
func TestOpenAPIDescribesWhatTheHandlersSend(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := string(raw)
	if !strings.HasPrefix(spec, "openapi: 3.1.") {
		t.Fatal("openapi.yaml is not OpenAPI 3.1")
	}
	for _, path := range []string{"/healthz", "/readyz", "/v1/tenants", "/v1/tenants/{tenantId}", "/v1/tenants/{tenantId}/syncs",
		"/v1/tenants/{tenantId}/syncs/{runId}", "/v1/tenants/{tenantId}/users", "/v1/tenants/{tenantId}/groups"} {
		if !strings.Contains(spec, "\n  "+path+":\n") {
			t.Errorf("openapi.yaml lacks the path %s", path)
		}
	}
	for _, v := range []any{tenantView{}, runSummary{}, runView{}, userView{}, groupView{}, page[userView]{}, apiError{}, errorBody{}, readiness{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !regexp.MustCompile(`\n\s+` + regexp.QuoteMeta(name) + `:`).MatchString(spec) {
				t.Errorf("openapi.yaml does not describe %s.%s", typ.Name(), name)
			}
		}
	}
	// And every field a client may send.
	for _, name := range []string{"name", "entraTenantId", "clientId", "clientSecret", "seats", "syncIntervalMinutes", "kind"} {
		if !regexp.MustCompile(`\n\s+` + name + `:`).MatchString(spec) {
			t.Errorf("openapi.yaml does not describe the request field %s", name)
		}
	}
}
