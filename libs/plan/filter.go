package plan

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// CheckUserFilter checks a Graph $filter expression for /users as far as
// it can be checked without Graph, so that an admin hears of a typo when
// saving the setting rather than from a failed sync. The empty filter is
// valid.
//
// It checks the OData syntax Graph accepts on directory objects
// (learn.microsoft.com/graph/filter-query-parameter,
// concepts/aad-advanced-queries.md): comparisons with eq, ne, gt, ge, lt,
// le and in; and, or, not and parentheses; the startsWith and endsWith
// functions; any and all lambdas on collections
// (proxyAddresses/any(p:endsWith(p,'contoso.com'))) and the /$count of a
// collection; literals that are text in single quotes (a quote inside is
// written twice), numbers, true, false, null, GUIDs, dates and date-times. It does
// not know which properties exist or which operators each supports:
// Graph answers that, and its refusal fails the sync with Graph's own
// words.
//
// Errors are one sentence for an admin, with the position (counted in
// characters from 0) where the problem is.
func CheckUserFilter(f string) error {
	if strings.TrimSpace(f) == "" {
		return nil
	}
	p := &filterParser{src: f}
	if err := p.or(); err != nil {
		return err
	}
	p.space()
	if p.i < len(p.src) {
		return p.unexpected("after a complete condition; join conditions with and or or")
	}
	return nil
}

// maxFilterNesting bounds parentheses, not and lambdas inside each other,
// so that no filter can make the check recurse without end.
const maxFilterNesting = 64

// filterParser is a recursive-descent parser over the filter text itself:
// what a token is depends on where it stands (a GUID may start with a
// letter, a date with digits), so there is no separate lexer.
type filterParser struct {
	src     string
	i       int      // byte offset of the next unread character
	depth   int      // nesting of parentheses, not and lambdas
	lambdas []string // lambda variables in scope, innermost last
}

func (p *filterParser) errorf(at int, format string, args ...any) error {
	return errors.New(fmt.Sprintf(format, args...) + fmt.Sprintf(" at position %d", utf8.RuneCountInString(p.src[:at])))
}

func (p *filterParser) space() {
	for p.i < len(p.src) {
		r, n := utf8.DecodeRuneInString(p.src[p.i:])
		if !unicode.IsSpace(r) {
			return
		}
		p.i += n
	}
}

func (p *filterParser) eof() bool { return p.i >= len(p.src) }

// unexpected reports whatever stands at the current position: a word is
// taken for an operator Graph does not have.
func (p *filterParser) unexpected(why string) error {
	if w := p.peekWord(); w != "" {
		if isKeyword(w) {
			return p.errorf(p.i, "unexpected '%s' %s", w, why)
		}
		return p.errorf(p.i, "unknown operator '%s'", w)
	}
	return p.errorf(p.i, "unexpected %s %s", p.describe(), why)
}

