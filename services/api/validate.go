package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// spec is the api's contract. Requests are checked against it before a
// handler runs, so the shapes and limits it states are the only ones: the
// handlers keep only what a schema cannot say (a cursor the api issued,
// the rules of plan.Settings.Validate).
//
//go:embed openapi.yaml
var spec []byte

// maxBody bounds request bodies; a tenant's settings are far smaller.
const maxBody = 64 << 10

// patternDescription is the schema extension that says in words what a
// pattern demands, for error messages: a regular expression is no answer
// for people.
const patternDescription = "x-pattern-description"

// contract is openapi.yaml loaded and checked once, at start-up.
type contract struct {
	doc  *openapi3.T
	opts *openapi3filter.Options
	// paramDoc is doc labelled OpenAPI 3.0, and paramOpts opts without the
	// body: parameters are checked against it. For a 3.1 document
	// kin-openapi compiles a JSON Schema 2020-12 validator for every
	// value it checks, each time (getkin/kin-openapi#1186, open): 80–110
	// µs of every run status a watching page asks for, where its own
	// validator takes a few. The parameters' schemas use no keyword that
	// the two validators read differently (checkParamSchemas); bodies,
	// whose schemas do, are still checked as 3.1.
	paramDoc  *openapi3.T
	paramOpts *openapi3filter.Options
}

// loadContract parses and validates the embedded openapi.yaml; a spec
// that does not load is a build defect, so New fails on it.
func loadContract(ctx context.Context) (*contract, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("api: load openapi.yaml: %w", err)
	}
	if err := doc.Validate(ctx, openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("api: openapi.yaml is not valid: %w", err)
	}
	opts := &openapi3filter.Options{
		// authenticate has checked the bearer token before validation runs.
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		// Defaults are the store's and plan's to apply: a default written
		// into a merge patch would overwrite a setting the admin left alone.
		SkipSettingDefaults: true,
		// Every problem is collected and the answer names the first in a
		// fixed order, so the same bad request always gets the same answer.
		MultiError: true,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{
			openapi3.WithStringFormatValidator("uuid", openapi3.NewCallbackValidator(func(s string) error {
				if _, ok := parseGUID(s); !ok {
					return errors.New("not a UUID in its 36-character form")
				}
				return nil
			})),
		},
	}
	if err := checkParamSchemas(doc); err != nil {
		return nil, err
	}
	paramDoc := *doc
	paramDoc.OpenAPI = "3.0.3"
	paramOpts := *opts
	paramOpts.ExcludeRequestBody = true
	return &contract{doc: doc, opts: opts, paramDoc: &paramDoc, paramOpts: &paramOpts}, nil
}

