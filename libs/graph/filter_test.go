package graph

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/entrasync/entrasync/services/graphsim"
)

// filterSpec has guests, disabled users and users without mail, so
// every filter below matches some users and not others.
var filterSpec = graphsim.Spec{Seed: 17, Users: 30, Guests: 4, Disabled: 3, NoMail: 3, Groups: 3}

// queryOf decodes a logged request's query.
func queryOf(t *testing.T, r graphsim.Request) url.Values {
	t.Helper()
	q, err := url.ParseQuery(r.RawQuery)
	if err != nil {
		t.Fatalf("request %s?%s: %v", r.Path, r.RawQuery, err)
	}
	return q
}

// TestUsersFilter lists users with filters Graph serves by default and
// with filters it serves only as advanced queries, over several pages:
// the listing matches the directory, advanced queries carry $count=true
// (and the header, without which graphsim answers 400 on every page),
// plain ones do not, and later pages follow the nextLink as it is.
func TestUsersFilter(t *testing.T) {
	t.Parallel()
	f := newFixture(t, filterSpec)
	const pageSize = 3
	cfg := f.config(t)
	cfg.PageSize = pageSize
	c := f.newClient(t, cfg)
	dir := f.dir
	where := func(keep func(graphsim.User) bool) []string {
		var out []string
		for _, u := range dir.Users() {
			if keep(u) {
				out = append(out, u.ID)
			}
		}
		return out
	}
	guest := func(u graphsim.User) bool { return u.UserType == "Guest" }
	for _, tc := range []struct {
		filter   string
		advanced bool
		want     []string
	}{
		// concepts/aad-advanced-queries.md, options 1 and 2.
		{"accountEnabled eq false", false, where(func(u graphsim.User) bool { return !u.AccountEnabled })},
		{"accountEnabled ne true", true, where(func(u graphsim.User) bool { return !u.AccountEnabled })},
		{"userType eq 'Member' and accountEnabled eq true", false, where(func(u graphsim.User) bool { return !guest(u) && u.AccountEnabled })},
		{"userType in ('Guest')", false, where(guest)},
		{"startsWith(displayName,'a') or startsWith(displayName,'M')", false, where(func(u graphsim.User) bool {
			n := strings.ToLower(u.DisplayName)
			return strings.HasPrefix(n, "a") || strings.HasPrefix(n, "m")
		})},
		{"endsWith(userPrincipalName,'#EXT#@" + dir.Domain() + "')", true, where(guest)},
		{"NOT (userType eq 'Guest')", true, where(func(u graphsim.User) bool { return !guest(u) })},
		{"mail eq null", true, where(func(u graphsim.User) bool { return u.Mail == "" })},
		{"proxyAddresses/any(p:startsWith(p,'SMTP:'))", false, where(func(u graphsim.User) bool { return u.Mail != "" })},
		{"startsWith(jobTitle,'S')", true, where(func(u graphsim.User) bool { return strings.HasPrefix(strings.ToLower(u.JobTitle), "s") })},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			before := len(f.graphRequests())
			got, pages, err := collect(t, c.Users(t.Context(), tc.filter), pageSize)
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.want) == 0 || len(tc.want) == len(dir.Users()) {
				t.Fatalf("the filter matches %d of %d users: the case checks nothing", len(tc.want), len(dir.Users()))
			}
			var ids []string
			for _, u := range got {
				ids = append(ids, u.ID)
			}
			slices.Sort(ids)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(ids, want) {
				t.Errorf("users:\n got %v\nwant %v", ids, want)
			}
			reqs := f.graphRequests()[before:]
			if len(reqs) != pages {
				t.Fatalf("%d requests for %d pages", len(reqs), pages)
			}
			first := queryOf(t, reqs[0])
			if first.Get("$filter") != tc.filter || first.Get("$top") != fmt.Sprint(pageSize) || first.Get("$select") == "" {
				t.Errorf("first request's query %v lacks the filter, $top or $select", first)
			}
			if advanced := first.Get("$count") == "true"; advanced != tc.advanced {
				t.Errorf("sent as an advanced query: %v, want %v (query %v)", advanced, tc.advanced, first)
			}
			for i, r := range reqs[1:] {
				q := queryOf(t, r)
				// graphsim's nextLinks repeat the options, and it refuses an
				// option sent twice: a client adding its own again fails.
				if q.Get("$skiptoken") == "" || q.Get("$filter") != tc.filter {
					t.Errorf("page %d was not read from the nextLink: %s", i+1, r.RawQuery)
				}
			}
			if len(want) > pageSize && pages < 2 {
				t.Errorf("%d users in %d page(s) of %d: the case does not page", len(want), pages, pageSize)
			}
		})
	}
}

// TestUsersFilterRefusedIsPermanent: Graph refuses a filter on a property
// it does not index; the listing fails at once with Graph's own code and
// message, as a permanent error, and yields no page.
func TestUsersFilterRefusedIsPermanent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, filterSpec)
	c := f.newClient(t, f.config(t))
	pages := 0
	var err error
	for _, perr := range c.Users(t.Context(), "onPremisesDomainName eq 'contoso.local'") {
		if perr != nil {
			err = perr
			break
		}
		pages++
	}
	var ge *Error
	if !errors.As(err, &ge) || ge.Status != http.StatusBadRequest || ge.Code != "Request_UnsupportedQuery" ||
		ge.Message != "Unsupported or invalid query filter clause specified for property 'onPremisesDomainName' of resource 'User'." {
		t.Fatalf("got %v, want Graph's 400 Request_UnsupportedQuery with its message", err)
	}
	if !errors.Is(err, ErrFilterRefused) || !IsPermanent(err) || errors.Is(err, ErrAuth) {
		t.Errorf("refused filter misclassified (ErrFilterRefused %v, permanent %v): %v", errors.Is(err, ErrFilterRefused), IsPermanent(err), err)
	}
	for _, want := range []string{"onPremisesDomainName eq 'contoso.local'", "Request_UnsupportedQuery", "Unsupported or invalid query filter clause"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if pages != 0 {
		t.Errorf("%d pages before the error", pages)
	}
	if n := len(f.graphRequests()); n != 1 {
		t.Errorf("%d Graph requests, want 1: a refusal is not retried", n)
	}
}

