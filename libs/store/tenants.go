package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/entrasync/entrasync/libs/plan"
	"github.com/entrasync/entrasync/libs/store/internal/dbsqlc"
)

// DefaultSyncInterval is how often a tenant is synced when it does not say.
const DefaultSyncInterval = plan.DefaultSyncInterval

// NewTenant is what connecting a tenant stores.
type NewTenant struct {
	// ID is the tenant's entrasync id; empty means a new random one.
	// Callers set it to make tests reproducible.
	ID            string
	Name          string
	EntraTenantID string
	ClientID      string
	// ClientSecret is sealed before it is stored and never returned,
	// except by TenantCredentials.
	ClientSecret string
	Seats        int
	// SyncInterval is the time between scheduled runs; 0 means
	// DefaultSyncInterval. It becomes the interval schedule
	// (Settings.Schedule) unless Settings give a schedule other than the
	// default one.
	SyncInterval time.Duration
	// Settings are the tenant's sync rules; nil means
	// plan.DefaultSettings() with Seats.
	Settings *plan.Settings
}

// Tenant is a customer directory, without its secret.
type Tenant struct {
	ID            string
	Name          string
	EntraTenantID string
	ClientID      string
	Seats         int
	// SyncInterval is the time between scheduled runs the tenant was
	// connected with. Settings.Schedule decides when it is synced; a
	// tenant stored before schedules existed has the interval schedule of
	// its SyncInterval.
	SyncInterval time.Duration
	// Settings are the tenant's sync rules; Settings.Seats equals Seats.
	Settings plan.Settings
	// DisconnectedAt is when an admin disconnected the tenant: it is not
	// synced and its secret is forgotten until it is connected again.
	DisconnectedAt *time.Time
	// NotifySecretSet says a webhook signing secret was made
	// (NewNotifySecret); the secret itself is never returned again.
	NotifySecretSet bool
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Connected reports whether the tenant may be synced.
func (t Tenant) Connected() bool { return t.DisconnectedAt == nil }

// TenantSchedule is what the scheduler needs to know when a tenant is due.
type TenantSchedule struct {
	TenantID string
	// Schedule is the tenant's schedule setting.
	Schedule  plan.Schedule
	CreatedAt time.Time
	// LastScheduledSlot is the latest slot that has a run, nil when the
	// tenant never had a scheduled run.
	LastScheduledSlot *time.Time
	// LastRunCreatedAt is when the tenant's newest run that has not failed
	// (queued, going or succeeded, of any trigger) was created; nil when
	// there is none.
	LastRunCreatedAt *time.Time
}

// Credentials are what a fetcher needs to get a Graph token for a tenant.
type Credentials struct {
	EntraTenantID string
	ClientID      string
	ClientSecret  string
}

// String hides the secret, so that credentials printed or logged by
// mistake do not leak it.
func (c Credentials) String() string {
	return fmt.Sprintf("{EntraTenantID:%s ClientID:%s ClientSecret:[redacted]}", c.EntraTenantID, c.ClientID)
}

// GoString hides the secret from %#v too.
func (c Credentials) GoString() string { return "store.Credentials" + c.String() }

// CreateTenant stores a new tenant with its client secret sealed.
func (s *Store) CreateTenant(ctx context.Context, nt NewTenant) (Tenant, error) {
	if nt.ID == "" {
		nt.ID = newID()
	} else if id, ok := canonicalID(nt.ID); ok {
		nt.ID = id
	}
	if err := nt.validate(); err != nil {
		return Tenant{}, fmt.Errorf("store: create tenant: %w", err)
	}
	if nt.SyncInterval == 0 {
		nt.SyncInterval = DefaultSyncInterval
	}
	settings := plan.DefaultSettings()
	if nt.Settings != nil {
		settings = *nt.Settings
	}
	settings.Seats = nt.Seats
	if sch := settings.Schedule; sch.IsZero() || sch == plan.DefaultSettings().Schedule {
		settings.Schedule = plan.IntervalSchedule(nt.SyncInterval)
	}
	settings.Normalize()
	if err := settings.Validate(); err != nil {
		return Tenant{}, fmt.Errorf("store: create tenant: %w: %w", ErrInvalid, err)
	}
	rawSettings, err := settingsJSON(settings)
	if err != nil {
		return Tenant{}, fmt.Errorf("store: create tenant: %w", err)
	}
	sealed, err := s.box.Seal([]byte(nt.ClientSecret), []byte(nt.ID))
	if err != nil {
		return Tenant{}, fmt.Errorf("store: create tenant: %w", err)
	}
	t := Tenant{ID: nt.ID, Name: nt.Name, EntraTenantID: nt.EntraTenantID, ClientID: nt.ClientID,
		Seats: nt.Seats, SyncInterval: nt.SyncInterval, Settings: settings}
	row, err := s.q.CreateTenant(ctx, dbsqlc.CreateTenantParams{ID: nt.ID, Name: nt.Name, EntraTenantID: nt.EntraTenantID,
		ClientID: nt.ClientID, ClientSecretSealed: sealed, Seats: int32(nt.Seats), SyncInterval: nt.SyncInterval,
		Now: s.clock(), Settings: rawSettings})
	if err != nil {
		return Tenant{}, translate(err, "create tenant")
	}
	t.CreatedAt, t.UpdatedAt = row.CreatedAt, row.UpdatedAt
	return t, nil
}

func (nt NewTenant) validate() error {
	var errs []error
	if !isUUID(nt.ID) {
		errs = append(errs, invalidf("id %q is not a UUID", nt.ID))
	}
	for _, f := range []struct{ name, v string }{
		{"name", nt.Name}, {"entra tenant id", nt.EntraTenantID}, {"client id", nt.ClientID}, {"client secret", nt.ClientSecret},
	} {
		if strings.TrimSpace(f.v) == "" {
			errs = append(errs, invalidf("%s is empty", f.name))
		}
	}
	if nt.Seats < 0 {
		errs = append(errs, invalidf("seats is %d, must not be negative", nt.Seats))
	}
	if nt.SyncInterval < 0 {
		errs = append(errs, invalidf("sync interval is %v, must not be negative", nt.SyncInterval))
	}
	return errors.Join(errs...)
}

// GetTenant returns a tenant, or ErrNotFound.
func (s *Store) GetTenant(ctx context.Context, id string) (Tenant, error) {
	if !isUUID(id) {
		return Tenant{}, fmt.Errorf("store: get tenant %q: %w", id, ErrNotFound)
	}
	t, err := tenantFrom(s.q.GetTenant(ctx, id))
	if err != nil {
		return Tenant{}, translate(err, "get tenant "+id)
	}
	return t, nil
}

// tenantFrom is a stored tenant as the store hands it out, without its
// secret; it passes on the error of the query that read the row.
func tenantFrom(m dbsqlc.Tenant, err error) (Tenant, error) {
	if err != nil {
		return Tenant{}, err
	}
	t := Tenant{ID: m.ID, Name: m.Name, EntraTenantID: m.EntraTenantID, ClientID: m.ClientID, Seats: int(m.Seats),
		SyncInterval: m.SyncInterval, DisconnectedAt: m.DisconnectedAt, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
	t.NotifySecretSet = m.NotifySecretSealed != nil
	t.Settings, err = parseSettings(m.Settings, t.Seats, t.SyncInterval)
	return t, err
}

// settingsJSON is what the settings column holds: the settings without
// seats, which have a column of their own.
func settingsJSON(s plan.Settings) ([]byte, error) {
	s.Seats = 0
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "seats")
	return json.Marshal(m)
}

// parseSettings reads the settings column over the defaults, so that a
// setting added after a tenant was stored reads as its default. A tenant
// stored before schedules existed is synced every interval (its
// sync_interval column), as it was then.
func parseSettings(raw []byte, seats int, interval time.Duration) (plan.Settings, error) {
	s := plan.DefaultSettings()
	if interval > 0 {
		s.Schedule = plan.IntervalSchedule(interval)
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &s); err != nil {
			return plan.Settings{}, fmt.Errorf("settings: %w", err)
		}
	}
	s.Seats = seats
	s.Normalize()
	return s, nil
}

