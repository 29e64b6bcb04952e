package budget

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// cutBody yields its data, then fails as a dropped connection does.
type cutBody struct{ r io.Reader }

var errCut = errors.New("connection reset by peer")

func (b cutBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, errCut
	}
	return n, err
}

func TestBatchAnswerIsLeftToBeReadAgain(t *testing.T) {
	const answer = `{"responses":[{"id":"1","status":200,"headers":{"x-ms-resource-unit":"2"},"body":{"value":[]}},` +
		`{"id":"2","status":429,"headers":{"Retry-After":"3"}}]}`
	resp := &http.Response{StatusCode: 200, ContentLength: -1, Body: io.NopCloser(strings.NewReader(answer))}
	out, ok := readBatchOutcome(resp, map[string]int{"1": 1, "2": 1}, time.Now())
	if !ok || out.units != 3 || len(out.throttles) != 1 {
		t.Fatalf("outcome %+v, %v; want 3 units and one throttle", out, ok)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != answer || resp.ContentLength != int64(len(answer)) {
		t.Fatalf("body read again: %q (Content-Length %d), %v", b, resp.ContentLength, err)
	}
}

// A batch answer cut short is not costed, and whoever reads the body
// next sees it fail rather than a body that merely ends early.
func TestCutBatchAnswerFailsForTheNextReader(t *testing.T) {
	const answer = `{"responses":[{"id":"1","status":200,"headers":{},"body":{"value":[`
	resp := &http.Response{StatusCode: 200, ContentLength: -1, Body: io.NopCloser(cutBody{strings.NewReader(answer)})}
	if _, ok := readBatchOutcome(resp, map[string]int{"1": 1}, time.Now()); ok {
		t.Fatal("a cut answer was read as a batch outcome")
	}
	if b, err := io.ReadAll(resp.Body); !errors.Is(err, errCut) {
		t.Fatalf("the next reader got %q, %v; want the connection's error", b, err)
	}
}
