package graphsim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// filterNode is a parsed $filter expression. The simulator understands
// the common directory forms: eq, ne, gt, ge, lt, le, in, startsWith,
// endsWith, not, and, or, parentheses, and `coll/any(x:x eq 'v')` on
// string collections (groupTypes/any(c:c eq 'Unified')). String
// comparisons ignore case, as the directory's do.
type filterNode struct {
	op   string // and, or, not, cmp, in, startswith, endswith, any
	kids []*filterNode
	prop string // canonical property name
	cmp  string // eq, ne, gt, ge, lt, le (op == cmp)
	lit  any    // string, bool, float64 or nil
	lits []any  // op == in
}

// advanced reports whether the expression uses operators Graph allows on
// directory objects only in advanced queries (ne, not, endsWith).
func (n *filterNode) advanced() bool {
	if n == nil {
		return false
	}
	if n.op == "not" || n.op == "endswith" || n.op == "cmp" && n.cmp == "ne" {
		return true
	}
	return slices.ContainsFunc(n.kids, (*filterNode).advanced)
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
		c, comparable := compare(v, n.lit)
		switch n.cmp {
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
	case "any":
		list, ok := v.([]string)
		if !ok {
			return false
		}
		for _, s := range list {
			if c, ok := compare(s, n.lit); ok && c == 0 {
				return true
			}
		}
	}
	return false
}

// compare orders a property value against a literal; ok is false when
// the two cannot be compared (null against a value, a bool against a
// string).
func compare(v, lit any) (int, bool) {
	switch v := v.(type) {
	case nil:
		if lit == nil {
			return 0, true
		}
		return 0, false
	case string:
		l, ok := lit.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(strings.ToLower(v), strings.ToLower(l)), true
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
	}
	return 0, false
}

// --- parsing ---

type filterToken struct {
	kind string // ident, string, number, punct
	text string
	pos  int
}

type filterParser struct {
	src    string
	toks   []filterToken
	i      int
	props  map[string]string // lower → canonical
	entity string            // for messages, e.g. "microsoft.graph.user"
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
					if j+1 < len(s) && s[j+1] == '\'' { // '' escapes a quote
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
		case c == '-' || unicode.IsDigit(c):
			j := i + 1
			for j < len(s) && (unicode.IsDigit(rune(s[j])) || s[j] == '.') {
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

func (p *filterParser) property(name string) (string, *graphError) {
	canon, ok := p.props[strings.ToLower(name)]
	if !ok {
		return "", badRequest("BadRequest", "Invalid filter clause: Could not find a property named '%s' on type '%s'.", name, p.entity)
	}
	return canon, nil
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
		prop, err := p.property(p.toks[p.i].text)
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

	// coll/any(x: x eq 'v')
	if strings.HasSuffix(lower, "/any") {
		prop, err := p.property(ident[:len(ident)-len("/any")])
		if err != nil {
			return nil, err
		}
		if !p.punct("(") || p.i+2 >= len(p.toks) || p.toks[p.i].kind != "ident" {
			return nil, p.syntax()
		}
		v := p.toks[p.i].text
		p.i++
		if !p.punct(":") || p.i >= len(p.toks) || p.toks[p.i].text != v {
			return nil, p.syntax()
		}
		p.i++
		if !p.peekWord("eq") {
			return nil, badRequest("Request_UnsupportedQuery", "Unsupported query: only 'eq' is supported inside any() by the simulator.")
		}
		p.i++
		lit, err := p.literal()
		if err != nil {
			return nil, err
		}
		if !p.punct(")") {
			return nil, p.syntax()
		}
		return &filterNode{op: "any", prop: prop, lit: lit}, nil
	}

	prop, err := p.property(ident)
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
			return nil, p.syntax()
		}
		return f, nil
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
