package graphsim_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/services/graphsim"
)

var userDefaultSet = []string{"businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
	"officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"}

func sorted(s []string) []string { s = slices.Clone(s); sort.Strings(s); return s }

func TestPagingCoversEveryUserOnce(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 21, Users: 1200, Guests: 20, Disabled: 10, NoMail: 10, Groups: 5}))
	var want []string
	for _, u := range tc.dir.Users() {
		want = append(want, u.ID)
	}
	for _, c := range []struct {
		query string
		pages int
	}{
		{"", (len(want) + 99) / 100}, // Graph's default page size is 100
		{"?$top=1", len(want)},
		{"?$top=7", (len(want) + 6) / 7},
		{"?$top=999", (len(want) + 998) / 999},
		{"?$top=999&$select=id,accountEnabled", (len(want) + 998) / 999},
	} {
		items, pages := s.listAll(tc.token, "/users"+c.query)
		if got := ids(items); !slices.Equal(got, want) {
			t.Errorf("%s: %d ids, want every one of %d exactly once in id order", c.query, len(got), len(want))
		}
		if pages != c.pages {
			t.Errorf("%s: %d pages, want %d", c.query, pages, c.pages)
		}
	}
}

func TestNextLinkCarriesTheQuery(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 22, Users: 30}))
	first := s.get(tc.token, "/users?$top=5&$select=id,userType")
	next, _ := first.body["@odata.nextLink"].(string)
	u, err := url.Parse(next)
	if err != nil || !strings.HasPrefix(next, s.srv.GraphURL()+"/users?") {
		t.Fatalf("nextLink %q is not an absolute URL of /users", next)
	}
	q := u.Query()
	if q.Get("$top") != "5" || q.Get("$select") != "id,userType" || q.Get("$skiptoken") == "" {
		t.Fatalf("nextLink %s lacks the original options or a $skiptoken", next)
	}

	// Verbatim, or with only the $skiptoken: the same page.
	verbatim := s.get(tc.token, next)
	bare := s.get(tc.token, "/users?$skiptoken="+url.QueryEscape(q.Get("$skiptoken")))
	if verbatim.status != 200 || bare.status != 200 || !slices.Equal(ids(verbatim.values()), ids(bare.values())) || len(bare.values()) != 5 {
		t.Fatalf("following the nextLink: %d %s / bare token: %d %s", verbatim.status, verbatim.raw, bare.status, bare.raw)
	}
	if got := sorted(keys(bare.values()[0])); !slices.Equal(got, []string{"id", "userType"}) {
		t.Errorf("bare token page has properties %v; the token must carry $select", got)
	}

	// One character of the token changed: to 'x', or to 'y' where it is
	// an 'x' already (the token is random; 1 in 64 has one there).
	tok := q.Get("$skiptoken")
	other := "x"
	if tok[20] == 'x' {
		other = "y"
	}
	for name, path := range map[string]string{
		"other options":    "/users?$top=6&$select=id,userType&$skiptoken=" + url.QueryEscape(tok),
		"garbled":          "/users?$skiptoken=" + url.QueryEscape(tok[:20]+other+tok[21:]),
		"not base64":       "/users?$skiptoken=%25%25%25",
		"other collection": "/groups?$skiptoken=" + url.QueryEscape(q.Get("$skiptoken")),
	} {
		r := s.get(tc.token, path)
		if code, _ := r.graphErr(); r.status != http.StatusBadRequest || code == "" {
			t.Errorf("%s: %d %s; want 400 with a Graph error", name, r.status, r.raw)
		}
	}
}

func TestPagingIsExactWhileTheDirectoryChanges(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 23, Users: 50}))
	first := s.get(tc.token, "/users?$top=10&$select=id")
	seen := ids(first.values())
	users := tc.dir.Users()
	// Delete a user not yet served and add one: neither shifts the others.
	victim := users[30].ID
	if err := tc.dir.DeleteUser(victim); err != nil {
		t.Fatal(err)
	}
	added := tc.dir.AddUser(graphsim.User{GivenName: "Late", Surname: "Comer", AccountEnabled: true})
	rest, _ := s.listAll(tc.token, first.body["@odata.nextLink"].(string))
	all := append(seen, ids(rest)...)
	var want []string
	for _, u := range tc.dir.Users() {
		if u.ID > seen[len(seen)-1] || slices.Contains(seen, u.ID) {
			want = append(want, u.ID)
		}
	}
	if !slices.Equal(all, want) {
		t.Fatalf("paged %d ids, want %d: unchanged users must appear exactly once", len(all), len(want))
	}
	if slices.Contains(all, victim) {
		t.Error("deleted user was served")
	}
	if added.ID > seen[len(seen)-1] && !slices.Contains(all, added.ID) {
		t.Error("user added ahead of the cursor was not served")
	}
}

