// Package config reads entrasync's settings from environment variables once,
// at start-up, into a typed struct. A bad value stops the process with a
// message that names the variable.
package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of the variables that have one.
const (
	DefaultGraphBaseURL  = "https://graph.microsoft.com/v1.0"
	DefaultAuthorityHost = "https://login.microsoftonline.com/"
	DefaultAPIAddr       = "127.0.0.1:8080"
)

// Config is every setting a service may need. Each service asks for the
// ones it cannot run without with Require.
type Config struct {
	DatabaseURL  string // DATABASE_URL: Postgres connection string
	NATSURL      string // NATS_URL: NATS server(s), comma-separated
	GraphBaseURL string // GRAPH_BASE_URL: Microsoft Graph v1.0 root
	// GraphScope is the token scope of Graph (GRAPH_SCOPE), e.g.
	// https://graph.microsoft.us/.default; "" lets libs/graph derive
	// Graph's resource from GRAPH_BASE_URL when it is one of Graph's own
	// service roots, the global service's otherwise.
	GraphScope string
	// GraphMaxRetryAfter is the longest Retry-After a fetcher waits out
	// (GRAPH_MAX_RETRY_AFTER, a Go duration such as 5m); 0 means the
	// default of libs/graph.
	GraphMaxRetryAfter time.Duration
	AuthorityHost      string // AZURE_AUTHORITY_HOST: Entra ID token authority (https)
	APIAddr            string // API_ADDR: host:port the api listens on
	AdminToken         string // ADMIN_TOKEN: bearer token of the api
	SecretKey          []byte // SECRET_KEY: 32 bytes, base64 or hex; seals tenant secrets
	LogLevel           string // LOG_LEVEL: trace|debug|info|warn|error

	// Concurrency is how many jobs or events one replica works on at once
	// (CONCURRENCY); 0 lets each service pick its default.
	Concurrency int
	// GroupConcurrency is how many Graph batches of member lists one
	// fetcher run has in flight at once (GROUP_CONCURRENCY); 0 means the
	// fetcher's default.
	GroupConcurrency int
	// MemberBatch is how many member-list pages one fetcher run reads in
	// one Graph $batch (MEMBER_BATCH, 1..20; 1 reads each page on its
	// own); 0 means the fetcher's default, 20.
	MemberBatch int
	// EventsInFlight is how many of one tenant's events may wait in
	// SYNC_EVENTS at once before its fetcher run publishes more
	// (EVENTS_IN_FLIGHT); 0 means the fetcher's default.
	EventsInFlight int

	// GraphBudget says whether fetchers spend Graph's resource units from
	// the budget every replica shares through NATS (GRAPH_BUDGET, on by
	// default); off, each request goes out at once and only Graph's 429s
	// slow a run down.
	GraphBudget bool
	// GraphBudgetMargin is the share of Graph's documented quotas the
	// shared budget hands out (GRAPH_BUDGET_MARGIN, in (0, 1]); 0 means
	// libs/budget's default, 0.9.
	GraphBudgetMargin float64

	// Timings, each a Go duration such as 90s; 0 leaves the component's
	// default. Operators rarely need them; tests use them to compress
	// minutes of waiting (an outage, a dead replica's lease) into seconds.
	JobsAckWait   time.Duration // BUS_JOBS_ACK_WAIT: a silent fetcher's job goes to another replica after this
	EventsAckWait time.Duration // BUS_EVENTS_ACK_WAIT: the same for a reconciler's event
	RetryBase     time.Duration // BUS_RETRY_BASE: first delay before a failed message is redelivered
	RetryMax      time.Duration // BUS_RETRY_MAX: longest such delay
	TransientFor  time.Duration // BUS_TRANSIENT_FOR: how long an outage (Postgres down) delays a message before it costs a delivery
	LeaseTTL      time.Duration // LEASE_TTL: how long a dead fetcher's tenant lease blocks the tenant
	TickEvery     time.Duration // SCHEDULER_TICK: time between two scheduler passes
	StaleQueued   time.Duration // SCHEDULER_STALE_QUEUED: a run queued this long has its job published again
	StuckAfter    time.Duration // SCHEDULER_STUCK_AFTER: a run without progress this long, nothing in flight, is given up

	set map[string]bool // variables that were present and non-empty
}

