package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/libs/store/storetest"
)

// syncer runs whole syncs of a tenant straight through the store: one
// users page, one groups page, RunFetched, finalization.
type syncer struct {
	t      *testing.T
	st     *store.Store
	tenant string
	at     time.Time
}

func newSyncer(t *testing.T, seats int) *syncer {
	st := storetest.New(t)
	return &syncer{t: t, st: st, tenant: newTenant(t, st, seats).ID, at: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (s *syncer) run(users ...store.DirUser) store.Run {
	s.t.Helper()
	ctx := context.Background()
	r, err := s.st.CreateRun(ctx, store.NewRun{TenantID: s.tenant, Kind: store.KindFull, Trigger: store.TriggerManual})
	must(s.t, err)
	ref := store.PageRef{TenantID: s.tenant, RunID: r.ID, RunSeq: r.Seq}
	must(s.t, s.st.ApplyUsersPage(ctx, ref, users, s.at))
	ref.Page = 1
	must(s.t, s.st.ApplyGroupsPage(ctx, ref, nil, s.at))
	must(s.t, s.st.MarkRunFetched(ctx, ref, store.Fetched{Pages: 2}, s.at))
	done, err := s.st.TryFinalize(ctx, s.tenant, r.ID, s.at)
	if err != nil || !done {
		s.t.Fatalf("finalize run %d: %v %v", r.Seq, done, err)
	}
	run, err := s.st.GetRun(ctx, s.tenant, r.ID)
	must(s.t, err)
	return run
}

func (s *syncer) settings(change func(*plan.Settings)) {
	s.t.Helper()
	set, err := s.st.TenantSettings(context.Background(), s.tenant)
	must(s.t, err)
	change(&set)
	_, _, err = s.st.UpdateSettings(context.Background(), s.tenant, set)
	must(s.t, err)
}

func (s *syncer) user(id string) store.AppUser {
	s.t.Helper()
	u, err := s.st.GetAppUser(context.Background(), s.tenant, id)
	must(s.t, err)
	return u
}

func (s *syncer) notifications() []store.Notification {
	s.t.Helper()
	ns, _, err := s.st.ListNotifications(context.Background(), s.tenant, nil, 1000)
	must(s.t, err)
	return ns
}

func people(n int) []store.DirUser {
	out := make([]store.DirUser, n)
	for i := range out {
		out[i] = store.DirUser{ID: fmt.Sprintf("00000001-0000-4000-8000-%012d", i+1), DisplayName: fmt.Sprintf("User %d", i+1),
			Mail: fmt.Sprintf("user%d@contoso.com", i+1), UserPrincipalName: fmt.Sprintf("user%d@contoso.com", i+1),
			UserType: "Member", AccountEnabled: true}
	}
	return out
}

func TestApprovalIsRefusedWhenThePlanIsStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSyncer(t, 100)
	everyone := people(20)
	s.run(everyone...)

	// Half leave: held. An admin edit since makes the plan stale.
	held := s.run(everyone[:10]...)
	if held.Status != store.StatusAwaitingApproval || held.HeldReason != "deletion_guard" {
		t.Fatalf("run = %s %q", held.Status, held.HeldReason)
	}
	name := "Renamed"
	_, err := s.st.UpdateAppUser(ctx, s.tenant, everyone[0].ID, store.UserPatch{DisplayName: &name})
	must(t, err)
	if _, err := s.st.ApprovePlan(ctx, s.tenant, held.ID); !errors.Is(err, store.ErrStalePlan) ||
		!strings.Contains(err.Error(), "was edited through the API") {
		t.Fatalf("approve after an edit: %v", err)
	}

	// A later run replaces the plan too.
	later := s.run(everyone[:10]...)
	if later.Status != store.StatusAwaitingApproval {
		t.Fatalf("later run = %s", later.Status)
	}
	if _, err := s.st.ApprovePlan(ctx, s.tenant, held.ID); !errors.Is(err, store.ErrStalePlan) ||
		!strings.Contains(err.Error(), fmt.Sprintf("run %d was planned after this one", later.Seq)) {
		t.Fatalf("approve after a later run: %v", err)
	}
	// Rejecting changes nothing; a rejected run cannot be approved.
	if r, err := s.st.RejectPlan(ctx, s.tenant, later.ID); err != nil || r.Status != store.StatusRejected {
		t.Fatalf("reject: %+v %v", r, err)
	}
	if _, err := s.st.ApprovePlan(ctx, s.tenant, later.ID); !errors.Is(err, store.ErrNotHeld) {
		t.Fatalf("approve a rejected run: %v", err)
	}
	if users, _, _ := s.st.ListAppUsers(ctx, s.tenant, "", 1000); len(users) != 20 {
		t.Fatalf("%d users after rejecting, want 20", len(users))
	}
}

func TestAdminEditsUnderTheTenantsLocalEditPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSyncer(t, 100)
	u := people(1)[0]
	s.run(u)

	name, email := "Ada (Finance)", "ada@finance.contoso.com"
	got, err := s.st.UpdateAppUser(ctx, s.tenant, u.ID, store.UserPatch{DisplayName: &name, Email: &email})
	must(t, err)
	if !got.Edited || got.DisplayName != name || got.Email != email {
		t.Fatalf("after the edit: %+v", got)
	}
	s.run(u)
	if got := s.user(u.ID); got.DisplayName != name || got.Email != email {
		t.Fatalf("keep: the sync reverted the edit: %+v", got)
	}
	s.settings(func(set *plan.Settings) { set.LocalEdits = plan.EditsOverwrite })
	run := s.run(u)
	if got := s.user(u.ID); got.DisplayName != u.DisplayName || got.Email != u.Mail || got.Edited {
		t.Fatalf("overwrite: the edit survived: %+v", got)
	}
	items, _, err := s.st.ListPlanItems(ctx, s.tenant, run.ID, -1, 10)
	must(t, err)
	if len(items) != 1 || items[0].Action != "updateUser" || !strings.Contains(items[0].Reason, "overwritten by Entra ID") {
		t.Fatalf("plan = %+v", items)
	}
	if _, _, err := s.st.ListPlanItems(ctx, s.tenant, "01a22fab-0000-7000-8000-000000000000", -1, 10); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("plan of an unknown run: %v", err)
	}
	if items, _, err := s.st.ListPlanItems(ctx, s.tenant, run.ID, items[0].Seq, 10); err != nil || len(items) != 0 {
		t.Fatalf("past the plan's end: %v %v", items, err)
	}
	// Cursors past any item seq (an int32) list nothing; below -1, all.
	for after, want := range map[int]int{math.MaxInt32 + 1: 0, math.MaxInt: 0, -5: 1} {
		items, next, err := s.st.ListPlanItems(ctx, s.tenant, run.ID, after, 10)
		if err != nil || len(items) != want || next != -1 {
			t.Errorf("plan after %d = %+v, %d, %v; want %d items", after, items, next, err, want)
		}
	}
}

