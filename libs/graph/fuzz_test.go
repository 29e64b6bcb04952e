package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/services/graphsim"
)

// FuzzParseRetryAfter: no Retry-After value may panic, give a negative
// wait, or, as delay-seconds, a wait shorter than asked.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"1.5", "120", "0", " 7 ", "Wed, 21 Oct 2015 07:28:00 GMT", "Sun, 06 Nov 2994 08:49:37 GMT",
		"-1", "NaN", "Inf", "1e309", "0x10", "", "1.5s", "\x00"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now)
		if !ok {
			if d != 0 {
				t.Fatalf("unreadable %q gave %v", v, d)
			}
			return
		}
		if d < 0 {
			t.Fatalf("%q gave a negative wait %v", v, d)
		}
		if s, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && s*float64(time.Second) < math.MaxInt64 {
			if float64(d) < s*float64(time.Second) {
				t.Fatalf("%q gave %v, shorter than asked", v, d)
			}
		}
	})
}

// FuzzDecodePage feeds one Graph answer (status and body) to every
// listing of a real Client, through the SDK's middleware and JSON parse
// nodes and entrasync's conversion, exactly as a page from Graph would
// come. Whatever the bytes, a listing must return in bounded time with
// either a classified error (ErrMalformed for a 2xx entrasync cannot
// read, Graph's *Error with that status otherwise) or items that keep
// the model's promises: every object has an id, every user a stated
// accountEnabled, every member a known MemberType; and the items are
// those of the body's value array, as encoding/json reads it.
//
// Only the token comes from the simulator, once per process; Graph's
// answers are served from memory, so an input costs no network. A
// nextLink is followed to a last, empty page.
func FuzzDecodePage(f *testing.F) {
	f.Add(http.StatusOK, []byte(`{"value":[{"id":"u1","accountEnabled":true,"@odata.type":"#microsoft.graph.user"}]}`))
	f.Add(http.StatusOK, []byte(`{"value":[{"id":"g1","@odata.type":"#microsoft.graph.group"},{"id":"d1","@odata.type":"#microsoft.graph.device"}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/groups/g/members?$skiptoken=X"}`))
	f.Add(http.StatusOK, []byte(`{"value":[]}`))
	f.Add(http.StatusForbidden, []byte(`{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges."}}`))

	p := newPageServer(f)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if !slices.Contains(fuzzStatuses, status) {
			// Every status becomes one the client answers in one exchange:
			// no redirect, no token renewal, no retry.
			status = fuzzStatuses[uint(status)%uint(len(fuzzStatuses))]
		}
		want := parseOracle(body)
		for _, l := range p.listings {
			p.serve(status, body)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			got, err := l.list(ctx)
			hung := ctx.Err()
			cancel()
			if p.requests() == 0 {
				t.Fatalf("%s: the page under test was never requested", l.name)
			}
			if hung != nil {
				t.Fatalf("%s: no answer after 30s (%v), status %d, body %q", l.name, hung, status, body)
			}
			if err != nil {
				checkDecodeError(t, l.name, status, body, err)
				continue
			}
			if status < 200 || status > 299 {
				t.Fatalf("%s: HTTP %d accepted as a page: %+v", l.name, status, got)
			}
			checkDecoded(t, l.name, body, want, got)
		}
	})
}

// fuzzStatuses are the answers FuzzDecodePage gives: success, and errors
// the client returns after one exchange (MaxAttempts is 1).
var fuzzStatuses = []int{200, 204, 400, 403, 404, 429, 500, 503}

// decoded is one object of a page as a listing returned it.
type decoded struct {
	ID      string
	Enabled *bool      // users only
	Type    MemberType // members only
}

type listing struct {
	name string
	list func(ctx context.Context) ([]decoded, error)
}

// pageServer answers Graph's requests from memory with the page under
// test, then an empty last page, and passes the authority's requests on
// to the simulator.
type pageServer struct {
	sim      http.RoundTripper
	simHost  string
	listings []listing
	client   *Client
	// follow is the answer to every request after the page under test;
	// nil: an empty last page of a listing.
	follow []byte

	mu     sync.Mutex
	status int
	body   []byte
	served int
}

