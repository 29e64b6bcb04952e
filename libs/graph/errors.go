package graph

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// ErrAuth marks failures where the credentials were rejected: the authority
// refused to issue a token, or Graph refused the token (401). Such an error
// is permanent until someone fixes the tenant's app registration.
var ErrAuth = errors.New("graph: authentication failed")

// ErrMalformed marks a Graph response entrasync cannot read: not JSON, no
// value array, an object without id. Retrying the same request will not
// help, so it is permanent.
var ErrMalformed = errors.New("malformed Graph response")

// ErrFilterRefused marks a users listing whose $filter Graph refused
// (400 to the first page): someone has to change the filter. The error
// that wraps it also wraps Graph's *Error, whose code and message say
// why, and is permanent.
var ErrFilterRefused = errors.New("Graph refused the user filter")

// ErrWaitTooLong marks an answer (429, 503, 504) whose Retry-After is
// longer than Config.MaxRetryAfter: the request was not retried. The
// error that wraps it also wraps Graph's *Error (status and RetryAfter);
// it is throttled when the status is 429 and never permanent: Graph will
// answer later.
var ErrWaitTooLong = errors.New("graph: Retry-After longer than this client waits")

// ErrResync marks a delta request Graph will not serve from the link it
// was given: the round's state is gone and the caller must read the
// whole directory again (a full sync, then a new round from ""). Graph
// says so with 410 Gone (its Location header is where a new round
// starts), or with 400 syncStateNotFound (the token expired: directory
// tokens last seven days), resyncRequired or syncStateInvalid
// (concepts/delta-query-overview.md, "Synchronization reset" and "Token
// duration"). The error that wraps it is a *ResyncError, and wraps
// Graph's *Error too. Retrying the same link cannot help, so IsPermanent
// reports it; callers look for ErrResync first.
var ErrResync = errors.New("graph: delta state gone, full resync required")

// ResyncError is a delta request answered with ErrResync's meaning.
type ResyncError struct {
	// Location is the URL Graph's 410 named to restart from (a first
	// delta request with an empty $deltatoken); "" when Graph gave none.
	// Following it as the link of a new round, or starting one from "",
	// both read every object again.
	Location string
	// Graph is Graph's answer: status, code and message.
	Graph *Error
}

// Error implements error.
func (e *ResyncError) Error() string {
	msg := "full resync required: " + e.Graph.Error()
	if e.Location != "" {
		msg += " (restart at " + e.Location + ")"
	}
	return msg
}

// Unwrap makes the error match ErrResync and Graph's *Error.
func (e *ResyncError) Unwrap() []error { return []error{ErrResync, e.Graph} }

// resyncCodes are Graph's error codes that end a delta round's state
// (compared without regard to case).
var resyncCodes = []string{"syncStateNotFound", "resyncRequired", "syncStateInvalid"}

// asResync turns Graph's answer to a delta request into a *ResyncError
// when it means the delta state is gone; any other error is returned as
// it is.
func asResync(err error, x *exchange) error {
	var ge *Error
	if !errors.As(err, &ge) {
		return err
	}
	resync := ge.Status == http.StatusGone
	if ge.Status >= 400 && ge.Status < 500 {
		for _, c := range resyncCodes {
			resync = resync || strings.EqualFold(ge.Code, c)
		}
	}
	if !resync {
		return err
	}
	re := &ResyncError{Graph: ge}
	if x != nil && ge.Status == http.StatusGone {
		re.Location = x.location
	}
	return re
}

