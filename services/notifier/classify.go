package notifier

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Verdict is what an answer of a webhook means for its task.
type Verdict int

// Verdicts.
const (
	// Delivered: a 2xx answer.
	Delivered Verdict = iota
	// Retry: 408, 429, 5xx or no answer (a network error, a timeout).
	Retry
	// Failed: any other answer (4xx, a redirect): sending it again would
	// get the same answer.
	Failed
)

func (v Verdict) String() string {
	switch v {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	}
	return "failed"
}

// Outcome is a classified attempt.
type Outcome struct {
	Verdict Verdict
	// Reason says why it was not delivered, for people.
	Reason string
	// RetryAfter is the receiver's Retry-After, bounded; 0 when it gave
	// none (the backoff decides).
	RetryAfter time.Duration
}

// Classify judges one attempt: the response (nil when err is set), a
// snippet of its body for the reason, and now for a Retry-After date.
// A Retry-After beyond maxRetryAfter is cut to it.
func Classify(resp *http.Response, err error, snippet string, now time.Time, maxRetryAfter time.Duration) Outcome {
	if err != nil {
		return Outcome{Verdict: Retry, Reason: "no answer from the webhook: " + err.Error()}
	}
	code := resp.StatusCode
	reason := fmt.Sprintf("HTTP %d from the webhook", code)
	if s := clean(snippet); s != "" {
		reason += ": " + s
	}
	switch {
	case code >= 200 && code < 300:
		return Outcome{Verdict: Delivered}
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return Outcome{Verdict: Retry, Reason: reason,
			RetryAfter: retryAfter(resp.Header.Get("Retry-After"), now, maxRetryAfter)}
	case code >= 300 && code < 400:
		return Outcome{Verdict: Failed, Reason: reason + " (redirects are not followed: set notify.webhookUrl to the final URL)"}
	}
	return Outcome{Verdict: Failed, Reason: reason}
}

// retryAfter reads Retry-After (seconds, or an HTTP date), bounded by
// limit; 0 when absent or unreadable.
func retryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > limit.Seconds() {
			return limit
		}
		d = time.Duration(secs * float64(time.Second))
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), limit)
}

// maxReason bounds the part of a webhook's answer kept in a task's reason.
const maxReason = 300

// clean is a body snippet fit for a reason: one line, printable, short.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxReason {
		s = strings.ToValidUTF8(s[:maxReason], "") + "…"
	}
	return s
}
