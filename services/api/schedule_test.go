package api_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
)

// scheduleAnswer is a tenant answer's schedule and what follows from it.
type scheduleAnswer struct {
	Schedule            plan.Schedule `json:"schedule"`
	NextRunAt           *time.Time    `json:"nextRunAt"`
	SyncIntervalMinutes int           `json:"syncIntervalMinutes"`
	UpdatedAt           time.Time     `json:"updatedAt"`
}

func (e *env) schedule(id string) scheduleAnswer {
	e.t.Helper()
	r := e.do("GET", "/v1/tenants/"+id, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET tenant %s: %d %s", id, r.status, r.body)
	}
	var out scheduleAnswer
	r.decode(e.t, &out)
	return out
}

// checkNextRun checks the tenant shows the run its schedule starts next,
// as seen at some moment from before to after the request.
func checkNextRun(t *testing.T, id string, before time.Time, got scheduleAnswer) {
	t.Helper()
	want, ok := got.Schedule.NextRun(id, before)
	after, _ := got.Schedule.NextRun(id, time.Now())
	switch {
	case !ok && got.NextRunAt != nil:
		t.Errorf("%+v: nextRunAt %s, want null", got.Schedule, got.NextRunAt)
	case ok && (got.NextRunAt == nil || !got.NextRunAt.Equal(want) && !got.NextRunAt.Equal(after)):
		t.Errorf("%+v: nextRunAt %v, want %s", got.Schedule, got.NextRunAt, want)
	}
}

// TestScheduleSetting: a tenant shows its schedule and the moment it next
// runs; a patch replaces the schedule whole; the interval a tenant is
// connected with is its interval schedule.
func TestScheduleSetting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := time.Now()
	ten := e.createTenant()
	got := e.schedule(ten.ID)
	if want := (plan.Schedule{Kind: plan.ScheduleInterval, EveryMinutes: 1440}); got.Schedule != want {
		t.Fatalf("a new tenant's schedule %+v, want %+v", got.Schedule, want)
	}
	checkNextRun(t, ten.ID, before, got)

	body := goodTenant()
	body["syncIntervalMinutes"] = 60
	r := e.do("POST", "/v1/tenants", body)
	var hourly scheduleAnswer
	r.decode(t, &hourly)
	if r.status != http.StatusCreated || hourly.Schedule != (plan.Schedule{Kind: plan.ScheduleInterval, EveryMinutes: 60}) ||
		hourly.SyncIntervalMinutes != 60 || hourly.NextRunAt == nil {
		t.Fatalf("created with syncIntervalMinutes 60: %d %s", r.status, r.body)
	}

	for _, step := range []struct {
		body     string
		want     plan.Schedule
		interval int
	}{
		{`{"schedule": {"kind": "daily", "at": "01:30", "timeZone": "Europe/London"}}`,
			plan.Schedule{Kind: plan.ScheduleDaily, At: "01:30", TimeZone: "Europe/London"}, 1440},
		// Replaced whole: nothing of the daily schedule is left.
		{`{"schedule": {"kind": "interval", "everyMinutes": 90}}`, plan.Schedule{Kind: plan.ScheduleInterval, EveryMinutes: 90}, 90},
		{`{"schedule": {"kind": "daily", "at": "23:59", "timeZone": "Asia/Tokyo"}}`,
			plan.Schedule{Kind: plan.ScheduleDaily, At: "23:59", TimeZone: "Asia/Tokyo"}, 1440},
		// Other settings leave the schedule as it is.
		{`{"seats": 30}`, plan.Schedule{Kind: plan.ScheduleDaily, At: "23:59", TimeZone: "Asia/Tokyo"}, 1440},
		{`{"schedule": {"kind": "manual"}}`, plan.Schedule{Kind: plan.ScheduleManual}, 1440},
	} {
		before := time.Now()
		r := e.patch(ten.ID, step.body)
		var answer scheduleAnswer
		r.decode(t, &answer)
		if r.status != http.StatusOK || answer.Schedule != step.want || answer.SyncIntervalMinutes != step.interval {
			t.Fatalf("PATCH %s: %d %s; want schedule %+v, syncIntervalMinutes %d", step.body, r.status, r.body, step.want, step.interval)
		}
		checkNextRun(t, ten.ID, before, answer)
		got := e.schedule(ten.ID)
		if got.Schedule != step.want {
			t.Fatalf("after PATCH %s: GET shows %+v", step.body, got.Schedule)
		}
		checkNextRun(t, ten.ID, before, got)
	}
	if got := e.schedule(ten.ID); got.NextRunAt != nil {
		t.Fatalf("a manual tenant's nextRunAt %s, want null", got.NextRunAt)
	}

	// A disconnected tenant runs no more.
	e.patch(ten.ID, `{"schedule": {"kind": "interval", "everyMinutes": 5}}`)
	if r := e.do("POST", "/v1/tenants/"+ten.ID+"/disconnect", nil); r.status != http.StatusOK {
		t.Fatalf("disconnect: %d %s", r.status, r.body)
	}
	if got := e.schedule(ten.ID); got.NextRunAt != nil || got.Schedule.EveryMinutes != 5 {
		t.Fatalf("a disconnected tenant: %+v, want its schedule and no nextRunAt", got)
	}
}

