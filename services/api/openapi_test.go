package api

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
)

// Every answer of every api test is checked against openapi.yaml as it
// comes (contract_test.go): its status, its schema, and no field the
// schema does not name.

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
	defaults, err := json.Marshal(plan.DefaultSettings())
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(defaults, &want); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"plan", "localEdits", "applyMode", "deletionGuard", "scope"} {
		if got := create.Properties[name].Value.Default; !reflect.DeepEqual(got, want[name]) {
			t.Errorf("openapi.yaml's default %s is %v, plan.DefaultSettings' %v", name, got, want[name])
		}
	}
}

// TestOpenAPILimitsAreThePlans: the settings' limits in openapi.yaml are
// the ones plan.Settings.Validate holds every other writer to, so a
// request the contract lets through is not refused later for a limit it
// did not state.
func TestOpenAPILimitsAreThePlans(t *testing.T) {
	t.Parallel()
	c, err := loadContract(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	schema := func(name string) *openapi3.Schema { return c.doc.Components.Schemas[name].Value }
	prop := func(s *openapi3.Schema, name string) *openapi3.Schema { return s.Properties[name].Value }
	max := func(s *openapi3.Schema) int {
		switch {
		case s.Max != nil:
			return int(*s.Max)
		case s.MaxLength != nil:
			return int(*s.MaxLength)
		case s.MaxItems != nil:
			return int(*s.MaxItems)
		}
		return -1
	}
	scope := schema("Scope")
	for _, c := range []struct {
		name   string
		schema *openapi3.Schema
		want   int
	}{
		{"Seats", schema("Seats"), plan.MaxSeats},
		{"deletionGuard.percent", prop(schema("DeletionGuard"), "percent"), 100},
		{"deletionGuard.minimum", prop(schema("DeletionGuard"), "minimum"), plan.MaxGuardMinimum},
		{"scope.groups", prop(scope, "groups"), plan.MaxScopeGroups},
		{"scope.userFilter", prop(scope, "userFilter"), plan.MaxUserFilter},
		{"scope.emailInclude", prop(scope, "emailInclude"), plan.MaxEmailPatterns},
		{"scope.emailExclude", prop(scope, "emailExclude"), plan.MaxEmailPatterns},
		{"EmailPattern", schema("EmailPattern"), plan.MaxEmailPattern},
	} {
		if got := max(c.schema); got != c.want {
			t.Errorf("openapi.yaml's %s limit is %d, plan's %d", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		name string
		want []string
	}{
		{"Plan", []string{string(plan.TierBasic), string(plan.TierBusiness), string(plan.TierPremium)}},
		{"LocalEdits", []string{string(plan.EditsKeep), string(plan.EditsOverwrite)}},
		{"ApplyMode", []string{string(plan.ApplyAuto), string(plan.ApplyReview)}},
		{"Role", plan.BuiltinRoles},
	} {
		var got []string
		for _, v := range schema(c.name).Enum {
			s, _ := v.(string)
			got = append(got, s)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("openapi.yaml's %s values %v, plan's %v", c.name, got, c.want)
		}
	}
}

// TestOpenAPIValuesAreTheStores: the values openapi.yaml lists for runs,
// plans and users are the ones the store and libs/plan produce, so that
// a client that handles the listed ones handles every answer.
func TestOpenAPIValuesAreTheStores(t *testing.T) {
	t.Parallel()
	c, err := loadContract(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	enum := func(s *openapi3.Schema) []string {
		var out []string
		for _, v := range s.Enum {
			if v, ok := v.(string); ok { // heldReason's null is the schema's, not a value
				out = append(out, v)
			}
		}
		slices.Sort(out)
		return out
	}
	schema := func(name string) *openapi3.Schema { return c.doc.Components.Schemas[name].Value }
	sorted := func(vs ...string) []string { return slices.Sorted(slices.Values(vs)) }
	var actions []string
	for _, a := range plan.Actions {
		actions = append(actions, string(a))
	}
	for _, c := range []struct {
		name string
		got  []string
		want []string
	}{
		{"RunStatus", enum(schema("RunStatus")), sorted(store.StatusQueued, store.StatusRunning, store.StatusApplying,
			store.StatusAwaitingApproval, store.StatusSucceeded, store.StatusRejected, store.StatusFailed)},
		{"Run.heldReason", enum(schema("Run").Properties["heldReason"].Value),
			sorted(string(plan.HeldDeletionGuard), string(plan.HeldReview))},
		{"PlanAction", enum(schema("PlanAction")), sorted(actions...)},
		{"Notification.kind", enum(schema("Notification").Properties["kind"].Value),
			sorted(plan.NoticeRunHeld, plan.NoticeSeatsExhausted, plan.NoticeSyncFailed, plan.NoticeSyncCompleted)},
		{"Notification.status", enum(schema("Notification").Properties["status"].Value),
			sorted(store.NotificationPending, store.NotificationDelivered, store.NotificationFailed)},
		{"User.license", enum(schema("User").Properties["license"].Value),
			sorted(store.LicenseAssigned, store.LicenseNone, store.LicenseDisabled)},
		{"UserPatch.license", enum(schema("UserPatch").Properties["license"].Value),
			sorted(store.LicenseAssigned, store.LicenseDisabled)},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("openapi.yaml's %s values %v, the store's %v", c.name, c.got, c.want)
		}
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

// TestParametersAreCheckedAsOpenAPI30: the contract checks parameters with
// kin-openapi's OpenAPI 3.0 validator (see contract.paramDoc), so it
// refuses to load a spec with a parameter schema that validator could
// read otherwise than JSON Schema 2020-12 does.
func TestParametersAreCheckedAsOpenAPI30(t *testing.T) {
	t.Parallel()
	c, err := loadContract(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.paramDoc.IsOpenAPI31OrLater() || !c.doc.IsOpenAPI31OrLater() {
		t.Fatalf("parameters checked as OpenAPI %s, bodies as %s; want 3.0 and 3.1", c.paramDoc.OpenAPI, c.doc.OpenAPI)
	}
	if err := checkParamSchemas(c.doc); err != nil {
		t.Fatalf("the spec's parameters: %v", err)
	}
	p := c.doc.Components.Parameters["after"].Value
	p.Schema = openapi3.NewSchemaRef("", &openapi3.Schema{Type: &openapi3.Types{"string", "null"}})
	if err := checkParamSchemas(c.doc); err == nil || !strings.Contains(err.Error(), "parameter after") {
		t.Fatalf("a parameter that may be null: %v, want an error naming it", err)
	}
}
