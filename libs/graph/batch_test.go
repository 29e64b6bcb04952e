package graph

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"

	"github.com/entrasync/entrasync/services/graphsim"
)

// batchLists reads groupIDs' member lists through MembersBatch, each to
// its end, as "type:id" strings; errs holds each list's error.
func batchLists(t *testing.T, c *Client, groupIDs []string) (lists [][]string, errs []error) {
	t.Helper()
	seqs, err := c.MembersBatch(t.Context(), groupIDs)
	if err != nil {
		t.Fatalf("MembersBatch: %v", err)
	}
	if len(seqs) != len(groupIDs) {
		t.Fatalf("%d lists for %d groups", len(seqs), len(groupIDs))
	}
	lists, errs = make([][]string, len(seqs)), make([]error, len(seqs))
	for i, seq := range seqs {
		members, _, err := collect(t, seq, c.cfg.PageSize)
		for _, m := range members {
			lists[i] = append(lists[i], string(m.Type)+":"+m.ID)
		}
		errs[i] = err
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

// TestMembersBatchReadsEveryList: one batch reads the first page of every
// group's member list, Graph's answers (shuffled) are matched to their
// groups by id, a list longer than a page goes on from its nextLink one
// request a page, and a group that no longer exists is its list's 404,
// as Members gives it.
func TestMembersBatchReadsEveryList(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	cfg := f.config(t)
	cfg.PageSize = 2
	c := f.newClient(t, cfg)

	ids := groupIDs(f.dir)
	gone := guid()
	ids = append(ids[:2], append([]string{gone}, ids[2:]...)...)
	lists, errs := batchLists(t, c, ids)

	paged := 0
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
	}
	if paged == 0 {
		t.Fatal("no group has more than one page of members: the test proves no paging")
	}

	bs, items, single := batches(f.graphRequests())
	if len(bs) != 1 || len(items) != len(ids) {
		t.Fatalf("%d batches holding %d requests, want 1 holding %d", len(bs), len(items), len(ids))
	}
	for _, it := range items {
		q, _ := url.ParseQuery(it.RawQuery)
		if !strings.HasSuffix(it.Path, "/members") || q.Get("$select") != "id,displayName" || q.Get("$top") != "2" {
			t.Errorf("batch item %s?%s: want a first member page with $select and $top", it.Path, it.RawQuery)
		}
	}
	for _, r := range single {
		if q, _ := url.ParseQuery(r.RawQuery); !strings.HasSuffix(r.Path, "/members") || q.Get("$skiptoken") == "" {
			t.Errorf("request %s?%s outside the batch: want only later pages of member lists", r.Path, r.RawQuery)
		}
	}
	if len(single) == 0 {
		t.Error("no later page was read outside the batch")
	}
	if s := c.Stats(); s.Requests != int64(1+len(single)) || s.Throttled != 0 || s.Retries != 0 {
		t.Errorf("stats %+v, want %d requests (the batch and the later pages)", s, 1+len(single))
	}
}

// TestMembersBatchSplitsAtTwenty: more groups than a batch holds take
// as many batches as needed, none over Graph's 20.
func TestMembersBatchSplitsAtTwenty(t *testing.T) {
	t.Parallel()
	f := newFixture(t, graphsim.Spec{Seed: 5, Users: 40, Groups: 45})
	c := f.newClient(t, f.config(t))
	ids := groupIDs(f.dir)
	if len(ids) <= 2*MaxBatch {
		t.Fatalf("%d groups: want more than two batches' worth", len(ids))
	}
	lists, errs := batchLists(t, c, ids)
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

// TestMembersBatchRetriesAThrottledItem: Graph throttles one request of
// the batch (a 429 inside the batch's 200). That request alone goes
// again, in a batch of its own, no sooner than its Retry-After; the
// others are not asked twice.
func TestMembersBatchRetriesAThrottledItem(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	const retryAfter = 300 * time.Millisecond
	f.sim.SetFaults(f.tenant, graphsim.Faults{FailNext: []int{http.StatusTooManyRequests}, RetryAfter: "0.3"})
	rec := &sleeps{}
	cfg := f.config(t)
	cfg.Sleep = rec.sleep
	c := f.newClient(t, cfg)

	ids := groupIDs(f.dir)
	lists, errs := batchLists(t, c, ids)
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

// TestMembersBatchLongRetryAfterEndsTheList: a throttled item whose
// Retry-After is longer than the client waits ends its list with
// ErrWaitTooLong and is not sent again; the other lists are read.
func TestMembersBatchLongRetryAfterEndsTheList(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	f.sim.SetFaults(f.tenant, graphsim.Faults{FailNext: []int{http.StatusTooManyRequests}, RetryAfter: "30"})
	cfg := f.config(t)
	cfg.MaxRetryAfter = time.Second
	c := f.newClient(t, cfg)
	ids := groupIDs(f.dir)
	lists, errs := batchLists(t, c, ids)
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

// TestMembersBatchGivesUpAfterMaxAttempts: an item throttled on every
// attempt is its list's 429 after MaxAttempts batches.
func TestMembersBatchGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	const attempts = 3
	f.sim.SetFaults(f.tenant, graphsim.Faults{FailNext: slices.Repeat([]int{http.StatusTooManyRequests}, attempts), RetryAfter: "0.01"})
	cfg := f.config(t)
	cfg.MaxAttempts = attempts
	c := f.newClient(t, cfg)
	// One group, so that every fault falls on it.
	gid := f.dir.Groups()[0].ID
	_, errs := batchLists(t, c, []string{gid})
	if !IsThrottled(errs[0]) || errors.Is(errs[0], ErrWaitTooLong) {
		t.Errorf("list after %d throttled attempts: %v; want Graph's 429", attempts, errs[0])
	}
	if bs, items, _ := batches(f.graphRequests()); len(bs) != attempts || len(items) != attempts {
		t.Errorf("%d batches, %d items; want %d of each", len(bs), len(items), attempts)
	}
	if s := c.Stats(); s != (Stats{Requests: attempts, Throttled: attempts, Retries: attempts - 1}) {
		t.Errorf("stats %+v", s)
	}
}

// TestTransitiveUsersBatchReadsEveryList: TransitiveUsersBatch reads the
// first page of each group's transitive user list in one batch, each item
// the advanced query TransitiveUsers sends on its own (the cast with
// $count=true, $select and $top, and ConsistencyLevel: eventual), and
// every list, paged on from its nextLink, holds the group's nested users
// with their properties.
func TestTransitiveUsersBatchReadsEveryList(t *testing.T) {
	t.Parallel()
	f := newFixture(t, smallSpec)
	cfg := f.config(t)
	cfg.PageSize = 2
	c := f.newClient(t, cfg)
	ids := groupIDs(f.dir)

	seqs, err := c.TransitiveUsersBatch(t.Context(), ids)
	if err != nil || len(seqs) != len(ids) {
		t.Fatalf("TransitiveUsersBatch: %d lists for %d groups, %v", len(seqs), len(ids), err)
	}
	paged := 0
	for i, gid := range ids {
		users, _, err := collect(t, seqs[i], cfg.PageSize)
		if err != nil {
			t.Errorf("transitive users of %s: %v", gid, err)
			continue
		}
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
	}
	if paged == 0 {
		t.Fatal("no group has more than one page of transitive users: the test proves no paging")
	}
	bs, items, _ := batches(f.graphRequests())
	if len(bs) != 1 || len(items) != len(ids) {
		t.Fatalf("%d batches holding %d requests, want 1 holding %d", len(bs), len(items), len(ids))
	}
	for _, it := range items {
		q, _ := url.ParseQuery(it.RawQuery)
		if !strings.HasSuffix(it.Path, "/transitiveMembers/graph.user") || q.Get("$count") != "true" ||
			q.Get("$select") == "" || q.Get("$top") != "2" {
			t.Errorf("batch item %s?%s: want the first page of the cast as an advanced query", it.Path, it.RawQuery)
		}
	}
	item, err := c.batchItem(t.Context(), "transitive users", func(ctx context.Context) (*abs.RequestInformation, error) {
		return c.sdk.Groups().ByGroupId(ids[0]).TransitiveMembers().GraphUser().ToGetRequestInformation(ctx, c.transitiveConfig())
	})
	if err != nil || !strings.EqualFold(headerOf(item.Headers, "ConsistencyLevel"), "eventual") {
		t.Errorf("batch item %+v (%v): want the header ConsistencyLevel: eventual", item, err)
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
