package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/plan"
)

// sameAsEncodingJSON checks that fieldsJSON writes valid JSON with the
// value encoding/json writes for f.
func sameAsEncodingJSON(t *testing.T, f plan.Fields) {
	t.Helper()
	got, err := fieldsJSON(f)
	if err != nil {
		t.Fatalf("fieldsJSON(%#v): %v", f, err)
	}
	want, err := json.Marshal(map[string]any(f))
	if err != nil {
		t.Fatalf("json.Marshal(%#v): %v", f, err)
	}
	if !json.Valid(got) {
		t.Fatalf("fieldsJSON(%#v) = %s: not JSON", f, got)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("fieldsJSON(%#v) = %s, encoding/json's value is %s", f, got, want)
	}
}

func TestFieldsJSONIsEncodingJSONsValue(t *testing.T) {
	updated := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, f := range []plan.Fields{
		{},
		{"group": "0198f3c4-1111-7000-8000-000000000001", "groupName": "Sales"},
		{"enabled": true, "license": "none"},
		{"enabled": false, "edited": true},
		{"role": "admin", "group": "g", "groupName": "Ops", "via": []string{`"Ops"`, `"All staff"`}},
		{"via": []string{}}, {"via": []string(nil)},
		{"displayName": `Quote " and back\slash`, "mail": "tab\there", "description": "line\nbreak\x00nul\x1f"},
		{"displayName": "Zoë Ångström 日本", "kind": "<b>&amp;</b>", "x": "\u2028\u2029"},
		{"displayName": "bad \xff utf-8", "key \xfe": "v"},
		{"entraUpdatedAt": &updated, "none": (*time.Time)(nil), "entraMemberCount": int64(12), "n": 3.5},
		{"missing": nil, "nested": map[string]any{"a": []any{1, "b"}}},
	} {
		sameAsEncodingJSON(t, f)
	}
	if b, err := fieldsJSON(nil); b != nil || err != nil {
		t.Fatalf("fieldsJSON(nil) = %q, %v; want nil, nil (a NULL column)", b, err)
	}
}

func TestFieldsJSONFailsAsEncodingJSON(t *testing.T) {
	if _, err := fieldsJSON(plan.Fields{"c": make(chan int)}); err == nil {
		t.Fatal("a value encoding/json cannot encode: no error")
	}
}

func FuzzFieldsJSON(f *testing.F) {
	f.Add("group", "0198f3c4-1111-7000-8000-000000000001", "Sales", true)
	f.Add("displayName", "a\"b\\c\x01", "Zoë\xff", false)
	f.Fuzz(func(t *testing.T, key, s1, s2 string, b bool) {
		sameAsEncodingJSON(t, plan.Fields{key: s1, key + "Name": s2, "flag": b, "via": []string{s1, s2}})
	})
}

func BenchmarkFieldsJSON(b *testing.B) {
	membership := plan.Fields{"group": "0198f3c4-1111-7000-8000-000000000001", "groupName": "Sales EMEA"}
	user := plan.Fields{"displayName": "Ada Lovelace", "email": "ada@contoso.example", "enabled": true,
		"license": "assigned"}
	for _, bc := range []struct {
		name string
		enc  func(plan.Fields) ([]byte, error)
	}{
		{"encoding-json", func(f plan.Fields) ([]byte, error) { return json.Marshal(map[string]any(f)) }},
		{"fieldsJSON", fieldsJSON},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.enc(membership); err != nil {
					b.Fatal(err)
				}
				if _, err := bc.enc(user); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
