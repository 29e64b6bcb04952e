package graphsim

import (
	"math"
	"strings"
	"time"
)

// filterSupport says how Graph answers one $filter operator on one
// property of a directory object.
type filterSupport uint8

const (
	// notFilterable: Graph refuses the clause, advanced query or not.
	notFilterable filterSupport = iota
	// filterByDefault: works without the advanced query parameters.
	filterByDefault
	// filterAdvanced: works only with ConsistencyLevel: eventual and
	// $count=true.
	filterAdvanced
)

// Operator names as the docs' tables write them. "null" is eq (or ne)
// against null, "$count" a comparison of a collection's /$count.
const (
	opNull  = "null"
	opCount = "$count"
)

// ops builds one property's row: the operators that work by default and
// those that need the advanced query parameters, space-separated.
func ops(byDefault, advanced string) map[string]filterSupport {
	m := map[string]filterSupport{}
	for _, op := range strings.Fields(byDefault) {
		m[op] = filterByDefault
	}
	for _, op := range strings.Fields(advanced) {
		m[op] = filterAdvanced
	}
	return m
}

// userFilters is $filter support on microsoft.graph.user, for the
// properties the simulator serves. Sources, in the
// microsoftgraph/microsoft-graph-docs-contrib repository:
//
//   - includes/filter-directory-objects.md, the table that
//     concepts/aad-advanced-queries.md includes ("Support for filter by
//     properties of Microsoft Entra ID (directory) objects"): per property,
//     which of eq, ne, NOT, ge, le, in, startsWith and null values work by
//     default and which need the advanced query parameters;
//   - concepts/aad-advanced-queries.md's rules: "The in operator is
//     supported by default whenever eq operator is supported by default";
//     "The endsWith operator is supported only with advanced query
//     parameters by mail, otherMails, userPrincipalName, and
//     proxyAddresses"; "The not and ne negation operators are supported
//     only with advanced query parameters. All properties that support the
//     eq operator also support the ne or not operators"; /$count eq|ne
//     only with advanced query parameters;
//   - api-reference/v1.0/resources/user.md, each property's "Supports
//     $filter (...)": an operator it lists that the table leaves blank is
//     taken as supported with the advanced query parameters only (the docs
//     say Graph takes it, not that it works by default).
//
// A property missing here (onPremisesDomainName, for one) or an operator
// missing from its row (gt and lt on every property) is refused with
// Request_UnsupportedQuery, as both pages say.
var userFilters = map[string]map[string]filterSupport{
	"accountEnabled":              ops("eq in", "ne not ge le"),
	"ageGroup":                    ops("eq in", "ne not"),
	"assignedLicenses":            ops("eq", "not $count"),
	"businessPhones":              ops("eq", "not ge le startsWith"),
	"city":                        ops("eq ge in startsWith", "ne not le null"),
	"companyName":                 ops("", "eq ne not ge le in startsWith null"),
	"country":                     ops("eq ge le in startsWith", "ne not null"),
	"createdDateTime":             ops("eq ge le", "ne not in"),
	"creationType":                ops("eq in", "ne not"),
	"deletedDateTime":             ops("eq ge le", "ne not in"),
	"department":                  ops("eq ge le in startsWith", "ne not null"),
	"displayName":                 ops("eq in startsWith", "ne not ge le null"),
	"employeeId":                  ops("eq in startsWith", "ne not ge le null"),
	"employeeType":                ops("", "eq ne not ge le in startsWith"),
	"externalUserState":           ops("", "eq ne not in"),
	"faxNumber":                   ops("", "eq ne not ge le in startsWith null"),
	"givenName":                   ops("eq ge le in startsWith", "ne not null"),
	"id":                          ops("eq in", "ne not"),
	"imAddresses":                 ops("eq ge le startsWith", "ne not"),
	"jobTitle":                    ops("eq ge le in", "ne not startsWith null"),
	"mail":                        ops("eq ge le in startsWith", "ne not endsWith null"),
	"mailNickname":                ops("eq ge le in startsWith", "ne not null"),
	"mobilePhone":                 ops("", "eq ne not ge le in startsWith null"),
	"officeLocation":              ops("", "eq ne not ge le in startsWith null"),
	"onPremisesImmutableId":       ops("", "eq ne not ge le in"),
	"onPremisesLastSyncDateTime":  ops("", "eq ne not ge le in"),
	"onPremisesSamAccountName":    ops("", "eq ne not ge le in startsWith"),
	"onPremisesSyncEnabled":       ops("eq in", "ne not ge le null"),
	"onPremisesUserPrincipalName": ops("eq ge le in startsWith", "ne not"),
	"otherMails":                  ops("eq ge le in startsWith", "ne not endsWith $count"),
	"postalCode":                  ops("", "eq ne not ge le in startsWith null"),
	"preferredLanguage":           ops("", "eq ne not ge le in startsWith null"),
	"proxyAddresses":              ops("eq ge le startsWith", "ne not endsWith null $count"),
	"securityIdentifier":          ops("", "eq ne not ge le startsWith"),
	"showInAddressList":           ops("", "eq ne not ge le in"),
	"state":                       ops("eq ge le in startsWith", "ne not null"),
	"streetAddress":               ops("", "eq ne not ge le in startsWith null"),
	"surname":                     ops("eq ge le in startsWith", "ne not null"),
	"usageLocation":               ops("eq ge le in startsWith", "ne not null"),
	"userPrincipalName":           ops("eq le in startsWith", "ne not ge endsWith"),
	"userType":                    ops("eq in", "ne not null"),
}

