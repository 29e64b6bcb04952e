package graphsim

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// JSON batching, POST /v1.0/$batch (concepts/json-batching.md): up to 20
// requests, each answered as if sent on its own (own status, headers and
// body, own faults and throttling: a 429 inside a 200 batch), responses
// in an order of the simulator's choosing, dependsOn honoured.

const maxBatchRequests = 20

func isBatchPath(p string) bool { return p == "/v1.0/$batch" || p == "/v1.0/$batch/" }

// batchItem is one request of a batch as the client sends it.
type batchItem struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Body      json.RawMessage   `json:"body"`
	DependsOn []string          `json:"dependsOn"`
}

// batchResponse is one item of the answer.
type batchResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

// serveBatch answers a $batch request. A malformed batch is a 400 for the
// whole; a parseable one is a 200 whatever its items answer.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request, t *tenant, start time.Time, reqID string) {
	if r.Method != http.MethodPost {
		writeGraphError(w, r, start, reqID, &graphError{status: http.StatusMethodNotAllowed, code: "Request_BadRequest",
			message: "Specified HTTP method is not allowed for the request target."})
		return
	}
	items, gerr := readBatch(r)
	if gerr != nil {
		writeGraphError(w, r, start, reqID, gerr)
		return
	}
	order, gerr := batchOrder(items)
	if gerr != nil {
		writeGraphError(w, r, start, reqID, gerr)
		return
	}

	out := make([]batchResponse, len(items))
	run := func(i int) {
		out[i] = s.runBatchItem(r, t, items[i])
	}
	if order == nil { // no dependsOn: every item at once
		var wg sync.WaitGroup
		for i := range items {
			wg.Add(1)
			go func() { defer wg.Done(); run(i) }()
		}
		wg.Wait()
	} else {
		failed := map[string]bool{}
		for _, i := range order {
			it := items[i]
			var dep string
			for _, d := range it.DependsOn {
				if failed[strings.ToLower(d)] {
					dep = d
					break
				}
			}
			if dep != "" {
				// json-batching.md: "If an individual request fails, any
				// request that depends on that request fails with status
				// code 424 (Failed Dependency)."
				out[i] = itemError(r, it.ID, &graphError{status: http.StatusFailedDependency, code: "FailedDependency",
					message: fmt.Sprintf("The request depends on request '%s', which failed.", dep)}, start)
			} else {
				run(i)
			}
			if out[i].Status >= 400 {
				failed[strings.ToLower(it.ID)] = true
			}
		}
	}

	// "Individual responses might appear in a different order than the
	// requests": shuffled, the same way for the same batch and seed.
	h := fnv.New64a()
	for _, it := range items {
		h.Write([]byte(it.ID))
		h.Write([]byte{0})
	}
	rand.New(rand.NewPCG(uint64(s.opts.BatchSeed), h.Sum64())).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })

	body, _ := json.Marshal(map[string]any{"responses": out})
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// readBatch parses and checks a batch body (gzip-encoded or not: the Go
// SDK compresses request bodies).
func readBatch(r *http.Request) ([]batchItem, *graphError) {
	var body io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, badRequest("BadRequest", "Invalid batch payload format: the gzip body cannot be read.")
		}
		defer zr.Close()
		body = zr
	}
	raw, err := io.ReadAll(io.LimitReader(body, 4<<20))
	if err != nil {
		return nil, badRequest("BadRequest", "Invalid batch payload format.")
	}
	var payload struct {
		Requests *[]batchItem `json:"requests"`
	}
	if err := json.Unmarshal(raw, &payload); err != nil || payload.Requests == nil {
		return nil, badRequest("BadRequest", "Invalid batch payload format.")
	}
	items := *payload.Requests
	if len(items) > maxBatchRequests {
		return nil, badRequest("BadRequest", "Number of requests inside batch exceeds the limit.")
	}
	seen := map[string]bool{}
	for _, it := range items {
		key := strings.ToLower(it.ID)
		switch {
		case it.ID == "" || it.Method == "" || it.URL == "":
			return nil, badRequest("BadRequest", "Invalid batch payload format: every request needs id, method and url.")
		case seen[key]:
			// ids are not case-sensitive and must be unique.
			return nil, badRequest("BadRequest", "Batch request ids must be unique; '%s' is repeated.", it.ID)
		case len(it.Body) > 0 && headerValue(it.Headers, "Content-Type") == "":
			return nil, badRequest("BadRequest", "Request '%s' has a body but no Content-Type header.", it.ID)
		}
		if u, err := url.Parse(it.URL); err != nil || u.IsAbs() || u.Host != "" {
			return nil, badRequest("BadRequest", "Request '%s': the url must be relative to the version, like /users.", it.ID)
		}
		seen[key] = true
	}
	for _, it := range items {
		for _, d := range it.DependsOn {
			if !seen[strings.ToLower(d)] {
				return nil, badRequest("BadRequest", "Request '%s' depends on '%s', which is not in the batch.", it.ID, d)
			}
		}
	}
	return items, nil
}

