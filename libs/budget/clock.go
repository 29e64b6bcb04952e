package budget

import (
	"context"
	"time"
)

// Clock tells a Budget the time and waits for it. Tests pass one they
// move by hand, so waits for refills and Retry-After take no real time.
type Clock interface {
	// Now is the current time.
	Now() time.Time
	// SleepUntil returns when Now has reached t, or ctx.Err() when ctx
	// ends first. It returns at once when t is not in the future.
	SleepUntil(ctx context.Context, t time.Time) error
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// SleepUntil waits on a timer until t or until ctx ends.
func (SystemClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