func TestSelectDefaultSets(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 24, Users: 20, NoMail: 3, Guests: 2, Groups: 6}))
	var noMail graphsim.User
	for _, u := range tc.dir.Users() {
		if u.Mail == "" {
			noMail = u
		}
	}
	cases := []struct {
		name string
		path string
		want []string
	}{
		{"users default", "/users", userDefaultSet},
		{"users selected", "/users?$select=id,accountEnabled,userType,department", []string{"id", "accountEnabled", "userType", "department"}},
		{"select is case-insensitive", "/users?$select=ID,AccountEnabled", []string{"id", "accountEnabled"}},
		{"select without id", "/users?$select=displayName", []string{"displayName"}},
		{"user by id", "/users/" + noMail.ID, append([]string{"@odata.context"}, userDefaultSet...)},
		{"user by UPN", "/users/" + noMail.UserPrincipalName + "?$select=mail,accountEnabled", []string{"@odata.context", "mail", "accountEnabled"}},
		{"groups default", "/groups?$top=1", []string{"id", "deletedDateTime", "classification", "createdDateTime", "creationOptions", "description",
			"displayName", "expirationDateTime", "groupTypes", "isAssignableToRole", "mail", "mailEnabled", "mailNickname", "membershipRule",
			"membershipRuleProcessingState", "onPremisesDomainName", "onPremisesLastSyncDateTime", "onPremisesNetBiosName", "onPremisesSamAccountName",
			"onPremisesSecurityIdentifier", "onPremisesSyncEnabled", "preferredDataLocation", "preferredLanguage", "proxyAddresses", "renewedDateTime",
			"resourceBehaviorOptions", "resourceProvisioningOptions", "securityEnabled", "securityIdentifier", "theme", "visibility",
			"onPremisesProvisioningErrors", "serviceProvisioningErrors"}},
	}
	for _, c := range cases {
		r := s.get(tc.token, c.path)
		if r.status != http.StatusOK {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
			continue
		}
		objs := []map[string]any{r.body}
		if _, isList := r.body["value"]; isList {
			objs = r.values()
		}
		for _, o := range objs {
			if got := sorted(keys(o)); !slices.Equal(got, sorted(c.want)) {
				t.Errorf("%s: properties %v, want %v", c.name, got, sorted(c.want))
				break
			}
		}
	}

	// Nulls and empty collections as Graph sends them.
	r := s.get(tc.token, "/users/"+noMail.ID)
	if v, ok := r.body["mail"]; !ok || v != nil {
		t.Errorf("mail of a mail-less user: %v (present %v), want null", v, ok)
	}
	if v, ok := r.body["businessPhones"].([]any); !ok || len(v) != 0 {
		t.Errorf("businessPhones = %v, want []", r.body["businessPhones"])
	}
	if !strings.HasSuffix(r.body["@odata.context"].(string), "/v1.0/$metadata#users/$entity") {
		t.Errorf("@odata.context = %v", r.body["@odata.context"])
	}
	list := s.get(tc.token, "/users?$select=id,displayName")
	if ctx := list.body["@odata.context"].(string); ctx != s.srv.GraphURL()+"/$metadata#users(id,displayName)" {
		t.Errorf("@odata.context = %s", ctx)
	}

	for _, bad := range []string{"/users?$select=id,shoeSize", "/groups?$select=accountEnabled", "/users/" + noMail.ID + "?$select=nope"} {
		r := s.get(tc.token, bad)
		code, msg := r.graphErr()
		if r.status != http.StatusBadRequest || code != "BadRequest" || !strings.Contains(msg, "Could not find a property named") {
			t.Errorf("%s: %d %s %q; want 400 BadRequest naming the property", bad, r.status, code, msg)
		}
	}
}