// TenantSettings returns a tenant's sync rules.
func (s *Store) TenantSettings(ctx context.Context, tenantID string) (plan.Settings, error) {
	t, err := s.GetTenant(ctx, tenantID)
	if err != nil {
		return plan.Settings{}, err
	}
	return t.Settings, nil
}

// SettingsChange is what UpdateSettings did.
type SettingsChange struct {
	// Changed is false when the new settings equal the stored ones.
	Changed bool
	// ScopeChanged says the users in scope may differ now: the scope or
	// the plan tier changed. A sync is due.
	ScopeChanged bool
}

// UpdateSettings replaces a tenant's sync rules with s (validated here
// too: *plan.FieldError wrapped in ErrInvalid); a zero s.Schedule keeps
// the tenant's schedule. A change bumps the app side's version, so that
// plans held before it can no longer be approved.
func (s *Store) UpdateSettings(ctx context.Context, tenantID string, set plan.Settings) (Tenant, SettingsChange, error) {
	return s.ChangeSettings(ctx, tenantID, func(plan.Settings) (plan.Settings, error) { return set, nil })
}

// ChangeSettings is UpdateSettings with the new settings computed from the
// stored ones by change, under the tenant's row lock: two changes at the
// same moment (two admins patching different settings) both land, one
// after the other. change may run more than once (a transaction that
// loses a lock race runs again); an error it returns is returned as it
// is, and nothing changes.
func (s *Store) ChangeSettings(ctx context.Context, tenantID string, change func(plan.Settings) (plan.Settings, error)) (Tenant, SettingsChange, error) {
	if !isUUID(tenantID) {
		return Tenant{}, SettingsChange{}, fmt.Errorf("store: update settings of %q: %w", tenantID, ErrNotFound)
	}
	var t Tenant
	var what SettingsChange
	var changeErr error
	err := s.inTx(ctx, "update settings of "+tenantID, func(q *dbsqlc.Queries) error {
		old, err := tenantFrom(q.GetTenantForUpdate(ctx, tenantID))
		if err != nil {
			return err
		}
		set, err := change(old.Settings)
		if err != nil {
			changeErr = err
			return err
		}
		if set.Schedule.IsZero() {
			set.Schedule = old.Settings.Schedule // settings built without one
		}
		set.Normalize()
		if err := set.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		raw, err := settingsJSON(set)
		if err != nil {
			return err
		}
		what = SettingsChange{
			Changed:      !reflect.DeepEqual(old.Settings, set),
			ScopeChanged: !reflect.DeepEqual(old.Settings.Scope, set.Scope) || old.Settings.Plan != set.Plan,
		}
		if !what.Changed {
			t = old
			return nil
		}
		now := s.clock()
		// A new schedule alone leaves plans held before it approvable.
		rules := old.Settings
		rules.Schedule = set.Schedule
		if reflect.DeepEqual(rules, set) {
			t, err = tenantFrom(q.UpdateScheduleSetting(ctx, dbsqlc.UpdateScheduleSettingParams{ID: tenantID,
				Settings: raw, Now: now}))
		} else {
			t, err = tenantFrom(q.UpdateSettings(ctx, dbsqlc.UpdateSettingsParams{ID: tenantID, Seats: int32(set.Seats),
				Settings: raw, Now: now, Change: "the tenant's settings changed"}))
		}
		if err != nil {
			return err
		}
		before, after, err := settingsDiff(old.Settings, set)
		if err != nil {
			return err
		}
		return recordActivity(ctx, q, tenantID, ActivityUpdateSettings, tenantID, before, after, "", now)
	})
	if changeErr != nil {
		return Tenant{}, SettingsChange{}, changeErr
	}
	if err != nil {
		return Tenant{}, SettingsChange{}, err
	}
	return t, what, nil
}

