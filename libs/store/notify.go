package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// Delivery states of a notification task.
const (
	// NotificationPending: not yet delivered; due again at NextAttemptAt.
	NotificationPending = "pending"
	// NotificationDelivered: the tenant's webhook took it (a 2xx answer).
	NotificationDelivered = "delivered"
	// NotificationFailed: given up for good; LastError says why.
	NotificationFailed = "failed"
)

// Delivery is a notification task a worker claimed, with what it needs to
// send it.
type Delivery struct {
	TenantID string
	// Notification is the task as claimed: Attempts is this claim's
	// number (the outcome is recorded only for the claim that has it) and
	// LastError what the previous attempt recorded.
	Notification
	// Notify is the tenant's notify setting as it is now.
	Notify plan.Notify
	// Secret is the tenant's webhook signing secret, opened; nil when none
	// was made (or it cannot be opened: SecretErr says why).
	Secret    []byte
	SecretErr error
}

// String leaves the secret out, so that a delivery logged by mistake does
// not leak it.
func (d Delivery) String() string {
	return fmt.Sprintf("{Tenant:%s ID:%s Kind:%s Attempt:%d Secret:[redacted]}", d.TenantID, d.ID, d.Kind, d.Attempts)
}

// GoString hides the secret from %#v too.
func (d Delivery) GoString() string { return "store.Delivery" + d.String() }

// ClaimNotifications claims up to limit pending notification tasks that are
// due at now, oldest due first. Each claim counts as an attempt and holds
// the task until now+lease: other workers skip it (the claim runs under
// FOR UPDATE SKIP LOCKED), and if this worker dies the task is due again
// when the lease ends. The worker records how each went before then.
func (s *Store) ClaimNotifications(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Delivery, error) {
	if lease <= 0 {
		return nil, fmt.Errorf("store: claim notifications: %w", invalidf("lease is %v, must be positive", lease))
	}
	rows, err := s.q.ClaimNotifications(ctx, dbsqlc.ClaimNotificationsParams{Now: now, LeaseUntil: now.Add(lease),
		MaxRows: int32(clampLimit(limit))})
	if err != nil {
		return nil, translate(err, "claim notifications")
	}
	out := make([]Delivery, 0, len(rows))
	for _, r := range rows {
		d := Delivery{TenantID: r.TenantID, Notification: Notification{ID: r.ID, Kind: r.Kind, RunID: r.RunID,
			Recipients: r.Recipients, Subject: r.Subject, Text: r.Body, CreatedAt: r.CreatedAt, Status: NotificationPending,
			Attempts: int(r.Attempts), LastError: r.LastError}}
		set, err := parseSettings(r.Settings, 0, 0)
		if err != nil {
			return nil, fmt.Errorf("store: claim notifications: tenant %s: %w", r.TenantID, err)
		}
		d.Notify = set.Notify
		if r.NotifySecretSealed != nil {
			d.Secret, d.SecretErr = s.box.Open(r.NotifySecretSealed, notifySecretAAD(r.TenantID))
		}
		out = append(out, d)
	}
	return out, nil
}

// MarkDelivered records that the receiver took a task. It reports false
// when the claim was no longer this attempt's (its lease ran out and
// another worker claimed it) or the task is no longer pending.
func (s *Store) MarkDelivered(ctx context.Context, d Delivery, at time.Time) (bool, error) {
	n, err := s.q.RecordDelivered(ctx, dbsqlc.RecordDeliveredParams{TenantID: d.TenantID, ID: d.ID,
		Attempts: int32(d.Attempts), At: at})
	return n > 0, translate(err, "record delivery of "+d.ID)
}

// MarkFailed gives a task up for good, with the reason people will read.
func (s *Store) MarkFailed(ctx context.Context, d Delivery, at time.Time, reason string) (bool, error) {
	n, err := s.q.RecordFailed(ctx, dbsqlc.RecordFailedParams{TenantID: d.TenantID, ID: d.ID,
		Attempts: int32(d.Attempts), At: at, LastError: reason})
	return n > 0, translate(err, "record failure of "+d.ID)
}

// RetryNotification makes a task due again at next, with the reason the
// attempt did not deliver it. sent says whether the attempt reached out to
// the receiver; one that did not (no webhook configured) gives its attempt
// back.
func (s *Store) RetryNotification(ctx context.Context, d Delivery, next time.Time, reason string, sent bool) (bool, error) {
	after := d.Attempts
	if !sent {
		after--
	}
	n, err := s.q.RecordRetry(ctx, dbsqlc.RecordRetryParams{TenantID: d.TenantID, ID: d.ID,
		Attempts: int32(d.Attempts), AttemptsAfter: int32(after), NextAttemptAt: next, LastError: reason})
	return n > 0, translate(err, "record retry of "+d.ID)
}

// NewNotifySecret makes a new webhook signing secret for a tenant, stores
// it sealed in place of the old one and returns it: the only time it is
// ever returned. Events are signed with it from the next delivery on.
func (s *Store) NewNotifySecret(ctx context.Context, tenantID string) (string, error) {
	id, ok := canonicalID(tenantID)
	if !ok {
		return "", fmt.Errorf("store: notify secret of %q: %w", tenantID, ErrNotFound)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("store: notify secret of %s: %w", id, err)
	}
	secret := "whsec_" + base64.RawURLEncoding.EncodeToString(raw[:])
	sealed, err := s.box.Seal([]byte(secret), notifySecretAAD(id))
	if err != nil {
		return "", fmt.Errorf("store: notify secret of %s: %w", id, err)
	}
	n, err := s.q.SetNotifySecret(ctx, dbsqlc.SetNotifySecretParams{ID: id, NotifySecretSealed: sealed, Now: s.clock()})
	if err != nil {
		return "", translate(err, "notify secret of "+id)
	}
	if n == 0 {
		return "", fmt.Errorf("store: notify secret of %s: %w", id, ErrNotFound)
	}
	return secret, nil
}

// notifySecretAAD binds a sealed signing secret to its tenant, and keeps
// it apart from the tenant's client secret (sealed with the bare id).
func notifySecretAAD(tenantID string) []byte { return []byte("notify:" + tenantID) }
