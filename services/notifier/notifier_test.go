package notifier

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/store"
)

func TestSignAndVerify(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec_test")
	body := []byte(`{"specversion":"1.0","id":"x"}`)
	at := time.Unix(1_800_000_000, 0)
	h := Sign(secret, at, body)
	if !strings.HasPrefix(h, "t=1800000000,v1=") || len(h) != len("t=1800000000,v1=")+64 {
		t.Fatalf("header %q", h)
	}
	if err := Verify(secret, h, body, at.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for _, c := range []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"other secret", []byte("whsec_other"), h, body, at, ErrBadSignature},
		{"changed body", secret, h, append([]byte(" "), body...), at, ErrBadSignature},
		{"changed timestamp", secret, strings.Replace(h, "t=1800000000", "t=1800000001", 1), body, at, ErrBadSignature},
		{"no v1", secret, "t=1800000000", body, at, ErrBadSignature},
		{"garbage", secret, "nonsense", body, at, ErrBadSignature},
		{"too old", secret, h, body, at.Add(6 * time.Minute), ErrStale},
		{"from the future", secret, h, body, at.Add(-6 * time.Minute), ErrStale},
	} {
		if err := Verify(c.secret, c.header, c.body, c.now, 5*time.Minute); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
	// A receiver may list several signatures (a secret being rotated on
	// its side): one that matches is enough.
	if err := Verify(secret, strings.Replace(h, ",v1=", ",v1=00,v1=", 1), body, at, 0); err != nil {
		t.Fatalf("two signatures: %v", err)
	}
}

func TestEventIsStableAcrossAttempts(t *testing.T) {
	t.Parallel()
	d := store.Delivery{TenantID: "0198f3c4-1111-7000-8000-000000000001", Notification: store.Notification{
		ID: "0198f3c4-3333-7000-8000-000000000001", Kind: "sync_failed", RunID: "0198f3c4-2222-7000-8000-000000000007",
		Subject: "Contoso: sync 7 failed", Text: "Sync 7 failed.", CreatedAt: time.Date(2026, 12, 1, 9, 0, 3, 0, time.UTC),
		Attempts: 1}}
	first, err := NewEvent(d).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d.Attempts = 2
	second, _ := NewEvent(d).Marshal()
	if string(first) != string(second) {
		t.Fatalf("attempts send different events:\n%s\n%s", first, second)
	}
	want := `{"specversion":"1.0","id":"0198f3c4-3333-7000-8000-000000000001",` +
		`"source":"/entrasync/tenants/0198f3c4-1111-7000-8000-000000000001","type":"com.entrasync.sync_failed",` +
		`"time":"2026-12-01T09:00:03Z","subject":"0198f3c4-1111-7000-8000-000000000001","datacontenttype":"application/json",` +
		`"data":{"recipients":[],"subject":"Contoso: sync 7 failed","text":"Sync 7 failed.","runId":"0198f3c4-2222-7000-8000-000000000007"}}`
	if string(first) != want {
		t.Fatalf("event\n%s\nwant\n%s", first, want)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	resp := func(code int, retryAfter string) *http.Response {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		return &http.Response{StatusCode: code, Header: h}
	}
	for _, c := range []struct {
		name       string
		resp       *http.Response
		err        error
		snippet    string
		verdict    Verdict
		retryAfter time.Duration
		reason     string
	}{
		{"200", resp(200, ""), nil, "", Delivered, 0, ""},
		{"204", resp(204, ""), nil, "", Delivered, 0, ""},
		{"400", resp(400, ""), nil, "missing field\n", Failed, 0, "HTTP 400 from the webhook: missing field"},
		{"401", resp(401, ""), nil, "", Failed, 0, "HTTP 401 from the webhook"},
		{"404", resp(404, ""), nil, "", Failed, 0, "HTTP 404"},
		{"410", resp(410, ""), nil, "", Failed, 0, "HTTP 410"},
		{"redirect", resp(302, ""), nil, "", Failed, 0, "redirects are not followed"},
		{"408", resp(408, ""), nil, "", Retry, 0, "HTTP 408"},
		{"429 with seconds", resp(429, "7"), nil, "", Retry, 7 * time.Second, "HTTP 429"},
		{"503 with a date", resp(503, now.Add(90*time.Second).Format(http.TimeFormat)), nil, "", Retry, 90 * time.Second, "HTTP 503"},
		{"503 asks too much", resp(503, "86400"), nil, "", Retry, time.Hour, "HTTP 503"},
		{"500 with a past date", resp(500, now.Add(-time.Hour).Format(http.TimeFormat)), nil, "", Retry, 0, "HTTP 500"},
		{"502 with junk", resp(502, "soon"), nil, "", Retry, 0, "HTTP 502"},
		{"network", nil, errors.New("dial tcp: connection refused"), "", Retry, 0, "no answer from the webhook: dial tcp: connection refused"},
	} {
		got := Classify(c.resp, c.err, c.snippet, now, time.Hour)
		if got.Verdict != c.verdict || got.RetryAfter != c.retryAfter || !strings.Contains(got.Reason, c.reason) {
			t.Errorf("%s: %+v, want %v after %v with %q", c.name, got, c.verdict, c.retryAfter, c.reason)
		}
	}
	long := Classify(resp(400, ""), nil, strings.Repeat("x\x00", 400), now, time.Hour)
	if len(long.Reason) > 400 || strings.ContainsRune(long.Reason, 0) {
		t.Errorf("a long body makes the reason %q", long.Reason)
	}
}

func TestBackoffGrowsWithJitterUpToItsBound(t *testing.T) {
	t.Parallel()
	n := &Notifier{cfg: Config{InitialBackoff: 10 * time.Second, MaxBackoff: time.Minute}}
	for attempt, base := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 4: time.Minute, 50: time.Minute} {
		for range 20 {
			d := n.backoff(attempt)
			if d < base/2 || d > base*3/2 {
				t.Fatalf("attempt %d waits %v, want %v ± 50%%", attempt, d, base)
			}
		}
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	var c Config
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := c
	bad.Lease = bad.Timeout
	bad.Batch = -1
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "Lease") || !strings.Contains(err.Error(), "Batch") {
		t.Fatalf("Validate = %v, want Lease and Batch named", err)
	}
}
