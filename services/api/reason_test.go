package api

import (
	"errors"
	"fmt"
	"testing"

	"github.com/entrasync/entrasync/libs/store"
)

// TestReasonIsTheStoresWordsForPeople: answers quote what the store says
// after the sentinel an error wraps, without the operations and ids the
// store adds for its log, and fall back when it says nothing more.
func TestReasonIsTheStoresWordsForPeople(t *testing.T) {
	t.Parallel()
	wrap := func(sentinel error, why string) error {
		return fmt.Errorf("store: approve plan of run 0198f3c4: %w", fmt.Errorf("%w: %s", sentinel, why))
	}
	for _, c := range []struct {
		name     string
		err      error
		sentinel error
		want     string
	}{
		{"stale plan", wrap(store.ErrStalePlan, "run 7 was planned after this one"), store.ErrConflict,
			"the plan is out of date: run 7 was planned after this one"},
		{"no seat", wrap(store.ErrNoSeat, "no free seat (100 of 100 used)"), store.ErrConflict,
			"no seat can be given: no free seat (100 of 100 used)"},
		{"invalid", wrap(store.ErrInvalid, "name is empty"), store.ErrInvalid, "name is empty"},
		{"the sentinel alone", fmt.Errorf("store: x: %w", store.ErrInvalid), store.ErrInvalid, "fallback"},
		{"another error", errors.New("connection refused"), store.ErrConflict, "fallback"},
	} {
		if got := reason(c.err, c.sentinel, "fallback"); got != c.want {
			t.Errorf("%s: reason(%q) = %q, want %q", c.name, c.err, got, c.want)
		}
	}
}
