package graphsim

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// filterNode is a parsed $filter expression. The simulator understands
// the forms Graph documents for directory objects: eq, ne, gt, ge, lt,
// le, in, startsWith, endsWith, not, and, or, parentheses, eq null,
// lambdas on string collections (groupTypes/any(c:c eq 'Unified'),
// proxyAddresses/any(p:endsWith(p,'contoso.com'))) and the /$count of a
// collection. String comparisons ignore case, as the directory's do.
type filterNode struct {
	op   string // and, or, not, cmp, in, startswith, endswith, any, all, count
	kids []*filterNode
	prop string // canonical property name; lambdaIt inside a lambda body
	cmp  string // eq, ne, gt, ge, lt, le (op cmp and count)
	lit  any    // string, bool, float64, time.Time, guidValue or nil
	lits []any  // op in
}

// lambdaIt stands for a lambda's variable in its body.
const lambdaIt = "$it"

// guidValue is an unquoted GUID literal. It compares with strings, but
// has a type of its own: Graph's ids are strings and take quotes.
type guidValue string

// dateValue is a date literal without a time (2021-11-01).
type dateValue struct{ time.Time }

// walk calls fn on every node under n, n included; negated says whether
// the node stands under a not.
func (n *filterNode) walk(negated bool, fn func(n *filterNode, negated bool)) {
	if n == nil {
		return
	}
	fn(n, negated)
	for _, k := range n.kids {
		k.walk(negated || n.op == "not", fn)
	}
}

// operatorsNeedingAdvanced are the operators Graph allows on directory
// objects only in advanced queries, whatever the property
// (concepts/aad-advanced-queries.md: "The not and ne negation operators
// are supported only with advanced query parameters"; endsWith likewise).
func (n *filterNode) advancedOperator() string {
	op := ""
	n.walk(false, func(k *filterNode, _ bool) {
		if op != "" {
			return
		}
		switch {
		case k.op == "not":
			op = "not"
		case k.op == "endswith":
			op = "endsWith"
		case k.op == "cmp" && k.cmp == "ne":
			op = "ne"
		}
	})
	return op
}

// eval tells whether an object matches; get returns a property's value
// and whether the object's type has it.
func (n *filterNode) eval(get func(string) (any, bool)) bool {
	switch n.op {
	case "and":
		for _, k := range n.kids {
			if !k.eval(get) {
				return false
			}
		}
		return true
	case "or":
		for _, k := range n.kids {
			if k.eval(get) {
				return true
			}
		}
		return false
	case "not":
		return !n.kids[0].eval(get)
	}
	v, ok := get(n.prop)
	if !ok {
		return false
	}
	switch n.op {
	case "cmp":
		return compares(v, n.cmp, n.lit)
	case "in":
		for _, l := range n.lits {
			if c, ok := compare(v, l); ok && c == 0 {
				return true
			}
		}
	case "startswith", "endswith":
		s, ok := v.(string)
		lit, _ := n.lit.(string)
		if !ok {
			return false
		}
		s, lit = strings.ToLower(s), strings.ToLower(lit)
		if n.op == "startswith" {
			return strings.HasPrefix(s, lit)
		}
		return strings.HasSuffix(s, lit)
	case "any", "all":
		list, ok := v.([]string)
		if !ok {
			return false
		}
		if len(n.kids) == 0 { // any(): the collection has items
			return len(list) > 0
		}
		for _, s := range list {
			it := func(name string) (any, bool) {
				if name == lambdaIt {
					return s, true
				}
				return get(name)
			}
			if m := n.kids[0].eval(it); m != (n.op == "all") {
				return m
			}
		}
		return n.op == "all"
	case "count":
		list, ok := v.([]string)
		return ok && compares(float64(len(list)), n.cmp, n.lit)
	}
	return false
}

func compares(v any, cmp string, lit any) bool {
	c, comparable := compare(v, lit)
	switch cmp {
	case "eq":
		return comparable && c == 0
	case "ne":
		return !comparable || c != 0
	case "gt":
		return comparable && c > 0
	case "ge":
		return comparable && c >= 0
	case "lt":
		return comparable && c < 0
	case "le":
		return comparable && c <= 0
	}
	return false
}