func TestLicenseDisabledByAnAdminSurvivesSyncsAndComesBackOnlyWithASeat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSyncer(t, 1)
	us := people(2)
	s.run(us...)
	if s.user(us[0].ID).License != store.LicenseAssigned || s.user(us[1].ID).License != store.LicenseNone {
		t.Fatal("the first user by id did not get the one seat")
	}
	off := store.LicenseDisabled
	_, err := s.st.UpdateAppUser(ctx, s.tenant, us[0].ID, store.UserPatch{License: &off})
	must(t, err)
	for range 2 {
		s.run(us...)
		if got := s.user(us[0].ID); got.License != store.LicenseDisabled || got.LicenseDisabledAt == nil {
			t.Fatalf("a sync gave the disabled license back: %+v", got)
		}
	}
	if s.user(us[1].ID).License != store.LicenseAssigned {
		t.Fatal("the freed seat did not go to the waiting user")
	}
	on := store.LicenseAssigned
	if _, err := s.st.UpdateAppUser(ctx, s.tenant, us[0].ID, store.UserPatch{License: &on}); !errors.Is(err, store.ErrNoSeat) ||
		!strings.Contains(err.Error(), "no free seat (1 of 1 used)") {
		t.Fatalf("license back with a full pool: %v", err)
	}
	s.settings(func(set *plan.Settings) { set.Seats = 2 })
	got, err := s.st.UpdateAppUser(ctx, s.tenant, us[0].ID, store.UserPatch{License: &on})
	must(t, err)
	if got.License != store.LicenseAssigned || got.LicenseDisabledAt != nil {
		t.Fatalf("license back: %+v", got)
	}
	bad := []string{"Owner"}
	if _, err := s.st.UpdateAppUser(ctx, s.tenant, us[0].ID, store.UserPatch{Roles: &bad}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("unknown role: %v", err)
	}
}

