package fleet_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/services/fleet"
	"github.com/entrasync/entrasync/services/graphsim"
)

// schedClock is the scheduler's clock: the test sets the time, and counts
// how often the scheduler has read it. The scheduler reads it once, at
// the start of each pass, and makes its passes one after the other, so
// two reads after a change of time mean a whole pass saw the new time.
type schedClock struct {
	mu    sync.Mutex
	now   time.Time
	reads int
}

func (c *schedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	return c.now
}

// set moves the clock and returns how often it had been read until then.
func (c *schedClock) set(t time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	return c.reads
}

func (c *schedClock) readCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

// moveTo sets the clock to t and waits for a complete pass of the
// scheduler at t.
func (c *schedClock) moveTo(t *testing.T, at time.Time) {
	t.Helper()
	before := c.set(at)
	devenv.WaitFor(t, 30*time.Second, "a whole scheduler pass at "+at.Format(time.RFC3339), func() bool {
		return c.readCount() >= before+2
	})
}

// scheduledRun is one of the tenant's runs as the store recorded it.
type scheduledRun struct {
	ID      string
	Trigger string
	Slot    *time.Time
}

func (h *harness) runsOf(tenantID string) []scheduledRun {
	h.t.Helper()
	rows, err := h.db.Query(h.t.Context(),
		`SELECT id::text, trigger, slot FROM sync_runs WHERE tenant_id = $1 ORDER BY seq`, tenantID)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []scheduledRun
	for rows.Next() {
		var r scheduledRun
		if err := rows.Scan(&r.ID, &r.Trigger, &r.Slot); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// nextFallBack returns the Saturday and Sunday of the first change from
// British Summer Time to GMT (the last Sunday of October, 02:00 BST →
// 01:00 GMT) at least a week after now. The fleet's store stamps runs
// with the real time, and the scheduler takes a run created in or after a
// slot as covering it (an admin's sync does), so the scheduler's clock
// must run ahead of the real one, never behind it.
func nextFallBack(now time.Time) (sat, sun time.Time) {
	for y := now.Year(); ; y++ {
		d := time.Date(y, time.October, 31, 0, 0, 0, 0, time.UTC)
		for d.Weekday() != time.Sunday {
			d = d.AddDate(0, 0, -1)
		}
		if d.AddDate(0, 0, -1).After(now.AddDate(0, 0, 7)) {
			return d.AddDate(0, 0, -1), d
		}
	}
}

// A tenant synced daily at 06:00 in Europe/London through the autumn
// change of clocks: its scheduled runs come once a local day at 06:00,
// which is 05:00 UTC in summer time and 06:00 UTC after, never before;
// each one reads Entra ID through the fleet and succeeds.
func TestDailyScheduleFollowsTheClockChange(t *testing.T) {
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	sat, sun := nextFallBack(time.Now())
	mon := sun.AddDate(0, 0, 1)
	at := func(day time.Time, hh, mm, ss int) time.Time {
		return time.Date(day.Year(), day.Month(), day.Day(), hh, mm, ss, 0, time.UTC)
	}
	// 06:00 local, spelled in UTC, so the test does not lean on the zone
	// arithmetic it checks.
	satSlot, sunSlot, monSlot := at(sat, 5, 0, 0), at(sun, 6, 0, 0), at(mon, 6, 0, 0)
	for _, c := range []struct {
		slot time.Time
		zone string
	}{{satSlot, "BST"}, {sunSlot, "GMT"}, {monSlot, "GMT"}} {
		if l := c.slot.In(london); l.Hour() != 6 || l.Minute() != 0 {
			t.Fatalf("%s is %s in London, want 06:00 %s: zone data disagrees with the test", c.slot, l, c.zone)
		}
	}

	// One second before Saturday's 06:00: the daily slot is Friday's
	// 06:00 (05:00 UTC), exactly 24h - 1s ago, so the slot of the
	// tenant's first run (due at once, whatever its schedule at that
	// moment) is not before it and no second catch-up run can follow.
	clock := &schedClock{now: satSlot.Add(-time.Second)}
	h := newHarnessWith(t, 1, 1, func(cfg *fleet.Config) {
		cfg.Scheduler = true
		cfg.Scheduling.TickEvery = 20 * time.Millisecond
		cfg.Scheduling.Clock = clock.Now
		// The clock runs months ahead of the store's, which stamps runs
		// and their progress with the real time: every queued run would
		// look lost and every running one stuck.
		cfg.Scheduling.StaleQueued = 10 * 365 * 24 * time.Hour
		cfg.Scheduling.StuckAfter = 10 * 365 * 24 * time.Hour
	})
	e := h.addEntraTenant(graphsim.Spec{Seed: 5, Users: 4, Groups: 2})
	tenant := h.connect(e, 100)
	h.patchTenant(tenant, map[string]any{"schedule": map[string]any{"kind": "daily", "at": "06:00", "timeZone": "Europe/London"}})

	var view struct {
		Schedule struct {
			Kind, At, TimeZone string
		} `json:"schedule"`
		NextRunAt *time.Time `json:"nextRunAt"`
	}
	before := time.Now()
	if code := h.do("GET", "/v1/tenants/"+tenant, nil, &view); code != http.StatusOK {
		t.Fatalf("GET tenant = %d", code)
	}
	after := time.Now()
	if view.Schedule.Kind != "daily" || view.Schedule.At != "06:00" || view.Schedule.TimeZone != "Europe/London" {
		t.Fatalf("tenant's schedule is %+v", view.Schedule)
	}
	// The api reads the real clock: nextRunAt is the next 06:00 in
	// London after the real now (either side of the request).
	if view.NextRunAt == nil || !view.NextRunAt.Equal(next0600(before, london)) && !view.NextRunAt.Equal(next0600(after, london)) {
		t.Errorf("nextRunAt = %v, want %s", view.NextRunAt, next0600(before, london))
	}

	// The tenant's first run, at connection.
	waitRuns(t, h, tenant, 1)
	first := h.runsOf(tenant)[0]
	if first.Trigger != "schedule" || first.Slot == nil || first.Slot.Before(satSlot.Add(-24*time.Hour)) || first.Slot.After(satSlot) {
		t.Fatalf("first run %+v: want a scheduled run of a slot in the 24h before %s", first, satSlot)
	}
	expectScheduledSuccess(t, h, tenant, first.ID, e.Dir, "")
	clock.moveTo(t, satSlot.Add(-time.Second))
	if runs := h.runsOf(tenant); len(runs) != 1 {
		t.Fatalf("runs before Saturday's 06:00: %+v, want only the first", runs)
	}

	days := []struct {
		name string
		slot time.Time
		// quiet are times before the slot, after the previous one, at
		// which no run may start.
		quiet []time.Time
	}{
		{"Saturday (BST)", satSlot, nil},
		{"Sunday (GMT since 02:00 BST)", sunSlot, []time.Time{
			at(sat, 12, 0, 0),
			at(sun, 0, 30, 0), // 01:30 BST
			at(sun, 1, 30, 0), // 01:30 GMT: the hour repeated
			at(sun, 5, 0, 0),  // 05:00 GMT, Saturday's slot time in UTC
			at(sun, 5, 59, 59),
		}},
		{"Monday (GMT)", monSlot, []time.Time{at(mon, 5, 0, 0), at(mon, 5, 59, 59)}},
	}
	for i, d := range days {
		want := 2 + i
		for _, q := range d.quiet {
			clock.moveTo(t, q)
			if runs := h.runsOf(tenant); len(runs) != want-1 {
				t.Fatalf("%s: a run started at %s (%s in London), before 06:00: %+v", d.name, q, q.In(london), runs[len(runs)-1])
			}
		}
		// A new user, so the run has something to read from Graph.
		newUser := e.Dir.AddUser(graphsim.User{
			ID: uuid.NewString(), GivenName: "Day", Surname: fmt.Sprint(i), DisplayName: fmt.Sprintf("Day %d", i),
			Mail: fmt.Sprintf("day%d@%s", i, e.Dir.Domain()), UserType: "Member", AccountEnabled: true,
		})

		clock.moveTo(t, d.slot)
		waitRuns(t, h, tenant, want)
		run := h.runsOf(tenant)[want-1]
		if run.Trigger != "schedule" || run.Slot == nil || !run.Slot.Equal(d.slot) {
			t.Fatalf("%s: run %+v, want a scheduled run of slot %s (06:00 in London)", d.name, run, d.slot)
		}
		expectScheduledSuccess(t, h, tenant, run.ID, e.Dir, newUser.ID)

		// Later that day: still one run for it.
		clock.moveTo(t, d.slot.Add(30*time.Second))
		clock.moveTo(t, d.slot.Add(3*time.Hour))
		if runs := h.runsOf(tenant); len(runs) != want {
			t.Fatalf("%s: runs %+v, want one for the day", d.name, runs[want-1:])
		}
	}
}

// next0600 is the first 06:00 in loc after now.
func next0600(now time.Time, loc *time.Location) time.Time {
	l := now.In(loc)
	n := time.Date(l.Year(), l.Month(), l.Day(), 6, 0, 0, 0, loc)
	if !n.After(now) {
		n = time.Date(l.Year(), l.Month(), l.Day()+1, 6, 0, 0, 0, loc)
	}
	return n.UTC()
}

func waitRuns(t *testing.T, h *harness, tenant string, n int) {
	t.Helper()
	devenv.WaitFor(t, 30*time.Second, fmt.Sprintf("the tenant's run #%d", n), func() bool {
		return len(h.runsOf(tenant)) >= n
	})
	if runs := h.runsOf(tenant); len(runs) != n {
		t.Fatalf("runs %+v, want %d", runs, n)
	}
}

// expectScheduledSuccess waits for the run, which must succeed having
// asked Graph, and leave the app's users as the directory's (newUser
// among them when given).
func expectScheduledSuccess(t *testing.T, h *harness, tenant, runID string, dir *graphsim.Directory, newUser string) {
	t.Helper()
	v := h.wait(tenant, runID)
	if v.Status != "succeeded" || v.Trigger != "schedule" || v.GraphRequests == 0 {
		t.Fatalf("run %s: %s (trigger %s, %d Graph requests): %s", runID, v.Status, v.Trigger, v.GraphRequests, v.Error)
	}
	got := h.users(tenant)
	if d := diff(got, expectedUsers(dir, 100), userKey); d != "" {
		t.Fatalf("after run %s, users differ from the directory:\n%s", runID, d)
	}
	if newUser != "" && !slices.ContainsFunc(got, func(u userView) bool { return u.EntraID == newUser }) {
		t.Fatalf("run %s did not bring user %s", runID, newUser)
	}
}
