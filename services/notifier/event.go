package notifier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/entrasync/entrasync/libs/store"
)

// SignatureHeader carries an event's signature: "t=<unix seconds>,v1=<hex
// HMAC-SHA256 of "<t>.<body>" keyed with the tenant's signing secret>".
const SignatureHeader = "Entrasync-Signature"

// ContentType is the media type of a structured CloudEvent in JSON.
const ContentType = "application/cloudevents+json; charset=utf-8"

// TypePrefix prefixes a task's kind to make its event's type.
const TypePrefix = "com.entrasync."

// Event is a notification task as a CloudEvents 1.0 event in structured
// JSON mode. Every attempt of one task sends the same event, id included:
// receivers drop the repeats by id.
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Time            time.Time `json:"time"`
	Subject         string    `json:"subject"`
	DataContentType string    `json:"datacontenttype"`
	Data            EventData `json:"data"`
}

// EventData is what the notification says, and to whom.
type EventData struct {
	Recipients []string `json:"recipients"`
	Subject    string   `json:"subject"`
	Text       string   `json:"text"`
	// RunID is the run the notification is about; null when none.
	RunID *string `json:"runId"`
}

// NewEvent is the event of a claimed task. Its time is when the task was
// written, so retries send the very same bytes.
func NewEvent(d store.Delivery) Event {
	e := Event{SpecVersion: "1.0", ID: d.ID, Source: "/entrasync/tenants/" + d.TenantID, Type: TypePrefix + d.Kind,
		Time: d.CreatedAt.UTC(), Subject: d.TenantID, DataContentType: "application/json",
		Data: EventData{Recipients: d.Recipients, Subject: d.Subject, Text: d.Text}}
	if e.Data.Recipients == nil {
		e.Data.Recipients = []string{}
	}
	if d.RunID != "" {
		run := d.RunID
		e.Data.RunID = &run
	}
	return e
}

// Marshal is the event's body as sent.
func (e Event) Marshal() ([]byte, error) { return json.Marshal(e) }

// Sign returns the SignatureHeader value of body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("notifier: signature does not match")
	ErrStale        = errors.New("notifier: signature timestamp outside the tolerance")
)

// Verify checks a SignatureHeader value against the body received, as a
// receiver does: one of its v1 signatures must be the body's, and its
// timestamp within tolerance of now (0: any age), so a captured request
// cannot be replayed later.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
			return fmt.Errorf("%w: malformed header", ErrBadSignature)
		case k == "t":
			ts = v
		case k == "v1":
			sigs = append(sigs, v)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: no timestamp or no v1 signature", ErrBadSignature)
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	if age := now.Sub(time.Unix(unix, 0)); tolerance > 0 && (age > tolerance || age < -tolerance) {
		return fmt.Errorf("%w: signed %v ago", ErrStale, age.Round(time.Second))
	}
	return nil
}