// checkParamSchemas refuses a parameter whose schema kin-openapi's OpenAPI
// 3.0 validator could read otherwise than JSON Schema 2020-12 does: one
// with more than one type, or a null type (3.0 has neither), or a
// composition of schemas. Every parameter of the spec today is a single
// string or integer with plain limits, a format or an enum.
func checkParamSchemas(doc *openapi3.T) error {
	check := func(where string, p *openapi3.Parameter) error {
		if p == nil || p.Schema == nil || p.Schema.Value == nil {
			return nil
		}
		s := p.Schema.Value
		if s.Type == nil || len(*s.Type) != 1 || s.Type.Is("null") || s.Const != nil ||
			len(s.AllOf)+len(s.AnyOf)+len(s.OneOf) > 0 || s.Not != nil {
			return fmt.Errorf("api: openapi.yaml: parameter %s of %s: its schema must be one plain type", p.Name, where)
		}
		return nil
	}
	for path, item := range doc.Paths.Map() {
		for _, p := range item.Parameters {
			if err := check(path, p.Value); err != nil {
				return err
			}
		}
		for method, op := range item.Operations() {
			for _, p := range op.Parameters {
				if err := check(method+" "+path, p.Value); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// route returns the spec's operation for a method and a path template
// (ServeMux's {name} wildcards are OpenAPI's).
func (c *contract) route(method, path string) (*routers.Route, error) {
	item := c.doc.Paths.Find(path)
	if item == nil {
		return nil, fmt.Errorf("api: openapi.yaml has no path %s", path)
	}
	op := item.GetOperation(method)
	if op == nil {
		return nil, fmt.Errorf("api: openapi.yaml has no operation %s %s", method, path)
	}
	return &routers.Route{Spec: c.doc, Path: path, PathItem: item, Method: method, Operation: op}, nil
}

// operations lists every "METHOD path" of the spec, so New can check that
// each has a handler.
func (c *contract) operations() []string {
	var out []string
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// queryDefault returns the default the spec gives a query parameter of
// the components section, so handlers do not state it a second time.
func (c *contract) queryDefault(name string) (int, error) {
	p := c.doc.Components.Parameters[name]
	if p == nil || p.Value == nil || p.Value.Schema == nil || p.Value.Schema.Value == nil {
		return 0, fmt.Errorf("api: openapi.yaml has no parameter %s", name)
	}
	d, ok := p.Value.Schema.Value.Default.(float64)
	if !ok || d != float64(int(d)) {
		return 0, fmt.Errorf("api: the default of parameter %s is not an integer", name)
	}
	return int(d), nil
}

// validate wraps next so that it only sees requests route's operation
// accepts. The body is read here (bounded, checked for what JSON Schema
// cannot see: duplicate members, trailing data, integers written as
// 1e3) and handed on unchanged.
func (c *contract) validate(route *routers.Route, next http.Handler) http.Handler {
	op := route.Operation
	params := append(slices.Clone(route.PathItem.Parameters), op.Parameters...)
	paramRoute := *route
	paramRoute.Spec = c.paramDoc
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for name := range r.URL.Query() {
			if params.GetByInAndName(openapi3.ParameterInQuery, name) == nil {
				writeBadRequest(w, invalid(name, "%s is not a known query parameter", name))
				return
			}
		}
		raw, err := readBody(w, r, op)
		if err != nil {
			writeBadRequest(w, err)
			return
		}
		pathParams := map[string]string{}
		for _, p := range params {
			if p.Value != nil && p.Value.In == openapi3.ParameterInPath {
				pathParams[p.Value.Name] = r.PathValue(p.Value.Name)
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		r.ContentLength = int64(len(raw))
		err = c.check(r, route, &paramRoute, pathParams)
		if err == nil && len(raw) > 0 {
			err = checkIntegers(op.RequestBody.Value.Content.Get(r.Header.Get("Content-Type")).Schema.Value, raw)
		}
		if err != nil {
			writeBadRequest(w, explain(err, raw))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		r.ContentLength = int64(len(raw))
		next.ServeHTTP(w, r)
	})
}

// check validates r's parameters against paramRoute (see contract) and
// its body against route, as openapi3filter.ValidateRequest validates
// both: every problem, in one openapi3.MultiError.
func (c *contract) check(r *http.Request, route, paramRoute *routers.Route, pathParams map[string]string) error {
	var me openapi3.MultiError
	err := openapi3filter.ValidateRequest(r.Context(), &openapi3filter.RequestValidationInput{
		Request: r, PathParams: pathParams, Route: paramRoute, Options: c.paramOpts,
	})
	if params, ok := err.(openapi3.MultiError); ok {
		me = append(me, params...)
	} else if err != nil {
		me = append(me, err)
	}
	if body := route.Operation.RequestBody; body != nil {
		err := openapi3filter.ValidateRequestBody(r.Context(), &openapi3filter.RequestValidationInput{
			Request: r, PathParams: pathParams, Route: route, Options: c.opts,
		}, body.Value)
		if err != nil {
			me = append(me, err)
		}
	}
	if len(me) > 0 {
		return me
	}
	return nil
}

// readBody reads the request body, at most maxBody bytes, and checks
// what the operation's schema cannot: its media type, that it is one
// well-formed JSON value without duplicate members, and that an operation
// without a body gets none. An empty body comes back empty; whether the
// operation needs one is the schema's call.
func readBody(w http.ResponseWriter, r *http.Request, op *openapi3.Operation) ([]byte, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, invalid("", "request body is larger than %d bytes", maxBody)
		}
		return nil, invalid("", "could not read the request body: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		if op.RequestBody != nil && op.RequestBody.Value.Required {
			return nil, invalid("", "request body must be a JSON object")
		}
		return nil, nil
	}
	if op.RequestBody == nil {
		return nil, invalid("", "this request takes no body")
	}
	content := op.RequestBody.Value.Content
	// JSON is what a body without a Content-Type is taken for, as before
	// this api had a contract to check it against.
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
		r.Header.Set("Content-Type", ct)
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || content.Get(mt) == nil || content.Get(mt).Schema == nil {
		return nil, invalid("", "Content-Type must be %s", strings.Join(slices.Sorted(maps.Keys(content)), " or "))
	}
	if !utf8.Valid(raw) {
		return nil, invalid("", "request body is not valid UTF-8")
	}
	if err := checkJSON(raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// checkJSON checks that raw is exactly one JSON value in which no object
// has a member twice: encoding/json keeps the last of two silently, so
// what the client meant would be a guess.
func checkJSON(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := checkValue(dec, nil); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("", "request body must hold exactly one JSON value")
	}
	return nil
}

func checkValue(dec *json.Decoder, path []string) error {
	tok, err := dec.Token()
	if err != nil {
		return malformed(err)
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return malformed(err)
			}
			key, _ := tok.(string) // inside an object the decoder yields only string keys
			member := append(slices.Clip(path), key)
			if seen[key] {
				f := strings.Join(member, ".")
				return invalid(f, "%s appears more than once", f)
			}
			seen[key] = true
			if err := checkValue(dec, member); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return malformed(err)
		}
	case json.Delim('['):
		for dec.More() {
			// Members of objects in a list are named by the list.
			if err := checkValue(dec, path); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return malformed(err)
		}
	}
	return nil
}

func malformed(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return invalid("", "request body is not well-formed JSON: it ends before its last value does")
	}
	return invalid("", "request body is not well-formed JSON: %v", err)
}

// checkIntegers refuses integers written with a fraction or an exponent
// (1.0, 1e3): JSON Schema counts them as integers, encoding/json cannot
// put them in an int, and no client means them.
func checkIntegers(schema *openapi3.Schema, raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return malformed(err)
	}
	var walk func(s *openapi3.Schema, v any, path []string) error
	walk = func(s *openapi3.Schema, v any, path []string) error {
		if s == nil {
			return nil
		}
		switch v := v.(type) {
		case json.Number:
			if s.Type.Permits(openapi3.TypeInteger) && strings.ContainsAny(string(v), ".eE") {
				f := strings.Join(path, ".")
				return invalid(f, "%s must be %s, written without a fraction or an exponent", f, describe(s))
			}
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				if err := walk(property(s, k), v[k], append(slices.Clip(path), k)); err != nil {
					return err
				}
			}
		case []any:
			if s.Items != nil {
				for _, item := range v {
					if err := walk(s.Items.Value, item, path); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	return walk(schema, v, nil)
}

// property returns the schema of an object's member, looking through
// allOf, which OpenAPI 3.1 uses for keywords written next to a $ref.
func property(s *openapi3.Schema, name string) *openapi3.Schema {
	if p := s.Properties[name]; p != nil {
		return p.Value
	}
	for _, sub := range s.AllOf {
		if sub.Value != nil {
			if p := property(sub.Value, name); p != nil {
				return p
			}
		}
	}
	return nil
}

// problem is one thing wrong with a request, ordered so that the answer
// names the same one every time: path parameters, then query
// parameters, then the body, each by field name.
type problem struct {
	rank    int
	field   string
	message string
}

// explain turns what openapi3filter found into the answer's field and
// message: the field as a dot path, the message in words built from the
// schema's own limits, never a dump of the schema or of the value (which
// may be a secret).
func explain(err error, raw []byte) error {
	var br *badRequest
	if errors.As(err, &br) {
		return err
	}
	var body any
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		_ = dec.Decode(&body) // checkJSON has read it already
	}
	var problems []problem
	var reqErrs []*openapi3filter.RequestError
	collect(err, func(e error) {
		if re, ok := e.(*openapi3filter.RequestError); ok {
			reqErrs = append(reqErrs, re)
		}
	})
	for _, re := range reqErrs {
		switch {
		case re.Parameter != nil:
			problems = append(problems, parameterProblem(re))
		case re.RequestBody != nil:
			problems = append(problems, bodyProblems(re, body)...)
		}
	}
	if len(problems) == 0 {
		// Nothing this api knows how to word: still a 400, with the
		// library's reason, which unlike its full message never quotes
		// the value (it may be a secret).
		for _, re := range reqErrs {
			if re.Reason != "" {
				return invalid("", "the request does not match the api's contract: %s", re.Reason)
			}
		}
		return invalid("", "the request does not match the api's contract")
	}
	slices.SortStableFunc(problems, func(a, b problem) int {
		if a.rank != b.rank {
			return a.rank - b.rank
		}
		return strings.Compare(a.field, b.field)
	})
	return invalid(problems[0].field, "%s", problems[0].message)
}

// collect calls f with err and every error it wraps, depth first.
func collect(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch e := err.(type) {
	case openapi3.MultiError:
		for _, x := range e {
			collect(x, f)
		}
	case *openapi3filter.RequestError:
		// Its parts are read by the caller.
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			collect(x, f)
		}
	case interface{ Unwrap() error }:
		collect(e.Unwrap(), f)
	}
}

func parameterProblem(re *openapi3filter.RequestError) problem {
	p := re.Parameter
	pr := problem{rank: 1, field: p.Name}
	if p.In == openapi3.ParameterInPath {
		pr.rank = 0
	}
	switch {
	case errors.Is(re.Err, openapi3filter.ErrInvalidEmptyValue):
		pr.message = p.Name + " must not be empty"
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		pr.message = p.Name + " is required"
	case p.Schema != nil && p.Schema.Value != nil:
		pr.message = p.Name + " must be " + describe(p.Schema.Value)
	default:
		pr.message = p.Name + " is not valid"
	}
	return pr
}

// bodyProblems words the schema errors of a request body. The innermost
// errors are the precise ones (a value, a missing member); the JSON
// Schema 2020-12 validator nests them under one error for the whole body.
func bodyProblems(re *openapi3filter.RequestError, body any) []problem {
	if errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
		return []problem{{rank: 2, message: "request body must be a JSON object"}}
	}
	var out []problem
	for _, se := range leaves(re.Err) {
		out = append(out, schemaProblems(se, body)...)
	}
	return out
}

// leaves returns the schema errors of err that have no schema errors
// inside.
func leaves(err error) []*openapi3.SchemaError {
	var out []*openapi3.SchemaError
	switch e := err.(type) {
	case nil:
	case *openapi3.SchemaError:
		if e.Origin != nil {
			out = leaves(e.Origin)
		}
		if len(out) == 0 {
			out = []*openapi3.SchemaError{e}
		}
	case openapi3.MultiError:
		for _, x := range e {
			out = append(out, leaves(x)...)
		}
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			out = append(out, leaves(x)...)
		}
	case interface{ Unwrap() error }:
		out = leaves(e.Unwrap())
	}
	return out
}