// ErrDisconnected means the tenant was disconnected by an admin: it is not
// synced until it is connected again. It is also an ErrConflict.
var ErrDisconnected = fmt.Errorf("%w: tenant is disconnected", ErrConflict)

// DisconnectTenant stops all syncing of a tenant and forgets its client
// secret; its users, groups and runs stay. Runs that are waiting for a
// fetcher end failed. Disconnecting a disconnected tenant changes nothing.
func (s *Store) DisconnectTenant(ctx context.Context, tenantID string) (Tenant, error) {
	if !isUUID(tenantID) {
		return Tenant{}, fmt.Errorf("store: disconnect %q: %w", tenantID, ErrNotFound)
	}
	var t Tenant
	err := s.inTx(ctx, "disconnect "+tenantID, func(q *dbsqlc.Queries) error {
		now := s.clock()
		var err error
		if t, err = tenantFrom(q.DisconnectTenant(ctx, dbsqlc.DisconnectTenantParams{ID: tenantID, Now: now})); err != nil {
			return err
		}
		if err := recordActivity(ctx, q, tenantID, ActivityDisconnectTenant, tenantID, nil, nil, "", now); err != nil {
			return err
		}
		return q.FailQueuedRuns(ctx, dbsqlc.FailQueuedRunsParams{TenantID: tenantID,
			Error: "the tenant was disconnected before the run started", Now: now})
	})
	return t, err
}