// TestScheduleRejectsBadValues: a bad schedule is a 400 naming the member
// at fault, and changes nothing.
func TestScheduleRejectsBadValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	if r := e.patch(ten.ID, `{"schedule": {"kind": "daily", "at": "01:30", "timeZone": "Europe/London"}}`); r.status != http.StatusOK {
		t.Fatalf("a daily schedule: %d %s", r.status, r.body)
	}
	before := e.tenant(ten.ID)
	for _, c := range []struct{ name, schedule, field, message string }{
		{"an unknown time zone", `{"kind": "daily", "at": "01:30", "timeZone": "Europe/Londn"}`, "schedule.timeZone", "IANA time zone"},
		{"the machine's zone", `{"kind": "daily", "at": "01:30", "timeZone": "Local"}`, "schedule.timeZone", "IANA time zone"},
		{"an empty time zone", `{"kind": "daily", "at": "01:30", "timeZone": ""}`, "schedule.timeZone", ""},
		{"no time zone", `{"kind": "daily", "at": "01:30"}`, "schedule.timeZone", ""},
		{"an hour 25", `{"kind": "daily", "at": "25:00", "timeZone": "Europe/London"}`, "schedule.at", "HH:MM"},
		{"no leading zero", `{"kind": "daily", "at": "1:30", "timeZone": "Europe/London"}`, "schedule.at", "HH:MM"},
		{"seconds", `{"kind": "daily", "at": "01:30:00", "timeZone": "Europe/London"}`, "schedule.at", "HH:MM"},
		{"no time", `{"kind": "daily", "timeZone": "Europe/London"}`, "schedule.at", ""},
		{"minutes on a daily schedule", `{"kind": "daily", "at": "01:30", "timeZone": "UTC", "everyMinutes": 60}`, "schedule.everyMinutes", ""},
		{"four minutes", `{"kind": "interval", "everyMinutes": 4}`, "schedule.everyMinutes", "from 5 to 44640"},
		{"more than 31 days", `{"kind": "interval", "everyMinutes": 44641}`, "schedule.everyMinutes", "from 5 to 44640"},
		{"minutes as a string", `{"kind": "interval", "everyMinutes": "60"}`, "schedule.everyMinutes", ""},
		{"no minutes", `{"kind": "interval"}`, "schedule.everyMinutes", ""},
		{"a zone on an interval", `{"kind": "interval", "everyMinutes": 60, "timeZone": "UTC"}`, "schedule.timeZone", ""},
		{"a time on manual", `{"kind": "manual", "at": "01:30"}`, "schedule.at", ""},
		{"an unknown kind", `{"kind": "hourly"}`, "schedule.kind", `"manual", "interval" or "daily"`},
		{"no kind", `{"everyMinutes": 60}`, "schedule.kind", "required"},
		{"an unknown member", `{"kind": "manual", "cron": "* * * * *"}`, "schedule.cron", "not a known field"},
		{"not an object", `"daily"`, "schedule", ""},
		{"null", `null`, "schedule", ""},
	} {
		checkRefused(t, c.name, e.patch(ten.ID, `{"schedule": `+c.schedule+`}`), c.field, c.message)
	}
	after := e.tenant(ten.ID)
	if !reflect.DeepEqual(after.Settings, before.Settings) || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("bad schedules changed the tenant: %+v, was %+v", after.Settings, before.Settings)
	}
}

// TestTriggerChoosesTheKindUnlessFullIsAsked: once a full run's plan saved
// the tenant's delta links, a trigger queues a delta run; {"kind": "full"}
// queues a full one.
func TestTriggerChoosesTheKindUnlessFullIsAsked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ten := e.createTenant()
	ctx := context.Background()
	r, err := e.st.CreateRun(ctx, store.NewRun{TenantID: ten.ID, Kind: store.KindFull, Trigger: store.TriggerManual})
	must(t, err)
	at := time.Now()
	ref := store.PageRef{TenantID: ten.ID, RunID: r.ID, RunSeq: r.Seq}
	must(t, e.st.ApplyUsersPage(ctx, ref, people(2), at))
	ref.Page = 1
	must(t, e.st.ApplyGroupsPage(ctx, ref, nil, at))
	must(t, e.st.MarkRunFetched(ctx, ref, store.Fetched{Pages: 2, UsersDeltaLink: "https://graph/u?$deltatoken=1",
		GroupsDeltaLink: "https://graph/g?$deltatoken=1"}, at))
	if done, err := e.st.TryFinalize(ctx, ten.ID, r.ID, at); err != nil || !done {
		t.Fatalf("finalize: %v %v", done, err)
	}
	kindOf := func(body any) string {
		t.Helper()
		resp := e.do("POST", "/v1/tenants/"+ten.ID+"/syncs", body)
		var accepted struct{ RunID string }
		resp.decode(t, &accepted)
		if resp.status != http.StatusAccepted {
			t.Fatalf("POST syncs: %d %s", resp.status, resp.body)
		}
		run, err := e.st.GetRun(ctx, ten.ID, accepted.RunID)
		must(t, err)
		// Out of the way of the next trigger, which would join it.
		must(t, e.st.MarkRunFailed(ctx, store.PageRef{TenantID: ten.ID, RunID: run.ID, RunSeq: run.Seq, Page: -1},
			"test", store.GraphStats{}, time.Now()))
		return run.Kind
	}
	if k := kindOf(nil); k != store.KindDelta {
		t.Errorf("a trigger after a full run with links queued a %s run, want delta", k)
	}
	if k := kindOf(map[string]string{"kind": "full"}); k != store.KindFull {
		t.Errorf(`{"kind": "full"} queued a %s run`, k)
	}
}
