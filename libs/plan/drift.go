package plan

// Drift is what a full read found that the delta rounds before it had
// missed: objects and edges the mirror had wrong although Graph's delta
// queries never said they changed. It should be zero; a full read every
// FullSyncEvery is there to catch it when it is not.
//
// A full run of a tenant with saved delta links first reads a delta round
// from them (catch-up) and then lists the whole directory. What the
// listing finds different from the mirror is either a change that round
// reported as well (explained) or drift. Changes made in Entra ID in the
// seconds between the round and the listing count as drift too: they are
// few, and the next run reads them anyway.
type Drift struct {
	Users, Groups, Memberships int
}

// DriftFound is what a caught-up full run's listing found different from
// the mirror: ids of users and groups it wrote with other properties,
// brought back or found gone, and per group the edges it added, changed
// or dropped.
type DriftFound struct {
	Users, Groups []string
	Edges         map[string]int // group id → edges
}

// DriftExplained is what the run's own delta round named: users, and
// groups (a group whose members changed is named by its members@delta).
type DriftExplained struct {
	Users, Groups map[string]bool
}

// DriftOf keeps what the delta round does not explain: a user or group
// the round did not name, counted once, and the edges of groups whose
// member list the round did not name.
func DriftOf(found DriftFound, explained DriftExplained) Drift {
	count := func(ids []string, named map[string]bool) int {
		seen := map[string]bool{}
		for _, id := range ids {
			if !named[id] && !seen[id] {
				seen[id] = true
			}
		}
		return len(seen)
	}
	d := Drift{Users: count(found.Users, explained.Users), Groups: count(found.Groups, explained.Groups)}
	for g, n := range found.Edges {
		if !explained.Groups[g] {
			d.Memberships += n
		}
	}
	return d
}

// Counts names the drift as a run's counts do.
func (d Drift) Counts() map[string]int64 {
	return map[string]int64{
		"driftUsers":       int64(d.Users),
		"driftGroups":      int64(d.Groups),
		"driftMemberships": int64(d.Memberships),
	}
}

// Any reports whether anything drifted.
func (d Drift) Any() bool { return d != Drift{} }
