package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// maxBody bounds request bodies; a tenant's connection details are far
// smaller.
const maxBody = 64 << 10

// errorBody is the shape of every error answer.
type errorBody struct {
	Error apiError `json:"error"`
	// RunID is set when a run was recorded although the request failed
	// (its job could not be queued yet).
	RunID string `json:"runId,omitempty"`
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// badRequest is an input error that names the field at fault.
type badRequest struct{ field, message string }

func (e *badRequest) Error() string { return e.message }

func invalid(field, format string, args ...any) error {
	return &badRequest{field: field, message: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"internal","message":"could not encode the answer"}}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, code, field, message string) {
	writeJSON(w, status, errorBody{Error: apiError{Code: code, Message: message, Field: field}})
}

// writeBadRequest answers 400 for an input error.
func writeBadRequest(w http.ResponseWriter, err error) {
	var br *badRequest
	if errors.As(err, &br) {
		writeError(w, http.StatusBadRequest, "invalid_request", br.field, br.message)
		return
	}
	writeError(w, http.StatusBadRequest, "invalid_request", "", err.Error())
}

// readObject reads a request body that must be one JSON object and
// returns its members undecoded. It rejects what encoding/json would let
// through silently: duplicate members, trailing data, a body over maxBody.
// An empty body is an empty object when allowEmpty is set.
func readObject(w http.ResponseWriter, r *http.Request, allowEmpty bool) (map[string]json.RawMessage, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, invalid("", "Content-Type must be application/json")
		}
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, invalid("", "request body is larger than %d bytes", maxBody)
		}
		return nil, invalid("", "could not read the request body: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		if allowEmpty {
			return map[string]json.RawMessage{}, nil
		}
		return nil, invalid("", "request body must be a JSON object")
	}
	if !utf8.Valid(raw) {
		return nil, invalid("", "request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, invalid("", "request body must be a JSON object")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid("", "malformed JSON: %v", err)
		}
		key := tok.(string) // inside an object the decoder yields only string keys
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, invalid(key, "malformed JSON in %s: %v", key, err)
		}
		if _, dup := out[key]; dup {
			return nil, invalid(key, "%s appears more than once", key)
		}
		out[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, invalid("", "malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("", "request body must hold exactly one JSON object")
	}
	return out, nil
}

// fields reads the members of a JSON object by name, one type at a time,
// and remembers which were read, so unknown ones can be reported.
type fields struct {
	m    map[string]json.RawMessage
	seen map[string]bool
}

func newFields(m map[string]json.RawMessage) *fields {
	return &fields{m: m, seen: map[string]bool{}}
}

// get returns a member's raw value; ok is false when it is absent or null.
func (f *fields) get(name string) (json.RawMessage, bool) {
	f.seen[name] = true
	v, ok := f.m[name]
	if !ok || string(v) == "null" {
		return nil, false
	}
	return v, true
}

// unknown returns an error naming the first member (in byte order) that
// no get asked for.
func (f *fields) unknown() error {
	var extra []string
	for k := range f.m {
		if !f.seen[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra)
	return invalid(extra[0], "%s is not a known field", extra[0])
}

// text reads a required string member: present, a JSON string, not blank,
// at most maxRunes characters, without control characters.
func (f *fields) text(name string, maxRunes int) (string, error) {
	raw, ok := f.get(name)
	if !ok {
		return "", invalid(name, "%s is required", name)
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", invalid(name, "%s must be a string", name)
	}
	if strings.TrimSpace(s) == "" {
		return "", invalid(name, "%s must not be empty", name)
	}
	if utf8.RuneCountInString(s) > maxRunes {
		return "", invalid(name, "%s must be at most %d characters", name, maxRunes)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", invalid(name, "%s must not contain control characters", name)
	}
	return s, nil
}

// guid reads a required string member holding a GUID and returns it in
// canonical lower-case form.
func (f *fields) guid(name string) (string, error) {
	s, err := f.text(name, 64)
	if err != nil {
		return "", err
	}
	id, ok := parseGUID(s)
	if !ok {
		return "", invalid(name, "%s must be a GUID like 00000000-0000-0000-0000-000000000000", name)
	}
	return id, nil
}

// integer reads an integer member within [lo, hi]. A missing member is an
// error when required, else it yields def.
func (f *fields) integer(name string, required bool, def, lo, hi int64) (int64, error) {
	raw, ok := f.get(name)
	if !ok {
		if required {
			return 0, invalid(name, "%s is required", name)
		}
		return def, nil
	}
	bad := func() error {
		if lo == 0 {
			return invalid(name, "%s must be a non-negative integer", name)
		}
		return invalid(name, "%s must be an integer from %d to %d", name, lo, hi)
	}
	var num json.Number
	if err := json.Unmarshal(raw, &num); err != nil || strings.ContainsAny(string(raw), `".eE`) {
		return 0, bad()
	}
	n, err := strconv.ParseInt(num.String(), 10, 64)
	switch {
	case err != nil && strings.HasPrefix(num.String(), "-"), err == nil && n < lo:
		return 0, bad()
	case err != nil, n > hi:
		return 0, invalid(name, "%s must be at most %d", name, hi)
	}
	return n, nil
}

// parseGUID accepts only the 36-character 8-4-4-4-12 form (the form Entra
// shows), so that one id has one spelling.
func parseGUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return id.String(), true
}
