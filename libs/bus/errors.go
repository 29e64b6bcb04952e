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
