package graph

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseRetryAfter: no Retry-After value may panic, give a negative
// wait, or, as delay-seconds, a wait shorter than asked.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"1.5", "120", "0", " 7 ", "Wed, 21 Oct 2015 07:28:00 GMT", "Sun, 06 Nov 2994 08:49:37 GMT",
		"-1", "NaN", "Inf", "1e309", "0x10", "", "1.5s", "\x00"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now)
		if !ok {
			if d != 0 {
				t.Fatalf("unreadable %q gave %v", v, d)
			}
			return
		}
		if d < 0 {
			t.Fatalf("%q gave a negative wait %v", v, d)
		}
		if s, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && s*float64(time.Second) < math.MaxInt64 {
			if float64(d) < s*float64(time.Second) {
				t.Fatalf("%q gave %v, shorter than asked", v, d)
			}
		}
	})
}