func TestSeatShortageTellsAdminsOncePerEpisode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSyncer(t, 2)
	us := people(4)
	s.run(us[:2]...)
	admin := []string{plan.RoleAdministrator}
	manager := []string{plan.RoleLicenseManager}
	_, err := s.st.UpdateAppUser(ctx, s.tenant, us[0].ID, store.UserPatch{Roles: &admin})
	must(t, err)
	_, err = s.st.UpdateAppUser(ctx, s.tenant, us[1].ID, store.UserPatch{Roles: &manager})
	must(t, err)

	for range 3 {
		if run := s.run(us...); run.Counts["unlicensed"] != 2 {
			t.Fatalf("unlicensed = %d", run.Counts["unlicensed"])
		}
	}
	ns := s.notifications()
	if len(ns) != 1 || ns[0].Kind != "seats_exhausted" ||
		strings.Join(ns[0].Recipients, ",") != us[0].Mail+","+us[1].Mail {
		t.Fatalf("notifications = %+v", ns)
	}
	s.settings(func(set *plan.Settings) { set.Seats = 4 })
	s.run(us...)
	s.settings(func(set *plan.Settings) { set.Seats = 3 })
	s.run(us...)
	if ns := s.notifications(); len(ns) != 2 {
		t.Fatalf("a new shortage after seats sufficed made %d tasks, want 2", len(ns))
	}
}

func TestFailedRunTellsAdmins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSyncer(t, 2)
	s.run(people(1)...)
	r, err := s.st.CreateRun(ctx, store.NewRun{TenantID: s.tenant, Kind: store.KindFull, Trigger: store.TriggerManual})
	must(t, err)
	ref := store.PageRef{TenantID: s.tenant, RunID: r.ID, RunSeq: r.Seq}
	must(t, s.st.MarkRunFailed(ctx, ref, "token authority rejected the credentials", store.GraphStats{}, s.at))
	must(t, s.st.MarkRunFailed(ctx, ref, "token authority rejected the credentials", store.GraphStats{}, s.at))
	ns := s.notifications()
	if len(ns) != 1 || ns[0].Kind != "sync_failed" || ns[0].RunID != r.ID || !strings.Contains(ns[0].Text, "rejected the credentials") {
		t.Fatalf("notifications = %+v", ns)
	}
}

func TestConcurrentSettingsChangesAllLand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSyncer(t, 0)
	const n = 12
	errs := make(chan error, n)
	for range n {
		go func() {
			_, _, err := s.st.ChangeSettings(ctx, s.tenant, func(cur plan.Settings) (plan.Settings, error) {
				cur.Seats++
				return cur, nil
			})
			errs <- err
		}()
	}
	for range n {
		must(t, <-errs)
	}
	set, err := s.st.TenantSettings(ctx, s.tenant)
	must(t, err)
	if set.Seats != n {
		t.Fatalf("seats = %d after %d concurrent increments", set.Seats, n)
	}
	bad := errors.New("no")
	if _, _, err := s.st.ChangeSettings(ctx, s.tenant, func(plan.Settings) (plan.Settings, error) { return plan.Settings{}, bad }); err != bad {
		t.Fatalf("change's error = %v", err)
	}
}

