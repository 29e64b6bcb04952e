package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
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

// MembersBatch reads the first page of the direct member lists of
// groupIDs in JSON batches of up to MaxBatch requests, and returns each
// group's member list, in the order of groupIDs, as Members would: its
// first page (from the batch), then the pages its nextLink leads to, read
// one request each when the caller gets to them. A request Graph
// answered with an error (404 for a group deleted since it was listed,
// 403) is that list's first and only element, the same *Error Members
// gives.
//
// A request answered 429, 503 or 504 is sent again in a later batch
// (with the others still waiting) once its own Retry-After has passed,
// or after an exponential backoff when it has none, never before, at
// most Config.MaxAttempts times in all; then its answer is its list's
// error. A Retry-After longer than Config.MaxRetryAfter ends the list
// with an error wrapping ErrWaitTooLong.
//
// The returned error is the batch's own failure (after the retrier's
// attempts, or a batch answer that cannot be read); then no list was
// read.
func (c *Client) MembersBatch(ctx context.Context, groupIDs []string) ([]iter.Seq2[[]Member, error], error) {
	return listsBatch(ctx, c, groupIDs, batchList[wireMember, Member]{
		what: membersWhat,
		request: func(ctx context.Context, gid string) (*abs.RequestInformation, error) {
			return c.sdk.Groups().ByGroupId(gid).Members().ToGetRequestInformation(ctx, c.membersConfig())
		},
		get:     c.membersGet,
		convert: toMember,
	})
}

// TransitiveUsersBatch is MembersBatch for the lists TransitiveUsers
// reads: the first pages of groupIDs' transitive user lists in JSON
// batches (each item with the advanced query's header), the rest of each
// list from its nextLink, as TransitiveUsers would.
func (c *Client) TransitiveUsersBatch(ctx context.Context, groupIDs []string) ([]iter.Seq2[[]User, error], error) {
	return listsBatch(ctx, c, groupIDs, batchList[wireUser, User]{
		what: transitiveWhat,
		request: func(ctx context.Context, gid string) (*abs.RequestInformation, error) {
			return c.sdk.Groups().ByGroupId(gid).TransitiveMembers().GraphUser().ToGetRequestInformation(ctx,
				c.transitiveConfig())
		},
		get:     c.transitiveGet,
		convert: toUser,
	})
}

// batchList is a kind of per-group list a JSON batch reads the first
// pages of: how to name it, its first request, how to parse and convert
// a page, and how to read its later pages.
type batchList[T, O any] struct {
	what    func(groupID string) string
	request func(ctx context.Context, groupID string) (*abs.RequestInformation, error)
	get     func(groupID string) func(ctx context.Context, next string) ([]byte, error)
	convert func(*T) (O, error)
}