// Error is an HTTP error answered by Graph, with the code and message of its
// error body when it had one.
type Error struct {
	Status     int           // HTTP status code
	Code       string        // Graph's error code, e.g. "Authorization_RequestDenied"
	Message    string        // Graph's error message, for people
	RetryAfter time.Duration // the Retry-After Graph asked for, 0 if none
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Graph answered HTTP %d", e.Status)
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Is makes a 401 from Graph match ErrAuth: the token was not accepted.
func (e *Error) Is(target error) bool {
	return target == ErrAuth && e.Status == http.StatusUnauthorized
}

// IsPermanent reports whether retrying the operation cannot succeed without
// someone changing something: rejected credentials, a 4xx other than 408
// and 429, or a malformed response. Network failures, 5xx, throttling and
// a cancelled context are not permanent.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrAuth) || errors.Is(err, ErrMalformed) {
		return true
	}
	var ge *Error
	if errors.As(err, &ge) {
		return ge.Status >= 400 && ge.Status < 500 &&
			ge.Status != http.StatusRequestTimeout && ge.Status != http.StatusTooManyRequests
	}
	return false
}

// IsThrottled reports whether Graph answered 429 Too Many Requests.
func IsThrottled(err error) bool {
	var ge *Error
	return errors.As(err, &ge) && ge.Status == http.StatusTooManyRequests
}

// authError is a token request the authority turned down (or one that
// cannot succeed without a change, such as an untrusted certificate). Its message is
// the authority's own (e.g. "AADSTS7000215: Invalid client secret
// provided..."), so people can act on it.
type authError struct {
	status int
	msg    string
	cause  error
}

func (e *authError) Error() string {
	if e.status != 0 {
		return fmt.Sprintf("token authority rejected the credentials (HTTP %d): %s", e.status, e.msg)
	}
	return "token authority rejected the credentials: " + e.msg
}

func (e *authError) Unwrap() []error { return []error{ErrAuth, e.cause} }

// translate turns whatever the SDK returned into entrasync's classification.
// x is what the retry transport saw of the last HTTP exchange, if any.
func translate(err error, x *exchange) error {
	if err == nil {
		return nil
	}
	var wt *waitTooLongError
	if errors.As(err, &wt) {
		return wt
	}
	// Token failures were classified by the tokenSource, where they are
	// born; the SDK only passed them on.
	var refused *authError
	if errors.As(err, &refused) {
		return refused
	}
	var ue *authorityUnavailable
	if errors.As(err, &ue) {
		return ue
	}
	var oe *odataerrors.ODataError
	if errors.As(err, &oe) {
		ge := &Error{Status: oe.ResponseStatusCode}
		if me := oe.GetErrorEscaped(); me != nil {
			ge.Code = deref(me.GetCode())
			ge.Message = deref(me.GetMessage())
		}
		ge.RetryAfter = retryAfterOf(oe.ResponseHeaders)
		fillFromExchange(ge, x)
		return ge
	}
	var ae *abs.ApiError
	if errors.As(err, &ae) {
		ge := &Error{Status: ae.ResponseStatusCode, Message: ae.Message, RetryAfter: retryAfterOf(ae.ResponseHeaders)}
		fillFromExchange(ge, x)
		return ge
	}
	// Anything else with an HTTP error status behind it is an error body the
	// SDK could not parse: still Graph's answer, so still an *Error.
	if x != nil && x.status >= 400 {
		ge := &Error{Message: "unreadable error body: " + err.Error()}
		fillFromExchange(ge, x)
		return ge
	}
	// A success status whose body the SDK could not parse is malformed.
	if x != nil && x.status >= 200 && x.status < 300 {
		return fmt.Errorf("%w: HTTP %d: %v", ErrMalformed, x.status, err)
	}
	return err
}

func fillFromExchange(ge *Error, x *exchange) {
	if x == nil {
		return
	}
	if ge.Status == 0 {
		ge.Status = x.status
	}
	if ge.RetryAfter == 0 {
		ge.RetryAfter = x.retryAfter
	}
}

func retryAfterOf(h *abs.ResponseHeaders) time.Duration {
	if h == nil {
		return 0
	}
	for _, v := range h.Get("Retry-After") {
		if d, ok := parseRetryAfter(v, time.Now()); ok {
			return d
		}
	}
	return 0
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