// TestUsersFilterDecisionAgreesWithGraph sends, for the properties
// graphsim serves, each operator the docs name (and some they do not),
// and checks the client's choice against Graph's answers both ways: a
// filter the client sends plainly must not need the advanced query
// parameters, and one it sends as an advanced query must not work
// without them. Filters Graph refuses either way must come back as
// ErrFilterRefused.
func TestUsersFilterDecisionAgreesWithGraph(t *testing.T) {
	t.Parallel()
	f := newFixture(t, filterSpec)
	auto := f.newClient(t, f.config(t))
	always := f.newClient(t, f.config(t))
	always.advancedQuery = func(string) bool { return true }
	never := f.newClient(t, f.config(t))
	never.advancedQuery = func(string) bool { return false }

	var filters []string
	for _, p := range []string{"displayName", "givenName", "surname", "mail", "userPrincipalName", "jobTitle",
		"department", "userType", "id", "mailNickname", "companyName", "employeeId", "city", "country", "state",
		"usageLocation", "officeLocation", "mobilePhone", "preferredLanguage", "creationType", "externalUserState",
		"employeeType", "postalCode", "streetAddress", "faxNumber", "onPremisesImmutableId", "onPremisesSamAccountName",
		"onPremisesUserPrincipalName", "securityIdentifier", "ageGroup", "onPremisesDomainName"} {
		for _, form := range []string{"%s eq 'a'", "%s ne 'a'", "%s ge 'a'", "%s le 'a'", "%s gt 'a'", "%s in ('a','b')",
			"startsWith(%s,'a')", "endsWith(%s,'a')", "%s eq null", "%s ne null", "not(%s eq 'a')"} {
			filters = append(filters, fmt.Sprintf(form, p))
		}
	}
	for _, p := range []string{"accountEnabled", "onPremisesSyncEnabled", "showInAddressList"} {
		for _, form := range []string{"%s eq true", "%s ne true", "%s in (true)", "%s ge true", "%s eq null"} {
			filters = append(filters, fmt.Sprintf(form, p))
		}
	}
	for _, p := range []string{"createdDateTime", "deletedDateTime", "onPremisesLastSyncDateTime"} {
		for _, form := range []string{"%s eq 2021-01-01T00:00:00Z", "%s ge 2021-01-01T00:00:00Z", "%s le 2021-01-01",
			"%s lt 2021-01-01T00:00:00Z", "%s in (2021-01-01T00:00:00Z)", "%s ne 2021-01-01T00:00:00Z"} {
			filters = append(filters, fmt.Sprintf(form, p))
		}
	}
	for _, p := range []string{"businessPhones", "otherMails", "proxyAddresses", "imAddresses"} {
		for _, form := range []string{"%s/any(x:x eq 'a')", "%s/any(x:startsWith(x,'a'))", "%s/any(x:endsWith(x,'a'))",
			"%s/any(x:x ge 'a')", "%s/any(x:x in ('a'))", "%s/$count eq 0", "not(%s/any(x:x eq 'a'))"} {
			filters = append(filters, fmt.Sprintf(form, p))
		}
	}

	list := func(c *Client, filter string) error {
		_, _, err := collect(t, c.Users(t.Context(), filter), DefaultPageSize)
		return err
	}
	served, refused := 0, 0
	for _, filter := range filters {
		err := list(auto, filter)
		switch {
		case err != nil && !errors.Is(err, ErrFilterRefused):
			t.Errorf("%s: %v, want success or ErrFilterRefused", filter, err)
		case err != nil:
			refused++
			if list(always, filter) == nil {
				t.Errorf("%s: Graph serves it as an advanced query, but the client did not send one: %v", filter, err)
			}
		case auto.advancedQuery(filter):
			served++
			if list(never, filter) == nil {
				t.Errorf("%s: sent as an advanced query, but Graph serves it by default", filter)
			}
		default:
			served++
		}
	}
	if served == 0 || refused == 0 {
		t.Errorf("%d filters served, %d refused: the sweep checks nothing on one side", served, refused)
	}
}

func TestNeedsAdvancedQuery(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		{"", false},
		{"DisplayName EQ 'x'", false}, // names and operators in any case
		{"id in ('a', 'b') and (startswith(mail,'a') or userType eq 'Member')", false},
		{"signInActivity/lastSignInDateTime le 2019-06-01T00:00:00Z", false},
		{"assignedLicenses/any(s:s/skuId eq 184efa21-98c3-4e5d-95ab-d07053a96e67)", false},
		{"displayName eq 'it''s not ne endsWith'", false}, // words inside text are text
		{"NOT(displayName eq 'x')", true},
		{"displayName eq 'x' or mail ne 'y'", true},
		{"employeeOrgData/costCenter eq 'Sales'", true}, // not in the table's default cells
		{"extension_1234_costCenter eq 'x'", true},      // unknown to the client
		{"displayName eq 'x", true},                     // unreadable: Graph will say
		{"displayName contains 'x'", true},
		{"otherMails/all(m:startsWith(m,'a'))", true},
		{"businessPhones/any()", true},
	} {
		if got := needsAdvancedQuery(tc.filter); got != tc.want {
			t.Errorf("needsAdvancedQuery(%q) = %v, want %v", tc.filter, got, tc.want)
		}
	}
}
