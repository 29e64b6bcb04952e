package graphsim

import (
	"fmt"
	"strconv"
	"strings"
)

// dynamicRule is the small subset of Entra's dynamic membership rule
// syntax the simulator evaluates: clauses `user.<property> -eq "<value>"`
// (or -ne), optionally in parentheses, joined by -and / -or (-and binds
// tighter). Other rules are kept and served, but their groups' members are
// whatever a test puts there.
type dynamicRule struct {
	any [][]ruleClause // or of ands
}

type ruleClause struct {
	get   func(*User) string
	value string
	neg   bool
}

func parseRule(s string) (dynamicRule, error) {
	var r dynamicRule
	s = strings.TrimSpace(s)
	if s == "" {
		return r, fmt.Errorf("empty rule")
	}
	for _, alt := range splitWord(s, "-or") {
		var all []ruleClause
		for _, part := range splitWord(alt, "-and") {
			c, err := parseClause(part)
			if err != nil {
				return r, err
			}
			all = append(all, c)
		}
		r.any = append(r.any, all)
	}
	return r, nil
}

// splitWord splits s around a case-insensitive operator word outside quotes.
func splitWord(s, word string) []string {
	var parts []string
	lower := strings.ToLower(s)
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"':
			inQuote = !inQuote
		case !inQuote && strings.HasPrefix(lower[i:], word) &&
			(i == 0 || s[i-1] == ' ' || s[i-1] == ')') &&
			(i+len(word) == len(s) || s[i+len(word)] == ' ' || s[i+len(word)] == '('):
			parts = append(parts, s[start:i])
			start = i + len(word)
			i = start - 1
		}
	}
	return append(parts, s[start:])
}

func parseClause(s string) (ruleClause, error) {
	s = strings.TrimSpace(s)
	for strings.HasPrefix(s, "(") && strings.HasSuffix(s, ")") {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	fields := strings.SplitN(s, " ", 3)
	if len(fields) != 3 {
		return ruleClause{}, fmt.Errorf("rule clause %q: want user.<property> -eq \"value\"", s)
	}
	prop, op, val := strings.ToLower(fields[0]), strings.ToLower(fields[1]), strings.TrimSpace(fields[2])
	if !strings.HasPrefix(prop, "user.") {
		return ruleClause{}, fmt.Errorf("rule clause %q: only user properties are supported", s)
	}
	var c ruleClause
	switch op {
	case "-eq":
	case "-ne":
		c.neg = true
	default:
		return ruleClause{}, fmt.Errorf("rule clause %q: operator %s is not supported", s, op)
	}
	get, ok := userRuleProps[strings.TrimPrefix(prop, "user.")]
	if !ok {
		return ruleClause{}, fmt.Errorf("rule clause %q: property %s is not supported", s, prop)
	}
	c.get = get
	c.value = strings.Trim(val, `"`)
	return c, nil
}

func (r dynamicRule) match(u *User) bool {
	for _, all := range r.any {
		ok := true
		for _, c := range all {
			if strings.EqualFold(c.get(u), c.value) == c.neg {
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

// userRuleProps are the user properties a rule may test, by lower-case name.
var userRuleProps = map[string]func(*User) string{
	"department":        func(u *User) string { return u.Department },
	"jobtitle":          func(u *User) string { return u.JobTitle },
	"usertype":          func(u *User) string { return u.UserType },
	"accountenabled":    func(u *User) string { return strconv.FormatBool(u.AccountEnabled) },
	"mail":              func(u *User) string { return u.Mail },
	"displayname":       func(u *User) string { return u.DisplayName },
	"officelocation":    func(u *User) string { return u.OfficeLocation },
	"userprincipalname": func(u *User) string { return u.UserPrincipalName },
}
