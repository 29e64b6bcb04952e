package plan

import "testing"

func TestDriftKeepsWhatTheDeltaRoundDoesNotExplain(t *testing.T) {
	explained := DriftExplained{
		Users:  map[string]bool{"u-renamed": true, "u-deleted": true},
		Groups: map[string]bool{"g-members-changed": true},
	}
	cases := []struct {
		name  string
		found DriftFound
		want  Drift
	}{
		{"nothing found", DriftFound{}, Drift{}},
		{"only what the round named", DriftFound{
			Users: []string{"u-renamed", "u-deleted"}, Groups: []string{"g-members-changed"},
			Edges: map[string]int{"g-members-changed": 3},
		}, Drift{}},
		{"a user the round missed, noted twice (changed, then tombstoned)", DriftFound{
			Users: []string{"u-missed", "u-renamed", "u-missed"},
		}, Drift{Users: 1}},
		{"a group the round missed", DriftFound{Groups: []string{"g-missed", "g-members-changed"}}, Drift{Groups: 1}},
		{"edges of groups the round did not name", DriftFound{
			Edges: map[string]int{"g-members-changed": 5, "g-quiet": 2, "g-other": 1},
		}, Drift{Memberships: 3}},
		{"a user named by the round does not explain a group's edges", DriftFound{
			Edges: map[string]int{"u-renamed": 1},
		}, Drift{Memberships: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := DriftOf(c.found, explained); got != c.want {
				t.Fatalf("DriftOf = %+v, want %+v", got, c.want)
			}
		})
	}
	if (Drift{}).Any() || !(Drift{Memberships: 1}).Any() {
		t.Error("Any is wrong")
	}
	if c := (Drift{Users: 1, Groups: 2, Memberships: 3}).Counts(); c["driftUsers"] != 1 || c["driftGroups"] != 2 || c["driftMemberships"] != 3 || len(c) != 3 {
		t.Errorf("Counts = %v", c)
	}
}