func TestMemberListsAndCastSegments(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 25, Users: 120, Groups: 14, NestingDepth: 3, Devices: 6, Contacts: 4, Cycle: true}))
	d := tc.dir
	odataType := map[graphsim.ObjectType]string{
		graphsim.TypeUser: "#microsoft.graph.user", graphsim.TypeGroup: "#microsoft.graph.group",
		graphsim.TypeDevice: "#microsoft.graph.device", graphsim.TypeOrgContact: "#microsoft.graph.orgContact",
	}
	// Pick groups that hold every member type between them.
	check := func(path string, want []graphsim.Member, mixed bool, context string) {
		t.Helper()
		items, _ := s.listAll(tc.token, path)
		first := s.get(tc.token, path)
		if got := first.body["@odata.context"]; got != s.srv.GraphURL()+"/$metadata#"+context {
			t.Errorf("%s: @odata.context %v, want #%s", path, got, context)
		}
		var wantIDs []string
		for _, m := range want {
			wantIDs = append(wantIDs, m.ID)
		}
		if got := ids(items); !slices.Equal(got, wantIDs) {
			t.Errorf("%s: %d items, want %d", path, len(got), len(wantIDs))
			return
		}
		for i, it := range items {
			typ, has := it["@odata.type"]
			switch {
			case mixed && typ != odataType[want[i].Type]:
				t.Errorf("%s: item %s has @odata.type %v, want %s", path, want[i].ID, typ, odataType[want[i].Type])
			case !mixed && has:
				t.Errorf("%s: cast item carries @odata.type %v", path, typ)
			}
		}
	}
	only := func(ms []graphsim.Member, typ graphsim.ObjectType) []graphsim.Member {
		var out []graphsim.Member
		for _, m := range ms {
			if m.Type == typ {
				out = append(out, m)
			}
		}
		return out
	}
	seen := map[graphsim.ObjectType]bool{}
	for _, g := range d.Groups() {
		direct, trans := d.DirectMembers(g.ID), d.TransitiveMembers(g.ID)
		for _, m := range trans {
			seen[m.Type] = true
		}
		base := "/groups/" + g.ID
		check(base+"/members?$top=7", direct, true, "directoryObjects")
		check(base+"/transitiveMembers?$top=7&$select=id", trans, true, "directoryObjects(id)")
		check(base+"/transitivemembers/graph.user?$select=id", only(trans, graphsim.TypeUser), false, "users(id)")
		check(base+"/transitiveMembers/microsoft.graph.user", only(trans, graphsim.TypeUser), false, "users")
		check(base+"/members/microsoft.graph.user?$top=3", only(direct, graphsim.TypeUser), false, "users")
		check(base+"/members/graph.group", only(direct, graphsim.TypeGroup), false, "groups")
		check(base+"/transitiveMembers/graph.device", only(trans, graphsim.TypeDevice), false, "devices")
		check(base+"/transitiveMembers/Microsoft.Graph.OrgContact", only(trans, graphsim.TypeOrgContact), false, "contacts")
		check(base+"/transitiveMembers/graph.servicePrincipal", nil, false, "servicePrincipals")
	}
	for _, typ := range []graphsim.ObjectType{graphsim.TypeUser, graphsim.TypeGroup, graphsim.TypeDevice, graphsim.TypeOrgContact} {
		if !seen[typ] {
			t.Errorf("no group has a %s member: the test did not cover it", typ)
		}
	}

	// In the cycle, each group reaches the other but never itself.
	cycle := d.CycleGroups()
	for i, g := range cycle {
		items, _ := s.listAll(tc.token, "/groups/"+g+"/transitiveMembers/graph.group?$select=id")
		got := ids(items)
		if slices.Contains(got, g) || !slices.Contains(got, cycle[1-i]) {
			t.Errorf("cycle group %s: transitive groups %v", g, got)
		}
	}
}