func newPageServer(f testing.TB) *pageServer {
	sim, err := graphsim.New(graphsim.Options{})
	if err != nil {
		f.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = sim.Close() })
	tenant, clientID, secret := guid(), guid(), "s3cret-"+guid()
	sim.AddTenant(tenant, clientID, secret, graphsim.Generate(graphsim.Spec{Seed: 1, Users: 1}))
	u, err := url.Parse(sim.GraphURL())
	if err != nil {
		f.Fatal(err)
	}
	p := &pageServer{sim: sim.HTTPClient().Transport, simHost: u.Host}
	c, err := New(Config{
		BaseURL:       sim.GraphURL(),
		AuthorityHost: sim.AuthorityURL(),
		Transport:     p,
		MaxAttempts:   1,
		Logger:        zerolog.Nop(),
		Sleep: func(context.Context, time.Duration) error {
			return errors.New("the fuzz target never waits")
		},
	}, Credentials{TenantID: tenant, ClientID: clientID, ClientSecret: secret})
	if err != nil {
		f.Fatal(err)
	}
	p.client = c
	p.listings = []listing{
		{"users", func(ctx context.Context) ([]decoded, error) {
			return drain(c.Users(ctx, ""), func(u User) decoded { return decoded{ID: u.ID, Enabled: &u.AccountEnabled} })
		}},
		{"groups", func(ctx context.Context) ([]decoded, error) {
			return drain(c.Groups(ctx), func(g Group) decoded { return decoded{ID: g.ID} })
		}},
		{"members", func(ctx context.Context) ([]decoded, error) {
			return drain(c.Members(ctx, "g1"), func(m Member) decoded { return decoded{ID: m.ID, Type: m.Type} })
		}},
		{"transitive users", func(ctx context.Context) ([]decoded, error) {
			return drain(c.TransitiveUsers(ctx, "g1"), func(u User) decoded { return decoded{ID: u.ID} })
		}},
	}
	return p
}

// serve makes status and body the answer to the next Graph request.
func (p *pageServer) serve(status int, body []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.body, p.served = status, body, 0
}

// requests counts the Graph requests since serve.
func (p *pageServer) requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served
}