// compare orders a property value against a literal; ok is false when
// the two cannot be compared (null against a value, a bool against a
// string).
func compare(v, lit any) (int, bool) {
	if g, ok := lit.(guidValue); ok {
		lit = string(g)
	}
	if d, ok := lit.(dateValue); ok {
		lit = d.Time
	}
	switch v := v.(type) {
	case nil:
		if lit == nil {
			return 0, true
		}
		return 0, false
	case string:
		switch l := lit.(type) {
		case string:
			return strings.Compare(strings.ToLower(v), strings.ToLower(l)), true
		case time.Time:
			// Date-time properties are served as RFC 3339 text.
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return 0, false
			}
			return t.Compare(l), true
		}
		return 0, false
	case bool:
		l, ok := lit.(bool)
		if !ok {
			return 0, false
		}
		switch {
		case v == l:
			return 0, true
		case !v:
			return -1, true
		}
		return 1, true
	case float64:
		l, ok := lit.(float64)
		if !ok {
			return 0, false
		}
		switch {
		case v == l:
			return 0, true
		case v < l:
			return -1, true
		}
		return 1, true
	}
	return 0, false
}

// --- parsing ---

type filterToken struct {
	kind string // ident, string, number, guid, datetime, date, punct
	text string
	pos  int
}

type filterParser struct {
	src    string
	toks   []filterToken
	i      int
	props  map[string]string // lower → canonical
	entity string            // for messages, e.g. "microsoft.graph.user"
	it     string            // the variable of the lambda being parsed
}

// parseFilter parses a $filter value against the properties of a type.
func parseFilter(src string, props map[string]string, entity string) (*filterNode, *graphError) {
	p := &filterParser{src: src, props: props, entity: entity}
	if err := p.lex(); err != nil {
		return nil, err
	}
	if len(p.toks) == 0 {
		return nil, badRequest("BadRequest", "Invalid filter clause: The query specified in the URI is not valid.")
	}
	n, err := p.expr()
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		return nil, p.syntax()
	}
	return n, nil
}

