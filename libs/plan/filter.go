package plan

import "errors"

// CheckUserFilter checks a Graph $filter expression for /users as far as
// it can be checked without Graph. The empty filter is valid.
//
// (First cut: balanced quotes and parentheses only; the full check of
// operators comes with the fetcher's use of the filter.)
func CheckUserFilter(f string) error {
	depth, inQuote := 0, false
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case inQuote && c == '\'' && i+1 < len(f) && f[i+1] == '\'':
			i++ // '' is an escaped quote
		case c == '\'':
			inQuote = !inQuote
		case inQuote:
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth < 0 {
				return errors.New("a closing parenthesis has no opening one")
			}
		}
	}
	if inQuote {
		return errors.New("a string literal is not closed")
	}
	if depth != 0 {
		return errors.New("a parenthesis is not closed")
	}
	return nil
}