// userTypes are the EDM types of user properties that are not
// Edm.String (resources/user.md), for the type checks OData makes before
// Graph looks at indexes.
var userTypes = map[string]string{
	"accountEnabled":             "Edm.Boolean",
	"onPremisesSyncEnabled":      "Edm.Boolean",
	"showInAddressList":          "Edm.Boolean",
	"createdDateTime":            "Edm.DateTimeOffset",
	"deletedDateTime":            "Edm.DateTimeOffset",
	"onPremisesLastSyncDateTime": "Edm.DateTimeOffset",
	"businessPhones":             "Collection(Edm.String)",
	"imAddresses":                "Collection(Edm.String)",
	"otherMails":                 "Collection(Edm.String)",
	"proxyAddresses":             "Collection(Edm.String)",
	"assignedLicenses":           "Collection(microsoft.graph.assignedLicense)",
}

func userType(prop string) string {
	if t, ok := userTypes[prop]; ok {
		return t
	}
	return "Edm.String"
}

// filterUse is one operator applied to one property.
type filterUse struct{ prop, op string }

// uses lists every operator the filter applies to each property; an
// operator inside a lambda counts for the collection, a condition under
// not counts as a use of not too.
func (n *filterNode) uses() []filterUse {
	var out []filterUse
	var visit func(n *filterNode, negated bool, coll string)
	visit = func(n *filterNode, negated bool, coll string) {
		add := func(ops ...string) {
			prop := n.prop
			if prop == lambdaIt {
				prop = coll
			}
			for _, op := range ops {
				out = append(out, filterUse{prop, op})
			}
			if negated {
				out = append(out, filterUse{prop, "not"})
			}
		}
		switch n.op {
		case "and", "or":
			for _, k := range n.kids {
				visit(k, negated, coll)
			}
		case "not":
			visit(n.kids[0], true, coll)
		case "any", "all":
			if n.op == "all" || len(n.kids) == 0 {
				// The docs name neither all nor an empty any() for
				// directory objects.
				add(n.op)
				return
			}
			visit(n.kids[0], negated, n.prop)
		case "cmp":
			switch {
			case n.lit == nil && n.cmp == "eq":
				add(opNull)
			case n.lit == nil:
				add(n.cmp, opNull)
			default:
				add(n.cmp)
			}
		case "in":
			add("in")
		case "startswith":
			add("startsWith")
		case "endswith":
			add("endsWith")
		case "count":
			add(opCount)
		}
	}
	visit(n, false, "")
	return out
}

// checkUserFilter judges a parsed filter on users as Graph does: types
// first (OData's parser), then whether each property is indexed for each
// operator, then whether the advanced query parameters it needs came.
func checkUserFilter(f *filterNode, advanced, alwaysAdvanced bool) *graphError {
	if err := f.typeCheck(""); err != nil {
		return err
	}
	needs := ""
	for _, u := range f.uses() {
		switch userFilters[u.prop][u.op] {
		case notFilterable:
			return unsupportedClause(u.prop, "User")
		case filterAdvanced:
			if needs == "" {
				needs = u.prop
			}
		}
	}
	if advanced || needs == "" && !alwaysAdvanced {
		return nil
	}
	if op := f.advancedOperator(); op != "" {
		return missingAdvancedOperator(op)
	}
	if needs == "" {
		return missingAdvancedCollection(f, "user")
	}
	return unsupportedClause(needs, "User")
}

