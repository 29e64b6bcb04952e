package graph

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/services/graphsim"
)

// batchLists reads groupIDs' member lists through MemberLists, each to
// its end, as "type:id" strings; errs holds each list's error. Every
// list must be handed out exactly once.
func batchLists(t *testing.T, c *Client, groupIDs []string, opts ListOptions) (lists [][]string, errs []error) {
	t.Helper()
	at := map[string]int{}
	for i, gid := range groupIDs {
		at[gid] = i
	}
	lists, errs = make([][]string, len(groupIDs)), make([]error, len(groupIDs))
	var mu sync.Mutex
	handed := map[string]int{}
	err := c.MemberLists(t.Context(), groupIDs, opts, func(_ context.Context, gid string, seq iter.Seq2[[]Member, error]) error {
		members, _, err := collect(t, seq, c.cfg.PageSize)
		mu.Lock()
		defer mu.Unlock()
		i := at[gid]
		handed[gid]++
		for _, m := range members {
			lists[i] = append(lists[i], string(m.Type)+":"+m.ID)
		}
		errs[i] = err
		return nil
	})
	if err != nil {
		t.Fatalf("MemberLists: %v", err)
	}
	for _, gid := range groupIDs {
		if handed[gid] != 1 {
			t.Errorf("the list of %s was handed out %d times, want once", gid, handed[gid])
		}
	}
	return lists, errs
}

// groupIDs are the directory's groups' ids.
func groupIDs(dir *graphsim.Directory) []string {
	var ids []string
	for _, g := range dir.Groups() {
		ids = append(ids, g.ID)
	}
	return ids
}

