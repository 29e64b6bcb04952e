package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	sjson "github.com/segmentio/encoding/json"
)

// MaxBatch is the most requests Graph takes in one JSON batch
// (concepts/json-batching.md, "Batch size limitations").
const MaxBatch = 20

// JSON batching (concepts/json-batching.md) saves round trips, not
// resource units: Graph evaluates each request of a batch against its
// limits on its own, and answers each with its own status, headers and
// body inside a 200, in an order of its choosing. A throttled request
// is a 429 item with its own Retry-After; nobody retries it but the
// client (the SDK's batch support does not, and the retry transport sees
// only the batch's 200).
//
// The batch is posted through the SDK's request adapter, so it carries
// the token, passes the SDK's middleware and entrasync's retrier (which
// retries the batch itself on a 429, 503 or 504 of the whole) and the
// transport under it (the shared budget, libs/budget, which costs a
// batch as the sum of its requests). msgraph-sdk-go-core's BatchRequest
// is not used: it gives an item's error without its status unless an
// error factory is registered globally, and re-encodes item bodies
// through map[string]any; here an item's body is decoded once, as a
// page read on its own is (wire.go).

// batchItem is the batch item of a list's first page: the request the
// list sends on its own, its URL relative to the version
// (json-batching.md: "/users", not the absolute URL), with its headers.
func (c *Client) batchItem(ctx context.Context, what string,
	request func(ctx context.Context) (*abs.RequestInformation, error),
) (batchRequest, error) {
	ri, err := request(ctx)
	if err != nil {
		return batchRequest{}, fmt.Errorf("graph: batch item for the %s: %w", what, err)
	}
	u, err := ri.GetUri()
	if err != nil {
		return batchRequest{}, fmt.Errorf("graph: batch item for the %s: %w", what, err)
	}
	rel, ok := strings.CutPrefix(u.String(), c.cfg.BaseURL)
	if !ok || !strings.HasPrefix(rel, "/") {
		return batchRequest{}, fmt.Errorf("graph: batch item for the %s: URL %s is not under %s", what, u, c.cfg.BaseURL)
	}
	req := batchRequest{Method: http.MethodGet, URL: rel}
	for _, k := range ri.Headers.ListKeys() {
		if req.Headers == nil {
			req.Headers = map[string]string{}
		}
		req.Headers[k] = strings.Join(ri.Headers.Get(k), ", ")
	}
	return req, nil
}

// batchRequest is one request of a JSON batch.
type batchRequest struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
}

// batchAnswer is one response of a JSON batch.
type batchAnswer struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`

	// err is why a page request had no answer at all (lists.go): it could
	// not be made, or, sent on its own, it failed past the retrier.
	err error
}

// header is an item's header by name, regardless of case.
func (a batchAnswer) header(name string) string {
	for k, v := range a.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// graphError is an error answer as an *Error, as translate makes one of
// a request sent on its own.
func (a batchAnswer) graphError(now time.Time) *Error {
	ge := &Error{Status: a.Status}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(a.Body, &body); err == nil {
		ge.Code, ge.Message = body.Error.Code, body.Error.Message
	} else if len(a.Body) > 0 {
		ge.Message = "unreadable error body: " + err.Error()
	}
	ge.RetryAfter, _ = parseRetryAfter(a.header("Retry-After"), now)
	return ge
}

// retryableStatus is what the retrier retries when Graph says it of a
// whole request.
func retryableStatus(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// postBatch sends one JSON batch and returns its answers by id, one for
// each request.
func (c *Client) postBatch(ctx context.Context, reqs []batchRequest) (map[string]batchAnswer, error) {
	what := fmt.Sprintf("graph: batch of %d requests", len(reqs))
	payload, err := json.Marshal(map[string][]batchRequest{"requests": reqs})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ri := abs.NewRequestInformation()
	ri.Method = abs.POST
	ri.UrlTemplate = "{+baseurl}/$batch"
	ri.PathParameters["baseurl"] = c.cfg.BaseURL
	ri.Headers.TryAdd("Accept", "application/json")
	ri.SetStreamContentAndContentType(payload, "application/json")
	xctx, x := withExchange(ctx)
	raw, err := c.sendForBody(xctx, ri)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w", what, translate(err, x))
	}
	var answer struct {
		Responses []batchAnswer `json:"responses"`
	}
	// The items' bodies stay slices of raw, not copies of them: a batch
	// of twenty full member pages is about 2 MB.
	if err := decodeJSONFlags(raw, &answer, sjson.DontCopyRawMessage); err != nil || answer.Responses == nil {
		return nil, fmt.Errorf("%s: %w: HTTP %d: no responses array (%v)", what, ErrMalformed, x.status, err)
	}
	byID := make(map[string]batchAnswer, len(answer.Responses))
	for _, a := range answer.Responses {
		// Ids are not case-sensitive (json-batching.md); ours are digits.
		byID[strings.ToLower(a.ID)] = a
	}
	for _, r := range reqs {
		a, ok := byID[r.ID]
		if !ok || a.Status < 100 || a.Status > 599 {
			return nil, fmt.Errorf("%s: %w: no answer with a status for request %s", what, ErrMalformed, r.ID)
		}
	}
	return byID, nil
}
