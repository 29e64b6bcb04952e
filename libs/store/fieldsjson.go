package store

import (
	"encoding/json"
	"slices"
	"unicode/utf8"

	"github.com/entrasync/entrasync/libs/plan"
)

// fieldsJSON encodes a plan item's before or after values (nil when
// there are none) for the plan's jsonb columns.
//
// Every item of a plan goes through here, and the plan is built inside
// its finalization's transaction: the time spent here is time that
// transaction stays open (a 100k-user tenant's first plan has 436k
// items). encoding/json walks a map[string]any by reflection, with 16
// allocations for an item's two or three short strings; it took a third
// of the Go CPU of a delta round's finalization (BenchmarkDeltaFinalize).
// The values nearly every item holds (strings, booleans, nil) are written
// directly; any other value, or a string that needs escaping, is
// left to encoding/json. The bytes may differ from encoding/json's (it
// also escapes <, > and &), never the JSON value: jsonb stores the value.
func fieldsJSON(f plan.Fields) ([]byte, error) {
	if f == nil {
		return nil, nil
	}
	var keyBuf [8]string
	keys := keyBuf[:0]
	for k := range f {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]byte, 0, 16+32*len(keys))
	out = append(out, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		if out, err = appendJSONString(out, k); err != nil {
			return nil, err
		}
		out = append(out, ':')
		switch v := f[k].(type) {
		case nil:
			out = append(out, "null"...)
		case string:
			out, err = appendJSONString(out, v)
		case bool:
			if v {
				out = append(out, "true"...)
			} else {
				out = append(out, "false"...)
			}
		default:
			out, err = appendMarshaled(out, v)
		}
		if err != nil {
			return nil, err
		}
	}
	return append(out, '}'), nil
}

// appendJSONString appends s as a JSON string. A string of printable
// ASCII without quote or backslash is written as it is; any other goes
// through encoding/json, which escapes it (and replaces invalid UTF-8).
func appendJSONString(out []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return appendMarshaled(out, s)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"'), nil
}

func appendMarshaled(out []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(out, b...), nil
}