// describe names the text at the current position for a message.
func (p *filterParser) describe() string {
	if p.eof() {
		return "end of the filter"
	}
	r, _ := utf8.DecodeRuneInString(p.src[p.i:])
	if r == '\'' {
		return "text in quotes"
	}
	return fmt.Sprintf("'%c'", r)
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// peekWord returns the identifier at the current position, or "".
func (p *filterParser) peekWord() string {
	j := p.i
	for j < len(p.src) && isIdentChar(p.src[j]) {
		j++
	}
	if j == p.i || !isIdentStart(p.src[p.i]) {
		return ""
	}
	return p.src[p.i:j]
}

// keyword consumes the word w (any case) when it stands at the current
// position as a whole word.
func (p *filterParser) keyword(w string) bool {
	if strings.EqualFold(p.peekWord(), w) {
		p.i += len(w)
		return true
	}
	return false
}

var keywords = []string{"and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "in", "any", "all", "startswith", "endswith", "true", "false", "null"}

func isKeyword(w string) bool {
	for _, k := range keywords {
		if strings.EqualFold(w, k) {
			return true
		}
	}
	return false
}

func (p *filterParser) enter(at int) error {
	p.depth++
	if p.depth > maxFilterNesting {
		return p.errorf(at, "the filter nests conditions more than %d deep", maxFilterNesting)
	}
	return nil
}

func (p *filterParser) or() error {
	for {
		if err := p.and(); err != nil {
			return err
		}
		p.space()
		if !p.keyword("or") {
			return nil
		}
	}
}

func (p *filterParser) and() error {
	for {
		if err := p.unary(); err != nil {
			return err
		}
		p.space()
		if !p.keyword("and") {
			return nil
		}
	}
}

func (p *filterParser) unary() error {
	p.space()
	start := p.i
	if p.keyword("not") {
		if err := p.enter(start); err != nil {
			return err
		}
		defer func() { p.depth-- }()
		return p.unary()
	}
	return p.primary()
}

// primary reads one condition: a parenthesised expression, a function
// call, a lambda, or a comparison.
func (p *filterParser) primary() error {
	p.space()
	start := p.i
	if p.eof() {
		return p.errorf(start, "the filter ends where a condition was expected")
	}
	switch c := p.src[p.i]; {
	case c == '(':
		if err := p.enter(start); err != nil {
			return err
		}
		defer func() { p.depth-- }()
		p.i++
		p.space()
		if !p.eof() && p.src[p.i] == ')' {
			return p.errorf(start, "empty parentheses")
		}
		if err := p.or(); err != nil {
			return err
		}
		p.space()
		if p.eof() {
			return p.errorf(start, "the parenthesis has no closing one")
		}
		if p.src[p.i] != ')' {
			return p.unexpected("where and, or or a closing parenthesis belongs")
		}
		p.i++
		return nil
	case c == ')':
		return p.errorf(start, "a closing parenthesis comes where a condition was expected")
	case c == '"':
		return p.errorf(start, "text takes single quotes, not double quotes,")
	case !isIdentStart(c):
		if p.literal() == nil {
			return p.errorf(start, "a condition starts with a property name, not a value,")
		}
		return p.errorf(start, "unexpected '%c' where a condition was expected", c)
	}

	w := p.peekWord()
	switch {
	case strings.EqualFold(w, "startsWith"), strings.EqualFold(w, "endsWith"):
		return p.stringFunction(w)
	case isKeyword(w):
		return p.errorf(start, "unexpected '%s' where a condition was expected", w)
	case w != "" && p.i+len(w) < len(p.src) && p.src[p.i+len(w)] == '(':
		return p.errorf(start, "unknown operator '%s'", w)
	}
	lambda, err := p.path()
	if err != nil || lambda {
		return err
	}
	return p.comparison(start)
}

// stringFunction reads startsWith(path, 'text') or endsWith(path, 'text').
func (p *filterParser) stringFunction(name string) error {
	start := p.i
	p.i += len(name)
	usage := fmt.Sprintf("%s takes a property and a text in quotes, as in %s(displayName,'A')", name, name)
	if p.eof() || p.src[p.i] != '(' {
		return p.errorf(start, "%s", usage)
	}
	p.i++
	p.space()
	if p.eof() || !isIdentStart(p.src[p.i]) {
		return p.errorf(start, "%s", usage)
	}
	if lambda, err := p.path(); err != nil {
		return err
	} else if lambda {
		return p.errorf(start, "%s", usage)
	}
	p.space()
	if p.eof() || p.src[p.i] != ',' {
		return p.errorf(start, "%s", usage)
	}
	p.i++
	p.space()
	if p.eof() || p.src[p.i] != '\'' {
		return p.errorf(start, "%s", usage)
	}
	if err := p.literal(); err != nil {
		return err
	}
	p.space()
	if p.eof() || p.src[p.i] != ')' {
		return p.errorf(start, "%s", usage)
	}
	p.i++
	return nil
}

// path reads a property path: segments joined by '/', the last of which
// may be $count, or a lambda (any/all) that ends the condition, in which
// case lambda is true. Inside a lambda, a path starts with one of its
// variables, the only things Graph lets a lambda body compare.
func (p *filterParser) path() (lambda bool, err error) {
	start := p.i
	first := p.peekWord()
	if first == "" {
		return false, p.unexpected("where a property name was expected")
	}
	if len(p.lambdas) > 0 && !p.inLambdaScope(first) {
		return false, p.errorf(start, "'%s' is not the lambda variable '%s'", first, p.lambdas[len(p.lambdas)-1])
	}
	p.i += len(first)
	for !p.eof() && p.src[p.i] == '/' {
		p.i++
		segStart := p.i
		if strings.HasPrefix(p.src[p.i:], "$count") && (p.i+6 == len(p.src) || !isIdentChar(p.src[p.i+6])) {
			p.i += len("$count")
			return false, nil
		}
		seg := p.peekWord()
		if seg == "" {
			return false, p.errorf(segStart, "a property path has an empty or invalid part")
		}
		p.i += len(seg)
		if strings.EqualFold(seg, "any") || strings.EqualFold(seg, "all") {
			// Graph's own examples put a space before the parenthesis
			// (proxyAddresses/any (p:...)); OData's lexer skips it.
			p.space()
			if !p.eof() && p.src[p.i] == '(' {
				return true, p.lambda(segStart, strings.ToLower(seg))
			}
			return false, p.errorf(segStart, "%s needs a variable and a condition in parentheses, as in proxyAddresses/%s(p:startsWith(p,'smtp:'))", seg, seg)
		}
	}
	if !p.eof() && p.src[p.i] == '(' {
		return false, p.errorf(start, "unknown operator '%s'", p.src[start:p.i])
	}
	return false, nil
}

func (p *filterParser) inLambdaScope(w string) bool {
	for _, v := range p.lambdas {
		if v == w {
			return true
		}
	}
	return false
}

// lambda reads the parenthesised part of coll/any(v:cond) or
// coll/all(v:cond); any() alone asks whether the collection has items.
func (p *filterParser) lambda(at int, kind string) error {
	if err := p.enter(at); err != nil {
		return err
	}
	defer func() { p.depth-- }()
	p.i++ // '('
	p.space()
	if kind == "any" && !p.eof() && p.src[p.i] == ')' {
		p.i++
		return nil
	}
	usage := fmt.Sprintf("%s needs a variable and a condition, as in proxyAddresses/%s(p:startsWith(p,'smtp:'))", kind, kind)
	v := p.peekWord()
	if v == "" || isKeyword(v) {
		return p.errorf(at, "%s", usage)
	}
	p.i += len(v)
	p.space()
	if p.eof() || p.src[p.i] != ':' {
		return p.errorf(at, "%s", usage)
	}
	p.i++
	p.lambdas = append(p.lambdas, v)
	err := p.or()
	p.lambdas = p.lambdas[:len(p.lambdas)-1]
	if err != nil {
		return err
	}
	p.space()
	if p.eof() {
		return p.errorf(at, "the parenthesis of %s has no closing one", kind)
	}
	if p.src[p.i] != ')' {
		return p.unexpected("where and, or or a closing parenthesis belongs")
	}
	p.i++
	return nil
}

// comparison reads the operator and value after a property path.
func (p *filterParser) comparison(start int) error {
	subject := p.src[start:p.i]
	p.space()
	opAt := p.i
	op := strings.ToLower(p.peekWord())
	switch op {
	case "eq", "ne", "gt", "ge", "lt", "le":
		p.i += len(op)
		p.space()
		if p.eof() {
			return p.errorf(opAt, "'%s' has no value after it", op)
		}
		return p.literal()
	case "in":
		p.i += len(op)
		return p.list(opAt)
	case "":
		if !p.eof() && strings.ContainsRune("=<>!", rune(p.src[p.i])) {
			return p.errorf(opAt, "unexpected '%c': compare with eq, ne, gt, ge, lt, le or in", p.src[p.i])
		}
		return p.errorf(start, "'%s' must be compared with a value, as in %s eq 'x',", subject, subject)
	case "and", "or":
		return p.errorf(start, "'%s' must be compared with a value, as in %s eq 'x',", subject, subject)
	}
	return p.errorf(opAt, "unknown operator '%s'", p.peekWord())
}

// list reads the parenthesised values after in.
func (p *filterParser) list(at int) error {
	p.space()
	usage := "in takes values in parentheses, as in id in ('a','b'),"
	if p.eof() || p.src[p.i] != '(' {
		return p.errorf(at, "%s", usage)
	}
	p.i++
	for {
		p.space()
		if p.eof() || p.src[p.i] == ')' {
			return p.errorf(at, "%s", usage)
		}
		if err := p.literal(); err != nil {
			return err
		}
		p.space()
		if p.eof() {
			return p.errorf(at, "the list after in has no closing parenthesis")
		}
		switch p.src[p.i] {
		case ',':
			p.i++
		case ')':
			p.i++
			return nil
		default:
			return p.unexpected("in the list after in; separate values with commas")
		}
	}
}

// Unquoted literals of OData's ABNF that directory objects use.
var (
	guidLit     = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}`)
	dateTimeLit = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,12})?)?(?:[Zz]|[+-](\d{2}):(\d{2}))`)
	dateLit     = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})`)
	numberLit   = regexp.MustCompile(`^[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?`)
)

// literal reads one value.
func (p *filterParser) literal() error {
	start := p.i
	rest := p.src[p.i:]
	if rest == "" {
		return p.errorf(start, "the filter ends where a value was expected")
	}
	if rest[0] == '\'' {
		for j := 1; j < len(rest); j++ {
			if rest[j] != '\'' {
				continue
			}
			if j+1 < len(rest) && rest[j+1] == '\'' {
				j++ // a doubled quote is a quote inside the text
				continue
			}
			p.i += j + 1
			return p.endOfValue(start)
		}
		return p.errorf(start, "the text in quotes has no closing quote")
	}
	if rest[0] == '"' {
		return p.errorf(start, "text takes single quotes, not double quotes,")
	}
	if m := guidLit.FindString(rest); m != "" {
		p.i += len(m)
		return p.endOfValue(start)
	}
	if m := dateTimeLit.FindStringSubmatch(rest); m != nil {
		if !validDate(m[1], m[2], m[3]) || !inRange(m[4], 23) || !inRange(m[5], 59) || !inRange(m[6], 59) ||
			!inRange(m[7], 23) || !inRange(m[8], 59) {
			return p.errorf(start, "'%s' is not a valid date and time", m[0])
		}
		p.i += len(m[0])
		return p.endOfValue(start)
	}
	if m := dateLit.FindStringSubmatch(rest); m != nil && (len(rest) == len(m[0]) || !isValueChar(rest[len(m[0])])) {
		if !validDate(m[1], m[2], m[3]) {
			return p.errorf(start, "'%s' is not a valid date", m[0])
		}
		p.i += len(m[0])
		return nil
	}
	if m := numberLit.FindString(rest); m != "" {
		p.i += len(m)
		return p.endOfValue(start)
	}
	if w := p.peekWord(); w != "" {
		switch strings.ToLower(w) {
		case "true", "false", "null":
			p.i += len(w)
			return p.endOfValue(start)
		}
		return p.errorf(start, "%s is not a value: put text in single quotes, as in '%s',", w, w)
	}
	return p.errorf(start, "expected a value, found %s,", p.describe())
}

// endOfValue checks that a value is not run together with more text, as
// in 12abc or a quoted text followed by a letter.
func (p *filterParser) endOfValue(start int) error {
	if p.eof() || !isValueChar(p.src[p.i]) {
		return nil
	}
	j := p.i
	for j < len(p.src) && isValueChar(p.src[j]) {
		j++
	}
	bad := p.src[start:j]
	if bad[0] == '\'' {
		return p.errorf(start, "%s is not a valid value; write a quote inside text twice, as in 'O''Brien',", bad)
	}
	return p.errorf(start, "'%s' is not a valid value", bad)
}

func isValueChar(c byte) bool {
	return isIdentChar(c) || c == '\'' || c == '.' || c == '-' || c == ':' || c == '+'
}

func validDate(y, m, d string) bool {
	year, _ := strconv.Atoi(y)
	month, _ := strconv.Atoi(m)
	day, _ := strconv.Atoi(d)
	if month < 1 || month > 12 || day < 1 {
		return false
	}
	t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	return t.Day() == day && int(t.Month()) == month
}

// inRange reports whether an optional two-digit field is at most limit.
func inRange(field string, limit int) bool {
	if field == "" {
		return true
	}
	n, err := strconv.Atoi(field)
	return err == nil && n <= limit
}