// Unquoted literals of OData's ABNF, tried before numbers and names: a
// date starts like a number, a GUID may start like a name.
var (
	guidLit     = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}`)
	dateTimeLit = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,12})?)?(?:[Zz]|[+-]\d{2}:\d{2})`)
	dateLit     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}`)
)

func (p *filterParser) lex() *graphError {
	s := p.src
	for i := 0; i < len(s); {
		c := rune(s[i])
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return badRequest("BadRequest", "Invalid filter clause: There is an unterminated string literal at position %d in '%s'.", i, s)
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' { // a doubled quote is a quote
						b.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			p.toks = append(p.toks, filterToken{"string", b.String(), i})
			i = j + 1
		case strings.ContainsRune("(),:", c):
			p.toks = append(p.toks, filterToken{"punct", string(c), i})
			i++
		case guidLit.MatchString(s[i:]):
			m := guidLit.FindString(s[i:])
			p.toks = append(p.toks, filterToken{"guid", m, i})
			i += len(m)
		case dateTimeLit.MatchString(s[i:]):
			m := dateTimeLit.FindString(s[i:])
			p.toks = append(p.toks, filterToken{"datetime", m, i})
			i += len(m)
		case dateLit.MatchString(s[i:]):
			m := dateLit.FindString(s[i:])
			p.toks = append(p.toks, filterToken{"date", m, i})
			i += len(m)
		case c == '-' || c == '+' || unicode.IsDigit(c):
			j := i + 1
			for j < len(s) && (unicode.IsDigit(rune(s[j])) || strings.ContainsRune(".eE", rune(s[j])) ||
				(s[j] == '-' || s[j] == '+') && (s[j-1] == 'e' || s[j-1] == 'E')) {
				j++
			}
			p.toks = append(p.toks, filterToken{"number", s[i:j], i})
			i = j
		case unicode.IsLetter(c) || c == '_' || c == '$':
			j := i + 1
			for j < len(s) && (unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j])) || strings.ContainsRune("_./$", rune(s[j]))) {
				j++
			}
			p.toks = append(p.toks, filterToken{"ident", s[i:j], i})
			i = j
		default:
			return badRequest("BadRequest", "Invalid filter clause: Syntax error: character '%c' is not valid at position %d in '%s'.", c, i, s)
		}
	}
	return nil
}

func (p *filterParser) syntax() *graphError {
	pos := len(p.src)
	if p.i < len(p.toks) {
		pos = p.toks[p.i].pos
	}
	return badRequest("BadRequest", "Invalid filter clause: Syntax error at position %d in '%s'.", pos, p.src)
}

func (p *filterParser) peekWord(words ...string) bool {
	if p.i >= len(p.toks) || p.toks[p.i].kind != "ident" {
		return false
	}
	return slices.Contains(words, strings.ToLower(p.toks[p.i].text))
}

func (p *filterParser) punct(c string) bool {
	if p.i < len(p.toks) && p.toks[p.i].kind == "punct" && p.toks[p.i].text == c {
		p.i++
		return true
	}
	return false
}

func (p *filterParser) expr() (*filterNode, *graphError) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	if !p.peekWord("or") {
		return left, nil
	}
	n := &filterNode{op: "or", kids: []*filterNode{left}}
	for p.peekWord("or") {
		p.i++
		k, err := p.and()
		if err != nil {
			return nil, err
		}
		n.kids = append(n.kids, k)
	}
	return n, nil
}

func (p *filterParser) and() (*filterNode, *graphError) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	if !p.peekWord("and") {
		return left, nil
	}
	n := &filterNode{op: "and", kids: []*filterNode{left}}
	for p.peekWord("and") {
		p.i++
		k, err := p.unary()
		if err != nil {
			return nil, err
		}
		n.kids = append(n.kids, k)
	}
	return n, nil
}

func (p *filterParser) unary() (*filterNode, *graphError) {
	if p.peekWord("not") {
		p.i++
		k, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &filterNode{op: "not", kids: []*filterNode{k}}, nil
	}
	return p.primary()
}

// operand resolves a name to a property, or to the lambda's variable.
func (p *filterParser) operand(name string) (string, *graphError) {
	if p.it != "" && name == p.it {
		return lambdaIt, nil
	}
	if p.it != "" && strings.HasPrefix(name, p.it+"/") {
		return "", simUnsupported("a lambda over properties of complex items (%s)", name)
	}
	first, rest, nested := strings.Cut(name, "/")
	canon, ok := p.props[strings.ToLower(first)]
	if !ok {
		return "", badRequest("BadRequest", "Invalid filter clause: Could not find a property named '%s' on type '%s'.", first, p.entity)
	}
	if nested {
		return "", badRequest("BadRequest", "Invalid filter clause: Could not find a property named '%s' on the type of '%s'.", rest, canon)
	}
	return canon, nil
}

// simUnsupported is a valid query the simulator does not implement; the
// README lists these.
func simUnsupported(format string, args ...any) *graphError {
	return badRequest("Request_UnsupportedQuery", "Not supported by the Graph simulator: "+format+".", args...)
}

func (p *filterParser) primary() (*filterNode, *graphError) {
	if p.punct("(") {
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		if !p.punct(")") {
			return nil, p.syntax()
		}
		return n, nil
	}
	if p.i >= len(p.toks) || p.toks[p.i].kind != "ident" {
		return nil, p.syntax()
	}
	ident := p.toks[p.i].text
	p.i++
	lower := strings.ToLower(ident)

	// startsWith(prop, 'x') / endsWith(prop, 'x')
	if lower == "startswith" || lower == "endswith" {
		if !p.punct("(") || p.i >= len(p.toks) || p.toks[p.i].kind != "ident" {
			return nil, p.syntax()
		}
		prop, err := p.operand(p.toks[p.i].text)
		if err != nil {
			return nil, err
		}
		p.i++
		if !p.punct(",") {
			return nil, p.syntax()
		}
		lit, err := p.literal()
		if err != nil {
			return nil, err
		}
		if !p.punct(")") {
			return nil, p.syntax()
		}
		return &filterNode{op: lower, prop: prop, lit: lit}, nil
	}

	// coll/any(v: cond), coll/all(v: cond), coll/any()
	if base, kind, ok := cutLambda(ident); ok {
		if p.it != "" {
			return nil, simUnsupported("a lambda inside a lambda")
		}
		prop, err := p.operand(base)
		if err != nil {
			return nil, err
		}
		if !p.punct("(") {
			return nil, p.syntax()
		}
		n := &filterNode{op: kind, prop: prop}
		if kind == "any" && p.punct(")") {
			return n, nil
		}
		if p.i+1 >= len(p.toks) || p.toks[p.i].kind != "ident" {
			return nil, p.syntax()
		}
		p.it = p.toks[p.i].text
		p.i++
		if !p.punct(":") {
			return nil, p.syntax()
		}
		body, err := p.expr()
		p.it = ""
		if err != nil {
			return nil, err
		}
		if !p.punct(")") {
			return nil, p.syntax()
		}
		n.kids = []*filterNode{body}
		return n, nil
	}

	// coll/$count eq 0
	if base, ok := strings.CutSuffix(ident, "/$count"); ok {
		prop, err := p.operand(base)
		if err != nil {
			return nil, err
		}
		if !p.peekWord("eq", "ne", "gt", "ge", "lt", "le") {
			return nil, p.syntax()
		}
		cmp := strings.ToLower(p.toks[p.i].text)
		p.i++
		lit, err := p.literal()
		if err != nil {
			return nil, err
		}
		return &filterNode{op: "count", prop: prop, cmp: cmp, lit: lit}, nil
	}

	prop, err := p.operand(ident)
	if err != nil {
		return nil, err
	}
	if p.peekWord("in") {
		p.i++
		if !p.punct("(") {
			return nil, p.syntax()
		}
		n := &filterNode{op: "in", prop: prop}
		for {
			lit, err := p.literal()
			if err != nil {
				return nil, err
			}
			n.lits = append(n.lits, lit)
			if p.punct(")") {
				return n, nil
			}
			if !p.punct(",") {
				return nil, p.syntax()
			}
		}
	}
	if !p.peekWord("eq", "ne", "gt", "ge", "lt", "le") {
		return nil, p.syntax()
	}
	cmp := strings.ToLower(p.toks[p.i].text)
	p.i++
	lit, err := p.literal()
	if err != nil {
		return nil, err
	}
	return &filterNode{op: "cmp", prop: prop, cmp: cmp, lit: lit}, nil
}

// cutLambda splits "coll/any" or "coll/all" (any case).
func cutLambda(ident string) (base, kind string, ok bool) {
	i := strings.LastIndexByte(ident, '/')
	if i <= 0 {
		return "", "", false
	}
	kind = strings.ToLower(ident[i+1:])
	if kind != "any" && kind != "all" {
		return "", "", false
	}
	return ident[:i], kind, true
}

func (p *filterParser) literal() (any, *graphError) {
	if p.i >= len(p.toks) {
		return nil, p.syntax()
	}
	t := p.toks[p.i]
	p.i++
	switch t.kind {
	case "string":
		return t.text, nil
	case "number":
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			p.i--
			return nil, p.syntax()
		}
		return f, nil
	case "guid":
		return guidValue(strings.ToLower(t.text)), nil
	case "datetime":
		v, err := time.Parse(time.RFC3339Nano, strings.ToUpper(t.text))
		if err != nil { // OData lets seconds out: 2022-01-01T08:30Z
			v, err = time.Parse("2006-01-02T15:04Z07:00", strings.ToUpper(t.text))
		}
		if err != nil {
			return nil, badRequest("BadRequest", "Invalid filter clause: The DateTimeOffset text '%s' should be in format 'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?' and each field value is within valid range.", t.text)
		}
		return v, nil
	case "date":
		v, err := time.Parse(time.DateOnly, t.text)
		if err != nil {
			return nil, badRequest("BadRequest", "Invalid filter clause: The Date text '%s' should be in format 'yyyy-mm-dd' and each field value is within valid range.", t.text)
		}
		return dateValue{v}, nil
	case "ident":
		switch strings.ToLower(t.text) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "null":
			return nil, nil
		}
	}
	p.i--
	return nil, p.syntax()
}

// searchExpr is a parsed $search: "prop:term" clauses joined by AND / OR
// (AND binds tighter). A clause matches when a word of the property
// starts with the term, ignoring case, as Graph's tokenized search does.
type searchExpr struct {
	any [][]searchClause
}

type searchClause struct{ prop, term string }

func parseSearch(src string, props map[string]string) (*searchExpr, *graphError) {
	invalid := func() *graphError {
		return badRequest("Request_UnsupportedQuery", "Syntax error: the $search value %s is not valid; use \"property:term\" clauses joined by AND or OR.", src)
	}
	s := &searchExpr{}
	var all []searchClause
	rest := strings.TrimSpace(src)
	expectClause := true
	for rest != "" {
		if expectClause {
			if rest[0] != '"' {
				return nil, invalid()
			}
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return nil, invalid()
			}
			clause := rest[1 : end+1]
			rest = strings.TrimSpace(rest[end+2:])
			prop, term, ok := strings.Cut(clause, ":")
			if !ok || term == "" {
				return nil, invalid()
			}
			canon, known := props[strings.ToLower(strings.TrimSpace(prop))]
			if !known {
				return nil, badRequest("Request_UnsupportedQuery", "Unsupported or invalid search property '%s'.", prop)
			}
			all = append(all, searchClause{canon, strings.ToLower(term)})
			expectClause = false
			continue
		}
		word, after, _ := strings.Cut(rest, " ")
		switch word {
		case "AND":
		case "OR":
			s.any = append(s.any, all)
			all = nil
		default:
			return nil, invalid()
		}
		rest = strings.TrimSpace(after)
		expectClause = true
	}
	if expectClause {
		return nil, invalid()
	}
	s.any = append(s.any, all)
	return s, nil
}

func (s *searchExpr) eval(get func(string) (any, bool)) bool {
	for _, all := range s.any {
		ok := true
		for _, c := range all {
			if !searchMatch(get, c) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func searchMatch(get func(string) (any, bool), c searchClause) bool {
	v, _ := get(c.prop)
	s, ok := v.(string)
	if !ok {
		return false
	}
	s = strings.ToLower(s)
	if strings.HasPrefix(s, c.term) {
		return true
	}
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if strings.HasPrefix(w, c.term) {
			return true
		}
	}
	return false
}

func (s *searchExpr) String() string { return fmt.Sprint(s.any) }
