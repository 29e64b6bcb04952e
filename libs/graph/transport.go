package graph

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/httpbody"
)

// maxBody bounds a response body read into memory. A 999-object page with
// entrasync's $select is well under 2 MiB; anything near this is not Graph.
const maxBody = 64 << 20

// Stats counts what a Client cost at Graph, at the HTTP layer, so every
// attempt of every request is counted.
type Stats struct {
	Requests  int64 // HTTP requests sent to Graph, retries included
	Throttled int64 // responses with status 429
	Retries   int64 // requests sent again after 429/503/504 or a network error
}

// exchange is what the retry transport learnt of the last attempt of one
// SDK call. The caller puts it in the request's context so errors the SDK
// could not classify still carry Graph's status.
type exchange struct {
	status     int
	retryAfter time.Duration
	location   string // a delta 410's restart URL

	// takeBody asks the transport for a successful answer's body here,
	// in body, rather than through the response: the SDK would read
	// it into a copy of its own (io.ReadAll, about twice the body in
	// garbage, for a $batch of twenty member pages 2 MB).
	takeBody bool
	body     []byte
}

type exchangeKey struct{}

func withExchange(ctx context.Context) (context.Context, *exchange) {
	x := &exchange{}
	return context.WithValue(ctx, exchangeKey{}, x), x
}

// exchangeOnce makes one SDK request (get, from the nextLink next) with
// its exchange recorded. The SDK panics on a few answers that are valid
// JSON but not an object (an error body of null leaves kiota's parse
// node nil); the panic becomes an error, which translate classifies by
// the answer's status like any other body the SDK could not read.
func exchangeOnce[R any](ctx context.Context, next string,
	get func(ctx context.Context, next string) (R, error)) (resp R, x *exchange, err error) {
	xctx, x := withExchange(ctx)
	defer func() {
		if p := recover(); p != nil {
			var zero R
			resp, err = zero, fmt.Errorf("the SDK failed on Graph's answer: %v", p)
		}
	}()
	resp, err = get(xctx, next)
	return resp, x, err
}

// retrier is the only retry loop between entrasync and Graph. It sits under
// the SDK's middleware (which no longer contains kiota's RetryHandler), so
// every attempt carries the same Authorization header and is counted here.
type retrier struct {
	base        http.RoundTripper
	maxAttempts int
	timeout     time.Duration
	maxWait     time.Duration // the longest Retry-After waited out
	tokens      *tokenSource  // renews a token Graph refused; nil: never
	sleep       func(context.Context, time.Duration) error
	log         zerolog.Logger
	now         func() time.Time
	observer    Observer

	requests, throttled, retries atomic.Int64
}

func (t *retrier) stats() Stats {
	return Stats{Requests: t.requests.Load(), Throttled: t.throttled.Load(), Retries: t.retries.Load()}
}

// RoundTrip sends req until it gets an answer worth returning: a response
// that is not retryable, the last of MaxAttempts attempts, or the context's
// end. The returned response's body is fully read and replayable, so a
// connection cut mid-body is retried here rather than surfacing as a parse
// error in the SDK.
func (t *retrier) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	getBody, err := replayable(req)
	if err != nil {
		return nil, err
	}
	bo := newBackoff()
	renewed := false

	log := t.log.With().Str("method", req.Method).Str("path", req.URL.Path).Logger()
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	for attempt := 1; ; attempt++ {
		resp, body, err := t.attempt(ctx, req, getBody)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if t.observer != nil {
			t.observer.GraphRequest(statusOf(resp))
		}
		if x != nil && resp != nil {
			x.status = resp.StatusCode
			x.retryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), t.now())
			x.location = resp.Header.Get("Location")
		}
		if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
			t.throttled.Add(1)
		}
		if resp != nil && resp.StatusCode == http.StatusUnauthorized && !renewed && t.tokens != nil {
			// Graph refused a token the authority gave: most likely it
			// expired while this run waited (a long Retry-After). One new
			// token, one more try; a second 401 is Graph's final word.
			if stale, ok := bearer(req); ok {
				renewed = true
				tok, err := t.tokens.renew(ctx, stale)
				if err != nil {
					return nil, err
				}
				req = req.Clone(ctx)
				req.Header.Set("Authorization", "Bearer "+tok)
				log.Info().Int("attempt", attempt).Msg("graph: 401; retrying once with a new token")
				t.retries.Add(1)
				continue
			}
		}
		wait, retry := t.shouldRetry(resp, err)
		if retry && wait > t.maxWait {
			// Waiting holds the caller (and a fetcher's tenant lease) for
			// as long as Graph says; past the cap the attempt ends here,
			// retryable, and the caller comes back later instead.
			log.Warn().Int("status", resp.StatusCode).Dur("retry_after", wait).Dur("max", t.maxWait).
				Msg("graph: Retry-After longer than this client waits out; giving up this attempt")
			return nil, &waitTooLongError{
				ge:  &Error{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode), RetryAfter: wait},
				max: t.maxWait,
			}
		}
		if !retry || attempt >= t.maxAttempts {
			if retry {
				log.Warn().Int("attempts", attempt).Err(err).Int("status", statusOf(resp)).Msg("graph: giving up after the last attempt")
			}
			if x != nil && x.takeBody && resp != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
				x.body = body
				resp.Body, resp.ContentLength = http.NoBody, 0
			}
			return resp, err
		}
		switch {
		case wait == 0:
			wait = bo.NextBackOff()
			if t.observer != nil {
				t.observer.GraphRetryWait(wait)
			}
		case t.observer != nil:
			t.observer.GraphThrottled(wait)
		}
		log.Debug().Int("attempt", attempt).Int("status", statusOf(resp)).Err(err).
			Dur("wait", wait).Msg("graph: retrying")
		if err := t.sleep(ctx, wait); err != nil {
			return nil, err
		}
		t.retries.Add(1)
	}
}

