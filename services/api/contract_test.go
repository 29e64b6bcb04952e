package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// The api's answers are checked against openapi.yaml as they come, in
// every test that sends a request: status codes the operation documents,
// bodies that match its schemas, and no field the schemas do not name.

var answers struct {
	once   sync.Once
	router routers.Router
	err    error
}

// answerRouter loads openapi.yaml for checking answers. Objects are made
// closed (no additional properties) unless the document says otherwise,
// so a field the handlers send but the document lost fails the test.
func answerRouter() (routers.Router, error) {
	answers.once.Do(func() {
		raw, err := os.ReadFile("openapi.yaml")
		if err != nil {
			answers.err = err
			return
		}
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(raw)
		if err != nil {
			answers.err = err
			return
		}
		seen := map[*openapi3.Schema]bool{}
		for _, s := range doc.Components.Schemas {
			closeObjects(s, seen)
		}
		for _, item := range doc.Paths.Map() {
			for _, op := range item.Operations() {
				for _, r := range op.Responses.Map() {
					if r.Value == nil {
						continue
					}
					for _, mt := range r.Value.Content {
						closeObjects(mt.Schema, seen)
					}
				}
			}
		}
		for _, r := range doc.Components.Responses {
			if r.Value != nil {
				for _, mt := range r.Value.Content {
					closeObjects(mt.Schema, seen)
				}
			}
		}
		doc.Servers = nil // any host: the tests' servers listen on random ports
		answers.router, answers.err = legacy.NewRouter(doc)
	})
	return answers.router, answers.err
}

func closeObjects(ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	if ref == nil || ref.Value == nil || seen[ref.Value] {
		return
	}
	s := ref.Value
	seen[s] = true
	flattenAllOf(s)
	if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
		no := false
		s.AdditionalProperties.Has = &no
	}
	for _, p := range s.Properties {
		closeObjects(p, seen)
	}
	closeObjects(s.Items, seen)
	closeObjects(s.AdditionalProperties.Schema, seen)
	for _, list := range [][]*openapi3.SchemaRef{s.AllOf, s.AnyOf, s.OneOf} {
		for _, r := range list {
			closeObjects(r, seen)
		}
	}
}

// flattenAllOf turns an allOf of objects into one object with every
// part's properties, in place: closing each part on its own would refuse
// the other parts' fields.
func flattenAllOf(s *openapi3.Schema) {
	if len(s.AllOf) == 0 {
		return
	}
	merged := openapi3.Schema{Type: &openapi3.Types{openapi3.TypeObject}, Properties: openapi3.Schemas{},
		Description: s.Description}
	for _, part := range s.AllOf {
		if part.Value == nil {
			continue
		}
		p := *part.Value
		flattenAllOf(&p)
		for name, prop := range p.Properties {
			merged.Properties[name] = prop
		}
		merged.Required = append(merged.Required, p.Required...)
	}
	for name, prop := range s.Properties {
		merged.Properties[name] = prop
	}
	merged.Required = append(merged.Required, s.Required...)
	*s = merged
}

// checkAnswer fails the test when an answer disagrees with openapi.yaml.
// Requests to paths the document does not have (the tests of unknown
// routes) have nothing to be checked against.
func checkAnswer(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	router, err := answerRouter()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s answered %d, which openapi.yaml does not describe: %v\nbody: %s", req.Method, req.URL.Path, status, err, body)
	}
}
