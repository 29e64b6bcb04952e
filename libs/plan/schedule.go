package plan

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	// Zone data inside every binary that judges schedules, so that a
	// daily schedule in "Europe/London" means the same on a machine
	// without /usr/share/zoneinfo (a distroless container).
	_ "time/tzdata"
)

// ScheduleKind says when a tenant is synced without anyone asking.
type ScheduleKind string

// Schedule kinds.
const (
	// ScheduleManual: only when an admin (or a scope change) asks.
	ScheduleManual ScheduleKind = "manual"
	// ScheduleInterval: every EveryMinutes minutes.
	ScheduleInterval ScheduleKind = "interval"
	// ScheduleDaily: once a day at a local time in a time zone.
	ScheduleDaily ScheduleKind = "daily"
)

// Limits of an interval schedule, in minutes: five minutes to 31 days.
const (
	MinEveryMinutes = 5
	MaxEveryMinutes = 44640
)

// Schedule is a tenant's sync schedule, as the API shows and takes it
// (the setting "schedule"). Only the members of its kind are set.
type Schedule struct {
	Kind ScheduleKind `json:"kind"`
	// EveryMinutes is an interval schedule's time between two runs.
	EveryMinutes int `json:"everyMinutes,omitempty"`
	// At is a daily schedule's local time, "HH:MM" on a 24-hour clock.
	At string `json:"at,omitempty"`
	// TimeZone is a daily schedule's IANA time zone ("Europe/London").
	TimeZone string `json:"timeZone,omitempty"`
}

// IntervalSchedule is the schedule of a tenant synced every d (whole
// minutes; the tenants' sync interval before schedules existed).
func IntervalSchedule(d time.Duration) Schedule {
	return Schedule{Kind: ScheduleInterval, EveryMinutes: int(d / time.Minute)}
}

// IsZero reports whether the schedule was not given at all.
func (s Schedule) IsZero() bool { return s == Schedule{} }

// Validate returns the first member that cannot be taken, as a
// *FieldError named "schedule.<member>", or nil.
func (s Schedule) Validate() error {
	switch s.Kind {
	case ScheduleManual:
		if err := s.only(); err != nil {
			return err
		}
	case ScheduleInterval:
		if s.EveryMinutes < MinEveryMinutes || s.EveryMinutes > MaxEveryMinutes {
			return fieldErr("schedule.everyMinutes", "schedule.everyMinutes must be an integer from %d to %d",
				MinEveryMinutes, MaxEveryMinutes)
		}
		if err := s.only("everyMinutes"); err != nil {
			return err
		}
	case ScheduleDaily:
		if _, _, err := parseClock(s.At); err != nil {
			return fieldErr("schedule.at", "schedule.at must be a local time HH:MM from 00:00 to 23:59, not %q", s.At)
		}
		if _, err := zone(s.TimeZone); err != nil {
			return fieldErr("schedule.timeZone", "schedule.timeZone must be an IANA time zone such as \"Europe/London\", not %q", s.TimeZone)
		}
		if err := s.only("at", "timeZone"); err != nil {
			return err
		}
	default:
		return fieldErr("schedule.kind", `schedule.kind must be "manual", "interval" or "daily"`)
	}
	return nil
}

// only returns an error naming the first member that is set but not one
// of those the schedule's kind takes.
func (s Schedule) only(members ...string) error {
	set := map[string]bool{"everyMinutes": s.EveryMinutes != 0, "at": s.At != "", "timeZone": s.TimeZone != ""}
	for _, m := range []string{"everyMinutes", "at", "timeZone"} {
		if set[m] && !slices.Contains(members, m) {
			return fieldErr("schedule."+m, "schedule.%s is only for %s schedule", m, map[string]string{
				"everyMinutes": "an interval", "at": "a daily", "timeZone": "a daily"}[m])
		}
	}
	return nil
}

// Slot returns the slot the schedule is in at now: the latest time it was
// due that is not after now. key spreads interval slots: tenants with the
// same interval are due at different moments of it (see IntervalSlot).
// A manual or invalid schedule has no slots.
func (s Schedule) Slot(key string, now time.Time) (time.Time, bool) {
	switch s.Kind {
	case ScheduleInterval:
		if s.EveryMinutes <= 0 {
			return time.Time{}, false
		}
		return IntervalSlot(key, time.Duration(s.EveryMinutes)*time.Minute, now), true
	case ScheduleDaily:
		loc, hh, mm, ok := s.daily()
		if !ok {
			return time.Time{}, false
		}
		y, m, d := now.In(loc).Date()
		slot := wallTime(y, m, d, hh, mm, loc)
		if slot.After(now) {
			slot = wallTime(y, m, d-1, hh, mm, loc)
		}
		return slot, true
	}
	return time.Time{}, false
}