func (p *pageServer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == p.simHost && !strings.HasPrefix(req.URL.Path, "/v1.0/") {
		return p.sim.RoundTrip(req) // the token authority
	}
	p.mu.Lock()
	status, body := p.status, p.body
	if p.served > 0 {
		status, body = http.StatusOK, []byte(`{"value":[]}`)
		if p.follow != nil {
			body = p.follow
		}
	}
	p.served++
	p.mu.Unlock()
	if req.Body != nil {
		_ = req.Body.Close()
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

// drain reads a listing to its end or first error.
func drain[T any](seq iter.Seq2[[]T, error], conv func(T) decoded) ([]decoded, error) {
	var out []decoded
	for page, err := range seq {
		if err != nil {
			return out, err
		}
		for _, it := range page {
			out = append(out, conv(it))
		}
	}
	return out, nil
}

// oracle is a page as encoding/json reads it, keys matched exactly as the
// SDK matches them.
type oracle struct {
	ok    bool // encoding/json read a value array of objects
	items []map[string]json.RawMessage
}

func parseOracle(body []byte) oracle {
	var page map[string]json.RawMessage
	if json.Unmarshal(body, &page) != nil {
		return oracle{}
	}
	var items []map[string]json.RawMessage
	if json.Unmarshal(page["value"], &items) != nil {
		return oracle{}
	}
	return oracle{ok: true, items: items}
}

func checkDecodeError(t *testing.T, name string, status int, body []byte, err error) {
	t.Helper()
	if status >= 200 && status <= 299 {
		if !errors.Is(err, ErrMalformed) || !IsPermanent(err) {
			t.Fatalf("%s: HTTP %d, body %q: error is not a permanent ErrMalformed: %v", name, status, body, err)
		}
		return
	}
	var ge *Error
	if !errors.As(err, &ge) || ge.Status != status {
		t.Fatalf("%s: HTTP %d, body %q: error is not Graph's *Error with that status: %v", name, status, body, err)
	}
}

func checkDecoded(t *testing.T, name string, body []byte, want oracle, got []decoded) {
	t.Helper()
	for i, d := range got {
		if d.ID == "" {
			t.Fatalf("%s: item %d has no id, body %q", name, i, body)
		}
		if name == "members" && !slices.Contains(memberTypes, d.Type) {
			t.Fatalf("%s: item %d has an unknown member type %q, body %q", name, i, d.Type, body)
		}
	}
	if !want.ok {
		return
	}
	if len(got) != len(want.items) {
		t.Fatalf("%s: %d items decoded, encoding/json reads %d, body %q", name, len(got), len(want.items), body)
	}
	for i, d := range got {
		item := want.items[i]
		var id string
		if json.Unmarshal(item["id"], &id) != nil || id != d.ID {
			t.Fatalf("%s: item %d decoded with id %q, encoding/json reads %s, body %q", name, i, d.ID, item["id"], body)
		}
		if d.Enabled != nil {
			var enabled bool
			if json.Unmarshal(item["accountEnabled"], &enabled) != nil || enabled != *d.Enabled {
				t.Fatalf("%s: item %d decoded with accountEnabled %v, encoding/json reads %s, body %q", name, i, *d.Enabled, item["accountEnabled"], body)
			}
		}
		if name == "members" {
			var typ string
			_ = json.Unmarshal(item["@odata.type"], &typ)
			if memberTypeOf(typ) != d.Type {
				t.Fatalf("%s: item %d decoded as %q, its @odata.type is %q, body %q", name, i, d.Type, typ, body)
			}
		}
	}
}

var memberTypes = []MemberType{MemberUser, MemberGroup, MemberDevice, MemberOrgContact, MemberServicePrincipal, MemberOther}

// deltaFollow is the last page of a delta round, served after the page
// under test.
var deltaFollow = []byte(`{"value":[],"@odata.deltaLink":"https://graph.microsoft.com/v1.0/users/delta?$deltatoken=end"}`)

// deltaStatuses are the answers FuzzDecodeDeltaPage gives: those of
// FuzzDecodePage and a delta round's 410 Gone.
var deltaStatuses = append(slices.Clone(fuzzStatuses), http.StatusGone)

// deltaItem is one object of a delta page as a round returned it.
type deltaItem struct {
	ID      string
	Removed bool
	Members []Member // group member changes, added and removed
}

// newDeltaPageServer is a pageServer whose listings are delta rounds
// (users and groups) from "".
func newDeltaPageServer(tb testing.TB) *pageServer {
	p := newPageServer(tb)
	p.follow = deltaFollow
	c := p.client
	p.listings = []listing{
		{"users delta", func(ctx context.Context) ([]decoded, error) {
			items, err := drainDelta(c.UsersDelta(ctx, ""), func(pg UsersDeltaPage) ([]deltaItem, string) {
				var out []deltaItem
				for _, u := range pg.Changed {
					out = append(out, deltaItem{ID: u.ID})
				}
				for _, r := range pg.Removed {
					out = append(out, deltaItem{ID: r.ID, Removed: true})
				}
				return out, pg.DeltaLink
			})
			return toDecoded(items), err
		}},
		{"groups delta", func(ctx context.Context) ([]decoded, error) {
			items, err := drainDelta(c.GroupsDelta(ctx, ""), func(pg GroupsDeltaPage) ([]deltaItem, string) {
				var out []deltaItem
				for _, g := range pg.Changed {
					out = append(out, deltaItem{ID: g.ID, Members: slices.Concat(g.MembersAdded, g.MembersRemoved)})
				}
				for _, r := range pg.Removed {
					out = append(out, deltaItem{ID: r.ID, Removed: true})
				}
				return out, pg.DeltaLink
			})
			return toDecoded(items), err
		}},
	}
	return p
}

// drainDelta reads a delta round to its end or first error; a round that
// ends without a deltaLink is an error of the test.
func drainDelta[P any](seq iter.Seq2[P, error], conv func(P) ([]deltaItem, string)) ([]deltaItem, error) {
	var out []deltaItem
	link := ""
	for page, err := range seq {
		if err != nil {
			return out, err
		}
		items, l := conv(page)
		out = append(out, items...)
		link = l
	}
	if link == "" {
		return out, errors.New("test: the round ended without a deltaLink")
	}
	return out, nil
}

// toDecoded keeps what checkDeltaDecoded looks at: the id, removal
// (as Enabled, false for removed), and every member change as an item
// of type Type after its group.
func toDecoded(items []deltaItem) []decoded {
	var out []decoded
	for _, it := range items {
		present := !it.Removed
		out = append(out, decoded{ID: it.ID, Enabled: &present})
		for _, m := range it.Members {
			out = append(out, decoded{ID: m.ID, Type: m.Type})
		}
	}
	return out
}

// FuzzDecodeDeltaPage feeds one Graph answer as the first page of a users
// and of a groups delta round, then a last page with a deltaLink. Whatever
// the bytes, a round must end in bounded time with a classified error
// (ErrMalformed for a 2xx it cannot read, Graph's *Error with that status
// otherwise, also inside ErrResync) or pages that keep the model's
// promises: every object and member change has an id, every member a
// known type, and the objects are those of the body's value array as
// encoding/json reads it, each id once a page, removed when its last
// occurrence carries "@removed".
func FuzzDecodeDeltaPage(f *testing.F) {
	f.Add(http.StatusOK, []byte(`{"value":[{"id":"u1","accountEnabled":true},{"id":"u2","@removed":{"reason":"changed"}}],"@odata.deltaLink":"https://graph.microsoft.com/v1.0/users/delta?$deltatoken=a"}`))
	f.Add(http.StatusOK, []byte(`{"value":[{"id":"g1","accountEnabled":true,"members@delta":[{"@odata.type":"#microsoft.graph.user","id":"u1"},{"@odata.type":"#microsoft.graph.group","id":"g2","@removed":{"reason":"deleted"}}]},{"id":"g1","accountEnabled":true,"members@delta":[{"id":"u3"}]}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/groups/delta?$skiptoken=b"}`))
	f.Add(http.StatusOK, []byte(`{"value":[{"id":"u1","accountEnabled":true,"@removed":"yes","members@delta":{"id":"u2"}}],"@odata.deltaLink":"https://graph.microsoft.com/v1.0/users/delta?$deltatoken=a"}`))
	f.Add(http.StatusOK, []byte(`{"value":[{"id":"g1","accountEnabled":true,"members@delta":[null,{"id":7},{"id":"u1","@removed":{"reason":3}}]}],"@odata.deltaLink":"x"}`))
	f.Add(http.StatusOK, []byte(`{"value":[],"@odata.nextLink":"https://graph.microsoft.com/v1.0/users/delta?$skiptoken=b","@odata.deltaLink":"https://graph.microsoft.com/v1.0/users/delta?$deltatoken=a"}`))
	f.Add(http.StatusGone, []byte(`{"error":{"code":"resyncRequired","message":"Resync required."}}`))
	f.Add(http.StatusBadRequest, []byte(`{"error":{"code":"syncStateNotFound","message":"The sync state generation is not found."}}`))
	f.Add(http.StatusOK, []byte(`null`)) // the SDK panicked on it (exchangeOnce)

	p := newDeltaPageServer(f)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if !slices.Contains(deltaStatuses, status) {
			status = deltaStatuses[uint(status)%uint(len(deltaStatuses))]
		}
		checkDeltaAnswer(t, p, status, body)
	})
}

