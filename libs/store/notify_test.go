package store_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store"
)

func TestSyncCompletedIsWrittenOnceWhenAsked(t *testing.T) {
	t.Parallel()
	s := newSyncer(t, 5)
	s.run(people(1)...)
	if ns := s.notifications(); len(ns) != 0 {
		t.Fatalf("notifications without onCompletion = %+v", ns)
	}
	s.settings(func(set *plan.Settings) {
		set.Notify = plan.Notify{OnCompletion: true, CompletionRecipients: []string{"it@contoso.com"}}
	})
	run := s.run(people(3)...)
	ns := s.notifications()
	if len(ns) != 1 || ns[0].Kind != plan.NoticeSyncCompleted || ns[0].RunID != run.ID ||
		!slices.Equal(ns[0].Recipients, []string{"it@contoso.com"}) || !strings.Contains(ns[0].Text, "createUser 2") ||
		ns[0].Status != store.NotificationPending || ns[0].Attempts != 0 {
		t.Fatalf("notifications = %+v", ns)
	}
}

func TestNotificationClaimsAreExclusiveExpireAndAreFenced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSyncer(t, 5)
	s.settings(func(set *plan.Settings) {
		set.Notify = plan.Notify{WebhookURL: "https://hooks.contoso.com/x", OnCompletion: true, CompletionRecipients: []string{}}
	})
	s.run(people(1)...)
	now := s.at.Add(time.Minute)

	// Other tests' tenants share the database: look at this tenant's tasks only.
	mine := func(ds []store.Delivery) []store.Delivery {
		return slices.DeleteFunc(ds, func(d store.Delivery) bool { return d.TenantID != s.tenant })
	}
	first, err := s.st.ClaimNotifications(ctx, now, time.Minute, 100)
	must(t, err)
	first = mine(first)
	if len(first) != 1 || first[0].Attempts != 1 || first[0].Notify.WebhookURL != "https://hooks.contoso.com/x" || first[0].Secret != nil {
		t.Fatalf("first claim = %+v", first)
	}
	if again, err := s.st.ClaimNotifications(ctx, now, time.Minute, 100); err != nil || len(mine(again)) != 0 {
		t.Fatalf("a claimed task was claimed again within its lease: %v %v", again, err)
	}
	// The worker died: the lease runs out and another claims it.
	second, err := s.st.ClaimNotifications(ctx, now.Add(time.Minute), time.Minute, 100)
	must(t, err)
	second = mine(second)
	if len(second) != 1 || second[0].Attempts != 2 {
		t.Fatalf("claim after the lease = %+v", second)
	}
	// The first worker wakes up: its outcome is not recorded.
	if ok, err := s.st.MarkDelivered(ctx, first[0], now); err != nil || ok {
		t.Fatalf("a stale claim recorded a delivery: %v %v", ok, err)
	}
	ok, err := s.st.RetryNotification(ctx, second[0], now.Add(3*time.Minute), "HTTP 503: busy", true)
	if err != nil || !ok {
		t.Fatalf("retry: %v %v", ok, err)
	}
	ns := s.notifications()
	if ns[0].Status != store.NotificationPending || ns[0].Attempts != 2 || ns[0].LastError != "HTTP 503: busy" ||
		!ns[0].NextAttemptAt.Equal(now.Add(3*time.Minute)) {
		t.Fatalf("after a retry: %+v", ns[0])
	}
	third, err := s.st.ClaimNotifications(ctx, now.Add(3*time.Minute), time.Minute, 100)
	must(t, err)
	third = mine(third)
	if len(third) != 1 {
		t.Fatalf("due again: %+v", third)
	}
	// A claim that could not send gives its attempt back.
	if ok, err := s.st.RetryNotification(ctx, third[0], now.Add(4*time.Minute), "no webhook configured", false); err != nil || !ok {
		t.Fatalf("retry unsent: %v %v", ok, err)
	}
	if ns := s.notifications(); ns[0].Attempts != 2 {
		t.Fatalf("an unsent attempt was counted: %+v", ns[0])
	}
	fourth, err := s.st.ClaimNotifications(ctx, now.Add(4*time.Minute), time.Minute, 100)
	must(t, err)
	fourth = mine(fourth)
	if ok, err := s.st.MarkFailed(ctx, fourth[0], now.Add(4*time.Minute), "HTTP 400: bad event"); err != nil || !ok {
		t.Fatalf("fail: %v %v", ok, err)
	}
	ns = s.notifications()
	if ns[0].Status != store.NotificationFailed || ns[0].FailedAt == nil || ns[0].LastError != "HTTP 400: bad event" || ns[0].Attempts != 3 {
		t.Fatalf("failed: %+v", ns[0])
	}
	if later, err := s.st.ClaimNotifications(ctx, now.Add(time.Hour), time.Minute, 100); err != nil || len(mine(later)) != 0 {
		t.Fatalf("a failed task was claimed: %v %v", later, err)
	}
}

func TestNotifySecretIsSealedAndOnlyOpenedForDelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSyncer(t, 5)
	if tn, err := s.st.GetTenant(ctx, s.tenant); err != nil || tn.NotifySecretSet {
		t.Fatalf("a new tenant has a secret: %+v %v", tn, err)
	}
	secret, err := s.st.NewNotifySecret(ctx, s.tenant)
	must(t, err)
	if !strings.HasPrefix(secret, "whsec_") || len(secret) < 40 {
		t.Fatalf("secret %q", secret)
	}
	again, err := s.st.NewNotifySecret(ctx, s.tenant)
	must(t, err)
	if again == secret {
		t.Fatal("a new secret equals the old one")
	}
	tn, err := s.st.GetTenant(ctx, s.tenant)
	must(t, err)
	if !tn.NotifySecretSet {
		t.Fatal("NotifySecretSet is false after a secret was made")
	}
	if _, err := s.st.NewNotifySecret(ctx, "00000000-0000-4000-8000-000000000999"); err == nil {
		t.Fatal("a secret for an unknown tenant")
	}
	s.settings(func(set *plan.Settings) { set.Notify.OnCompletion = true })
	s.run(people(1)...)
	ds, err := s.st.ClaimNotifications(ctx, s.at.Add(time.Minute), time.Minute, 100)
	must(t, err)
	for _, d := range ds {
		if d.TenantID == s.tenant {
			if string(d.Secret) != again || d.SecretErr != nil {
				t.Fatalf("delivery's secret %q (%v), want the newest", d.Secret, d.SecretErr)
			}
			if strings.Contains(d.String(), again) {
				t.Fatal("a delivery prints its secret")
			}
			return
		}
	}
	t.Fatal("no delivery of the tenant was claimed")
}

func TestConcurrentClaimsNeverShareATask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSyncer(t, 50)
	s.settings(func(set *plan.Settings) { set.Notify.OnCompletion = true })
	const runs = 12
	for i := range runs {
		s.run(people(i + 1)...)
	}
	now := s.at.Add(time.Minute)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				ds, err := s.st.ClaimNotifications(ctx, now, time.Minute, 2)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != runs {
		t.Fatalf("claimed %d tasks, want %d", len(seen), runs)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("task %s claimed %d times", id, n)
		}
	}
}