// attempt sends one copy of req and reads its whole body under the
// attempt's timeout; the response's Body reads it again.
func (t *retrier) attempt(ctx context.Context, req *http.Request, getBody func() (io.ReadCloser, error)) (*http.Response, []byte, error) {
	actx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	r := req.Clone(actx)
	if getBody != nil {
		body, err := getBody()
		if err != nil {
			return nil, nil, fmt.Errorf("graph: rewind request body: %w", err)
		}
		r.Body = body
	}
	t.requests.Add(1)
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := readBody(resp)
	if err != nil {
		return nil, nil, err
	}
	resp.Body = httpbody.Body(body)
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	resp.Request = req
	return resp, body, nil
}

// readBody reads a response's whole body, at most maxBody bytes.
func readBody(resp *http.Response) ([]byte, error) {
	body, err := httpbody.Read(resp.Body, resp.ContentLength, maxBody)
	switch {
	case errors.Is(err, httpbody.ErrTooLarge):
		return nil, fmt.Errorf("%w: response body larger than %d bytes", ErrMalformed, maxBody)
	case err != nil:
		return nil, fmt.Errorf("graph: read response body: %w", err)
	}
	return body, nil
}

// waitTooLongError is a retryable answer whose Retry-After exceeds
// Config.MaxRetryAfter. It is born here, in the transport, so it reaches
// the SDK as a transport error and translate hands it on unchanged.
type waitTooLongError struct {
	ge  *Error
	max time.Duration
}

func (e *waitTooLongError) Error() string {
	return fmt.Sprintf("%v: Retry-After %s is longer than the %s this client waits (GRAPH_MAX_RETRY_AFTER); try again later",
		e.ge, e.ge.RetryAfter, e.max)
}

func (e *waitTooLongError) Unwrap() []error { return []error{ErrWaitTooLong, e.ge} }

// shouldRetry says whether an attempt's outcome is transient and, when
// Graph said how long to wait, for how long.
func (t *retrier) shouldRetry(resp *http.Response, err error) (time.Duration, bool) {
	if err != nil {
		return 0, transientNetErr(err)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		d, _ := parseRetryAfter(resp.Header.Get("Retry-After"), t.now())
		return d, true
	}
	return 0, false
}

// transientNetErr reports whether a transport error may go away on its
// own. Certificate problems and unknown hosts will not.
func transientNetErr(err error) bool {
	if errors.Is(err, ErrMalformed) {
		return false
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		certErr   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
		recordErr tls.RecordHeaderError
		dnsErr    *net.DNSError
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &certErr),
		errors.As(err, &verifyErr), errors.As(err, &recordErr):
		return false
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return false
	}
	return true
}

// replayable returns a function that yields a fresh copy of req's body for
// each attempt, or nil when req has none.
func replayable(req *http.Request) (func() (io.ReadCloser, error), error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	if req.GetBody != nil {
		return req.GetBody, nil
	}
	b, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("graph: buffer request body: %w", err)
	}
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, nil
}

// parseRetryAfter reads a Retry-After value: delay-seconds, which Graph
// sends with a fraction ("1.5"), or an HTTP-date. ok is false when v is
// empty or unreadable.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(s) || math.IsInf(s, 0) || s < 0 {
			return 0, false
		}
		// Round up to the nanosecond so the wait is never shorter than
		// asked; a wait past what a Duration holds is the longest one,
		// which the retry ceiling then refuses, not a negative one.
		ns := math.Ceil(s * float64(time.Second))
		if ns >= math.MaxInt64 {
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(ns), true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

// bearer is the token a request carries.
func bearer(req *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

func statusOf(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}