// batchOrder is the order to run items in when some depend on others
// (dependencies first, otherwise as sent), or nil when none does. A
// cycle is a 400.
func batchOrder(items []batchItem) ([]int, *graphError) {
	hasDeps := false
	index := map[string]int{}
	for i, it := range items {
		index[strings.ToLower(it.ID)] = i
		hasDeps = hasDeps || len(it.DependsOn) > 0
	}
	if !hasDeps {
		return nil, nil
	}
	state := make([]int, len(items)) // 0 new, 1 visiting, 2 done
	var order []int
	var visit func(i int) bool
	visit = func(i int) bool {
		switch state[i] {
		case 1:
			return false
		case 2:
			return true
		}
		state[i] = 1
		for _, d := range items[i].DependsOn {
			if !visit(index[strings.ToLower(d)]) {
				return false
			}
		}
		state[i] = 2
		order = append(order, i)
		return true
	}
	for i := range items {
		if !visit(i) {
			return nil, badRequest("BadRequest", "The dependsOn of the batch requests form a cycle.")
		}
	}
	return order, nil
}

func headerValue(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// runBatchItem answers one item as its own request: its own request id,
// faults, throttling and log entry.
func (s *Server) runBatchItem(outer *http.Request, t *tenant, it batchItem) batchResponse {
	start := s.now()
	reqID := randomGUID()
	u, _ := url.Parse(it.URL)
	r := outer.Clone(outer.Context())
	r.Method = strings.ToUpper(it.Method)
	rawPath, _, _ := strings.Cut(it.URL, "?")
	// RawPath keeps the item's spelling (delta() stays unescaped in links).
	r.URL = &url.URL{Path: "/v1.0/" + strings.TrimPrefix(u.Path, "/"), RawPath: "/v1.0/" + strings.TrimPrefix(rawPath, "/"), RawQuery: u.RawQuery}
	r.RequestURI = ""
	r.Header = http.Header{"Authorization": outer.Header.Values("Authorization")}
	for k, v := range it.Headers {
		r.Header.Set(k, v)
	}
	r.Body, r.ContentLength = http.NoBody, 0
	if len(it.Body) > 0 {
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(it.Body)), int64(len(it.Body))
	}

	rec := &itemRecorder{header: http.Header{}}
	setResponseIDs(rec.header, r, reqID)
	if isBatchPath(r.URL.Path) {
		writeGraphError(rec, r, start, reqID, badRequest("BadRequest", "A batch cannot hold another batch."))
	} else {
		s.answer(rec, r, t, start, reqID)
	}
	if rec.status == 0 { // the client went away during latency
		rec.status = http.StatusGatewayTimeout
	}
	s.record(Request{At: start, Tenant: t.id, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Status: rec.status, RetryAfter: rec.header.Get("Retry-After"), ThrottleScope: rec.header.Get("x-ms-throttle-scope"),
		Authorized: true, InBatch: true,
		ResourceUnits: resourceUnits(rec.header)})

	resp := batchResponse{ID: it.ID, Status: rec.status, Headers: itemHeaders(rec.header)}
	// The body is JSON when the item's answer is, else a JSON string.
	if b := rec.body.Bytes(); len(b) > 0 {
		if strings.HasPrefix(rec.header.Get("Content-Type"), "application/json") && json.Valid(b) {
			resp.Body = json.RawMessage(b)
		} else {
			resp.Body, _ = json.Marshal(string(b))
		}
	}
	return resp
}

// itemError is the answer of an item that is not run.
func itemError(outer *http.Request, id string, e *graphError, now time.Time) batchResponse {
	rec := &itemRecorder{header: http.Header{}}
	reqID := randomGUID()
	setResponseIDs(rec.header, outer, reqID)
	writeGraphError(rec, outer, now, reqID, e)
	return batchResponse{ID: id, Status: rec.status, Headers: itemHeaders(rec.header), Body: json.RawMessage(rec.body.Bytes())}
}

// itemHeaders are an item's headers as the JSON of a batch answer names
// them. JSON keys keep their case, and Graph's are not Go's canonical
// forms: json-batching.md's example has "x-ms-resource-unit",
// "OData-Version", "Cache-Control", "Content-Type".
func itemHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		switch {
		case strings.HasPrefix(k, "X-Ms-"), k == "Request-Id", k == "Client-Request-Id":
			k = strings.ToLower(k)
		case k == "Odata-Version":
			k = "OData-Version"
		}
		out[k] = strings.Join(vs, ", ")
	}
	return out
}

// itemRecorder collects one batch item's answer.
type itemRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *itemRecorder) Header() http.Header { return w.header }

func (w *itemRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *itemRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}
