package bus

import (
	"errors"
	"time"
)

// Retry is what a handler returns when its message should come back after
// delay: a tenant lease is held elsewhere, or the service is shutting down
// and hands the message back. Deliveries count towards the consumer's
// maximum; when they run out on a Retry, the bus publishes a fresh copy of
// the message (with HeaderRequeues) instead of dead-lettering it, so
// waiting is never mistaken for failing. While the service shuts down, a
// Retry is handed back at once, whatever its delay.
func Retry(err error, delay time.Duration) error {
	if err == nil {
		err = errors.New("retry requested")
	}
	return &retryError{err: err, delay: max(delay, 0)}
}

// Permanent is what a handler returns when its message can never succeed
// (it refers to a tenant that does not exist, say): the bus dead-letters it
// at once instead of retrying.
func Permanent(err error) error {
	if err == nil {
		err = errors.New("permanent failure")
	}
	return &permanentError{err: err}
}

// Transient is what a handler returns when its message failed for a
// reason that passes by itself: the database is down or restarting, a
// connection broke. Redelivery would spend the message's deliveries on
// the outage, and a long one would dead-letter it. Instead the bus calls
// the handler again in this process, after growing delays (RetryBase
// doubled up to RetryMax), keeping the message in progress, for up to
// Options.TransientFor; only then does the failure count as one delivery.
// Should the consumer stop meanwhile, the message is handed back (a fresh
// copy when it was on its last delivery), never dead-lettered.
func Transient(err error) error {
	if err == nil {
		err = errors.New("transient failure")
	}
	return &transientError{err: err}
}

// IsTransient reports whether err was made by Transient.
func IsTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

// IsPermanent reports whether err was made by Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type retryError struct {
	err   error
	delay time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }
