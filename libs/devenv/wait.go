package devenv

import (
	"testing"
	"time"
)

// pollEvery is how often WaitFor looks at its condition again.
const pollEvery = 10 * time.Millisecond

// WaitFor waits until cond holds, looking at it every 10 ms, and fails the
// test, naming what it waited for, when limit passes first. It is the one
// place tests wait for something another goroutine or process does
// (a run to finish, a lease to expire, a process to exit): the wait ends
// with the condition, never after a guessed sleep.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitForEvery(t, limit, pollEvery, what, cond)
}

// WaitForEvery is WaitFor looking at cond every interval: for a
// condition that costs work to look at (a benchmark asking the api for a
// run's status would otherwise load the machine it measures).
func WaitForEvery(t testing.TB, limit, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", limit, what)
		}
		time.Sleep(interval)
	}
}
