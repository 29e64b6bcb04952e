package plan

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func daily(at, tz string) Schedule { return Schedule{Kind: ScheduleDaily, At: at, TimeZone: tz} }

func TestScheduleValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		s     Schedule
		field string // "" when valid
	}{
		{"manual", Schedule{Kind: ScheduleManual}, ""},
		{"interval, the least", Schedule{Kind: ScheduleInterval, EveryMinutes: 5}, ""},
		{"interval, the most", Schedule{Kind: ScheduleInterval, EveryMinutes: 44640}, ""},
		{"daily", daily("01:30", "Europe/London"), ""},
		{"daily in UTC", daily("00:00", "UTC"), ""},
		{"daily at 23:59 in Tokyo", daily("23:59", "Asia/Tokyo"), ""},
		{"no kind", Schedule{}, "schedule.kind"},
		{"unknown kind", Schedule{Kind: "hourly"}, "schedule.kind"},
		{"interval too short", Schedule{Kind: ScheduleInterval, EveryMinutes: 4}, "schedule.everyMinutes"},
		{"interval too long", Schedule{Kind: ScheduleInterval, EveryMinutes: 44641}, "schedule.everyMinutes"},
		{"interval without minutes", Schedule{Kind: ScheduleInterval}, "schedule.everyMinutes"},
		{"interval with a time", Schedule{Kind: ScheduleInterval, EveryMinutes: 60, At: "01:00"}, "schedule.at"},
		{"manual with minutes", Schedule{Kind: ScheduleManual, EveryMinutes: 60}, "schedule.everyMinutes"},
		{"manual with a zone", Schedule{Kind: ScheduleManual, TimeZone: "UTC"}, "schedule.timeZone"},
		{"daily 24:00", daily("24:00", "UTC"), "schedule.at"},
		{"daily 12:60", daily("12:60", "UTC"), "schedule.at"},
		{"daily 1:30", daily("1:30", "UTC"), "schedule.at"},
		{"daily 01:30:00", daily("01:30:00", "UTC"), "schedule.at"},
		{"daily without time", daily("", "UTC"), "schedule.at"},
		{"daily without zone", daily("01:30", ""), "schedule.timeZone"},
		{"daily in an unknown zone", daily("01:30", "Europe/Atlantis"), "schedule.timeZone"},
		{"daily in Local", daily("01:30", "Local"), "schedule.timeZone"},
		{"daily in a path", daily("01:30", "../etc/passwd"), "schedule.timeZone"},
		{"daily with minutes", Schedule{Kind: ScheduleDaily, At: "01:30", TimeZone: "UTC", EveryMinutes: 60}, "schedule.everyMinutes"},
	} {
		err := tc.s.Validate()
		var fe *FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v, want valid", tc.name, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.field)
		}
	}
}