// An app without permission to read a member type still sees members of
// that type, with limited information: @odata.type and id, every other
// property null (concepts/permissions-overview.md). Two tenants with the
// same generated directory are compared item by item: one reads
// everything, the other may not read devices and contacts.
func TestUnreadableMemberTypesComeLimited(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	spec := graphsim.Spec{Seed: 25, Users: 120, Groups: 14, NestingDepth: 3, Devices: 6, Contacts: 4, Cycle: true}
	full, limited := s.addTenant(graphsim.Generate(spec)), s.addTenant(graphsim.Generate(spec))
	if err := s.srv.SetPermissions(limited.id, graphsim.Permissions{
		Unreadable: []graphsim.ObjectType{graphsim.TypeDevice, graphsim.TypeOrgContact},
	}); err != nil {
		t.Fatal(err)
	}
	odataType := map[graphsim.ObjectType]string{
		graphsim.TypeUser: "#microsoft.graph.user", graphsim.TypeGroup: "#microsoft.graph.group",
		graphsim.TypeDevice: "#microsoft.graph.device", graphsim.TypeOrgContact: "#microsoft.graph.orgContact",
	}
	// limitedOf is what Graph sends instead of a full item: the id and,
	// in mixed lists, @odata.type; every other property null.
	limitedOf := func(item map[string]any, id string) map[string]any {
		out := map[string]any{}
		for k, v := range item {
			if k == "@odata.type" {
				out[k] = v
			} else {
				out[k] = nil
			}
		}
		out["id"] = id
		return out
	}
	// check lists path as tc and checks each item against fullItems, the
	// same list as an app that reads everything sees it: equal for
	// readable types, limited for the others. want is the directory's
	// member list.
	check := func(tc *tenantCreds, path string, fullItems []map[string]any, want []graphsim.Member, unreadable ...graphsim.ObjectType) {
		t.Helper()
		got, _ := s.listAll(tc.token, path)
		if len(fullItems) != len(want) || len(got) != len(want) {
			t.Errorf("%s: %d items (full access: %d), want %d", path, len(got), len(fullItems), len(want))
			return
		}
		for i, m := range want {
			exp := fullItems[i]
			if slices.Contains(unreadable, m.Type) {
				exp = limitedOf(exp, m.ID)
			}
			if !reflect.DeepEqual(got[i], exp) {
				t.Errorf("%s: %s %s:\n got %v\nwant %v", path, m.Type, m.ID, got[i], exp)
			}
		}
	}
	// compare checks the limited tenant against the full one.
	compare := func(path string, want []graphsim.Member, unreadable ...graphsim.ObjectType) {
		t.Helper()
		fullItems, _ := s.listAll(full.token, path)
		check(limited, path, fullItems, want, unreadable...)
	}
	only := func(ms []graphsim.Member, typ graphsim.ObjectType) []graphsim.Member {
		var out []graphsim.Member
		for _, m := range ms {
			if m.Type == typ {
				out = append(out, m)
			}
		}
		return out
	}
	hidden := []graphsim.ObjectType{graphsim.TypeDevice, graphsim.TypeOrgContact}
	seen := map[graphsim.ObjectType]int{}
	for _, g := range full.dir.Groups() {
		direct, trans := full.dir.DirectMembers(g.ID), full.dir.TransitiveMembers(g.ID)
		for _, m := range direct {
			seen[m.Type]++
		}
		base := "/groups/" + g.ID
		compare(base+"/members?$top=4", direct, hidden...)
		compare(base+"/members?$select=id,displayName,mail,deviceId", direct, hidden...)
		compare(base+"/transitiveMembers?$select=displayName&$top=5", trans, hidden...)
		compare(base+"/transitiveMembers", trans, hidden...)
		// Casts keep the limited form (the docs do not say otherwise).
		compare(base+"/transitiveMembers/graph.device", only(trans, graphsim.TypeDevice), hidden...)
		compare(base+"/members/microsoft.graph.orgContact?$select=id,mail", only(direct, graphsim.TypeOrgContact), hidden...)
		compare(base+"/transitiveMembers/graph.user?$select=id,accountEnabled", only(trans, graphsim.TypeUser), hidden...)
		compare(base+"/members/graph.group", only(direct, graphsim.TypeGroup), hidden...)
	}
	for _, typ := range []graphsim.ObjectType{graphsim.TypeUser, graphsim.TypeGroup, graphsim.TypeDevice, graphsim.TypeOrgContact} {
		if seen[typ] == 0 {
			t.Errorf("no group has a direct %s member: the test did not cover it", typ)
		}
	}

	// On the wire, exactly: a device and a contact with the id, the
	// selected properties as null, and nothing else.
	for _, typ := range hidden {
		var group string
		var member graphsim.Member
		for _, g := range limited.dir.Groups() {
			if ms := only(limited.dir.DirectMembers(g.ID), typ); len(ms) > 0 {
				group, member = g.ID, ms[0]
				break
			}
		}
		items, _ := s.listAll(limited.token, "/groups/"+group+"/members?$select=displayName,mail")
		var got map[string]any
		for _, it := range items {
			if it["id"] == member.ID {
				got = it
			}
		}
		want := map[string]any{"@odata.type": odataType[typ], "id": member.ID, "displayName": nil}
		if typ == graphsim.TypeOrgContact {
			want["mail"] = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s member %s with $select=displayName,mail: %v, want %v", typ, member.ID, got, want)
		}
	}

	// $count and the users list do not change.
	g := limited.dir.Groups()[0].ID
	for _, path := range []string{"/groups/" + g + "/transitiveMembers/$count", "/users?$top=50", "/groups/" + g} {
		a, b := s.get(full.token, path, "ConsistencyLevel", "eventual"), s.get(limited.token, path, "ConsistencyLevel", "eventual")
		delete(a.body, "@odata.nextLink")
		delete(b.body, "@odata.nextLink")
		if a.status != http.StatusOK || a.raw == "" || !reflect.DeepEqual(a.body, b.body) || a.body == nil && a.raw != b.raw {
			t.Errorf("%s differs: full %d %.200s, limited %d %.200s", path, a.status, a.raw, b.status, b.raw)
		}
	}

	// The permissions of "" apply to every tenant without its own; a zero
	// Permissions drops a tenant's own (it then falls back to ""), and a
	// zero Permissions for "" gives everyone full access again.
	fullLists := map[string][]map[string]any{}
	for _, g := range full.dir.Groups() {
		fullLists[g.ID], _ = s.listAll(full.token, "/groups/"+g.ID+"/members")
	}
	if err := s.srv.SetPermissions("", graphsim.Permissions{Unreadable: []graphsim.ObjectType{graphsim.TypeUser, graphsim.TypeGroup}}); err != nil {
		t.Fatal(err)
	}
	if err := s.srv.SetPermissions(limited.id, graphsim.Permissions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []*tenantCreds{full, limited} {
		for _, g := range full.dir.Groups() {
			check(tc, "/groups/"+g.ID+"/members", fullLists[g.ID], full.dir.DirectMembers(g.ID), graphsim.TypeUser, graphsim.TypeGroup)
		}
	}
	if err := s.srv.SetPermissions("", graphsim.Permissions{}); err != nil {
		t.Fatal(err)
	}
	for _, g := range full.dir.Groups() {
		check(limited, "/groups/"+g.ID+"/members", fullLists[g.ID], full.dir.DirectMembers(g.ID))
	}

	err := s.srv.SetPermissions(limited.id, graphsim.Permissions{Unreadable: []graphsim.ObjectType{"printer"}})
	if !errors.Is(err, graphsim.ErrInvalid) {
		t.Errorf("unknown member type: %v, want ErrInvalid", err)
	}
}

func TestGraphErrors(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 26, Users: 10, Groups: 3}))
	group := tc.dir.Groups()[0].ID
	const missing = "0f0f0f0f-0000-4000-8000-000000000000"
	cases := []struct {
		name, method, path string
		headers            []string
		status             int
		code, message      string
	}{
		{"unknown user", "GET", "/users/" + missing, nil, 404, "Request_ResourceNotFound", "Resource '" + missing + "' does not exist or one of its queried reference-property objects are not present."},
		{"unknown group", "GET", "/groups/" + missing + "/members", nil, 404, "Request_ResourceNotFound", "Resource '" + missing + "'"},
		{"group key not a GUID", "GET", "/groups/sales/members", nil, 400, "Request_BadRequest", "Invalid object identifier 'sales'."},
		{"unknown segment", "GET", "/applicationz", nil, 400, "BadRequest", "Resource not found for the segment 'applicationz'."},
		{"unknown navigation", "GET", "/groups/" + group + "/owners", nil, 400, "BadRequest", "Resource not found for the segment 'owners'."},
		{"unknown cast", "GET", "/groups/" + group + "/members/graph.printer", nil, 400, "BadRequest", "segment 'graph.printer'"},
		{"wrong method", "POST", "/users", nil, 405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."},
		{"wrong method on members", "DELETE", "/groups/" + group + "/members", nil, 405, "Request_BadRequest", ""},
		{"$top 0", "GET", "/users?$top=0", nil, 400, "Request_UnsupportedQuery", "Invalid page size specified: '0'. Must be between 1 and 999 inclusive."},
		{"$top 1000", "GET", "/users?$top=1000", nil, 400, "Request_UnsupportedQuery", "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."},
		{"$top not a number", "GET", "/groups/" + group + "/transitiveMembers?$top=lots", nil, 400, "Request_UnsupportedQuery", "Invalid page size specified: 'lots'"},
		{"$skip", "GET", "/users?$skip=10", nil, 400, "Request_BadRequest", "'$skip' is not supported by the service."},
		{"$orderby", "GET", "/users?$orderby=displayName", nil, 400, "Request_UnsupportedQuery", "$orderby"},
		{"$expand", "GET", "/groups?$expand=members", nil, 400, "Request_UnsupportedQuery", "$expand"},
		{"unknown option", "GET", "/users?$levels=2", nil, 400, "BadRequest", "$levels"},
		{"option twice", "GET", "/users?$top=2&$TOP=3", nil, 400, "BadRequest", "more than once"},
		{"$count segment without header", "GET", "/users/$count", nil, 400, "Request_BadRequest", "$count is not currently supported."},
		{"$search without header", "GET", "/users?$search=%22displayName:ann%22", nil, 400, "Request_UnsupportedQuery", "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'"},
		{"ne without advanced query", "GET", "/users?$filter=accountEnabled%20ne%20true", nil, 400, "Request_UnsupportedQuery", "Operator 'ne' is not supported because the required parameters might be missing."},
		{"ne with header but no $count", "GET", "/users?$filter=accountEnabled%20ne%20true", []string{"ConsistencyLevel", "eventual"}, 400, "Request_UnsupportedQuery", ""},
		{"filter on members without advanced query", "GET", "/groups/" + group + "/members?$filter=displayName%20eq%20%27x%27", nil, 400, "Request_UnsupportedQuery", ""},
		{"filter syntax", "GET", "/users?$filter=displayName%20eq", nil, 400, "BadRequest", "Invalid filter clause"},
		{"filter unknown property", "GET", "/users?$filter=shoeSize%20eq%2042", nil, 400, "BadRequest", "Could not find a property named 'shoeSize' on type 'microsoft.graph.user'."},
		{"bad $count value", "GET", "/users?$count=maybe", nil, 400, "BadRequest", "$count"},
	}
	for _, c := range cases {
		r := s.do(c.method, tc.token, c.path, c.headers...)
		code, msg := r.graphErr()
		if r.status != c.status || code != c.code || !strings.Contains(msg, c.message) {
			t.Errorf("%s: %d %s %q; want %d %s %q", c.name, r.status, code, msg, c.status, c.code, c.message)
			continue
		}
		inner, _ := r.body["error"].(map[string]any)["innerError"].(map[string]any)
		if inner["request-id"] == "" || inner["date"] == "" || r.header.Get("request-id") == "" {
			t.Errorf("%s: error lacks request-id/date: %s", c.name, r.raw)
		}
	}
}

