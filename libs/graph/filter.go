package graph

import (
	"strings"
	"unicode"
)

// defaultUserFilters are the operators Graph serves on user properties
// without the advanced query parameters (ConsistencyLevel: eventual and
// $count=true): the "Default" cells of the table that
// concepts/aad-advanced-queries.md includes
// (includes/filter-directory-objects.md in
// microsoftgraph/microsoft-graph-docs-contrib), plus in wherever eq works
// by default ("The in operator is supported by default whenever eq
// operator is supported by default"). Keys are lower-case. An operator
// inside a lambda counts for its collection.
//
// Anything else (ne, not, endsWith, null values, /$count, gt, lt, a
// property not listed, an operator missing from a row) goes out as an
// advanced query: "Queries that are supported by default will also work
// with advanced query parameters", so doubt costs only eventual
// consistency, never a refusal.
var defaultUserFilters = map[string]string{
	"accountenabled":               "eq in",
	"agegroup":                     "eq in",
	"assignedlicenses":             "eq",
	"assignedplans":                "eq",
	"businessphones":               "eq",
	"city":                         "eq ge in startswith",
	"consentprovidedforminor":      "eq in",
	"country":                      "eq ge le in startswith",
	"createddatetime":              "eq ge le",
	"creationtype":                 "eq in",
	"deleteddatetime":              "eq ge le",
	"department":                   "eq ge le in startswith",
	"displayname":                  "eq in startswith",
	"employeeid":                   "eq in startswith",
	"givenname":                    "eq ge le in startswith",
	"id":                           "eq in",
	"identities":                   "eq",
	"imaddresses":                  "eq ge le startswith",
	"infocatalogs":                 "eq ge le startswith",
	"isresourceaccount":            "eq in",
	"jobtitle":                     "eq ge le in",
	"mail":                         "eq ge le in startswith",
	"mailnickname":                 "eq ge le in startswith",
	"onpremisessecurityidentifier": "eq in",
	"onpremisessyncenabled":        "eq in",
	"onpremisesuserprincipalname":  "eq ge le in startswith",
	"othermails":                   "eq ge le in startswith",
	"proxyaddresses":               "eq ge le startswith",
	"signinactivity":               "eq ge le",
	"state":                        "eq ge le in startswith",
	"surname":                      "eq ge le in startswith",
	"usagelocation":                "eq ge le in startswith",
	"userprincipalname":            "eq le in startswith",
	"usertype":                     "eq in",
}

// needsAdvancedQuery reports whether a $filter on /users must be sent as
// an advanced query. It is true unless every condition of the filter is
// one Graph serves by default; a filter it cannot read is sent as an
// advanced query too, and Graph judges it.
func needsAdvancedQuery(filter string) bool {
	s := &filterScan{toks: filterTokens(filter)}
	if s.toks == nil {
		return strings.TrimSpace(filter) != ""
	}
	if !s.expr() || s.i != len(s.toks) {
		return true
	}
	return s.advanced
}

// filterScan walks a filter's conditions far enough to name each
// property and operator; it is not a validator (plan.CheckUserFilter
// is).
type filterScan struct {
	toks     []string
	i        int
	lambda   string // the variable of the lambda being read
	coll     string // the collection it ranges over
	advanced bool
}

// filterTokens splits a filter into words and paths (a/b/$count),
// quoted texts (kept with their quotes), other values (GUIDs, dates,
// numbers) and the punctuation ( ) , : . It returns nil for an
// unterminated quote.
func filterTokens(f string) []string {
	var toks []string
	for i := 0; i < len(f); {
		c := f[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '\'':
			j := i + 1
			for ; ; j++ {
				if j >= len(f) {
					return nil
				}
				if f[j] == '\'' {
					if j+1 < len(f) && f[j+1] == '\'' {
						j++
						continue
					}
					break
				}
			}
			toks = append(toks, f[i:j+1])
			i = j + 1
		case strings.IndexByte("(),:", c) >= 0:
			toks = append(toks, string(c))
			i++
		default:
			// A colon ends a lambda's variable (p:...) but belongs to a
			// date-time value (2021-01-01T00:00:00Z), which starts with a
			// digit.
			stops := "(),:' \t\r\n"
			if c >= '0' && c <= '9' || c == '-' || c == '+' {
				stops = "(),' \t\r\n"
			}
			j := i
			for j < len(f) && strings.IndexByte(stops, f[j]) < 0 {
				j++
			}
			toks = append(toks, f[i:j])
			i = j
		}
	}
	return toks
}

