package graphsim_test

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/graphsim"
)

// advancedHeaders is the header half of Graph's advanced query
// parameters; the other half is $count=true in the query.
var advancedHeaders = []string{"ConsistencyLevel", "eventual"}

// filterPath is /users with $filter (escaped) and extra raw options.
func filterPath(filter, extra string) string {
	p := "/users?$filter=" + url.QueryEscape(filter)
	if extra != "" {
		p += "&" + extra
	}
	return p
}

// TestUserFilterSupportFollowsTheDocs checks /users $filter against
// Microsoft's documentation, in microsoftgraph/microsoft-graph-docs-contrib:
// concepts/aad-advanced-queries.md (its rules, its error examples and
// the table it includes, includes/filter-directory-objects.md) and
// api-reference/v1.0/resources/user.md (each property's "Supports
// $filter").
func TestUserFilterSupportFollowsTheDocs(t *testing.T) {
	t.Parallel()
	s := newSim(t, graphsim.Options{})
	tc := s.addTenant(graphsim.Generate(graphsim.Spec{Seed: 31, Users: 120, Guests: 6, Disabled: 5, NoMail: 4, Groups: 4}))
	users := tc.dir.Users()
	where := func(f func(graphsim.User) bool) []string {
		out := []string{}
		for _, u := range users {
			if f(u) {
				out = append(out, u.ID)
			}
		}
		return out
	}
	all := where(func(graphsim.User) bool { return true })
	// createdDateTime is derived by the simulator: read it as a client would.
	created := map[string]time.Time{}
	items, _ := s.listAll(tc.token, "/users?$select=id,createdDateTime&$top=999")
	for _, it := range items {
		at, err := time.Parse(time.RFC3339, it["createdDateTime"].(string))
		if err != nil {
			t.Fatal(err)
		}
		created[it["id"].(string)] = at
	}
	cut := time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)
	domain := tc.dir.Domain()

	// Filters Graph serves; advanced marks those that work only with the
	// advanced query parameters, and the test checks that they fail
	// without them, with the message the docs show.
	for _, c := range []struct {
		name, filter string
		advanced     bool
		want         []string
		// without advanced query parameters: the code and message
		withoutMsg string
	}{
		// aad-advanced-queries.md, "Option 1": eq works by default.
		{"eq by default", "accountEnabled eq false", false, where(func(u graphsim.User) bool { return !u.AccountEnabled }), ""},
		// "Option 2": ne only in advanced queries.
		{"ne", "accountEnabled ne true", true, where(func(u graphsim.User) bool { return !u.AccountEnabled }),
			"Operator 'ne' is not supported because the required parameters might be missing."},
		// "The in operator is supported by default whenever eq operator is
		// supported by default."
		{"in by default", "userType in ('Guest')", false, where(func(u graphsim.User) bool { return u.UserType == "Guest" }), ""},
		// The docs' example error, word for word, for endsWith without the
		// advanced query parameters.
		{"endsWith on userPrincipalName", "endsWith(userPrincipalName,'#EXT#@" + domain + "')", true,
			where(func(u graphsim.User) bool { return u.UserType == "Guest" }),
			"Operator 'endsWith' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information"},
		// The docs' example of not with startsWith.
		{"NOT startsWith", "NOT startsWith(displayName, 'A')", true,
			where(func(u graphsim.User) bool { return !strings.HasPrefix(strings.ToLower(u.DisplayName), "a") }),
			"Operator 'not' is not supported"},
		// The docs' example of ne and not (companyName is null for every
		// simulated user, and companyName needs advanced queries for eq too).
		{"companyName ne null and NOT(eq)", "companyName ne null and NOT(companyName eq 'Microsoft')", true, []string{},
			"Operator"},
		{"companyName eq, advanced for every operator", "companyName eq 'Contoso'", true, []string{},
			"Unsupported or invalid query filter clause specified for property 'companyName' of resource 'User'."},
		// Null values: the table's "null values" column is advanced only.
		{"mail eq null", "mail eq null", true, where(func(u graphsim.User) bool { return u.Mail == "" }),
			"Unsupported or invalid query filter clause specified for property 'mail' of resource 'User'."},
		// startsWith: by default on displayName and department, advanced on
		// jobTitle (user.md lists it, the table leaves it blank).
		{"startsWith displayName", "startsWith(displayName,'a')", false,
			where(func(u graphsim.User) bool { return strings.HasPrefix(strings.ToLower(u.DisplayName), "a") }), ""},
		{"startsWith department", "startsWith(department,'Sa')", false,
			where(func(u graphsim.User) bool { return strings.HasPrefix(strings.ToLower(u.Department), "sa") }), ""},
		{"startsWith jobTitle", "startsWith(jobTitle,'S')", true,
			where(func(u graphsim.User) bool { return strings.HasPrefix(strings.ToLower(u.JobTitle), "s") }),
			"property 'jobTitle' of resource 'User'"},
		// ge/le on createdDateTime by default, with a date-time or a date.
		{"createdDateTime ge", "createdDateTime ge 2021-06-01T00:00:00Z", false,
			where(func(u graphsim.User) bool { return !created[u.ID].Before(cut) }), ""},
		{"createdDateTime lt as not ge", "not(createdDateTime ge 2021-06-01)", true,
			where(func(u graphsim.User) bool { return created[u.ID].Before(cut) }), "Operator 'not'"},
		// ge on displayName: user.md lists it, the table does not.
		{"displayName ge", "displayName ge 'M'", true,
			where(func(u graphsim.User) bool { return strings.ToLower(u.DisplayName) >= "m" }),
			"property 'displayName' of resource 'User'"},
		// Lambdas on string collections.
		{"proxyAddresses any startsWith", "proxyAddresses/any(p:startsWith(p,'SMTP:'))", false,
			where(func(u graphsim.User) bool { return u.Mail != "" }), ""},
		// The docs' example of endsWith on a collection.
		{"proxyAddresses any endsWith", "proxyAddresses/any (p:endsWith(p, 'OnMicrosoft.com'))", true,
			where(func(u graphsim.User) bool { return strings.HasSuffix(strings.ToLower(u.Mail), ".onmicrosoft.com") }),
			"Operator 'endsWith'"},
		// The docs' example of $count in a filter.
		{"assignedLicenses/$count eq 0", "assignedLicenses/$count eq 0", true, all,
			"property 'assignedLicenses' of resource 'User'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filterPath(c.filter, "")
			if c.advanced {
				r := s.get(tc.token, path)
				code, msg := r.graphErr()
				if r.status != 400 || code != "Request_UnsupportedQuery" || !strings.Contains(msg, c.withoutMsg) {
					t.Errorf("without advanced query parameters: %d %s %q, want 400 Request_UnsupportedQuery %q", r.status, code, msg, c.withoutMsg)
				}
				// Either half alone is not enough.
				if r := s.get(tc.token, filterPath(c.filter, "$count=true")); r.status != 400 {
					t.Errorf("with $count=true but no header: %d, want 400", r.status)
				}
				if r := s.get(tc.token, path, advancedHeaders...); r.status != 400 {
					t.Errorf("with the header but no $count=true: %d, want 400", r.status)
				}
			}
			// Queries that work by default also work as advanced queries.
			for _, advanced := range []bool{false, true} {
				if c.advanced && !advanced {
					continue
				}
				p, h := path+"&$top=7", []string(nil)
				if advanced {
					p, h = filterPath(c.filter, "$count=true&$top=7"), advancedHeaders
				}
				items, _ := s.listAll(tc.token, p, h...)
				if got := ids(items); !slices.Equal(got, c.want) {
					t.Errorf("advanced %v: %d users %v, want %d %v", advanced, len(got), got, len(c.want), c.want)
				}
			}
			if len(c.want) == 0 && !strings.HasPrefix(c.filter, "companyName") {
				// Only companyName, null for every simulated user, may
				// match nobody; anywhere else the case would check nothing.
				t.Errorf("the filter matches no user: the test checks nothing")
			}
		})
	}

	// Filters Graph refuses even as advanced queries.
	for _, c := range []struct {
		name, filter, code, msg string
	}{
		// Properties missing from the table "do not support $filter at all".
		{"unindexed property", "onPremisesDomainName eq 'contoso.local'", "Request_UnsupportedQuery",
			"Unsupported or invalid query filter clause specified for property 'onPremisesDomainName' of resource 'User'."},
		// gt and lt are in no row of the table.
		{"gt", "createdDateTime gt 2021-06-01T00:00:00Z", "Request_UnsupportedQuery",
			"Unsupported or invalid query filter clause specified for property 'createdDateTime' of resource 'User'."},
		// endsWith only on mail, otherMails, userPrincipalName and proxyAddresses.
		{"endsWith on displayName", "endsWith(displayName,'son')", "Request_UnsupportedQuery",
			"Unsupported or invalid query filter clause specified for property 'displayName' of resource 'User'."},
		{"all lambda", "otherMails/all(m:endsWith(m,'.com'))", "Request_UnsupportedQuery", "property 'otherMails'"},
		// OData's type checks come before Graph's indexes.
		{"bool against text", "accountEnabled eq 'true'", "BadRequest",
			"A binary operator with incompatible types was detected. Found operand types 'Edm.Boolean' and 'Edm.String' for operator kind 'Equal'."},
		{"text against number", "displayName eq 42", "BadRequest", "Found operand types 'Edm.String' and 'Edm.Int32'"},
		{"id unquoted", "id eq " + users[0].ID, "BadRequest", "Found operand types 'Edm.String' and 'Edm.Guid'"},
		{"startsWith on a bool", "startsWith(accountEnabled,'t')", "BadRequest", "No function signature for the function with name 'startswith'"},
		{"collection compared", "proxyAddresses eq 'SMTP:a@b.c'", "BadRequest", "Collection(Edm.String)"},
		{"lambda on a scalar", "displayName/any(d:d eq 'x')", "BadRequest", "collection"},
		{"unknown property", "shoeSize eq 42", "BadRequest", "Could not find a property named 'shoeSize' on type 'microsoft.graph.user'."},
		{"invalid date", "createdDateTime ge 2021-02-30", "BadRequest", "The Date text '2021-02-30'"},
	} {
		r := s.get(tc.token, filterPath(c.filter, "$count=true"), advancedHeaders...)
		code, msg := r.graphErr()
		if r.status != 400 || code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %s %q, want 400 %s %q", c.name, r.status, code, msg, c.code, c.msg)
		}
	}

	// A $count segment is itself a use of $count: with the header, it
	// counts an advanced query.
	r := s.get(tc.token, "/users/$count?$filter="+url.QueryEscape("accountEnabled ne true"), advancedHeaders...)
	if want := len(where(func(u graphsim.User) bool { return !u.AccountEnabled })); r.status != 200 || r.raw != strconv.Itoa(want) {
		t.Errorf("/users/$count with ne: %d %q, want %d", r.status, r.raw, want)
	}
}
