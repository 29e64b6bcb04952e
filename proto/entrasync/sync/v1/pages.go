package syncv1

// Page numbering of a run's fetch attempts (see SyncEvent.page). This file
// is written by hand; the rest of the package is generated.

// AttemptPageSpan is how many data page numbers each fetch attempt of a
// run owns: attempt a (from 1) numbers its pages from (a-1)*AttemptPageSpan.
// A retried job therefore publishes pages under new numbers (new message
// ids, newer mirror versions) instead of colliding with what an
// interrupted attempt already published. An attempt that would need more
// pages than this fails its run.
const AttemptPageSpan = 1 << 20

// MaxFetchAttempts is the number of attempts whose pages fit in an int32
// page number with room to spare: the last page of attempt MaxFetchAttempts
// is 2047<<20 - 1, below the largest int32, which stays free for the
// versions of tombstones. A job past it fails its run.
const MaxFetchAttempts = 2047

// AttemptFirstPage returns the first data page number of fetch attempt a
// (from 1), and false when a is not between 1 and MaxFetchAttempts.
func AttemptFirstPage(a int) (int32, bool) {
	if a < 1 || a > MaxFetchAttempts {
		return 0, false
	}
	return int32(a-1) * AttemptPageSpan, true
}
