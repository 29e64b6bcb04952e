package fleet_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/services/fleet"
	"github.com/entrasync/entrasync/services/graphsim"
	"github.com/entrasync/entrasync/services/notifier"
)

// receiver is a tenant's webhook: it checks every event's signature and
// answers with the next status of its script (the last one from then on).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	secret []byte
	script []int
	body   string // sent with every answer
	got    []notifier.Event
	bad    []string // what failed the checks
}

func newReceiver(t *testing.T, body string, script ...int) *receiver {
	r := &receiver{t: t, script: script, body: body}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	raw, err := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	var e notifier.Event
	switch {
	case err != nil:
		r.bad = append(r.bad, "read: "+err.Error())
	case req.Method != http.MethodPost || req.Header.Get("Content-Type") != notifier.ContentType:
		r.bad = append(r.bad, req.Method+" "+req.Header.Get("Content-Type"))
	case notifier.Verify(r.secret, req.Header.Get(notifier.SignatureHeader), raw, time.Now(), 5*time.Minute) != nil:
		r.bad = append(r.bad, "signature: "+notifier.Verify(r.secret, req.Header.Get(notifier.SignatureHeader), raw, time.Now(), 5*time.Minute).Error())
	case json.Unmarshal(raw, &e) != nil:
		r.bad = append(r.bad, "not JSON: "+string(raw))
	}
	r.got = append(r.got, e)
	status := r.script[min(len(r.got), len(r.script))-1]
	w.WriteHeader(status)
	_, _ = io.WriteString(w, r.body)
}

// events returns what was received so far, failing the test on any event
// whose checks failed.
func (r *receiver) events() []notifier.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		r.t.Fatalf("the receiver refused events: %v", r.bad)
	}
	return slices.Clone(r.got)
}

func (r *receiver) count(id string) int {
	n := 0
	for _, e := range r.events() {
		if e.ID == id {
			n++
		}
	}
	return n
}