func schemaProblems(se *openapi3.SchemaError, body any) []problem {
	ptr := se.JSONPointer()
	field, display := names(body, ptr)
	s := se.Schema
	switch se.SchemaField {
	case "required":
		// The built-in validator points at the missing member, the JSON
		// Schema 2020-12 one at the object that lacks it.
		obj, _ := se.Value.(map[string]any)
		if n := len(ptr); n > 0 && s != nil && slices.Contains(s.Required, ptr[n-1]) {
			if _, present := obj[ptr[n-1]]; !present {
				return []problem{{rank: 2, field: field, message: display + " is required"}}
			}
		}
		var out []problem
		if s != nil {
			for _, k := range s.Required {
				if _, present := obj[k]; !present {
					f, d := join(field, k), join(display, k)
					out = append(out, problem{rank: 2, field: f, message: d + " is required"})
				}
			}
		}
		return out
	case "properties", "additionalProperties":
		obj, ok := se.Value.(map[string]any)
		if !ok || s == nil {
			break
		}
		var out []problem
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if property(s, k) == nil {
				f, d := join(field, k), join(display, k)
				out = append(out, problem{rank: 2, field: f, message: d + " is not a known field"})
			}
		}
		if len(out) > 0 {
			return out
		}
	case "maxItems":
		if s != nil && s.MaxItems != nil {
			return []problem{{rank: 2, field: field, message: fmt.Sprintf("%s must list at most %d items", display, *s.MaxItems)}}
		}
	case "minItems":
		if s != nil {
			return []problem{{rank: 2, field: field, message: fmt.Sprintf("%s must list at least %d items", display, s.MinItems)}}
		}
	}
	if len(ptr) == 0 {
		return []problem{{rank: 2, message: "request body must be a JSON object"}}
	}
	if s == nil {
		return []problem{{rank: 2, field: field, message: display + " is not valid"}}
	}
	return []problem{{rank: 2, field: field, message: display + " must be " + describe(s)}}
}