// Next returns the first slot after the slot after: for an interval
// schedule everyMinutes later, for a daily one the next day's local time.
// A manual or invalid schedule has none.
//
// A daily time that a spring-forward skips (01:30 in Europe/London on the
// last Sunday of March) is due at the first instant after the gap (02:00
// BST); a time that a fall-back repeats is due once, at its first
// occurrence.
func (s Schedule) Next(after time.Time) (time.Time, bool) {
	switch s.Kind {
	case ScheduleInterval:
		if s.EveryMinutes <= 0 {
			return time.Time{}, false
		}
		return after.Add(time.Duration(s.EveryMinutes) * time.Minute).UTC(), true
	case ScheduleDaily:
		loc, hh, mm, ok := s.daily()
		if !ok {
			return time.Time{}, false
		}
		y, m, d := after.In(loc).Date()
		next := wallTime(y, m, d, hh, mm, loc)
		if !next.After(after) {
			next = wallTime(y, m, d+1, hh, mm, loc)
		}
		return next, true
	}
	return time.Time{}, false
}

// NextRun is when the schedule next starts a run of the tenant key, seen
// at now: the slot after the current one. A manual schedule has none.
func (s Schedule) NextRun(key string, now time.Time) (time.Time, bool) {
	slot, ok := s.Slot(key, now)
	if !ok {
		return time.Time{}, false
	}
	return s.Next(slot)
}

func (s Schedule) daily() (loc *time.Location, hh, mm int, ok bool) {
	hh, mm, err := parseClock(s.At)
	if err != nil {
		return nil, 0, 0, false
	}
	loc, err = zone(s.TimeZone)
	if err != nil {
		return nil, 0, 0, false
	}
	return loc, hh, mm, true
}

// IntervalSlot returns key's slot at now for a schedule of every
// interval: the latest of its boundaries (every interval, shifted by an
// offset derived from key) that is not after now. The offset spreads
// tenants connected on the same day over the interval, so that they do
// not all start at midnight. Slots are whole seconds, so they survive
// the database's microsecond timestamps unchanged.
func IntervalSlot(key string, interval time.Duration, now time.Time) time.Time {
	iv := int64(interval / time.Second)
	if iv < 1 {
		iv = 1
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	offset := int64(h.Sum64() % uint64(iv))
	n := now.Unix() - offset
	k := n / iv
	if n%iv < 0 { // floor division for times before the epoch + offset
		k--
	}
	return time.Unix(k*iv+offset, 0).UTC()
}

// wallTime returns the instant the clocks of loc show hh:mm on the given
// day (in UTC). A wall time skipped by a spring-forward gives the first
// instant after the gap; one repeated by a fall-back gives its first
// occurrence. (time.Date picks one of the two offsets, without saying
// which.)
func wallTime(y int, m time.Month, d, hh, mm int, loc *time.Location) time.Time {
	wall := time.Date(y, m, d, hh, mm, 0, 0, time.UTC)
	// The offsets in force around that day: a day has at most one change.
	var offsets []int
	for _, probe := range []time.Duration{-48 * time.Hour, 0, 48 * time.Hour} {
		_, off := wall.Add(probe).In(loc).Zone()
		if !slices.Contains(offsets, off) {
			offsets = append(offsets, off)
		}
	}
	var first time.Time
	minOff := offsets[0]
	for _, off := range offsets {
		minOff = min(minOff, off)
		u := wall.Add(-time.Duration(off) * time.Second)
		l := u.In(loc)
		if time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), 0, 0, time.UTC).Equal(wall) &&
			(first.IsZero() || u.Before(first)) {
			first = u
		}
	}
	if !first.IsZero() {
		return first.UTC()
	}
	// In a gap: read with the offset before the change, the wall time is
	// an instant after the change; the zone it is in began at the end of
	// the gap.
	start, _ := wall.Add(-time.Duration(minOff) * time.Second).In(loc).ZoneBounds()
	return start.UTC()
}

// parseClock reads "HH:MM" (24-hour, two digits each).
func parseClock(at string) (hh, mm int, err error) {
	bad := fmt.Errorf("plan: %q is not HH:MM", at)
	if len(at) != 5 || at[2] != ':' {
		return 0, 0, bad
	}
	for _, i := range []int{0, 1, 3, 4} {
		if at[i] < '0' || at[i] > '9' {
			return 0, 0, bad
		}
	}
	hh = int(at[0]-'0')*10 + int(at[1]-'0')
	mm = int(at[3]-'0')*10 + int(at[4]-'0')
	if hh > 23 || mm > 59 {
		return 0, 0, bad
	}
	return hh, mm, nil
}

// zones caches loaded time zones: time.LoadLocation reads and parses the
// zone data on every call, and the scheduler asks for every tenant on
// every pass.
var zones sync.Map // name → *time.Location

// zone loads an IANA time zone. "Local" (whatever the machine is set to)
// and "" (UTC to time.LoadLocation) are refused: a schedule means the
// same on every machine, and UTC is spelled "UTC".
func zone(name string) (*time.Location, error) {
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	if name == "" || name == "Local" || strings.TrimSpace(name) != name {
		return nil, fmt.Errorf("plan: %q is not an IANA time zone", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("plan: time zone %q: %w", name, err)
	}
	zones.Store(name, loc)
	return loc, nil
}

// DefaultSyncInterval is how often a tenant is synced when it does not
// say: its default schedule.
const DefaultSyncInterval = 24 * time.Hour

// UnmarshalJSON reads a schedule whole: members of the schedule it
// replaces do not survive (a daily schedule read over an interval one has
// no everyMinutes). null leaves the schedule as it is.
func (s *Schedule) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	type plain Schedule // without this method
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*s = Schedule(p)
	return nil
}