// ConnectTenant connects a tenant again, or changes the credentials of a
// connected one. Its next sync uses them.
func (s *Store) ConnectTenant(ctx context.Context, tenantID string, c Credentials) (Tenant, error) {
	id, ok := canonicalID(tenantID)
	if !ok {
		return Tenant{}, fmt.Errorf("store: connect %q: %w", tenantID, ErrNotFound)
	}
	for _, f := range []struct{ name, v string }{
		{"entra tenant id", c.EntraTenantID}, {"client id", c.ClientID}, {"client secret", c.ClientSecret},
	} {
		if strings.TrimSpace(f.v) == "" {
			return Tenant{}, fmt.Errorf("store: connect %s: %w", id, invalidf("%s is empty", f.name))
		}
	}
	sealed, err := s.box.Seal([]byte(c.ClientSecret), []byte(id))
	if err != nil {
		return Tenant{}, fmt.Errorf("store: connect %s: %w", id, err)
	}
	var t Tenant
	err = s.inTx(ctx, "connect "+id, func(q *dbsqlc.Queries) error {
		now := s.clock()
		var err error
		if t, err = tenantFrom(q.ConnectTenant(ctx, dbsqlc.ConnectTenantParams{ID: id, EntraTenantID: c.EntraTenantID,
			ClientID: c.ClientID, ClientSecretSealed: sealed, Now: now})); err != nil {
			return err
		}
		// The app registration, never its secret.
		return recordActivity(ctx, q, id, ActivityConnectTenant, id, nil,
			map[string]string{"entraTenantId": c.EntraTenantID, "clientId": c.ClientID}, "", now)
	})
	if err != nil {
		return Tenant{}, err
	}
	return t, nil
}

