package store

import "testing"

func TestStatsStale(t *testing.T) {
	for _, tc := range []struct {
		modified, live int64
		want           bool
	}{
		{modified: 0, live: 0, want: false},
		{modified: 499, live: 499, want: false},         // too few rows to matter
		{modified: 500, live: 500, want: true},          // a new table's first rows
		{modified: 1_000, live: 10_000, want: false},    // a tenth: autovacuum's fraction, not more
		{modified: 1_001, live: 10_000, want: true},     // more than a tenth
		{modified: 9_999, live: 1_000_000, want: false}, // a delta round in a big table
		{modified: 10_000, live: 1_000_000, want: true}, // a new tenant's load, however big the table
	} {
		if got := statsStale(tc.modified, tc.live); got != tc.want {
			t.Errorf("statsStale(modified %d, live %d) = %v, want %v", tc.modified, tc.live, got, tc.want)
		}
	}
}