func TestFilterSearchAndCount(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 27, Users: 150, Guests: 7, Disabled: 5, NoMail: 4, Groups: 20}))
	users, groups := tc.dir.Users(), tc.dir.Groups()
	where := func(f func(graphsim.User) bool) []string {
		var out []string
		for _, u := range users {
			if f(u) {
				out = append(out, u.ID)
			}
		}
		return out
	}
	advanced := []string{"ConsistencyLevel", "eventual"}
	target := users[len(users)/2]
	for _, c := range []struct {
		name    string
		path    string
		headers []string
		want    []string
	}{
		{"accountEnabled eq false", "/users?$filter=accountEnabled eq false&$top=3", nil, where(func(u graphsim.User) bool { return !u.AccountEnabled })},
		{"userType eq 'Guest'", "/users?$filter=userType eq 'Guest'", nil, where(func(u graphsim.User) bool { return u.UserType == "Guest" })},
		{"mail eq null", "/users?$filter=mail eq null&$count=true", advanced, where(func(u graphsim.User) bool { return u.Mail == "" })},
		{"startswith, any case", "/users?$filter=startsWith(displayName,'" + strings.ToUpper(target.DisplayName[:2]) + "')", nil,
			where(func(u graphsim.User) bool {
				return strings.HasPrefix(strings.ToLower(u.DisplayName), strings.ToLower(target.DisplayName[:2]))
			})},
		{"id in", "/users?$filter=id in ('" + users[3].ID + "','" + users[5].ID + "')", nil, []string{users[3].ID, users[5].ID}},
		{"and/or/parens", "/users?$filter=(userType eq 'Member' and accountEnabled eq true) or id eq '" + users[0].ID + "'", nil,
			where(func(u graphsim.User) bool { return u.UserType == "Member" && u.AccountEnabled || u.ID == users[0].ID })},
		{"ne with advanced query", "/users?$filter=userType ne 'Member'&$count=true", advanced, where(func(u graphsim.User) bool { return u.UserType != "Member" })},
		{"endsWith with advanced query", "/users?$filter=endsWith(userPrincipalName,'%23EXT%23@" + tc.dir.Domain() + "')&$count=true", advanced,
			where(func(u graphsim.User) bool { return u.UserType == "Guest" })},
		{"search", "/users?$search=\"displayName:" + target.Surname + "\"", advanced,
			where(func(u graphsim.User) bool {
				return strings.HasPrefix(strings.ToLower(u.DisplayName), strings.ToLower(target.Surname)) ||
					slices.ContainsFunc(strings.Fields(strings.ToLower(u.DisplayName)), func(w string) bool { return strings.HasPrefix(w, strings.ToLower(target.Surname)) })
			})},
	} {
		path := strings.NewReplacer(" ", "%20", "'", "%27", `"`, "%22").Replace(c.path)
		items, _ := s.listAll(tc.token, path, c.headers...)
		if got := ids(items); !slices.Equal(got, c.want) {
			t.Errorf("%s: %d users, want %d", c.name, len(got), len(c.want))
		}
	}

	var unified []string
	for _, g := range groups {
		if slices.Contains(g.GroupTypes, "Unified") {
			unified = append(unified, g.ID)
		}
	}
	items, _ := s.listAll(tc.token, "/groups?$filter=groupTypes/any(c:c%20eq%20%27Unified%27)&$select=id")
	if got := ids(items); len(unified) == 0 || !slices.Equal(got, unified) {
		t.Errorf("groupTypes/any: %v, want %v", got, unified)
	}

	// $count=true: @odata.count on the first page only, and only with the header.
	withCount := s.get(tc.token, "/users?$count=true&$top=10", advanced...)
	if n, ok := withCount.body["@odata.count"].(float64); !ok || int(n) != len(users) {
		t.Errorf("@odata.count = %v, want %d", withCount.body["@odata.count"], len(users))
	}
	second := s.get(tc.token, withCount.body["@odata.nextLink"].(string), advanced...)
	if _, ok := second.body["@odata.count"]; ok || second.status != 200 {
		t.Errorf("second page: %d, @odata.count present: %v", second.status, ok)
	}
	if _, ok := s.get(tc.token, "/users?$count=true").body["@odata.count"]; ok {
		t.Error("$count=true without ConsistencyLevel must be ignored")
	}
	for path, want := range map[string]int{
		"/users/$count": len(users),
		"/users/$count?$filter=accountEnabled%20eq%20false": len(where(func(u graphsim.User) bool { return !u.AccountEnabled })),
		"/groups/$count": len(groups),
		"/groups/" + groups[0].ID + "/transitiveMembers/graph.user/$count": len(tc.dir.TransitiveUsers(groups[0].ID)),
		"/groups/" + groups[0].ID + "/members/$count":                      len(tc.dir.DirectMembers(groups[0].ID)),
	} {
		r := s.get(tc.token, path, advanced...)
		if r.status != 200 || r.raw != fmt.Sprint(want) || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: %d %q (%s), want %d as text", path, r.status, r.raw, r.header.Get("Content-Type"), want)
		}
	}

	// An advanced query's later pages need the header again: Graph does not
	// carry it over, and neither does the SDK's page iterator.
	adv := s.get(tc.token, "/users?$filter=userType%20ne%20%27Guest%27&$count=true&$top=5", advanced...)
	next := adv.body["@odata.nextLink"].(string)
	if r := s.get(tc.token, next); r.status != http.StatusBadRequest {
		t.Errorf("advanced query's next page without ConsistencyLevel: %d, want 400", r.status)
	}
	if r := s.get(tc.token, next, advanced...); r.status != http.StatusOK {
		t.Errorf("advanced query's next page with ConsistencyLevel: %d %s", r.status, r.raw)
	}
}

