package graphsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// graphError is an error answer in Graph's shape:
// {"error":{"code":...,"message":...,"innerError":{...}}}.
type graphError struct {
	status  int
	code    string
	message string
	headers map[string]string // sent with the answer (a 410's Location)
}

func (e *graphError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message) }

func badRequest(code, format string, args ...any) *graphError {
	return &graphError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

func notFound(id string) *graphError {
	return &graphError{status: http.StatusNotFound, code: "Request_ResourceNotFound",
		message: fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id)}
}

func segmentNotFound(seg string) *graphError {
	return badRequest("BadRequest", "Resource not found for the segment '%s'.", seg)
}

// writeGraphError sends e with Graph's inner error (date, request ids).
// Throttling answers carry the inner fields Graph adds to them.
func writeGraphError(w http.ResponseWriter, r *http.Request, now time.Time, requestID string, e *graphError) {
	inner := map[string]string{
		"date":              now.UTC().Format("2006-01-02T15:04:05"),
		"request-id":        requestID,
		"client-request-id": clientRequestID(r, requestID),
	}
	if e.status == http.StatusTooManyRequests {
		inner["code"] = "429"
		inner["status"] = "429"
		inner["message"] = "Please retry after"
	}
	body, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": e.code, "message": e.message, "innerError": inner,
	}})
	for k, v := range e.headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

// clientRequestID is the caller's client-request-id, which Graph and the
// authority echo, or ours when it sent none.
func clientRequestID(r *http.Request, fallback string) string {
	if v := r.Header.Get("client-request-id"); v != "" {
		return v
	}
	return fallback
}

// faultError is the Graph answer for an injected failure status.
func faultError(status int) *graphError {
	switch status {
	case http.StatusTooManyRequests:
		return &graphError{status: status, code: "TooManyRequests", message: "Please retry again later."}
	case http.StatusServiceUnavailable:
		return &graphError{status: status, code: "serviceNotAvailable", message: "The service is temporarily unavailable. Please retry later."}
	case http.StatusGatewayTimeout:
		return &graphError{status: status, code: "gatewayTimeout", message: "The request timed out."}
	case http.StatusInternalServerError:
		return &graphError{status: status, code: "generalException", message: "An unspecified error has occurred."}
	case http.StatusUnauthorized:
		return &graphError{status: status, code: "InvalidAuthenticationToken", message: "Access token validation failure."}
	case http.StatusForbidden:
		return &graphError{status: status, code: "Authorization_RequestDenied", message: "Insufficient privileges to complete the operation."}
	case http.StatusNotFound:
		return &graphError{status: status, code: "Request_ResourceNotFound", message: "The requested resource does not exist."}
	case http.StatusGone:
		return &graphError{status: status, code: "resyncRequired", message: "The sync state is no longer valid; start a full resync."}
	}
	return &graphError{status: status, code: "UnknownError", message: http.StatusText(status)}
}
