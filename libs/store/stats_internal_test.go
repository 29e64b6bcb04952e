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

func TestAnalyzeBeforeFinalizing(t *testing.T) {
	for _, tc := range []struct {
		name                             string
		modified, live, objects, written int64
		want                             bool
	}{
		{"a large run's own load", 310_000, 310_000, 310_530, 208_000, true},
		{"a small run beside a large tenant's load", 100_000, 400_000, 300, 300, false},
		{"a run that made a tenth of the changes", 20_000, 400_000, 2_000, 2_000, true},
		{"a large run, tables fresh, none of its pages write this one", 100, 400_000, 310_530, 0, false},
		{"a large run, its writes not counted yet", 100, 400_000, 310_530, 208_000, true},
		{"a tenant's first run, its writes not counted yet", 0, 0, 60_400, 40_000, true},
		{"a small run, tables fresh", 100, 400_000, 300, 300, false},
	} {
		if got := analyzeBeforeFinalizing(tc.modified, tc.live, tc.objects, tc.written); got != tc.want {
			t.Errorf("%s: analyzeBeforeFinalizing(modified %d, live %d, run objects %d, written %d) = %v, want %v",
				tc.name, tc.modified, tc.live, tc.objects, tc.written, got, tc.want)
		}
	}
}

func TestAnalyzeAfterApplying(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		modified, live, planned int64
		want                    bool
	}{
		{"a tenant's first plan, its writes counted", 450_000, 450_000, 450_000, true},
		{"a tenant's first plan, its writes not counted yet", 0, 0, 450_000, true},
		{"a delta round's plan in a big table", 300, 450_000, 300, false},
		{"a small plan beside a large tenant's load", 450_000, 900_000, 20, false},
		{"a plan that made a tenth of the changes", 20_000, 400_000, 2_000, true},
		{"no rows planned", 0, 0, 0, false},
	} {
		if got := analyzeAfterApplying(tc.modified, tc.live, tc.planned); got != tc.want {
			t.Errorf("%s: analyzeAfterApplying(modified %d, live %d, planned %d) = %v, want %v",
				tc.name, tc.modified, tc.live, tc.planned, got, tc.want)
		}
	}
}