func TestResourceUnitsHeader(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 28, Users: 5, Groups: 2}))
	g := tc.dir.Groups()[0].ID
	for path, want := range map[string]string{
		"/users": "2", "/users?$select=id": "1", "/groups": "1",
		"/groups/" + g + "/members": "3", "/groups/" + g + "/members?$select=id": "2",
		"/groups/" + g + "/transitiveMembers": "5", "/groups/" + g + "/transitiveMembers/graph.user?$select=id": "4",
	} {
		s.srv.ResetRequests()
		if got := s.get(tc.token, path).header.Get("x-ms-resource-unit"); got != want {
			t.Errorf("%s: x-ms-resource-unit %q, want %s", path, got, want)
		}
		// The request log keeps the same cost.
		if log := s.srv.Requests(); len(log) != 1 || strconv.Itoa(log[0].ResourceUnits) != want {
			t.Errorf("%s: request log %+v, want one request of %s RU", path, log, want)
		}
	}
}

// A group with hidden membership lists its members only to an app with
// Member.Read.Hidden (group-list-members.md); without it, its member
// lists and their counts answer 403 Authorization_RequestDenied, and
// every other group is served as before.
func TestHiddenMembershipNeedsItsPermission(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	d := graphsim.Generate(graphsim.Spec{Seed: 31, Users: 20, Groups: 4})
	hidden := d.AddGroup(graphsim.Group{DisplayName: "Board", GroupTypes: []string{"Unified"}, MailEnabled: true,
		Visibility: "HiddenMembership"})
	open := d.Groups()[0]
	if open.ID == hidden.ID { // its random ID may sort first
		open = d.Groups()[1]
	}
	for _, u := range d.Users()[:3] {
		for _, g := range []string{hidden.ID, open.ID} {
			if err := d.AddMember(g, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser}); err != nil && !errors.Is(err, graphsim.ErrAlreadyMember) {
				t.Fatal(err)
			}
		}
	}
	tc := s.addTenant(d)
	paths := []string{"/groups/" + hidden.ID + "/members", "/groups/" + hidden.ID + "/transitiveMembers",
		"/groups/" + hidden.ID + "/members/$count"}

	// With the permission (the default), the lists are served.
	for _, p := range paths {
		if r := s.get(tc.token, p, "ConsistencyLevel", "eventual"); r.status != http.StatusOK {
			t.Fatalf("GET %s with Member.Read.Hidden = %d %s", p, r.status, r.raw)
		}
	}
	if err := s.srv.SetPermissions(tc.id, graphsim.Permissions{NoHiddenMembership: true}); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		r := s.get(tc.token, p, "ConsistencyLevel", "eventual")
		code, _ := r.body["error"].(map[string]any)["code"].(string)
		if r.status != http.StatusForbidden || code != "Authorization_RequestDenied" {
			t.Errorf("GET %s without Member.Read.Hidden = %d %s, want 403 Authorization_RequestDenied", p, r.status, r.raw)
		}
	}
	if r := s.get(tc.token, "/groups/"+open.ID+"/members"); r.status != http.StatusOK {
		t.Errorf("a group without hidden membership answered %d", r.status)
	}
	if r := s.get(tc.token, "/groups/"+hidden.ID); r.status != http.StatusOK || r.body["visibility"] != "HiddenMembership" {
		t.Errorf("the hidden group itself = %d %s", r.status, r.raw)
	}
}
