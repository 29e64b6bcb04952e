package api

import (
	"context"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/store"
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

// TestOpenAPIIsValid loads openapi.yaml as New does: a valid OpenAPI 3.1
// document whose examples match their schemas.
func TestOpenAPIIsValid(t *testing.T) {
	t.Parallel()
	c, err := loadContract(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !c.doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi.yaml is OpenAPI %s, want 3.1", c.doc.OpenAPI)
	}
	// Defaults the spec promises are the ones the code applies.
	create := c.doc.Components.Schemas["TenantCreate"].Value
	if d := create.Properties["syncIntervalMinutes"].Value.Default; d != float64(store.DefaultSyncInterval/time.Minute) {
		t.Errorf("syncIntervalMinutes default %v, the store's is %v", d, store.DefaultSyncInterval)
	}
}

// TestRoutesAreTheSpecsOperations: New refuses to start when a route has
// no operation in openapi.yaml or an operation has no route, so that a
// route can never skip the contract's checks.
func TestRoutesAreTheSpecsOperations(t *testing.T) {
	t.Parallel()
	c, err := loadContract(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	if _, err := s.routes(c); err != nil {
		t.Fatalf("the spec and the routes differ: %v", err)
	}
	c.doc.Paths.Delete("/v1/tenants/{tenantId}/users")
	if _, err := s.routes(c); err == nil || !strings.Contains(err.Error(), "differ") {
		t.Fatalf("routes with an operation missing from the spec: %v, want an error", err)
	}
}