func (s *filterScan) peek() string {
	if s.i < len(s.toks) {
		return s.toks[s.i]
	}
	return ""
}

func (s *filterScan) next() string {
	t := s.peek()
	s.i++
	return t
}

func (s *filterScan) accept(tok string) bool {
	if strings.EqualFold(s.peek(), tok) {
		s.i++
		return true
	}
	return false
}

func (s *filterScan) expr() bool {
	for {
		if !s.unary() {
			return false
		}
		if !s.accept("and") && !s.accept("or") {
			return true
		}
	}
}

func (s *filterScan) unary() bool {
	if s.accept("not") {
		s.advanced = true // not is advanced on every property
		return s.unary()
	}
	if s.accept("(") {
		return s.expr() && s.accept(")")
	}
	tok := s.next()
	switch strings.ToLower(tok) {
	case "startswith", "endswith":
		if !s.accept("(") {
			return false
		}
		s.use(s.next(), strings.ToLower(tok))
		if !s.accept(",") {
			return false
		}
		s.value()
		return s.accept(")")
	}
	if base, kind, ok := strings.Cut(tok, "/"); ok && s.lambda == "" {
		if k := strings.ToLower(kind); k == "any" || k == "all" {
			return s.lambdaBody(base, k)
		}
	}
	if strings.HasSuffix(tok, "/$count") {
		s.advanced = true // /$count is advanced on every property
	}
	op := strings.ToLower(s.next())
	switch op {
	case "eq", "ne", "gt", "ge", "lt", "le":
		if strings.EqualFold(s.peek(), "null") {
			s.advanced = true // null values are advanced on every user property
		}
		s.use(tok, op)
		return s.value()
	case "in":
		s.use(tok, op)
		if !s.accept("(") {
			return false
		}
		for s.value() {
			if s.accept(")") {
				return true
			}
			if !s.accept(",") {
				return false
			}
		}
	}
	return false
}

// lambdaBody reads (v: condition) after coll/any or coll/all; the
// operators in it count for coll.
func (s *filterScan) lambdaBody(coll, kind string) bool {
	if kind == "all" {
		s.advanced = true // the docs name no default all
	}
	if !s.accept("(") {
		return false
	}
	if s.accept(")") {
		s.advanced = true // nor an empty any()
		return true
	}
	v := s.next()
	if !s.accept(":") {
		return false
	}
	s.lambda, s.coll = v, coll
	ok := s.expr()
	s.lambda, s.coll = "", ""
	return ok && s.accept(")")
}

// use records an operator applied to a path; it is advanced unless the
// table says the property serves it by default.
func (s *filterScan) use(path, op string) {
	first, _, _ := strings.Cut(path, "/")
	if s.lambda != "" && first == s.lambda {
		first = s.coll
	}
	if !strings.Contains(" "+defaultUserFilters[strings.ToLower(first)]+" ", " "+op+" ") {
		s.advanced = true
	}
}

// value consumes one literal (or, for a value it cannot read, reports
// false so that the whole filter goes out as an advanced query).
func (s *filterScan) value() bool {
	t := s.next()
	if t == "" || strings.IndexByte("(),:", t[0]) >= 0 {
		return false
	}
	return t[0] == '\'' || strings.IndexFunc(t, func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-+:.", r))
	}) < 0
}
