package plan

import (
	"testing"
	"time"
)

func TestRunKindIsDeltaWhileLinksAreFreshAndAFullReadIsRecent(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	fresh := RunKindFacts{Links: 2, LinksTakenAt: now.Add(-time.Hour), LastFullAt: now.Add(-2 * day)}
	for _, c := range []struct {
		name  string
		facts RunKindFacts
		want  string
	}{
		{"fresh links, recent full read", fresh, RunDelta},
		{"no links", RunKindFacts{LastFullAt: fresh.LastFullAt}, RunFull},
		{"one link", RunKindFacts{Links: 1, LinksTakenAt: fresh.LinksTakenAt, LastFullAt: fresh.LastFullAt}, RunFull},
		{"links 6 days old", RunKindFacts{Links: 2, LinksTakenAt: now.Add(-6 * day), LastFullAt: fresh.LastFullAt}, RunDelta},
		{"links older than 6 days", RunKindFacts{Links: 2, LinksTakenAt: now.Add(-6*day - time.Second), LastFullAt: fresh.LastFullAt}, RunFull},
		{"no full read ever", RunKindFacts{Links: 2, LinksTakenAt: fresh.LinksTakenAt}, RunFull},
		{"a group unreadable last time", RunKindFacts{Links: 2, LinksTakenAt: fresh.LinksTakenAt, LastFullAt: fresh.LastFullAt,
			UnreadableGroups: 1}, RunFull},
		{"read transitively", RunKindFacts{Links: 2, LinksTakenAt: fresh.LinksTakenAt, LastFullAt: fresh.LastFullAt,
			ReadsTransitive: true}, RunFull},
		{"full read a week ago", RunKindFacts{Links: 2, LinksTakenAt: fresh.LinksTakenAt, LastFullAt: now.Add(-7 * day)}, RunFull},
	} {
		if got, why := RunKind(c.facts, now); got != c.want || why == "" {
			t.Errorf("%s: %s (%q), want %s", c.name, got, why, c.want)
		}
	}
}