type notificationView struct {
	ID          string     `json:"id"`
	Kind        string     `json:"kind"`
	RunID       *string    `json:"runId"`
	Recipients  []string   `json:"recipients"`
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"lastError"`
	DeliveredAt *time.Time `json:"deliveredAt"`
	FailedAt    *time.Time `json:"failedAt"`
}

func (h *harness) deliveries(tenantID string) []notificationView {
	h.t.Helper()
	items, _ := list[notificationView](h, "/v1/tenants/"+tenantID+"/notifications")
	return items
}

// notify patches a tenant's notify setting and makes its signing secret,
// which the receiver then checks events with.
func (h *harness) notify(tenantID string, r *receiver, setting map[string]any) {
	h.t.Helper()
	if code := h.do("PATCH", "/v1/tenants/"+tenantID, map[string]any{"notify": setting}, nil); code != http.StatusOK {
		h.t.Fatalf("PATCH notify = %d", code)
	}
	if r == nil {
		return
	}
	var out struct {
		Secret string `json:"secret"`
	}
	if code := h.do("POST", "/v1/tenants/"+tenantID+"/notify/secret", nil, &out); code != http.StatusOK || out.Secret == "" {
		h.t.Fatalf("POST notify/secret = %d", code)
	}
	r.mu.Lock()
	r.secret = []byte(out.Secret)
	r.mu.Unlock()
}

// TestWebhookDeliveryThroughTheFleet: sync_completed is written only with
// onCompletion; it reaches a real receiver, signed, as a CloudEvent; two
// 500s are retried and the third try delivers it, the same event id each
// time and never again; a 400 fails a task for good with the receiver's
// reason in GET notifications; a tenant without a webhook keeps its task
// pending, saying so, until it has one.
func TestWebhookDeliveryThroughTheFleet(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, 1, 1, func(c *fleet.Config) {
		c.Notifier = true
		c.Notifying = notifier.Config{PollEvery: 20 * time.Millisecond, InitialBackoff: 50 * time.Millisecond,
			MaxBackoff: 200 * time.Millisecond, Recheck: 100 * time.Millisecond, Timeout: 5 * time.Second, Lease: 10 * time.Second}
	})

	// The harness fails its own test: no subtests.
	{ // retried, then delivered once
		tenant := h.connect(h.addEntraTenant(graphsim.Spec{Seed: 11, Users: 5, Groups: 2}), 50)
		h.sync(tenant)
		if ns := h.deliveries(tenant); len(ns) != 0 {
			t.Fatalf("a sync without onCompletion wrote %+v", ns)
		}
		rcv := newReceiver(t, "", 500, 500, 200)
		h.notify(tenant, rcv, map[string]any{"webhookUrl": rcv.srv.URL + "/hooks/entrasync", "onCompletion": true,
			"completionRecipients": []string{"it@contoso.com"}})
		run := h.sync(tenant)

		devenv.WaitFor(t, time.Minute, "the completion event delivered", func() bool {
			ns := h.deliveries(tenant)
			return len(ns) == 1 && ns[0].Status == "delivered"
		})
		n := h.deliveries(tenant)[0]
		if n.Kind != "sync_completed" || n.RunID == nil || *n.RunID != run.RunID || n.Attempts != 3 || n.LastError != "" ||
			n.DeliveredAt == nil || !slices.Equal(n.Recipients, []string{"it@contoso.com"}) {
			t.Fatalf("notification %+v", n)
		}
		evs := rcv.events()
		if len(evs) != 3 {
			t.Fatalf("the receiver got %d events, want 3 (500, 500, 200)", len(evs))
		}
		for _, e := range evs {
			if e.ID != n.ID || e.SpecVersion != "1.0" || e.Type != "com.entrasync.sync_completed" || e.Subject != tenant ||
				e.Source != "/entrasync/tenants/"+tenant || e.DataContentType != "application/json" ||
				e.Data.RunID == nil || *e.Data.RunID != run.RunID || !strings.Contains(e.Data.Subject, "completed") ||
				!slices.Equal(e.Data.Recipients, []string{"it@contoso.com"}) || e.Time.IsZero() {
				t.Fatalf("event %+v, want the task %s as a CloudEvent", e, n.ID)
			}
		}
		// Never again: a later run's event is delivered after it, so the
		// notifier has made passes since; the first was not among them.
		next := h.sync(tenant)
		devenv.WaitFor(t, time.Minute, "the next run's event delivered", func() bool {
			return slices.ContainsFunc(rcv.events(), func(e notifier.Event) bool { return e.Data.RunID != nil && *e.Data.RunID == next.RunID })
		})
		if c := rcv.count(n.ID); c != 3 {
			t.Fatalf("the delivered event came %d times, want 3", c)
		}
	}

	{ // a 400 fails for good
		tenant := h.connect(h.addEntraTenant(graphsim.Spec{Seed: 12, Users: 5, Groups: 2}), 50)
		// First without a webhook: the task waits, saying why.
		h.notify(tenant, nil, map[string]any{"onCompletion": true})
		h.sync(tenant)
		devenv.WaitFor(t, time.Minute, "the task to say no webhook is configured", func() bool {
			ns := h.deliveries(tenant)
			return len(ns) == 1 && ns[0].Status == "pending" && strings.Contains(ns[0].LastError, "no webhook configured")
		})
		if n := h.deliveries(tenant)[0]; n.Attempts != 0 {
			t.Fatalf("a task never sent counts %d attempts", n.Attempts)
		}
		rcv := newReceiver(t, "unknown event type", 400)
		h.notify(tenant, rcv, map[string]any{"webhookUrl": rcv.srv.URL})
		devenv.WaitFor(t, time.Minute, "the task failed", func() bool {
			ns := h.deliveries(tenant)
			return len(ns) == 1 && ns[0].Status == "failed"
		})
		n := h.deliveries(tenant)[0]
		if n.Attempts != 1 || n.FailedAt == nil || n.DeliveredAt != nil ||
			!strings.Contains(n.LastError, "HTTP 400") || !strings.Contains(n.LastError, "unknown event type") {
			t.Fatalf("failed notification %+v", n)
		}
		if evs := rcv.events(); len(evs) != 1 || evs[0].ID != n.ID {
			t.Fatalf("the receiver got %+v, want the task once", evs)
		}
	}
}