// TestScheduleNext walks daily schedules across both changes of clocks
// of two zones, and one zone without changes.
func TestScheduleNext(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		s     Schedule
		after string
		want  string
	}{
		// Europe/London: GMT+0, BST+1 from 2026-03-29 01:00 UTC to 2026-10-25 01:00 UTC.
		{"London, an ordinary winter day", daily("01:30", "Europe/London"), "2026-03-27T12:00:00Z", "2026-03-28T01:30:00Z"},
		{"London, 01:30 skipped: 02:00 BST", daily("01:30", "Europe/London"), "2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z"},
		{"London, the day after spring", daily("01:30", "Europe/London"), "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
		{"London, 01:00 skipped too", daily("01:00", "Europe/London"), "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
		{"London, 02:00 exists", daily("02:00", "Europe/London"), "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
		{"London, 00:59 before the gap", daily("00:59", "Europe/London"), "2026-03-28T12:00:00Z", "2026-03-29T00:59:00Z"},
		{"London, 01:30 repeated: the BST one", daily("01:30", "Europe/London"), "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
		{"London, not the GMT one again", daily("01:30", "Europe/London"), "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
		{"London, inside the repeat", daily("01:30", "Europe/London"), "2026-10-25T01:15:00Z", "2026-10-26T01:30:00Z"},
		{"London, 02:00 after the repeat", daily("02:00", "Europe/London"), "2026-10-24T12:00:00Z", "2026-10-25T02:00:00Z"},
		// America/New_York: EST-5, EDT-4 from 2026-03-08 07:00 UTC to 2026-11-01 06:00 UTC.
		{"New York, 02:30 skipped: 03:00 EDT", daily("02:30", "America/New_York"), "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
		{"New York, the day after spring", daily("02:30", "America/New_York"), "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"},
		{"New York, 01:30 before the gap", daily("01:30", "America/New_York"), "2026-03-07T12:00:00Z", "2026-03-08T06:30:00Z"},
		{"New York, 01:30 repeated: the EDT one", daily("01:30", "America/New_York"), "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z"},
		{"New York, not the EST one again", daily("01:30", "America/New_York"), "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"},
		{"New York, 02:30 after the repeat", daily("02:30", "America/New_York"), "2026-10-31T12:00:00Z", "2026-11-01T07:30:00Z"},
		// Asia/Tokyo: JST+9 all year.
		{"Tokyo, the same day", daily("09:00", "Asia/Tokyo"), "2026-03-28T23:00:00Z", "2026-03-29T00:00:00Z"},
		{"Tokyo, the next day", daily("09:00", "Asia/Tokyo"), "2026-03-29T00:00:00Z", "2026-03-30T00:00:00Z"},
		{"Tokyo, midnight", daily("00:00", "Asia/Tokyo"), "2026-10-25T12:00:00Z", "2026-10-25T15:00:00Z"},
		// UTC: the time itself.
		{"UTC", daily("23:59", "UTC"), "2026-12-31T23:59:00Z", "2027-01-01T23:59:00Z"},
		// Interval: everyMinutes after the previous slot, whatever the zones do.
		{"interval", Schedule{Kind: ScheduleInterval, EveryMinutes: 90}, "2026-03-29T00:30:00Z", "2026-03-29T02:00:00Z"},
	} {
		got, ok := tc.s.Next(utc(tc.after))
		if !ok || !got.Equal(utc(tc.want)) {
			t.Errorf("%s: Next(%s) = %s %v, want %s", tc.name, tc.after, got.Format(time.RFC3339), ok, tc.want)
		}
	}
}

func TestScheduleManualHasNoSlots(t *testing.T) {
	t.Parallel()
	s := Schedule{Kind: ScheduleManual}
	now := utc("2026-03-29T01:00:00Z")
	if got, ok := s.Next(now); ok {
		t.Errorf("manual Next = %s, want none", got)
	}
	if got, ok := s.Slot("t", now); ok {
		t.Errorf("manual Slot = %s, want none", got)
	}
	if got, ok := s.NextRun("t", now); ok {
		t.Errorf("manual NextRun = %s, want none", got)
	}
}

// TestScheduleDailyOncePerLocalDay walks the clock minute by minute over
// each change of clocks and counts the slots that begin: a daily 01:30
// runs exactly once on every local day, the days of the changes too.
func TestScheduleDailyOncePerLocalDay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		zone, at, day string // day: the day of the change, local
		want          string // the change day's slot, UTC
	}{
		{"Europe/London", "01:30", "2026-03-29", "2026-03-29T01:00:00Z"},
		{"Europe/London", "01:30", "2026-10-25", "2026-10-25T00:30:00Z"},
		{"America/New_York", "01:30", "2026-03-08", "2026-03-08T06:30:00Z"},
		{"America/New_York", "01:30", "2026-11-01", "2026-11-01T05:30:00Z"},
		{"America/New_York", "02:30", "2026-03-08", "2026-03-08T07:00:00Z"},
		{"America/New_York", "02:30", "2026-11-01", "2026-11-01T07:30:00Z"},
		{"Asia/Tokyo", "01:30", "2026-03-29", "2026-03-28T16:30:00Z"},
	} {
		s := daily(tc.at, tc.zone)
		loc, err := time.LoadLocation(tc.zone)
		if err != nil {
			t.Fatal(err)
		}
		day, err := time.ParseInLocation(time.DateOnly, tc.day, loc)
		if err != nil {
			t.Fatal(err)
		}
		// From the day before to the day after, minute by minute.
		from, to := day.AddDate(0, 0, -1), day.AddDate(0, 0, 2)
		perDay := map[string][]time.Time{}
		prev, _ := s.Slot("t", from)
		for now := from; now.Before(to); now = now.Add(time.Minute) {
			slot, ok := s.Slot("t", now)
			if !ok {
				t.Fatalf("%s %s: no slot at %s", tc.zone, tc.at, now)
			}
			if slot.After(now) {
				t.Fatalf("%s %s: slot %s after now %s", tc.zone, tc.at, slot, now)
			}
			if slot.Equal(prev) {
				continue
			}
			if next, _ := s.Next(prev); !next.Equal(slot) {
				t.Errorf("%s %s: Next(%s) = %s, but the slot that began is %s", tc.zone, tc.at, prev, next, slot)
			}
			d := slot.In(loc).Format(time.DateOnly)
			perDay[d] = append(perDay[d], slot)
			prev = slot
		}
		// The day before may have had its slot before from.
		for i := range 2 {
			ds := day.AddDate(0, 0, i).Format(time.DateOnly)
			if len(perDay[ds]) != 1 {
				t.Errorf("%s %s: %d slots on %s (%v), want 1", tc.zone, tc.at, len(perDay[ds]), ds, perDay[ds])
			}
		}
		if got := perDay[tc.day]; len(got) != 1 || !got[0].Equal(utc(tc.want)) {
			t.Errorf("%s %s: the slot of %s is %v, want %s", tc.zone, tc.at, tc.day, got, tc.want)
		}
	}
}

func TestIntervalSlot(t *testing.T) {
	t.Parallel()
	s := Schedule{Kind: ScheduleInterval, EveryMinutes: 60}
	now := utc("2026-03-29T00:59:59Z")
	for range 200 {
		slot, ok := s.Slot("tenant-a", now)
		if !ok || slot.After(now) || !now.Before(slot.Add(time.Hour)) {
			t.Fatalf("Slot(%s) = %s, want within the hour before", now, slot)
		}
		next, _ := s.NextRun("tenant-a", now)
		if !next.Equal(slot.Add(time.Hour)) {
			t.Fatalf("NextRun(%s) = %s, want %s", now, next, slot.Add(time.Hour))
		}
		now = now.Add(7 * time.Minute)
	}
	// Tenants are spread over the interval.
	a, _ := s.Slot("tenant-a", now)
	b, _ := s.Slot("tenant-b", now)
	if a.Equal(b) {
		t.Errorf("two tenants share the slot %s", a)
	}
}

func TestSettingsValidateSchedule(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	s.Schedule = daily("25:00", "UTC")
	var fe *FieldError
	if err := s.Validate(); !errors.As(err, &fe) || fe.Field != "schedule.at" {
		t.Errorf("Validate = %v, want an error naming schedule.at", err)
	}
	s.Schedule = daily("02:00", "Europe/London")
	if err := s.Validate(); err != nil {
		t.Errorf("Validate = %v, want valid", err)
	}
}

// A schedule read over another is replaced whole, as the store reads
// settings over the defaults.
func TestScheduleUnmarshalReplacesWhole(t *testing.T) {
	t.Parallel()
	s := DefaultSettings()
	if err := json.Unmarshal([]byte(`{"schedule": {"kind": "manual"}}`), &s); err != nil {
		t.Fatal(err)
	}
	if s.Schedule != (Schedule{Kind: ScheduleManual}) {
		t.Errorf("read over the default: %+v, want manual only", s.Schedule)
	}
	if err := json.Unmarshal([]byte(`{"schedule": null}`), &s); err != nil || s.Schedule.Kind != ScheduleManual {
		t.Errorf("null: %+v %v, want the schedule unchanged", s.Schedule, err)
	}
	if got := DefaultSettings().Schedule; got != (Schedule{Kind: ScheduleInterval, EveryMinutes: 1440}) {
		t.Errorf("default schedule %+v, want every 1440 minutes", got)
	}
}
