package fleet_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/graphsim"
)

// groupDetail is GET .../groups/{entraId}.
type groupDetail struct {
	EntraID          string     `json:"entraId"`
	DisplayName      string     `json:"displayName"`
	Kind             string     `json:"kind"`
	Status           string     `json:"status"`
	EntraMemberCount int        `json:"entraMemberCount"`
	Mail             *string    `json:"mail"`
	Description      *string    `json:"description"`
	MembershipType   string     `json:"membershipType"`
	MembershipRule   *string    `json:"membershipRule"`
	EntraUpdatedAt   *time.Time `json:"entraUpdatedAt"`
	NestedGroups     []named    `json:"nestedGroups"`
	NestedGroupCount int        `json:"nestedGroupCount"`
	Devices          []named    `json:"devices"`
	DeviceCount      int        `json:"deviceCount"`
	Contacts         int        `json:"contacts"`
	Roles            []string   `json:"roles"`
}

type named struct {
	EntraID     string `json:"entraId"`
	DisplayName string `json:"displayName"`
}

func (h *harness) groupDetail(tenant, group string) groupDetail {
	h.t.Helper()
	var g groupDetail
	if code := h.do("GET", "/v1/tenants/"+tenant+"/groups/"+group, nil, &g); code != http.StatusOK {
		h.t.Fatalf("GET group %s = %d", group, code)
	}
	return g
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

// TestGroupDetailsComeFromEntraID: a mail-enabled security group with a
// nested group, a named device and a contact, and a dynamic group, are
// shown with their kind, mail, description, membership type and rule,
// renewal time, nested groups, devices, contacts and roles, as the
// simulator has them. A device the app may no longer read keeps no name;
// a device removed from the group is gone from it; a local group has no
// Entra details. The runs read the whole directory: a delta round names
// no member (members@delta carries a type and an id), so a device it adds
// is named by the next full read.
func TestGroupDetailsComeFromEntraID(t *testing.T) {
	t.Parallel()
	h, e, tenant := syncedTenant(t, 100)
	user := members(e.Dir)[0]
	laptop := e.Dir.AddDevice(graphsim.Device{DisplayName: "FIN-LAPTOP-07", DeviceID: "7d2f0c55-9a3e-4b61-8f2a-0c1d2e3f4a5b",
		AccountEnabled: true, TrustType: "AzureAd"})
	contact := e.Dir.AddContact(graphsim.OrgContact{DisplayName: "Auditor Outside", Mail: "auditor@fabrikam.example"})
	finance := e.Dir.AddGroup(graphsim.Group{DisplayName: "Details Finance", Description: "Finance and controlling",
		Mail: "details-finance@contoso.example", MailNickname: "details-finance", SecurityEnabled: true, MailEnabled: true})
	payables := e.Dir.AddGroup(graphsim.Group{DisplayName: "Details Payables", SecurityEnabled: true})
	sales := e.Dir.AddGroup(graphsim.Group{DisplayName: "Details Sales", SecurityEnabled: true,
		GroupTypes: []string{"DynamicMembership"}, MembershipRule: `user.department -eq "Details Sales"`})
	for _, m := range []struct {
		group string
		m     graphsim.Member
	}{
		{finance.ID, graphsim.Member{ID: payables.ID, Type: graphsim.TypeGroup}},
		{finance.ID, graphsim.Member{ID: laptop.ID, Type: graphsim.TypeDevice}},
		{finance.ID, graphsim.Member{ID: contact.ID, Type: graphsim.TypeOrgContact}},
		{payables.ID, graphsim.Member{ID: user.ID, Type: graphsim.TypeUser}},
	} {
		if err := e.Dir.AddMember(m.group, m.m); err != nil {
			t.Fatal(err)
		}
	}
	h.syncFull(tenant)
	h.bindRole(tenant, finance.ID, "Controller")

	g := h.groupDetail(tenant, finance.ID)
	if g.Kind != "mailEnabledSecurity" || g.Status != "enabled" || str(g.Mail) != "details-finance@contoso.example" ||
		str(g.Description) != "Finance and controlling" || g.MembershipType != "assigned" || g.MembershipRule != nil ||
		g.EntraUpdatedAt == nil || g.EntraMemberCount != 1 || !slices.Equal(g.Roles, []string{"Controller"}) {
		t.Fatalf("finance: %+v (mail %s, description %s)", g, str(g.Mail), str(g.Description))
	}
	if want := []named{{payables.ID, "Details Payables"}}; !slices.Equal(g.NestedGroups, want) || g.NestedGroupCount != 1 {
		t.Errorf("finance's nested groups: %+v (%d), want %+v", g.NestedGroups, g.NestedGroupCount, want)
	}
	if want := []named{{laptop.ID, "FIN-LAPTOP-07"}}; !slices.Equal(g.Devices, want) || g.DeviceCount != 1 || g.Contacts != 1 {
		t.Errorf("finance's devices %+v (%d) and contacts %d, want %+v and 1", g.Devices, g.DeviceCount, g.Contacts, want)
	}
	renewed := *g.EntraUpdatedAt

	dyn := h.groupDetail(tenant, sales.ID)
	if dyn.Kind != "security" || dyn.MembershipType != "dynamic" || str(dyn.MembershipRule) != sales.MembershipRule ||
		dyn.Mail != nil || dyn.Description != nil || len(dyn.NestedGroups) != 0 || len(dyn.Devices) != 0 {
		t.Errorf("dynamic group: %+v (rule %s)", dyn, str(dyn.MembershipRule))
	}

	// The app loses Device.Read.All: Graph lists the device with its id
	// only, and the app shows it without a name.
	if err := h.sim.SetPermissions(e.ID, graphsim.Permissions{Unreadable: []graphsim.ObjectType{graphsim.TypeDevice}}); err != nil {
		t.Fatal(err)
	}
	h.syncFull(tenant)
	g = h.groupDetail(tenant, finance.ID)
	if want := []named{{laptop.ID, ""}}; !slices.Equal(g.Devices, want) {
		t.Errorf("devices without Device.Read.All: %+v, want %+v", g.Devices, want)
	}
	if g.EntraUpdatedAt == nil || !g.EntraUpdatedAt.Equal(renewed) {
		t.Errorf("the renewal time moved without a renewal: %v, was %v", g.EntraUpdatedAt, renewed)
	}

	// The device leaves the group: gone from it, and from the mirror.
	if err := e.Dir.RemoveMember(finance.ID, laptop.ID); err != nil {
		t.Fatal(err)
	}
	h.syncFull(tenant)
	if g = h.groupDetail(tenant, finance.ID); len(g.Devices) != 0 || g.DeviceCount != 0 || g.Contacts != 1 {
		t.Errorf("after the device left: devices %+v (%d), contacts %d", g.Devices, g.DeviceCount, g.Contacts)
	}
	var devices int
	if err := h.db.QueryRow(t.Context(), `SELECT count(*) FROM dir_devices WHERE tenant_id = $1`, tenant).Scan(&devices); err != nil {
		t.Fatal(err)
	}
	if devices != 0 {
		t.Errorf("%d devices are still mirrored after the only one left its only group", devices)
	}

	// A local group has no Entra details.
	var local struct{ EntraID string }
	if code := h.do("POST", "/v1/tenants/"+tenant+"/groups", map[string]any{"displayName": "Details Local"}, &local); code != http.StatusCreated {
		t.Fatalf("POST local group = %d", code)
	}
	if l := h.groupDetail(tenant, local.EntraID); l.Kind != "local" || l.MembershipType != "assigned" ||
		l.EntraUpdatedAt != nil || l.Mail != nil || len(l.NestedGroups) != 0 || l.EntraMemberCount != 0 {
		t.Errorf("local group: %+v", l)
	}
	if code := h.do("GET", "/v1/tenants/"+tenant+"/groups/00000000-0000-4000-8000-00000000dead", nil, nil); code != http.StatusNotFound {
		t.Errorf("GET an unknown group = %d, want 404", code)
	}
}
