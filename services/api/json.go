package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/uuid"
)

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

// checkedBody returns a request body the contract has checked; empty
// when the request had none.
func checkedBody(r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, fmt.Errorf("api: read the checked body: %w", err)
	}
	return raw, nil
}

// parseGUID accepts only the 36-character 8-4-4-4-12 form (the form Entra
// shows), so that one id has one spelling, and returns it in lower case.
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