func TestRunStatsCountEndedRunsAndLastSuccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSyncer(t, 5)
	everyone := people(20)
	s.run(everyone...)
	held := s.run(everyone[:2]...)
	if _, err := s.st.RejectPlan(ctx, s.tenant, held.ID); err != nil {
		t.Fatal(err)
	}
	stats, err := s.st.RunStats(ctx)
	must(t, err)
	if stats.Ended[store.StatusSucceeded] != 1 || stats.Ended[store.StatusRejected] != 1 {
		t.Fatalf("ended = %v", stats.Ended)
	}
	if at, ok := stats.LastSuccess[s.tenant]; !ok || !at.Equal(s.at) {
		t.Fatalf("last success = %v, want %v", stats.LastSuccess, s.at)
	}
}

// TestSeatsGoBackFromDisabledAccountsAndShrinkingPools: a seat is freed
// when its user's account is disabled in Entra ID (the plan says
// revokeLicense and disableUser; the user ends disabled, no seat) and
// goes to the user waiting for one; a smaller pool takes back the most
// recent grant (revokeLicense alone); an account enabled again is
// enabled and waits for a seat.
func TestSeatsGoBackFromDisabledAccountsAndShrinkingPools(t *testing.T) {
	t.Parallel()
	s := newSyncer(t, 2)
	us := people(3)
	s.run(us...)
	for i, want := range []string{store.LicenseAssigned, store.LicenseAssigned, store.LicenseNone} {
		if got := s.user(us[i].ID).License; got != want {
			t.Fatalf("first run: user %d has license %q, want %q", i+1, got, want)
		}
	}

	s.at = s.at.Add(time.Hour)
	us[0].AccountEnabled = false
	r := s.run(us...)
	items, _, err := s.st.ListPlanItems(context.Background(), s.tenant, r.ID, -1, 100)
	must(t, err)
	var actions []string
	for _, it := range items {
		if it.EntraID == us[0].ID {
			actions = append(actions, it.Action)
		}
	}
	if strings.Join(actions, " ") != "revokeLicense disableUser" {
		t.Errorf("plan for the disabled user: %v, want revokeLicense disableUser", actions)
	}
	if got := s.user(us[0].ID); got.Enabled || got.License != store.LicenseDisabled {
		t.Errorf("disabled user: enabled %v, license %q; want false, %q", got.Enabled, got.License, store.LicenseDisabled)
	}
	if got := s.user(us[2].ID).License; got != store.LicenseAssigned {
		t.Errorf("waiting user after a seat was freed: license %q, want %q", got, store.LicenseAssigned)
	}

	s.at = s.at.Add(time.Hour)
	s.settings(func(set *plan.Settings) { set.Seats = 1 })
	s.run(us...)
	if got := s.user(us[2].ID).License; got != store.LicenseNone {
		t.Errorf("most recent grant after the pool shrank: license %q, want %q", got, store.LicenseNone)
	}
	if got := s.user(us[1].ID).License; got != store.LicenseAssigned {
		t.Errorf("older grant after the pool shrank: license %q, want %q", got, store.LicenseAssigned)
	}

	// The account enabled again: the user is, and waits for a seat (the
	// only one is taken).
	s.at = s.at.Add(time.Hour)
	us[0].AccountEnabled = true
	s.run(us...)
	if got := s.user(us[0].ID); !got.Enabled || got.License != store.LicenseNone {
		t.Errorf("account enabled again: enabled %v, license %q; want true, %q", got.Enabled, got.License, store.LicenseNone)
	}
}
