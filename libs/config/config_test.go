package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFromEnvDefaults(t *testing.T) {
	t.Parallel()
	c, err := FromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.GraphBaseURL != DefaultGraphBaseURL || c.AuthorityHost != DefaultAuthorityHost || c.APIAddr != DefaultAPIAddr ||
		!c.GraphBudget || c.GraphBudgetMargin != 0 {
		t.Fatalf("defaults not applied: %+v", c)
	}
	err = c.Require("DATABASE_URL", "NATS_URL")
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL, NATS_URL") {
		t.Fatalf("Require: err = %v, want both names", err)
	}
}

func TestFromEnvValid(t *testing.T) {
	t.Parallel()
	c, err := FromEnv(env(map[string]string{
		"DATABASE_URL":           "postgres://u@localhost/db",
		"NATS_URL":               "nats://127.0.0.1:4222",
		"GRAPH_BASE_URL":         "https://127.0.0.1:9443/v1.0/",
		"AZURE_AUTHORITY_HOST":   "https://127.0.0.1:9443",
		"ADMIN_TOKEN":            "0123456789abcdef",
		"SECRET_KEY":             "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"CONCURRENCY":            "3",
		"GROUP_CONCURRENCY":      "8",
		"EVENTS_IN_FLIGHT":       "12",
		"MEMBER_BATCH":           "5",
		"GRAPH_SCOPE":            "https://graph.microsoft.us/.default",
		"GRAPH_MAX_RETRY_AFTER":  "90s",
		"GRAPH_BUDGET_MARGIN":    "0.75",
		"BUS_JOBS_ACK_WAIT":      "5s",
		"BUS_EVENTS_ACK_WAIT":    "4s",
		"BUS_RETRY_BASE":         "100ms",
		"BUS_RETRY_MAX":          "1s",
		"BUS_TRANSIENT_FOR":      "20m",
		"LEASE_TTL":              "3s",
		"SCHEDULER_TICK":         "1s",
		"SCHEDULER_STALE_QUEUED": "10s",
		"SCHEDULER_STUCK_AFTER":  "1m",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.GraphBaseURL != "https://127.0.0.1:9443/v1.0" || c.AuthorityHost != "https://127.0.0.1:9443/" {
		t.Fatalf("URLs not normalised: %q %q", c.GraphBaseURL, c.AuthorityHost)
	}
	if string(c.SecretKey) != "0123456789abcdef0123456789abcdef" || c.Concurrency != 3 || c.GroupConcurrency != 8 || c.EventsInFlight != 12 || c.MemberBatch != 5 {
		t.Fatalf("parsed %q %d %d %d", c.SecretKey, c.Concurrency, c.GroupConcurrency, c.EventsInFlight)
	}
	if c.GraphScope != "https://graph.microsoft.us/.default" || c.GraphMaxRetryAfter != 90*time.Second {
		t.Fatalf("parsed scope %q, max Retry-After %s", c.GraphScope, c.GraphMaxRetryAfter)
	}
	if !c.GraphBudget || c.GraphBudgetMargin != 0.75 {
		t.Fatalf("parsed budget %v, margin %v", c.GraphBudget, c.GraphBudgetMargin)
	}
	if c.JobsAckWait != 5*time.Second || c.EventsAckWait != 4*time.Second || c.RetryBase != 100*time.Millisecond ||
		c.RetryMax != time.Second || c.TransientFor != 20*time.Minute || c.LeaseTTL != 3*time.Second ||
		c.TickEvery != time.Second || c.StaleQueued != 10*time.Second || c.StuckAfter != time.Minute {
		t.Fatalf("parsed timings %+v", c)
	}
	if err := c.Require("DATABASE_URL", "NATS_URL", "SECRET_KEY", "ADMIN_TOKEN"); err != nil {
		t.Fatal(err)
	}
}

func TestFromEnvNamesTheBadVariable(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"DATABASE_URL":          "mysql://x",
		"NATS_URL":              "http://127.0.0.1:4222",
		"GRAPH_BASE_URL":        "graph.microsoft.com",
		"AZURE_AUTHORITY_HOST":  "http://127.0.0.1:9443/",
		"API_ADDR":              "8080",
		"ADMIN_TOKEN":           "short",
		"SECRET_KEY":            "c2hvcnQ=",
		"LOG_LEVEL":             "loud",
		"CONCURRENCY":           "0",
		"GROUP_CONCURRENCY":     "65",
		"EVENTS_IN_FLIGHT":      "0",
		"MEMBER_BATCH":          "21",
		"GRAPH_SCOPE":           "https://graph.microsoft.com",
		"GRAPH_MAX_RETRY_AFTER": "300",
		"GRAPH_BUDGET":          "maybe",
		"GRAPH_BUDGET_MARGIN":   "1.5",
		"BUS_JOBS_ACK_WAIT":     "soon",
		"BUS_TRANSIENT_FOR":     "-1m",
		"LEASE_TTL":             "0s",
		"SCHEDULER_STUCK_AFTER": "15",
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := FromEnv(env(map[string]string{name: value}))
			if err == nil || !strings.HasPrefix(err.Error(), name+":") {
				t.Fatalf("%s=%q: err = %v, want an error naming %s", name, value, err, name)
			}
		})
	}
}

func TestGraphBudgetSwitch(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]bool{"": true, "on": true, "ON": true, "true": true, "1": true, "off": false, "false": false, "0": false} {
		c, err := FromEnv(env(map[string]string{"GRAPH_BUDGET": v}))
		if err != nil || c.GraphBudget != want {
			t.Errorf("GRAPH_BUDGET=%q: %v, %v; want %v", v, c.GraphBudget, err, want)
		}
	}
	for _, v := range []string{"0", "-0.5", "1.01", "ninety", "NaN"} {
		_, err := FromEnv(env(map[string]string{"GRAPH_BUDGET_MARGIN": v}))
		if err == nil || !strings.HasPrefix(err.Error(), "GRAPH_BUDGET_MARGIN:") {
			t.Errorf("GRAPH_BUDGET_MARGIN=%q: err = %v", v, err)
		}
	}
	if c, err := FromEnv(env(map[string]string{"GRAPH_BUDGET_MARGIN": "1"})); err != nil || c.GraphBudgetMargin != 1 {
		t.Errorf("GRAPH_BUDGET_MARGIN=1: %v, %v", c.GraphBudgetMargin, err)
	}
}