// listsBatch reads groupIDs' lists of kind l as MembersBatch says.
func listsBatch[T, O any](ctx context.Context, c *Client, groupIDs []string, l batchList[T, O],
) ([]iter.Seq2[[]O, error], error) {
	type item struct {
		i        int // index in groupIDs
		req      batchRequest
		attempts int
		due      time.Time // not to be sent before
		bo       interface{ NextBackOff() time.Duration }
	}
	firsts := make([]iter.Seq2[[]O, error], len(groupIDs))
	todo := make([]*item, 0, len(groupIDs))
	for i, gid := range groupIDs {
		if gid == "" {
			return nil, fmt.Errorf("graph: batch of %s: group id is empty", l.what("?"))
		}
		req, err := c.batchItem(ctx, l.what(gid), func(ctx context.Context) (*abs.RequestInformation, error) {
			return l.request(ctx, gid)
		})
		if err != nil {
			return nil, err
		}
		req.ID = strconv.Itoa(i)
		todo = append(todo, &item{i: i, req: req})
	}

	for len(todo) > 0 {
		// The earliest Retry-After still running; every request due by
		// then goes in the next batch.
		now := c.cfg.Clock()
		next := todo[0].due
		for _, it := range todo[1:] {
			if it.due.Before(next) {
				next = it.due
			}
		}
		if wait := next.Sub(now); wait > 0 {
			if err := c.cfg.Sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("graph: batch of lists: %w", err)
			}
			now = next
		}
		var send, later []*item
		for _, it := range todo {
			if !it.due.After(now) && len(send) < MaxBatch {
				send = append(send, it)
			} else {
				later = append(later, it)
			}
		}
		reqs := make([]batchRequest, len(send))
		for k, it := range send {
			if it.attempts > 0 {
				c.rt.retries.Add(1)
			}
			it.attempts++
			reqs[k] = it.req
		}
		answers, err := c.postBatch(ctx, reqs)
		if err != nil {
			return nil, err
		}
		now = c.cfg.Clock()
		for _, it := range send {
			gid := groupIDs[it.i]
			what := l.what(gid)
			a := answers[it.req.ID]
			if !retryableStatus(a.Status) {
				firsts[it.i] = afterBatch(ctx, c, gid, a, l)
				continue
			}
			ge := a.graphError(now)
			wait := ge.RetryAfter
			if a.Status == http.StatusTooManyRequests {
				c.rt.throttled.Add(1)
			}
			switch {
			case wait > c.cfg.MaxRetryAfter:
				c.log.Warn().Str("group", gid).Int("status", a.Status).Dur("retry_after", wait).Dur("max", c.cfg.MaxRetryAfter).
					Msg("graph: batch item's Retry-After longer than this client waits out; giving up the list")
				firsts[it.i] = failed[[]O](fmt.Errorf("graph: list %s, page 0: %w", what,
					&waitTooLongError{ge: ge, max: c.cfg.MaxRetryAfter}))
				continue
			case it.attempts >= c.cfg.MaxAttempts:
				c.log.Warn().Str("group", gid).Int("attempts", it.attempts).Int("status", a.Status).
					Msg("graph: giving up a batch item after the last attempt")
				firsts[it.i] = failed[[]O](fmt.Errorf("graph: list %s, page 0: %w", what, ge))
				continue
			case wait == 0:
				if it.bo == nil {
					it.bo = newBackoff()
				}
				wait = it.bo.NextBackOff()
				if c.rt.observer != nil {
					c.rt.observer.GraphRetryWait(wait)
				}
			case c.rt.observer != nil:
				c.rt.observer.GraphThrottled(wait)
			}
			c.log.Debug().Str("group", gid).Int("attempt", it.attempts).Int("status", a.Status).Dur("wait", wait).
				Msg("graph: batch item to be sent again")
			it.due = now.Add(wait)
			later = append(later, it)
		}
		todo = later
	}
	return firsts, nil
}

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

// afterBatch is a list whose first page is a's answer.
func afterBatch[T, O any](ctx context.Context, c *Client, groupID string, a batchAnswer,
	l batchList[T, O],
) iter.Seq2[[]O, error] {
	what := l.what(groupID)
	if a.Status < 200 || a.Status > 299 {
		return failed[[]O](fmt.Errorf("graph: list %s, page 0: %w", what, a.graphError(c.cfg.Clock())))
	}
	first, nl, err := pageOf(c, what, 0, a.Body, a.Status, l.convert)
	if err != nil {
		return failed[[]O](err)
	}
	return func(yield func([]O, error) bool) {
		if !yield(first, nil) || nl == "" {
			return
		}
		if err := checkNextLink(what, 0, nl); err != nil {
			yield(nil, err)
			return
		}
		for page, err := range pagesFrom(ctx, c, what, nl, 1, l.get(groupID), l.convert) {
			if !yield(page, err) {
				return
			}
		}
	}
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
	adapter := c.sdk.RequestAdapter
	xctx, x := withExchange(ctx)
	body, err := adapter.SendPrimitive(xctx, ri, "[]byte", abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w", what, translate(err, x))
	}
	raw, _ := body.([]byte)
	var answer struct {
		Responses []batchAnswer `json:"responses"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil || answer.Responses == nil {
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
