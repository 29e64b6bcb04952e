package plan

import "time"

// Run kinds: a full run reads the whole directory; a delta run reads what
// changed since the links the tenant's last applied run saved.
const (
	RunFull  = "full"
	RunDelta = "delta"
)

const (
	// FullSyncEvery is how often a tenant is read whole even while delta
	// rounds work: a full read catches what delta rounds may have missed
	// (drift), and its plan shows it.
	FullSyncEvery = 7 * 24 * time.Hour
	// MaxDeltaLinkAge is how old saved delta links may be for a delta
	// run: Graph forgets a link's state after 7 days.
	MaxDeltaLinkAge = 6 * 24 * time.Hour
)

// RunKindFacts are what the choice of a run's kind depends on.
type RunKindFacts struct {
	// Links is how many of the two delta links (users, groups) the
	// tenant has saved; LinksTakenAt is when the older was taken.
	Links        int
	LinksTakenAt time.Time
	// LastFullAt is when the tenant's last full run succeeded; zero when
	// none did.
	LastFullAt time.Time
	// UnreadableGroups counts the groups whose member list the last
	// applied run could not read (kept as last read).
	UnreadableGroups int
	// ReadsTransitive: the tenant's full runs read its scope groups'
	// transitive members (ReadStrategy), which leaves the mirror's direct
	// edges as the last whole read left them.
	ReadsTransitive bool
}

// RunKind chooses a new run's kind at now, and says why: delta while the
// tenant has both links, younger than MaxDeltaLinkAge, a full run
// succeeded within FullSyncEvery and every group's member list could be
// read (a delta round would not bring back what changed in an unreadable
// list before its link), and the tenant is not read transitively (Graph's
// groups delta does not report nested changes, and the direct edges a
// round would update were not read); full otherwise.
func RunKind(f RunKindFacts, now time.Time) (kind, why string) {
	switch {
	case f.ReadsTransitive:
		return RunFull, "the tenant is read through its scope groups' transitive members, which delta rounds cannot follow"
	case f.Links < 2:
		return RunFull, "no delta links saved yet"
	case now.Sub(f.LinksTakenAt) > MaxDeltaLinkAge:
		return RunFull, "the delta links are older than 6 days"
	case f.LastFullAt.IsZero() || now.Sub(f.LastFullAt) >= FullSyncEvery:
		return RunFull, "the weekly full read is due"
	case f.UnreadableGroups > 0:
		return RunFull, "a group's member list could not be read last time"
	}
	return RunDelta, "reads what changed since the last applied run"
}