// checkDeltaAnswer serves status and body to every delta round of p and
// checks what each made of it.
func checkDeltaAnswer(t *testing.T, p *pageServer, status int, body []byte) {
	t.Helper()
	want := parseOracle(body)
	for _, l := range p.listings {
		p.serve(status, body)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		got, err := l.list(ctx)
		hung := ctx.Err()
		cancel()
		if hung != nil {
			t.Fatalf("%s: no answer after 30s (%v), status %d, body %q", l.name, hung, status, body)
		}
		if err != nil {
			if strings.HasPrefix(err.Error(), "test:") {
				t.Fatalf("%s: %v, body %q", l.name, err, body)
			}
			checkDecodeError(t, l.name, status, body, err)
			continue
		}
		if status < 200 || status > 299 {
			t.Fatalf("%s: HTTP %d accepted as a page: %+v", l.name, status, got)
		}
		checkDeltaDecoded(t, l.name, body, want, got)
	}
}

func checkDeltaDecoded(t *testing.T, name string, body []byte, want oracle, got []decoded) {
	t.Helper()
	objects := map[string]bool{} // id → removed
	var order []string
	for i, d := range got {
		if d.ID == "" {
			t.Fatalf("%s: item %d has no id, body %q", name, i, body)
		}
		if d.Enabled == nil { // a member change
			if !slices.Contains(memberTypes, d.Type) {
				t.Fatalf("%s: member %s has an unknown type %q, body %q", name, d.ID, d.Type, body)
			}
			continue
		}
		if _, dup := objects[d.ID]; dup {
			t.Fatalf("%s: object %s twice on one page, body %q", name, d.ID, body)
		}
		objects[d.ID] = !*d.Enabled
		order = append(order, d.ID)
	}
	if !want.ok {
		return
	}
	wantObjects := map[string]bool{}
	for i, item := range want.items {
		var id string
		if json.Unmarshal(item["id"], &id) != nil {
			t.Fatalf("%s: item %d accepted with id %s, body %q", name, i, item["id"], body)
		}
		// The SDK drops null annotations, as if absent.
		r, removed := item["@removed"]
		wantObjects[id] = removed && !bytes.Equal(bytes.TrimSpace(r), []byte("null"))
	}
	if !maps.Equal(objects, wantObjects) {
		t.Fatalf("%s: objects (id → removed) %v, encoding/json reads %v, body %q", name, objects, wantObjects, body)
	}
}
