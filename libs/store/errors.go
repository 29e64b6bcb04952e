package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Errors callers branch on. Every error the store returns that means one of
// these wraps it, so errors.Is works whatever context was added.
var (
	// ErrNotFound means the tenant, run or object does not exist (for
	// this tenant).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means the write collides with what is stored: a slot
	// that already has a run, a page applied earlier with other content.
	ErrConflict = errors.New("store: conflict")
	// ErrInvalid means the input can never be stored as it is; retrying
	// it will not help.
	ErrInvalid = errors.New("store: invalid input")
	// ErrPastFetching means a run no longer needs fetching (it is
	// applying, succeeded or failed): a job for it is done with. It is
	// also an ErrConflict.
	ErrPastFetching = fmt.Errorf("%w: run is past fetching", ErrConflict)
)

// SQLSTATE codes the store looks at.
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

// invalidf returns an ErrInvalid with a message for people.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// translate maps what pgx returns to the store's sentinel errors, adding
// what was being done. It is applied once, where the error leaves SQL.
func translate(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: %s: %w", what, ErrNotFound)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == codeUniqueViolation:
			return fmt.Errorf("store: %s: %w (%s)", what, ErrConflict, pgErr.ConstraintName)
		case pgErr.Code == codeForeignKeyViolation:
			// The row refers to a tenant or run that does not exist.
			return fmt.Errorf("store: %s: %w (%s)", what, ErrNotFound, pgErr.ConstraintName)
		case strings.HasPrefix(pgErr.Code, "22"), strings.HasPrefix(pgErr.Code, "23"):
			// Data exceptions and other integrity violations: a NUL byte
			// in a name, a value out of range, a check constraint.
			return fmt.Errorf("store: %s: %w: %s", what, ErrInvalid, pgErr.Message)
		}
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// IsRetryable reports whether err is worth trying again later: lock
// conflicts the store gave up retrying, a database that is down, starting
// or shutting down, a lost connection. Invalid input, missing rows and
// conflicts are not retryable; neither is a cancelled context.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case isLockConflict(err),
			strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"), // insufficient resources
			strings.HasPrefix(pgErr.Code, "57"), // operator intervention: shutdown, cancel
			strings.HasPrefix(pgErr.Code, "58"): // system error
			return true
		}
		return false
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	// The connection went away mid-statement (the server restarted, a
	// proxy or the network cut it): the transaction rolled back with it,
	// and every write of the store can run again.
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var connectErr *pgconn.ConnectError
	return errors.As(err, &connectErr)
}

// isLockConflict reports a deadlock or serialization failure: the
// transaction lost a race and can simply run again.
func isLockConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == codeDeadlockDetected || pgErr.Code == codeSerializationFailure)
}