// unsupportedClause is Graph's answer to a property not indexed for an
// operator (concepts/aad-advanced-queries.md, "Error handling for
// advanced queries on directory objects"). The docs show it for a
// property that needs more than the advanced query parameters; the
// simulator also gives it when they are missing and no operator is to
// blame (see README).
func unsupportedClause(prop, resource string) *graphError {
	return badRequest("Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified for property '%s' of resource '%s'.", prop, resource)
}

// missingAdvancedOperator is Graph's answer, word for word
// (concepts/aad-advanced-queries.md), to an operator that needs the
// advanced query parameters when either is missing.
func missingAdvancedOperator(op string) *graphError {
	return badRequest("Request_UnsupportedQuery", "Operator '%s' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information", op)
}

// missingAdvancedCollection answers a filter on a member list without the
// advanced query parameters, which group-list-members.md requires for
// any $filter there; the docs quote no message.
func missingAdvancedCollection(f *filterNode, resource string) *graphError {
	return badRequest("Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified for property '%s' of resource '%s'. This query needs the advanced query parameters: the ConsistencyLevel: eventual header and $count=true.", firstProp(f), resource)
}

// typeCheck refuses comparisons of incompatible types with the messages
// of OData's parser, which Graph returns as they are. coll is the
// collection a lambda body ranges over.
func (n *filterNode) typeCheck(coll string) *graphError {
	typeOf := func(prop string) string {
		if prop == lambdaIt {
			return strings.TrimSuffix(strings.TrimPrefix(userType(coll), "Collection("), ")")
		}
		return userType(prop)
	}
	switch n.op {
	case "and", "or", "not":
		for _, k := range n.kids {
			if err := k.typeCheck(coll); err != nil {
				return err
			}
		}
	case "any", "all":
		t := typeOf(n.prop)
		if !strings.HasPrefix(t, "Collection(") {
			return badRequest("BadRequest", "Invalid filter clause: The Any/All query expression can only be applied to a collection; '%s' is of type '%s'.", n.prop, t)
		}
		if t != "Collection(Edm.String)" && len(n.kids) > 0 {
			return simUnsupported("a lambda over %s", t)
		}
		for _, k := range n.kids {
			if err := k.typeCheck(n.prop); err != nil {
				return err
			}
		}
	case "cmp":
		if t, l := typeOf(n.prop), litType(n.lit); !compatible(t, l) {
			return incompatible(t, l, n.cmp)
		}
	case "in":
		t := typeOf(n.prop)
		for _, lit := range n.lits {
			if l := litType(lit); !compatible(t, l) {
				return incompatible(t, l, "in")
			}
		}
	case "startswith", "endswith":
		if typeOf(n.prop) != "Edm.String" || litType(n.lit) != "Edm.String" {
			return badRequest("BadRequest", "Invalid filter clause: No function signature for the function with name '%s' matches the specified arguments. The function signatures considered are: %s(Edm.String Nullable=true, Edm.String Nullable=true).", n.op, n.op)
		}
	case "count":
		if t := typeOf(n.prop); !strings.HasPrefix(t, "Collection(") {
			return badRequest("BadRequest", "Invalid filter clause: $count can only follow a collection; '%s' is of type '%s'.", n.prop, t)
		}
		if l := litType(n.lit); l != "Edm.Int32" {
			return incompatible("Edm.Int32", l, n.cmp)
		}
	}
	return nil
}

func incompatible(left, right, cmp string) *graphError {
	kind := map[string]string{"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual",
		"lt": "LessThan", "le": "LessThanOrEqual", "in": "In"}[cmp]
	return badRequest("BadRequest", "Invalid filter clause: A binary operator with incompatible types was detected. Found operand types '%s' and '%s' for operator kind '%s'.", left, right, kind)
}

// litType is a literal's EDM type; "" for null, which fits every type.
func litType(lit any) string {
	switch v := lit.(type) {
	case string:
		return "Edm.String"
	case bool:
		return "Edm.Boolean"
	case float64:
		if v == math.Trunc(v) && math.Abs(v) <= math.MaxInt32 {
			return "Edm.Int32"
		}
		return "Edm.Double"
	case guidValue:
		return "Edm.Guid"
	case time.Time:
		return "Edm.DateTimeOffset"
	case dateValue:
		return "Edm.Date"
	}
	return ""
}

func compatible(prop, lit string) bool {
	return lit == "" || prop == lit || prop == "Edm.DateTimeOffset" && lit == "Edm.Date"
}
