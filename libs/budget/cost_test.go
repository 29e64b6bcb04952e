package budget

import (
	"net/http"
	"net/url"
	"testing"
)

func TestCost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method, url string
		want        int
	}{
		// Base costs from Microsoft's table.
		{"GET", "/v1.0/users", 2},
		{"GET", "/v1.0/users?$select=id,displayName", 1},
		{"GET", "/v1.0/users?$select=id&$top=999", 1},
		{"GET", "/v1.0/users?$top=10", 1},
		{"GET", "/v1.0/users?$expand=manager", 3},
		{"GET", "/v1.0/users?$select=id&$expand=manager", 2},
		{"GET", "/v1.0/users?$select=id&$top=5", 1}, // never below 1
		{"GET", "/beta/users", 2},
		{"GET", "users", 2},
		{"GET", "https://graph.microsoft.com/v1.0/users", 2},
		{"GET", "/v1.0/users/abc", 1},
		{"GET", "/v1.0/groups", 1},
		{"GET", "/v1.0/groups?$select=id", 1},
		{"GET", "/v1.0/groups/g1/members", 3},
		{"GET", "/v1.0/groups/g1/members?$select=id", 2},
		{"GET", "/v1.0/groups/g1/members?$select=id&$top=5", 1},
		{"GET", "/v1.0/groups/g1/Members", 3}, // Graph paths ignore case
		{"GET", "/v1.0/groups/g1/members/microsoft.graph.user?$select=id", 2},
		{"GET", "/v1.0/groups/g1/members/$count", 3},
		{"GET", "/v1.0/groups/g1/transitiveMembers", 5},
		{"GET", "/v1.0/groups/g1/transitiveMembers/microsoft.graph.user?$select=id", 4},
		{"GET", "/v1.0/groups/g1/transitiveMembers?$expand=x", 6},
		{"GET", "/v1.0/subscribedSkus", 3},
		{"GET", "/v1.0/me/memberOf", 2},
		{"GET", "/v1.0/users/u1/memberOf", 2}, // me/ costs apply to users/{id}/
		{"GET", "/v1.0/users/u1/transitiveMemberOf?$select=id", 1},
		{"POST", "/v1.0/users/u1/checkMemberGroups", 4},
		{"POST", "/v1.0/directoryObjects/getByIds", 5},
		{"POST", "/v1.0/directoryObjects/getByIds?$select=id", 2},
		{"GET", "/v1.0/oauth2PermissionGrants/x", 2},
		// Delta is not in Microsoft's table: 1, like any unlisted path.
		{"GET", "/v1.0/users/delta", 1},
		{"GET", "/v1.0/users/delta()?$select=id", 1},
		{"GET", "/v1.0/groups/delta()", 1},
		{"GET", "/v1.0/groups/delta?$expand=members", 2},
		{"GET", "/v1.0/users/delta()?$deltatoken=abc", 1},
		// $ is optional in v1.0 query names.
		{"GET", "/v1.0/users?select=id", 1},
		// Writes: 1 unless listed.
		{"PATCH", "/v1.0/users/u1", 1},
		{"POST", "/v1.0/users", 1},
		{"DELETE", "/v1.0/groups/g1/members/u1/$ref", 1},
		// The GET rows do not apply to other methods.
		{"POST", "/v1.0/groups/g1/members/$ref", 1},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := Cost(tc.method, u.Path, u.Query()); got != tc.want {
			t.Errorf("%s %s: cost %d, want %d", tc.method, tc.url, got, tc.want)
		}
		if u.Path[0] != '/' {
			continue
		}
		req, err := http.NewRequest(tc.method, "https://graph.example"+u.RequestURI(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := CostOf(req); got != tc.want {
			t.Errorf("CostOf %s %s: %d, want %d", tc.method, tc.url, got, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := epoch
	for _, tc := range []struct {
		in   string
		want float64 // seconds; -1 unreadable
	}{
		{"2", 2}, {"2.128", 2.128}, {" 0.5 ", 0.5}, {"0", 0},
		{"", -1}, {"-1", -1}, {"NaN", -1}, {"soon", -1},
		{now.Add(3 * 1e9).Format(http.TimeFormat), 3},
		{now.Add(-3 * 1e9).Format(http.TimeFormat), 0},
	} {
		d, ok := parseRetryAfter(tc.in, now)
		if tc.want < 0 {
			if ok {
				t.Errorf("%q: %s, want unreadable", tc.in, d)
			}
			continue
		}
		if !ok || d.Seconds() < tc.want || d.Seconds() > tc.want+1e-9 {
			t.Errorf("%q: %s %v, want %vs", tc.in, d, ok, tc.want)
		}
	}
}