// SetTenantSeats changes the size of a tenant's seat pool. The next run
// hands out or takes back seats to match.
func (s *Store) SetTenantSeats(ctx context.Context, tenantID string, seats int) error {
	if !isUUID(tenantID) {
		return fmt.Errorf("store: set seats of %q: %w", tenantID, ErrNotFound)
	}
	if seats < 0 {
		return fmt.Errorf("store: set seats of %s: %w", tenantID, invalidf("seats is %d, must not be negative", seats))
	}
	if seats > math.MaxInt32 {
		// The column is an integer.
		return fmt.Errorf("store: set seats of %s: %w", tenantID, invalidf("seats is %d, more than %d", seats, math.MaxInt32))
	}
	n, err := s.q.SetTenantSeats(ctx, dbsqlc.SetTenantSeatsParams{ID: tenantID, Seats: int32(seats), Now: s.clock()})
	if err != nil {
		return translate(err, "set seats of "+tenantID)
	}
	if n == 0 {
		return fmt.Errorf("store: set seats of %s: %w", tenantID, ErrNotFound)
	}
	return nil
}

// TenantCredentials returns a tenant's Graph credentials with the secret
// opened. It is the only method that ever returns the secret.
func (s *Store) TenantCredentials(ctx context.Context, tenantID string) (Credentials, error) {
	id, ok := canonicalID(tenantID)
	if !ok {
		return Credentials{}, fmt.Errorf("store: credentials of %q: %w", tenantID, ErrNotFound)
	}
	tenantID = id
	row, err := s.q.TenantCredentials(ctx, tenantID)
	if err != nil {
		return Credentials{}, translate(err, "credentials of "+tenantID)
	}
	if row.ClientSecretSealed == nil {
		return Credentials{}, fmt.Errorf("store: credentials of %s: %w", tenantID, ErrDisconnected)
	}
	c := Credentials{EntraTenantID: row.EntraTenantID, ClientID: row.ClientID}
	plain, err := s.box.Open(row.ClientSecretSealed, []byte(tenantID))
	if err != nil {
		return Credentials{}, fmt.Errorf("store: credentials of %s: %w", tenantID, err)
	}
	c.ClientSecret = string(plain)
	return c, nil
}

// ListTenantSchedules returns every tenant's schedule, for the scheduler.
func (s *Store) ListTenantSchedules(ctx context.Context) ([]TenantSchedule, error) {
	rows, err := s.q.ListTenantSchedules(ctx)
	if err != nil {
		return nil, translate(err, "list tenant schedules")
	}
	var out []TenantSchedule
	for _, r := range rows {
		set, err := parseSettings(r.Settings, 0, r.SyncInterval)
		if err != nil {
			return nil, fmt.Errorf("store: list tenant schedules: tenant %s: %w", r.ID, err)
		}
		out = append(out, TenantSchedule{TenantID: r.ID, Schedule: set.Schedule, CreatedAt: r.CreatedAt,
			LastScheduledSlot: r.LastScheduledSlot, LastRunCreatedAt: r.LastRunCreatedAt})
	}
	return out, nil
}

// tenantExists tells an empty list of an existing tenant from an unknown
// tenant.
func (s *Store) tenantExists(ctx context.Context, tenantID string) error {
	ok, err := s.q.TenantExists(ctx, tenantID)
	if err != nil {
		return translate(err, "find tenant "+tenantID)
	}
	if !ok {
		return fmt.Errorf("store: tenant %s: %w", tenantID, ErrNotFound)
	}
	return nil
}

// newID returns a fresh id. Version 7 UUIDs grow with time, which keeps
// index inserts local.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

// isUUID reports whether s is a UUID in its 36-character form.
func isUUID(s string) bool {
	_, ok := canonicalID(s)
	return ok
}

// canonicalID returns the lower-case form of a UUID, the form Postgres
// prints and the one secrets are bound to.
func canonicalID(s string) (string, bool) {
	u, ok := parseID(s)
	if !ok {
		return "", false
	}
	return u.String(), true
}

// parseID reads a UUID in its 36-character form (8-4-4-4-12 hex digits,
// either case); uuid.Parse alone also takes other forms, which Postgres
// refuses.
func parseID(s string) (uuid.UUID, bool) {
	if len(s) != 36 {
		return uuid.UUID{}, false
	}
	u, err := uuid.Parse(s)
	return u, err == nil
}
