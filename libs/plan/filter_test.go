package plan

import (
	"strings"
	"testing"
)

func TestCheckUserFilterAccepts(t *testing.T) {
	t.Parallel()
	for _, f := range []string{
		"",
		"   ",
		// Examples from Microsoft's docs: api-reference/v1.0/api/user-list.md,
		// concepts/aad-advanced-queries.md, concepts/filter-query-parameter.md.
		"accountEnabled eq false",
		"accountEnabled ne true",
		"startswith(displayName,'a')",
		"startsWith(displayName, 'Conf')",
		"endsWith(mail,'@outlook.com')",
		"endsWith(userPrincipalName,'#EXT#@contoso.com')",
		"identities/any(c:c/issuerAssignedId eq 'j.smith@yahoo.com' and c/issuer eq 'My B2C tenant')",
		"assignedLicenses/any(s:s/skuId eq 184efa21-98c3-4e5d-95ab-d07053a96e67)",
		"assignedLicenses/$count eq 0",
		"companyName ne null and NOT(companyName eq 'Microsoft')",
		"NOT startsWith(displayName, 'Conf')",
		"startsWith(mobilePhone, '25478') OR startsWith(mobilePhone, '25473')",
		"proxyAddresses/any (p:endsWith(p, 'OnMicrosoft.com'))",
		"signInActivity/lastSignInDateTime le 2019-06-01T00:00:00Z",
		"onPremisesExtensionAttributes/extensionAttribute1 eq 'BYOD-Device'",
		"employeeOrgData/costCenter eq 'Sales'",
		"createdDateTime ge 2021-11-01",
		"userType eq 'Member' and accountEnabled eq true",
		"mail in ('mail1@contoso.com', 'mail2@contoso.com')",
		"NOT groupTypes/any(c:c eq 'Unified')",
		// Shapes beyond the docs' examples.
		"displayName eq 'O''Brien'",
		"displayName eq ''",
		"department eq 'Sales' or (department eq 'Marketing' and not (jobTitle eq null))",
		"id in ('6e7b768e-07e2-4810-8459-485f84f8f204','87d349ed-44d7-43e1-9a83-5f2406dee5bd')",
		"id eq c42b9cae-ea4f-4ab7-9717-81576235ccac",
		"createdDateTime ge 2021-01-01T00:00:00.0000000+01:00 and createdDateTime lt 2022-01-01T08:30Z",
		"employeeId gt 100 and employeeId le -2.5e3",
		"otherMails/all(m:endsWith(m,'@contoso.com'))",
		"businessPhones/any()",
		"displayName eq 'Zoë' and   surname   eq\t'Ünal'",
	} {
		if err := CheckUserFilter(f); err != nil {
			t.Errorf("CheckUserFilter(%q) = %v, want nil", f, err)
		}
	}
}

func TestCheckUserFilterRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		filter string
		want   string // the whole message, or a part of it
	}{
		{"displayName contains 'a'", "unknown operator 'contains' at position 12"},
		{"contains(displayName,'a')", "unknown operator 'contains' at position 0"},
		{"substringof('a',displayName)", "unknown operator 'substringof' at position 0"},
		{"displayName like 'a%'", "unknown operator 'like' at position 12"},
		{"displayName eq 'a' xor mail eq 'b'", "unknown operator 'xor' at position 19"},
		{"displayName eq 'abc", "the text in quotes has no closing quote at position 15"},
		{"displayName eq 'O'Brien'", "'O'Brien' is not a valid value; write a quote inside text twice, as in 'O''Brien', at position 15"},
		{"(displayName eq 'a'", "the parenthesis has no closing one at position 0"},
		{"displayName eq 'a')", "unexpected ')' after a complete condition; join conditions with and or or at position 18"},
		{"((displayName eq 'a')", "the parenthesis has no closing one at position 0"},
		{"displayName eq 'a' 'b'", "unexpected text in quotes after a complete condition"},
		{"displayName eq", "'eq' has no value after it at position 12"},
		{"displayName", "'displayName' must be compared with a value, as in displayName eq 'x', at position 0"},
		{"displayName and mail eq 'a'", "'displayName' must be compared with a value"},
		{"displayName = 'a'", "unexpected '=': compare with eq, ne, gt, ge, lt, le or in at position 12"},
		{"displayName eq \"a\"", "text takes single quotes, not double quotes, at position 15"},
		{"displayName eq Adele", "Adele is not a value: put text in single quotes, as in 'Adele', at position 15"},
		{"accountEnabled eq tru", "tru is not a value"},
		{"createdDateTime ge 2021-13-01", "'2021-13-01' is not a valid date at position 19"},
		{"createdDateTime ge 2021-02-29T00:00:00Z", "'2021-02-29T00:00:00Z' is not a valid date and time"},
		{"createdDateTime ge 2021-01-01T25:00:00Z", "is not a valid date and time"},
		{"createdDateTime ge 2021-01-01T10", "'2021-01-01T10' is not a valid value"},
		{"id eq 12abc", "'12abc' is not a valid value at position 6"},
		{"id eq 1.2.3", "'1.2.3' is not a valid value"},
		{"id eq 6e7b768e-07e2-4810-8459-485f84f8f204x", "is not a valid value"},
		{"id in ()", "in takes values in parentheses"},
		{"id in 'a'", "in takes values in parentheses"},
		{"id in ('a' 'b')", "unexpected text in quotes in the list after in; separate values with commas at position 11"},
		{"id in ('a',", "in takes values in parentheses"},
		{"id in ('a'", "the list after in has no closing parenthesis"},
		{"and displayName eq 'a'", "unexpected 'and' where a condition was expected at position 0"},
		{"displayName eq 'a' and", "the filter ends where a condition was expected at position 22"},
		{"displayName eq 'a' or or mail eq 'b'", "unexpected 'or' where a condition was expected at position 22"},
		{"not", "the filter ends where a condition was expected at position 3"},
		{"()", "empty parentheses at position 0"},
		{")", "a closing parenthesis comes where a condition was expected at position 0"},
		{"'a' eq displayName", "a condition starts with a property name, not a value, at position 0"},
		{"proxyAddresses/any(p:q eq 'x')", "'q' is not the lambda variable 'p' at position 21"},
		{"proxyAddresses/any(p eq 'x')", "any needs a variable and a condition"},
		{"proxyAddresses/any(p:p eq 'x'", "the parenthesis of any has no closing one"},
		{"proxyAddresses/any", "any needs a variable and a condition in parentheses"},
		{"proxyAddresses/all()", "all needs a variable and a condition"},
		{"startsWith(displayName)", "startsWith takes a property and a text in quotes, as in startsWith(displayName,'A') at position 0"},
		{"startsWith(displayName, 42)", "startsWith takes a property and a text in quotes"},
		{"endsWith('x', mail)", "endsWith takes a property and a text in quotes"},
		{"manager/displayName() eq 'x'", "unknown operator 'manager/displayName'"},
		{"displayName/ eq 'x'", "a property path has an empty or invalid part at position 12"},
		{"displayName eq 'a' # comment", "unexpected '#' after a complete condition"},
		// Positions count characters, not bytes.
		{"displayName eq 'Zoë' or x contains 'y'", "unknown operator 'contains' at position 26"},
		{strings.Repeat("(", 65) + "id eq 'a'" + strings.Repeat(")", 65), "the filter nests conditions more than 64 deep at position 64"},
		{strings.Repeat("not ", 65) + "id eq 'a'", "the filter nests conditions more than 64 deep"},
	} {
		err := CheckUserFilter(tc.filter)
		if err == nil {
			t.Errorf("CheckUserFilter(%q) = nil, want an error about %q", tc.filter, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckUserFilter(%q) = %q, want it to say %q", tc.filter, err, tc.want)
		}
	}
}

// The settings' validation reports a bad filter as a field error an admin
// can act on.
func TestValidateReportsTheFilterError(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	s.Scope.UserFilter = "displayName contains 'a'"
	s.Normalize()
	err := s.Validate()
	fe, ok := err.(*FieldError)
	if !ok || fe.Field != "scope.userFilter" || !strings.Contains(fe.Message, "unknown operator 'contains' at position 12") {
		t.Fatalf("Validate() = %v, want a scope.userFilter field error naming the operator and its position", err)
	}
}
