package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/entrasync/entrasync/services/graphsim"
)

// Demo tenant credentials, as registered in the simulator. They are not
// secrets: the simulator exists only on this machine.
const (
	DemoEntraTenantID = "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00"
	DemoClientID      = "3b9d2f64-1c8e-4a7b-b5d0-6e2f8a9c4d11"
	DemoClientSecret  = "demo-secret-only-for-the-local-simulator"
	DemoSeats         = 50
)

// DemoSpec is the demo directory: graphsim.DemoSpec, with users members
// when users (DEMO_USERS) is set and groups scaled along (one per 40
// users), to see a bigger tenant go through.
func DemoSpec(users string) (graphsim.Spec, error) {
	spec := graphsim.DemoSpec()
	if users == "" {
		return spec, nil
	}
	n, err := strconv.Atoi(users)
	if err != nil || n < 1 || n > 1_000_000 {
		return spec, fmt.Errorf("DEMO_USERS: %q is not a count from 1 to 1000000", users)
	}
	if n > spec.Users {
		spec.Groups = max(spec.Groups, n/40)
	}
	spec.Users = n
	return spec, nil
}

// AddDemoDirectory registers the demo tenant's directory, generated from
// spec (graphsim.DemoSpec unless the demo is asked to be bigger), in the
// simulator.
func AddDemoDirectory(sim *graphsim.Server, spec graphsim.Spec) *graphsim.Directory {
	dir := graphsim.Generate(spec)
	sim.AddTenant(DemoEntraTenantID, DemoClientID, DemoClientSecret, dir)
	return dir
}

// ConnectDemoTenant connects the demo tenant through the api, as a tenant
// admin would, and returns its entrasync id.
func ConnectDemoTenant(ctx context.Context, apiURL, adminToken string) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"name":          "Demo tenant",
		"entraTenantId": DemoEntraTenantID,
		"clientId":      DemoClientID,
		"clientSecret":  DemoClientSecret,
		"seats":         DemoSeats,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/v1/tenants", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("fleet: connect demo tenant: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("fleet: connect demo tenant: %s: %s", resp.Status, raw)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.ID == "" {
		return "", fmt.Errorf("fleet: connect demo tenant: unexpected answer %s", raw)
	}
	return out.ID, nil
}

// Instructions returns the shell commands that trigger and inspect a sync
// of a tenant, as printed by `make run`. Each non-comment line is one
// command; the end-to-end tests run them verbatim.
func Instructions(apiURL, adminToken, tenantID string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "export API=%s TOKEN=%s TENANT=%s\n", apiURL, adminToken, tenantID)
	b.WriteString("# trigger a sync; prints {\"runId\": ...}\n")
	b.WriteString(`RUN=$(curl -sf -X POST -H "Authorization: Bearer $TOKEN" $API/v1/tenants/$TENANT/syncs | sed -n 's/.*"runId": *"\([^"]*\)".*/\1/p'); echo "run $RUN"` + "\n")
	b.WriteString("# watch it (repeat until status is succeeded)\n")
	b.WriteString(`curl -sf -H "Authorization: Bearer $TOKEN" $API/v1/tenants/$TENANT/syncs/$RUN` + "\n")
	b.WriteString("# the synced users and groups\n")
	b.WriteString(`curl -sf -H "Authorization: Bearer $TOKEN" "$API/v1/tenants/$TENANT/users?limit=5"` + "\n")
	b.WriteString(`curl -sf -H "Authorization: Bearer $TOKEN" "$API/v1/tenants/$TENANT/groups?limit=5"` + "\n")
	return b.String()
}
