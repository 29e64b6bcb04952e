package budget

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/entrasync/entrasync/libs/httpbody"
)

// A JSON batch (POST /$batch, json-batching.md) is not metered itself:
// "Requests in a batch are evaluated individually against the applicable
// throttling limits", each costing what it would cost on its own, and
// each answered with its own status, Retry-After and x-ms-resource-unit
// inside the batch's 200. So a batch pays the sum of its requests' costs
// before it is sent, is corrected by the sum of what its answers say
// they cost, and a 429 inside it pauses the tenant (or the app) like a
// 429 of a request sent on its own. Batching saves round trips, not
// units.

// maxBatchBody bounds a batch body read to cost it: twenty requests with
// long URLs are a few kilobytes.
const maxBatchBody = 4 << 20

// isBatch reports whether req is a JSON batch.
func isBatch(req *http.Request) bool {
	return req.Method == http.MethodPost && isPath(pathSegments(req.URL.Path), "$batch")
}

// batchCosts is the cost of each request of a batch by its id (ids are
// not case-sensitive: lower-cased), read from a copy of req's body
// (req.GetBody); ok is false when the body cannot be read so.
func batchCosts(req *http.Request) (costs map[string]int, ok bool) {
	if req.GetBody == nil {
		return nil, false
	}
	rc, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	defer rc.Close()
	var r io.Reader = rc
	if strings.EqualFold(req.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(rc)
		if err != nil {
			return nil, false
		}
		defer zr.Close()
		r = zr
	}
	var payload struct {
		Requests []struct {
			ID     string `json:"id"`
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"requests"`
	}
	if err := json.NewDecoder(io.LimitReader(r, maxBatchBody)).Decode(&payload); err != nil || len(payload.Requests) == 0 {
		return nil, false
	}
	costs = make(map[string]int, len(payload.Requests))
	for _, it := range payload.Requests {
		u, err := url.Parse(it.URL)
		if err != nil {
			return nil, false
		}
		costs[strings.ToLower(it.ID)] = Cost(it.Method, u.Path, u.Query())
	}
	return costs, true
}

// sum adds up a batch's costs.
func sum(costs map[string]int) int {
	n := 0
	for _, c := range costs {
		n += c
	}
	return n
}

// withBody returns req with a body that can be read again (GetBody), so
// a batch can be costed before it is sent.
func withBody(req *http.Request) (*http.Request, error) {
	if req.GetBody != nil || req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	b, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.Body, _ = r.GetBody()
	return r, nil
}

// batchOutcome is what a batch's answers say: what its requests cost
// (each answer's x-ms-resource-unit, or its estimate when it states none),
// and the 429s among them, at most one per limit: of the answers that
// name the app's limit (Application scope) the one with the longest
// Retry-After, and likewise of the others (the tenant's). A batch can
// hold both, and each pauses its own bucket: keeping only the longest
// of all would lose the app's pause behind a longer one of the tenant.
type batchOutcome struct {
	units     int
	throttles []throttle
}

// readBatchOutcome reads a batch's 200 answer, leaving resp's body to be
// read again (as httpbody.Body, which the next reader takes as it is); ok
// is false when it is not a batch answer. A body that could not be read
// fails the same way for whoever reads it next.
func readBatchOutcome(resp *http.Response, costs map[string]int, now time.Time) (out batchOutcome, ok bool) {
	b, err := httpbody.Read(resp.Body, resp.ContentLength, maxBatchAnswer)
	resp.Body.Close()
	if err != nil {
		resp.Body = io.NopCloser(failedRead{err})
		return out, false
	}
	resp.Body = httpbody.Body(b)
	resp.ContentLength = int64(len(b))
	var answer struct {
		Responses []struct {
			ID      string            `json:"id"`
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
		} `json:"responses"`
	}
	if err := json.Unmarshal(b, &answer); err != nil || answer.Responses == nil {
		return out, false
	}
	// Per limit (false: the tenant's, true: the app's), the 429 kept and
	// its wait (-1: no readable Retry-After).
	kept := map[bool]throttle{}
	longest := map[bool]time.Duration{}
	for _, a := range answer.Responses {
		h := http.Header{}
		for k, v := range a.Headers {
			h.Set(k, v)
		}
		if n, ok := resourceUnits(h); ok {
			out.units += n
		} else {
			out.units += costs[strings.ToLower(a.ID)]
		}
		if a.Status != http.StatusTooManyRequests {
			continue
		}
		th := throttle{retryAfter: h.Get("Retry-After"), scope: h.Get(HeaderThrottleScope)}
		app := th.appScoped()
		w, ok := parseRetryAfter(th.retryAfter, now)
		if !ok {
			w = -1
		}
		if _, seen := kept[app]; !seen || w > longest[app] {
			kept[app], longest[app] = th, w
		}
	}
	for _, app := range []bool{false, true} {
		if th, ok := kept[app]; ok {
			out.throttles = append(out.throttles, th)
		}
	}
	return out, true
}

// maxBatchAnswer bounds a batch answer read into memory: twenty pages of
// 999 objects are a few MB.
const maxBatchAnswer = 64 << 20

// failedRead is a body whose reading failed: it fails again.
type failedRead struct{ err error }

func (r failedRead) Read([]byte) (int, error) { return 0, r.err }