// FromEnv parses the environment through getenv (os.Getenv in a main).
// It checks the format of every variable that is set; whether a variable
// must be set is up to Require.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Config{set: map[string]bool{}}
	get := func(name string) string {
		v := strings.TrimSpace(getenv(name))
		if v != "" {
			c.set[name] = true
		}
		return v
	}
	var errs []error

	c.DatabaseURL = get("DATABASE_URL")
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") &&
		!strings.HasPrefix(c.DatabaseURL, "postgresql://") && !strings.Contains(c.DatabaseURL, "=") {
		errs = append(errs, errors.New("DATABASE_URL: want a postgres:// URL or key=value connection string"))
	}

	c.NATSURL = get("NATS_URL")
	for _, u := range splitNonEmpty(c.NATSURL) {
		if _, err := parseURL(u, "nats", "tls", "ws", "wss"); err != nil {
			errs = append(errs, fmt.Errorf("NATS_URL: %w", err))
		}
	}

	c.GraphBaseURL = or(get("GRAPH_BASE_URL"), DefaultGraphBaseURL)
	if _, err := parseURL(c.GraphBaseURL, "https", "http"); err != nil {
		errs = append(errs, fmt.Errorf("GRAPH_BASE_URL: %w", err))
	}
	c.GraphBaseURL = strings.TrimRight(c.GraphBaseURL, "/")

	c.GraphScope = get("GRAPH_SCOPE")
	if c.GraphScope != "" && (!strings.HasSuffix(c.GraphScope, "/.default") || strings.ContainsAny(c.GraphScope, " \t")) {
		errs = append(errs, fmt.Errorf("GRAPH_SCOPE: %q: want Graph's resource followed by /.default, e.g. https://graph.microsoft.com/.default", c.GraphScope))
	}
	if v := get("GRAPH_MAX_RETRY_AFTER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("GRAPH_MAX_RETRY_AFTER: %q is not a positive duration such as 5m", v))
		}
		c.GraphMaxRetryAfter = d
	}

	switch v := strings.ToLower(get("GRAPH_BUDGET")); v {
	case "", "on", "true", "1":
		c.GraphBudget = true
	case "off", "false", "0":
	default:
		errs = append(errs, fmt.Errorf("GRAPH_BUDGET: %q is not on or off", v))
	}
	if v := get("GRAPH_BUDGET_MARGIN"); v != "" {
		m, err := strconv.ParseFloat(v, 64)
		if err != nil || !(m > 0 && m <= 1) {
			errs = append(errs, fmt.Errorf("GRAPH_BUDGET_MARGIN: %q is not a number above 0 and at most 1, such as 0.9", v))
		}
		c.GraphBudgetMargin = m
	}

	c.AuthorityHost = or(get("AZURE_AUTHORITY_HOST"), DefaultAuthorityHost)
	if _, err := parseURL(c.AuthorityHost, "https"); err != nil {
		errs = append(errs, fmt.Errorf("AZURE_AUTHORITY_HOST: %w (the token authority must use https)", err))
	}
	if !strings.HasSuffix(c.AuthorityHost, "/") {
		c.AuthorityHost += "/"
	}

	c.APIAddr = or(get("API_ADDR"), DefaultAPIAddr)
	if _, _, err := net.SplitHostPort(c.APIAddr); err != nil {
		errs = append(errs, fmt.Errorf("API_ADDR: want host:port: %w", err))
	}

	c.AdminToken = get("ADMIN_TOKEN")
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		errs = append(errs, errors.New("ADMIN_TOKEN: must be at least 16 characters"))
	}

	if v := get("SECRET_KEY"); v != "" {
		key, err := ParseSecretKey(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("SECRET_KEY: %w", err))
		}
		c.SecretKey = key
	}

	c.LogLevel = or(get("LOG_LEVEL"), "info")
	switch c.LogLevel {
	case "trace", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("LOG_LEVEL: %q is not one of trace, debug, info, warn, error", c.LogLevel))
	}

	if v := get("CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 256 {
			errs = append(errs, fmt.Errorf("CONCURRENCY: %q is not an integer from 1 to 256", v))
		}
		c.Concurrency = n
	}
	if v := get("GROUP_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 64 {
			errs = append(errs, fmt.Errorf("GROUP_CONCURRENCY: %q is not an integer from 1 to 64", v))
		}
		c.GroupConcurrency = n
	}
	if v := get("MEMBER_BATCH"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 20 {
			errs = append(errs, fmt.Errorf("MEMBER_BATCH: %q is not an integer from 1 to 20", v))
		}
		c.MemberBatch = n
	}
	if v := get("EVENTS_IN_FLIGHT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100000 {
			errs = append(errs, fmt.Errorf("EVENTS_IN_FLIGHT: %q is not an integer from 1 to 100000", v))
		}
		c.EventsInFlight = n
	}
	for _, d := range []struct {
		name string
		to   *time.Duration
	}{
		{"BUS_JOBS_ACK_WAIT", &c.JobsAckWait},
		{"BUS_EVENTS_ACK_WAIT", &c.EventsAckWait},
		{"BUS_RETRY_BASE", &c.RetryBase},
		{"BUS_RETRY_MAX", &c.RetryMax},
		{"BUS_TRANSIENT_FOR", &c.TransientFor},
		{"LEASE_TTL", &c.LeaseTTL},
		{"SCHEDULER_TICK", &c.TickEvery},
		{"SCHEDULER_STALE_QUEUED", &c.StaleQueued},
		{"SCHEDULER_STUCK_AFTER", &c.StuckAfter},
	} {
		if v := get(d.name); v != "" {
			t, err := time.ParseDuration(v)
			if err != nil || t <= 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a positive duration such as 90s", d.name, v))
			}
			*d.to = t
		}
	}
	return c, errors.Join(errs...)
}

// Require reports, in one error, every named variable that is not set.
func (c Config) Require(names ...string) error {
	var missing []string
	for _, n := range names {
		if !c.set[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing required environment variable(s): %s", strings.Join(missing, ", "))
	}
	return nil
}

// ParseSecretKey accepts 32 bytes as standard or URL-safe base64, or as hex.
func ParseSecretKey(v string) ([]byte, error) {
	for _, dec := range []func(string) ([]byte, error){
		hex.DecodeString,
		base64.StdEncoding.DecodeString,
		base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString,
		base64.RawURLEncoding.DecodeString,
	} {
		if b, err := dec(v); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("want 32 bytes encoded as base64 or hex (e.g. `openssl rand -base64 32`)")
}

func parseURL(raw string, schemes ...string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q has no host", raw)
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return u, nil
		}
	}
	return nil, fmt.Errorf("%q: scheme must be one of %s", raw, strings.Join(schemes, ", "))
}

func splitNonEmpty(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
