package budget

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The cost model is Microsoft's, from "Identity and access service limits"
// in https://learn.microsoft.com/graph/throttling-limits
// (microsoftgraph/microsoft-graph-docs-contrib, concepts/throttling-limits.md):
//
//   - a base cost per operation and path, from the table below; any identity
//     path not in the table costs 1;
//   - $select takes 1 off, $expand adds 1, $top below 20 takes 1 off;
//   - a request never costs less than 1;
//   - a cost listed for a path under me/ applies to the same path under
//     users/{id | userPrincipalName}/;
//   - $select on directoryObjects/getByIds and getObjectsById costs 2.
//
// Delta queries (users/delta, groups/delta) are not in Microsoft's table, so
// they cost 1, like every unlisted path: a delta round over users is
// cheaper per page than listing /users (2). The page of a nextLink carries
// its $select inside $skiptoken, where it cannot be seen, so a next page
// is estimated without the discount; Graph's x-ms-resource-unit answer
// corrects the estimate (Budget.Settle, Transport).
//
// A path with an OData cast (members/microsoft.graph.user) or $count after
// members or transitiveMembers is costed as the listing it narrows, as the
// graph simulator does: the estimate errs high rather than low.

// costRule is one row of Microsoft's base-cost table. Segments are matched
// without regard to case; "{id}" matches any one segment.
type costRule struct {
	method string
	path   []string
	cost   int
	// narrows: the rule also matches the path followed by one cast
	// segment and/or $count.
	narrows bool
}

var costRules = func() []costRule {
	rows := []struct {
		method, path string
		cost         int
	}{
		{http.MethodGet, "applications", 2},
		{http.MethodGet, "applications/{id}/extensionProperties", 2},
		{http.MethodGet, "contracts", 3},
		{http.MethodPost, "directoryObjects/getByIds", 5},
		{http.MethodGet, "domains/{id}/domainNameReferences", 4},
		{http.MethodPost, "getObjectsById", 5},
		{http.MethodGet, "groups/{id}/members", 3},
		{http.MethodGet, "groups/{id}/transitiveMembers", 5},
		{http.MethodPost, "isMemberOf", 4},
		{http.MethodPost, "me/checkMemberGroups", 4},
		{http.MethodPost, "me/checkMemberObjects", 4},
		{http.MethodPost, "me/getMemberGroups", 2},
		{http.MethodPost, "me/getMemberObjects", 2},
		{http.MethodGet, "me/licenseDetails", 2},
		{http.MethodGet, "me/memberOf", 2},
		{http.MethodGet, "me/ownedObjects", 2},
		{http.MethodGet, "me/transitiveMemberOf", 2},
		{http.MethodGet, "oauth2PermissionGrants", 2},
		{http.MethodGet, "oauth2PermissionGrants/{id}", 2},
		{http.MethodGet, "servicePrincipals/{id}/appRoleAssignments", 2},
		{http.MethodGet, "subscribedSkus", 3},
		{http.MethodGet, "users", 2},
	}
	var rules []costRule
	for _, r := range rows {
		segs := strings.Split(strings.ToLower(r.path), "/")
		last := segs[len(segs)-1]
		narrows := last == "members" || last == "transitivemembers"
		rules = append(rules, costRule{method: r.method, path: segs, cost: r.cost, narrows: narrows})
		if segs[0] == "me" {
			// users/{id}/memberOf costs what me/memberOf does.
			alias := append([]string{"users", "{id}"}, segs[1:]...)
			rules = append(rules, costRule{method: r.method, path: alias, cost: r.cost, narrows: narrows})
		}
	}
	return rules
}()

// Cost is the resource units Microsoft Graph's identity and access service
// charges for a request, as documented (see the comment above costRules).
// path is the URL path, with or without the version segment (/v1.0/users,
// /beta/users or users); query is the URL's query.
func Cost(method, path string, query url.Values) int {
	segs := pathSegments(path)
	method = strings.ToUpper(method)
	base := 1
	for _, r := range costRules {
		if r.method == method && r.match(segs) {
			base = r.cost
			break
		}
	}
	has := func(name string) bool {
		for k := range query {
			if strings.EqualFold(k, name) || strings.EqualFold(k, strings.TrimPrefix(name, "$")) {
				return true
			}
		}
		return false
	}
	get := func(name string) string {
		for k, v := range query {
			if (strings.EqualFold(k, name) || strings.EqualFold(k, strings.TrimPrefix(name, "$"))) && len(v) > 0 {
				return v[0]
			}
		}
		return ""
	}
	cost := base
	if has("$select") {
		if method == http.MethodPost && len(segs) > 0 && (isPath(segs, "directoryobjects", "getbyids") || isPath(segs, "getobjectsbyid")) {
			return 2
		}
		cost--
	}
	if has("$expand") {
		cost++
	}
	if n, err := strconv.Atoi(strings.TrimSpace(get("$top"))); err == nil && n < 20 {
		cost--
	}
	return max(cost, 1)
}

// CostOf is Cost of an HTTP request. A JSON batch costs what its requests
// cost together (batch.go), read from a copy of its body (req.GetBody); a
// batch whose body cannot be read so costs 1, like an unlisted path.
func CostOf(req *http.Request) int {
	if isBatch(req) {
		if costs, ok := batchCosts(req); ok {
			return max(sum(costs), 1)
		}
	}
	return Cost(req.Method, req.URL.Path, req.URL.Query())
}

func (r costRule) match(segs []string) bool {
	if len(segs) < len(r.path) {
		return false
	}
	for i, p := range r.path {
		if p != "{id}" && p != segs[i] {
			return false
		}
	}
	rest := segs[len(r.path):]
	if len(rest) == 0 {
		return true
	}
	if !r.narrows || len(rest) > 2 {
		return false
	}
	if strings.Contains(rest[0], ".") { // an OData cast: microsoft.graph.user
		rest = rest[1:]
	}
	return len(rest) == 0 || (len(rest) == 1 && rest[0] == "$count")
}

// pathSegments is the lower-cased path after Graph's version segment
// (v1.0 or beta), with function-call parentheses dropped (the SDK sends
// users/delta()).
func pathSegments(path string) []string {
	var segs []string
	for s := range strings.SplitSeq(strings.ToLower(path), "/") {
		if s == "" {
			continue
		}
		if s == "v1.0" || s == "beta" {
			segs = segs[:0]
			continue
		}
		if i := strings.IndexByte(s, '('); i > 0 {
			s = s[:i]
		}
		segs = append(segs, s)
	}
	return segs
}

func isPath(segs []string, want ...string) bool {
	if len(segs) != len(want) {
		return false
	}
	for i := range want {
		if segs[i] != want[i] {
			return false
		}
	}
	return true
}