// names returns how a value at ptr inside body is named: field is the
// dot path of members (what clients match on: "scope.groups"), display
// adds list positions for people ("scope.groups[2]").
func names(body any, ptr []string) (field, display string) {
	v := body
	for _, tok := range ptr {
		switch cur := v.(type) {
		case []any:
			display += "[" + tok + "]"
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(cur) {
				v = nil
				continue
			}
			v = cur[i]
		default:
			field, display = join(field, tok), join(display, tok)
			if m, ok := cur.(map[string]any); ok {
				v = m[tok]
			} else {
				v = nil
			}
		}
	}
	return field, display
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// describe says in words what a schema accepts, from its own keywords:
// "an integer from 0 to 10000000", "a string of 1 to 200 characters, not
// blank, without control characters".
func describe(s *openapi3.Schema) string {
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	bounds := func(unit string) string {
		switch {
		case s.Min != nil && s.Max != nil:
			return fmt.Sprintf(" from %s to %s%s", num(*s.Min), num(*s.Max), unit)
		case s.Min != nil:
			return fmt.Sprintf(" of at least %s%s", num(*s.Min), unit)
		case s.Max != nil:
			return fmt.Sprintf(" of at most %s%s", num(*s.Max), unit)
		}
		return ""
	}
	switch {
	case len(s.Enum) > 0:
		quoted := make([]string, len(s.Enum))
		for i, e := range s.Enum {
			b, _ := json.Marshal(e)
			quoted[i] = string(b)
		}
		if len(quoted) == 1 {
			return quoted[0]
		}
		return strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
	case s.Type.Is(openapi3.TypeInteger):
		return "an integer" + bounds("")
	case s.Type.Is(openapi3.TypeNumber):
		return "a number" + bounds("")
	case s.Type.Is(openapi3.TypeBoolean):
		return "true or false"
	case s.Type.Is(openapi3.TypeObject):
		return "an object"
	case s.Type.Is(openapi3.TypeArray):
		d := "a list"
		if s.MaxItems != nil {
			d += fmt.Sprintf(" of at most %d items", *s.MaxItems)
		}
		if s.Items != nil && s.Items.Value != nil {
			d += ", each " + describe(s.Items.Value)
		}
		return d
	case s.Type.Is(openapi3.TypeString):
		if s.Format == "uuid" {
			return "a UUID like 00000000-0000-0000-0000-000000000000"
		}
		d := "a string"
		switch {
		case s.MaxLength != nil && s.MinLength > 0:
			d += fmt.Sprintf(" of %d to %d characters", s.MinLength, *s.MaxLength)
		case s.MaxLength != nil:
			d += fmt.Sprintf(" of at most %d characters", *s.MaxLength)
		case s.MinLength > 0:
			d += fmt.Sprintf(" of at least %d characters", s.MinLength)
		}
		if s.Pattern != "" {
			if words, ok := s.Extensions[patternDescription].(string); ok {
				d += ", " + words
			} else {
				d += " matching " + s.Pattern
			}
		}
		return d
	}
	return "a valid value"
}