// directMembers is the directory's truth in batchLists' form.
func directMembers(dir *graphsim.Directory, groupID string) []string {
	var out []string
	for _, m := range dir.DirectMembers(groupID) {
		out = append(out, string(m.Type)+":"+m.ID)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// batches are the $batch requests of a request log; items, the requests
// Graph answered inside them.
func batches(reqs []graphsim.Request) (batches, items, single []graphsim.Request) {
	for _, r := range reqs {
		switch {
		case r.InBatch:
			items = append(items, r)
		case strings.HasSuffix(r.Path, "/$batch"):
			batches = append(batches, r)
		default:
			single = append(single, r)
		}
	}
	return batches, items, single
}

// TestMemberListsReadEveryList: batches read every page of every group's
// member list, the first pages with the query options and later ones
// from their nextLinks; Graph's answers (shuffled) are matched to their
// lists by id, and a group that no longer exists is its list's 404, as
// Members gives it.
func TestMemberListsReadEveryList(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	cfg := f.config(t)
	cfg.PageSize = 2
	c := f.newClient(t, cfg)

	ids := groupIDs(f.dir)
	gone := guid()
	ids = append(ids[:2], append([]string{gone}, ids[2:]...)...)
	lists, errs := batchLists(t, c, ids, ListOptions{})

	paged, pages := 0, 1 // the deleted group's 404
	for i, gid := range ids {
		if gid == gone {
			var ge *Error
			if !errors.As(errs[i], &ge) || ge.Status != http.StatusNotFound || ge.Code != "Request_ResourceNotFound" {
				t.Errorf("list of the deleted group: %v, want Graph's 404 Request_ResourceNotFound", errs[i])
			}
			if !strings.Contains(errs[i].Error(), "members of group "+gone) {
				t.Errorf("the deleted group's error %q does not name it", errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("members of %s: %v", gid, errs[i])
			continue
		}
		want := directMembers(f.dir, gid)
		if !sameSet(lists[i], want) {
			t.Errorf("members of %s:\n got %v\nwant %v", gid, lists[i], want)
		}
		if len(want) > cfg.PageSize {
			paged++
		}
		pages += max(1, (len(want)+cfg.PageSize-1)/cfg.PageSize)
	}
	if paged == 0 {
		t.Fatal("no group has more than one page of members: the test proves no paging")
	}

	// A batch would hold a lone first try alone: it goes on its own.
	bs, items, single := batches(f.graphRequests())
	if len(items)+len(single) != pages || len(single) >= len(items) {
		t.Fatalf("%d batches holding %d requests and %d requests alone; want the %d pages, most in batches",
			len(bs), len(items), len(single), pages)
	}
	firsts, later := 0, 0
	for _, it := range slices.Concat(items, single) {
		q, _ := url.ParseQuery(it.RawQuery)
		switch {
		case !strings.HasSuffix(it.Path, "/members"):
			t.Errorf("batch item %s: want a member page", it.Path)
		case q.Get("$skiptoken") != "":
			later++
		case q.Get("$select") == "id,displayName" && q.Get("$top") == "2":
			firsts++
		default:
			t.Errorf("batch item %s?%s: want a first member page with $select and $top, or a nextLink", it.Path, it.RawQuery)
		}
	}
	if firsts != len(ids) || later != pages-len(ids) {
		t.Errorf("%d first pages and %d later ones; want %d and %d", firsts, later, len(ids), pages-len(ids))
	}
	if s := c.Stats(); s.Requests != int64(len(bs)+len(single)) || s.Throttled != 0 || s.Retries != 0 {
		t.Errorf("stats %+v, want %d requests (the batches and the pages alone)", s, len(bs)+len(single))
	}
}

// TestMemberListsLaterPagesRideAlong: a long list's later pages go in the
// batches that carry other lists' first pages, so that 3 batches read 43
// pages (a 3-page list and 40 lists of one), where reading later pages
// one request each takes 5. With one batch in flight every batch but the
// last is full.
func TestMemberListsLaterPagesRideAlong(t *testing.T) {
	t.Parallel()
	f := newFixture(t, graphsim.Spec{Seed: 9, Users: 12})
	users := f.dir.Users()
	long := f.dir.AddGroup(graphsim.Group{DisplayName: "Long", SecurityEnabled: true})
	for _, u := range users[:6] {
		if err := f.dir.AddMember(long.ID, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser}); err != nil {
			t.Fatal(err)
		}
	}
	ids := []string{long.ID}
	for i := range 40 {
		g := f.dir.AddGroup(graphsim.Group{DisplayName: fmt.Sprintf("Short %d", i), SecurityEnabled: true})
		if err := f.dir.AddMember(g.ID, graphsim.Member{ID: users[i%len(users)].ID, Type: graphsim.TypeUser}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, g.ID)
	}
	// Slow enough that each list's reader takes its page long before the
	// next batch is answered.
	f.sim.SetFaults(f.tenant, graphsim.Faults{Latency: 20 * time.Millisecond})
	cfg := f.config(t)
	cfg.PageSize = 2
	c := f.newClient(t, cfg)
	f.sim.ResetRequests()

	lists, errs := batchLists(t, c, ids, ListOptions{})
	for i, gid := range ids {
		if errs[i] != nil || !sameSet(lists[i], directMembers(f.dir, gid)) {
			t.Errorf("members of %s: %v, %v; want %v", gid, lists[i], errs[i], directMembers(f.dir, gid))
		}
	}
	bs, items, single := batches(f.graphRequests())
	if len(bs) != 3 || len(items) != 43 || len(single) != 0 {
		t.Fatalf("%d batches holding %d requests, %d requests alone; want 3 batches holding the 43 pages",
			len(bs), len(items), len(single))
	}
	// Items are logged before their batch, and one batch is in flight
	// at a time.
	var sizes []int
	n := 0
	for _, r := range f.graphRequests() {
		switch {
		case r.InBatch:
			n++
		case strings.HasSuffix(r.Path, "/$batch"):
			sizes = append(sizes, n)
			n = 0
		}
	}
	if !slices.Equal(sizes, []int{20, 20, 3}) {
		t.Errorf("batches of %v requests, want 20, 20 and 3", sizes)
	}
}

// TestMemberListsSplitAtTwenty: more groups than a batch holds take
// as many batches as needed, none over Graph's 20.
func TestMemberListsSplitAtTwenty(t *testing.T) {
	t.Parallel()
	f := newFixture(t, graphsim.Spec{Seed: 5, Users: 40, Groups: 45})
	c := f.newClient(t, f.config(t))
	ids := groupIDs(f.dir)
	if len(ids) <= 2*MaxBatch {
		t.Fatalf("%d groups: want more than two batches' worth", len(ids))
	}
	lists, errs := batchLists(t, c, ids, ListOptions{})
	for i, gid := range ids {
		if errs[i] != nil || !sameSet(lists[i], directMembers(f.dir, gid)) {
			t.Errorf("members of %s: %v, %v; want %v", gid, lists[i], errs[i], directMembers(f.dir, gid))
		}
	}
	bs, items, single := batches(f.graphRequests())
	if want := (len(ids) + MaxBatch - 1) / MaxBatch; len(bs) != want || len(items) != len(ids) || len(single) != 0 {
		t.Errorf("%d batches, %d items, %d other requests; want %d batches of %d items and nothing else",
			len(bs), len(items), len(single), want, len(ids))
	}
}

// TestMemberListsRetryAThrottledItem: Graph throttles one request of
// the batch (a 429 inside the batch's 200). That request alone goes
// again, in a batch of its own, no sooner than its Retry-After; the
// others are not asked twice.
func TestMemberListsRetryAThrottledItem(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	const retryAfter = 300 * time.Millisecond
	f.sim.SetFaults(f.tenant, graphsim.Faults{FailNext: []int{http.StatusTooManyRequests}, RetryAfter: "0.3"})
	rec := &sleeps{}
	cfg := f.config(t)
	cfg.Sleep = rec.sleep
	c := f.newClient(t, cfg)

	ids := groupIDs(f.dir)
	lists, errs := batchLists(t, c, ids, ListOptions{})
	for i, gid := range ids {
		if errs[i] != nil || !sameSet(lists[i], directMembers(f.dir, gid)) {
			t.Errorf("members of %s: %v, %v; want %v", gid, lists[i], errs[i], directMembers(f.dir, gid))
		}
	}

	bs, items, _ := batches(f.graphRequests())
	if len(bs) != 2 || len(items) != len(ids)+1 {
		t.Fatalf("%d batches holding %d requests; want 2: all %d groups, then the throttled one", len(bs), len(items), len(ids))
	}
	var throttled, again graphsim.Request
	for _, it := range items {
		switch {
		case it.Status == http.StatusTooManyRequests:
			throttled = it
		case !throttled.At.IsZero() && it.Path == throttled.Path:
			again = it
		}
	}
	if throttled.At.IsZero() || again.At.IsZero() {
		t.Fatalf("want a throttled item and the same request again; items %+v", items)
	}
	if gap := again.At.Sub(throttled.At); gap < retryAfter {
		t.Errorf("the throttled request was sent again %s after its 429, before its Retry-After of %s", gap, retryAfter)
	}
	seen := map[string]int{}
	for _, it := range items {
		seen[it.Path]++
	}
	for p, n := range seen {
		if n > 1 && p != throttled.Path {
			t.Errorf("%s was asked %d times; only the throttled request goes again", p, n)
		}
	}
	if w := rec.got(); len(w) != 1 || w[0] > retryAfter || w[0] < retryAfter-100*time.Millisecond {
		t.Errorf("waits %v, want one of the Retry-After's %s", w, retryAfter)
	}
	if s := c.Stats(); s != (Stats{Requests: 2, Throttled: 1, Retries: 1}) {
		t.Errorf("stats %+v, want 2 requests (batches), 1 throttled item, 1 retry", s)
	}
}

// TestMemberListsLongRetryAfterEndsTheList: a throttled item whose
// Retry-After is longer than the client waits ends its list with
// ErrWaitTooLong and is not sent again; the other lists are read.
func TestMemberListsLongRetryAfterEndsTheList(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	f.sim.SetFaults(f.tenant, graphsim.Faults{FailNext: []int{http.StatusTooManyRequests}, RetryAfter: "30"})
	cfg := f.config(t)
	cfg.MaxRetryAfter = time.Second
	c := f.newClient(t, cfg)
	ids := groupIDs(f.dir)
	lists, errs := batchLists(t, c, ids, ListOptions{})
	tooLong := 0
	for i, gid := range ids {
		switch {
		case errors.Is(errs[i], ErrWaitTooLong):
			tooLong++
			var ge *Error
			if !errors.As(errs[i], &ge) || ge.Status != http.StatusTooManyRequests || ge.RetryAfter != 30*time.Second {
				t.Errorf("list of %s: %v; want Graph's 429 with its Retry-After", gid, errs[i])
			}
		case errs[i] != nil || !sameSet(lists[i], directMembers(f.dir, gid)):
			t.Errorf("members of %s: %v, %v", gid, lists[i], errs[i])
		}
	}
	if bs, _, _ := batches(f.graphRequests()); tooLong != 1 || len(bs) != 1 {
		t.Errorf("%d lists ended waiting too long after %d batches; want 1 after 1", tooLong, len(bs))
	}
}

// TestMemberListsGiveUpAfterMaxAttempts: items throttled on every attempt
// are their lists' 429 after MaxAttempts batches.
func TestMemberListsGiveUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	const attempts = 3
	f.sim.SetFaults(f.tenant, graphsim.Faults{FailNext: slices.Repeat([]int{http.StatusTooManyRequests}, 2*attempts), RetryAfter: "0.01"})
	cfg := f.config(t)
	cfg.MaxAttempts = attempts
	c := f.newClient(t, cfg)
	// Two groups, so that every fault falls on them.
	ids := groupIDs(f.dir)[:2]
	_, errs := batchLists(t, c, ids, ListOptions{})
	for i := range ids {
		if !IsThrottled(errs[i]) || errors.Is(errs[i], ErrWaitTooLong) {
			t.Errorf("list after %d throttled attempts: %v; want Graph's 429", attempts, errs[i])
		}
	}
	if bs, items, _ := batches(f.graphRequests()); len(bs) != attempts || len(items) != 2*attempts {
		t.Errorf("%d batches, %d items; want %d batches of 2", len(bs), len(items), attempts)
	}
	if s := c.Stats(); s != (Stats{Requests: attempts, Throttled: 2 * attempts, Retries: 2 * (attempts - 1)}) {
		t.Errorf("stats %+v", s)
	}
}

// TestTransitiveUserListsReadEveryList: TransitiveUserLists reads every
// page of each group's transitive user list in batches, each first page
// the advanced query TransitiveUsers sends on its own (the cast with
// $count=true, $select and $top, and ConsistencyLevel: eventual), each
// later page its nextLink with the same header, and every list holds the
// group's nested users with their properties.
func TestTransitiveUserListsReadEveryList(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	cfg := f.config(t)
	cfg.PageSize = 2
	c := f.newClient(t, cfg)
	ids := groupIDs(f.dir)

	var mu sync.Mutex
	read := map[string][]User{}
	err := c.TransitiveUserLists(t.Context(), ids, ListOptions{}, func(_ context.Context, gid string, seq iter.Seq2[[]User, error]) error {
		users, _, err := collect(t, seq, cfg.PageSize)
		if err != nil {
			t.Errorf("transitive users of %s: %v", gid, err)
		}
		mu.Lock()
		defer mu.Unlock()
		read[gid] = users
		return nil
	})
	if err != nil || len(read) != len(ids) {
		t.Fatalf("TransitiveUserLists: %d lists for %d groups, %v", len(read), len(ids), err)
	}
	paged, pages := 0, 0
	for _, gid := range ids {
		users := read[gid]
		var got, want []string
		for _, u := range users {
			got = append(got, u.ID)
			if u.UserPrincipalName == "" {
				t.Errorf("transitive user %s of %s came without its selected properties", u.ID, gid)
			}
		}
		for _, u := range f.dir.TransitiveUsers(gid) {
			want = append(want, u.ID)
		}
		if !sameSet(got, want) {
			t.Errorf("transitive users of %s:\n got %v\nwant %v", gid, got, want)
		}
		if len(want) > cfg.PageSize {
			paged++
		}
		pages += max(1, (len(want)+cfg.PageSize-1)/cfg.PageSize)
	}
	if paged == 0 {
		t.Fatal("no group has more than one page of transitive users: the test proves no paging")
	}
	_, items, single := batches(f.graphRequests())
	if len(items)+len(single) != pages || len(single) >= len(items) {
		t.Fatalf("%d pages read in batches and %d alone, want the %d pages, most in batches", len(items), len(single), pages)
	}
	var nextLink string
	for _, it := range slices.Concat(items, single) {
		q, _ := url.ParseQuery(it.RawQuery)
		switch {
		case !strings.HasSuffix(it.Path, "/transitiveMembers/graph.user"):
			t.Errorf("batch item %s: want a page of the cast", it.Path)
		case q.Get("$skiptoken") != "":
			nextLink = cfg.BaseURL + strings.TrimPrefix(it.Path, "/v1.0") + "?" + it.RawQuery
		case q.Get("$count") != "true" || q.Get("$select") == "" || q.Get("$top") != "2":
			t.Errorf("batch item %s?%s: want the first page of the cast as an advanced query", it.Path, it.RawQuery)
		}
	}
	for _, next := range []string{"", nextLink} {
		item, err := c.batchItem(t.Context(), "transitive users", func(ctx context.Context) (*abs.RequestInformation, error) {
			return c.transitiveRequest(ctx, ids[0], next)
		})
		if err != nil || !strings.EqualFold(headerOf(item.Headers, "ConsistencyLevel"), "eventual") {
			t.Errorf("batch item %+v (%v) for nextLink %q: want the header ConsistencyLevel: eventual", item, err, next)
		}
	}
}

// headerOf is a header of a batch item by name, regardless of case.
func headerOf(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// BenchmarkMemberListsLargeGroups reads the member lists of a directory
// whose largest groups fill many 999-member pages, twenty to a $batch:
// the fetcher's heaviest answers (about 2 MB each). Its B/op is what a
// batch's body costs in memory on its way from the connection to the
// decoded pages.
func BenchmarkMemberListsLargeGroups(b *testing.B) {
	f := newFixture(b, graphsim.Spec{Seed: 11, Users: 40_000, Groups: 30})
	cfg := f.config(b)
	cfg.Logger = zerolog.Nop()
	c := f.newClient(b, cfg)
	ids := groupIDs(f.dir)
	want := 0
	for _, gid := range ids {
		want += len(f.dir.DirectMembers(gid))
	}
	b.ReportAllocs()
	for b.Loop() {
		var mu sync.Mutex
		got := 0
		err := c.MemberLists(b.Context(), ids, ListOptions{}, func(_ context.Context, _ string, seq iter.Seq2[[]Member, error]) error {
			for page, err := range seq {
				if err != nil {
					return err
				}
				mu.Lock()
				got += len(page)
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if got != want {
			b.Fatalf("read %d members, the directory has %d", got, want)
		}
	}
}
