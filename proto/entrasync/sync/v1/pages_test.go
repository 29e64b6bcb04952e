package syncv1

import (
	"math"
	"testing"
)

func TestAttemptFirstPage(t *testing.T) {
	cases := []struct {
		attempt int
		want    int32
		ok      bool
	}{
		{0, 0, false},
		{-1, 0, false},
		{1, 0, true},
		{2, AttemptPageSpan, true},
		{3, 2 * AttemptPageSpan, true},
		{MaxFetchAttempts, (MaxFetchAttempts - 1) * AttemptPageSpan, true},
		{MaxFetchAttempts + 1, 0, false},
	}
	for _, c := range cases {
		got, ok := AttemptFirstPage(c.attempt)
		if got != c.want || ok != c.ok {
			t.Errorf("AttemptFirstPage(%d) = %d, %v; want %d, %v", c.attempt, got, ok, c.want, c.ok)
		}
	}
	// Every page of every allowed attempt stays below the largest int32,
	// which tombstones use as their page version.
	first, _ := AttemptFirstPage(MaxFetchAttempts)
	if last := int64(first) + AttemptPageSpan - 1; last >= math.MaxInt32 {
		t.Errorf("the last page of the last attempt is %d, not below %d", last, math.MaxInt32)
	}
}
