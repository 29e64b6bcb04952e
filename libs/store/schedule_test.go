package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// TestTenantSchedules: the interval a tenant is connected with becomes
// its schedule, a tenant stored before schedules existed keeps its
// interval, a bad schedule changes nothing, and the scheduler's listing
// carries every tenant's schedule.
func TestTenantSchedules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, url := storetest.NewWithURL(t)
	nt := store.NewTenant{Name: "Contoso", EntraTenantID: "e", ClientID: "c", ClientSecret: "s", SyncInterval: time.Hour}
	hourly, err := st.CreateTenant(ctx, nt)
	must(t, err)
	if want := (plan.Schedule{Kind: plan.ScheduleInterval, EveryMinutes: 60}); hourly.Settings.Schedule != want {
		t.Fatalf("schedule of a tenant connected with an hour: %+v, want %+v", hourly.Settings.Schedule, want)
	}
	if def := newTenant(t, st, 1); def.Settings.Schedule != plan.DefaultSettings().Schedule {
		t.Fatalf("schedule of a tenant connected without an interval: %+v, want a day", def.Settings.Schedule)
	}
	daily := plan.Schedule{Kind: plan.ScheduleDaily, At: "01:30", TimeZone: "Europe/London"}
	set := plan.DefaultSettings()
	set.Schedule = daily
	nt.Settings = &set
	london, err := st.CreateTenant(ctx, nt)
	must(t, err)
	if london.Settings.Schedule != daily {
		t.Fatalf("schedule given beside an interval: %+v, want %+v", london.Settings.Schedule, daily)
	}

	// Settings built without a schedule keep the tenant's.
	got, _, err := st.UpdateSettings(ctx, london.ID, plan.Settings{Seats: 3, Plan: plan.TierPremium,
		LocalEdits: plan.EditsKeep, ApplyMode: plan.ApplyAuto, DeletionGuard: plan.DeletionGuard{Percent: 10}})
	must(t, err)
	if got.Settings.Schedule != daily || got.Seats != 3 {
		t.Fatalf("after settings without a schedule: %+v seats %d, want %+v", got.Settings.Schedule, got.Seats, daily)
	}
	// A bad schedule changes nothing and names its field.
	_, _, err = st.ChangeSettings(ctx, london.ID, func(cur plan.Settings) (plan.Settings, error) {
		cur.Schedule = plan.Schedule{Kind: plan.ScheduleDaily, At: "01:30", TimeZone: "Europe/Londn"}
		return cur, nil
	})
	var fe *plan.FieldError
	if !errors.Is(err, store.ErrInvalid) || !errors.As(err, &fe) || fe.Field != "schedule.timeZone" {
		t.Fatalf("a bad time zone: %v, want ErrInvalid naming schedule.timeZone", err)
	}
	if again, err := st.GetTenant(ctx, london.ID); err != nil || again.Settings.Schedule != daily || !again.UpdatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("after a bad time zone: %+v %v, want the tenant unchanged", again.Settings.Schedule, err)
	}

	// A row stored before schedules existed.
	conn, err := pgx.Connect(ctx, url)
	must(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `UPDATE tenants SET settings = settings - 'schedule' WHERE id = $1`, hourly.ID)
	must(t, err)
	old, err := st.GetTenant(ctx, hourly.ID)
	must(t, err)
	if old.Settings.Schedule != hourly.Settings.Schedule {
		t.Fatalf("schedule of a tenant stored without one: %+v, want its interval %+v", old.Settings.Schedule, hourly.Settings.Schedule)
	}

	scheds, err := st.ListTenantSchedules(ctx)
	must(t, err)
	bySchedule := map[string]plan.Schedule{}
	for _, s := range scheds {
		bySchedule[s.TenantID] = s.Schedule
	}
	if bySchedule[hourly.ID] != hourly.Settings.Schedule || bySchedule[london.ID] != daily || len(scheds) != 3 {
		t.Fatalf("ListTenantSchedules = %+v", scheds)
	}
}

// TestScheduleChangeKeepsHeldPlansApprovable: a new schedule changes when
// runs start, not what a plan does, so it leaves the app side's version
// (which a held plan must match to be approved) alone; any other setting
// moves it.
func TestScheduleChangeKeepsHeldPlansApprovable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, url := storetest.NewWithURL(t)
	ten := newTenant(t, st, 5)
	conn, err := pgx.Connect(ctx, url)
	must(t, err)
	defer conn.Close(ctx)
	version := func() int64 {
		t.Helper()
		var v int64
		must(t, conn.QueryRow(ctx, `SELECT app_version FROM tenants WHERE id = $1`, ten.ID).Scan(&v))
		return v
	}
	change := func(f func(*plan.Settings)) store.Tenant {
		t.Helper()
		got, what, err := st.ChangeSettings(ctx, ten.ID, func(cur plan.Settings) (plan.Settings, error) {
			f(&cur)
			return cur, nil
		})
		must(t, err)
		if !what.Changed || what.ScopeChanged {
			t.Fatalf("change = %+v, want changed, scope unchanged", what)
		}
		return got
	}
	v0 := version()
	daily := plan.Schedule{Kind: plan.ScheduleDaily, At: "01:30", TimeZone: "America/New_York"}
	got := change(func(s *plan.Settings) { s.Schedule = daily })
	if v := version(); v != v0 || got.Settings.Schedule != daily {
		t.Fatalf("after a new schedule: app version %d (was %d), schedule %+v", v, v0, got.Settings.Schedule)
	}
	if again, err := st.GetTenant(ctx, ten.ID); err != nil || again.Settings.Schedule != daily {
		t.Fatalf("stored schedule %+v, %v; want %+v", again.Settings.Schedule, err, daily)
	}
	change(func(s *plan.Settings) { s.DeletionGuard.Percent = 20 })
	if v := version(); v == v0 {
		t.Fatalf("after a new deletion guard: app version %d, want it moved", v)
	}
}
