package graph

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entrasync/entrasync/services/graphsim"
)

// manyGroups adds n groups to f's directory, each with members users of
// its own, and returns their ids.
func manyGroups(t *testing.T, f *fixture, n, members int) []string {
	t.Helper()
	users := f.dir.Users()
	var ids []string
	for i := range n {
		g := f.dir.AddGroup(graphsim.Group{DisplayName: fmt.Sprintf("Group %d", i), SecurityEnabled: true})
		for j := range members {
			if err := f.dir.AddMember(g.ID, graphsim.Member{ID: users[(i+j)%len(users)].ID, Type: graphsim.TypeUser}); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, g.ID)
	}
	return ids
}

// TestMemberListsOpenAtMostOpen: with readers that keep their lists until
// the test lets them go, no more than ListOptions.Open lists are handed
// out at once, whatever the lanes would allow; every list is still read.
func TestMemberListsOpenAtMostOpen(t *testing.T) {
	t.Parallel()
	f := newFixture(t, graphsim.Spec{Seed: 3, Users: 10})
	ids := manyGroups(t, f, 24, 2)
	c := f.newClient(t, f.config(t))
	const open, batch = 6, 3

	var mu sync.Mutex
	cur, most, done := 0, 0, 0
	arrived := make(chan chan struct{}, len(ids)) // each reader's gate, as it has read its list
	read := make(chan error, 1)
	go func() {
		read <- c.MemberLists(t.Context(), ids, ListOptions{Batch: batch, Lanes: 8, Open: open},
			func(ctx context.Context, gid string, seq iter.Seq2[[]Member, error]) error {
				if _, _, err := collect(t, seq, 999); err != nil {
					return err
				}
				gate := make(chan struct{})
				mu.Lock()
				cur++
				most = max(most, cur)
				mu.Unlock()
				arrived <- gate
				select {
				case <-gate:
				case <-ctx.Done():
					return ctx.Err()
				}
				mu.Lock()
				cur--
				done++
				mu.Unlock()
				return nil
			})
	}()
	// Hold the readers until as many lists are open as may be, then let
	// the oldest go until there is room for a full batch of first pages
	// again (the pager waits for it); once every list is handed out, let
	// them all go. Else wait for the next reader.
	var held []chan struct{}
	draining := false
	timeout := time.After(30 * time.Second)
	for handed, released := 0, 0; released < len(ids); {
		switch {
		case len(held) >= open || handed == len(ids):
			draining = true
		case len(held) <= open-batch:
			draining = false
		}
		if draining && len(held) > 0 {
			close(held[0])
			held = held[1:]
			released++
			continue
		}
		select {
		case gate := <-arrived:
			held = append(held, gate)
			handed++
		case err := <-read:
			t.Fatalf("MemberLists returned with %d of %d lists released: %v", released, len(ids), err)
		case <-timeout:
			t.Fatalf("%d of %d lists handed out, %d released", handed, len(ids), released)
		}
	}
	if err := <-read; err != nil {
		t.Fatalf("MemberLists: %v", err)
	}
	if most > open || done != len(ids) {
		t.Errorf("%d lists open at once at most and %d read; want at most %d and %d", most, done, open, len(ids))
	}
}

// TestNoListStartsWhileLongListsAreOpen: lists that go past their first
// page hold full pages until their readers return, so once
// ListOptions.Long of them are open a batch carries no first page,
// however many more lists ListOptions.Open allows; a reader returning
// lets them in again. (Read through Graph, the rule is hard to catch at
// work: a batch fills with the long lists' next pages first.)
func TestNoListStartsWhileLongListsAreOpen(t *testing.T) {
	t.Parallel()
	const batch, long = 3, 2
	ls := &lister[wireMember, Member]{c: &Client{cfg: Config{Clock: time.Now}},
		kind: listKind[wireMember, Member]{what: membersWhat},
		opts: ListOptions{Batch: batch, Lanes: 1, Open: 100, Long: long}}
	for i := range 10 {
		ls.firsts = append(ls.firsts, fmt.Sprintf("g%d", i))
	}
	firsts := func(items []*listItem[Member]) int {
		n := 0
		for _, it := range items {
			if it.page == 0 {
				n++
			}
		}
		return n
	}
	if got := firsts(ls.nextBatch()); got != batch {
		t.Fatalf("first batch: %d first pages, want %d", got, batch)
	}
	// Two of the three lists went on past their first page; their
	// readers hold them.
	for _, l := range ls.lists[:long] {
		ls.page(l, &listItem[Member]{l: l}, batchAnswer{Status: 200,
			Body: []byte(`{"value":[],"@odata.nextLink":"https://graph.microsoft.com/v1.0/groups/` + l.gid + `/members?$skiptoken=2"}`)})
	}
	ls.due = nil // their next pages are not what this test is about
	if items := ls.nextBatch(); firsts(items) != 0 {
		t.Fatalf("with %d long lists open, a batch of %d items has %d first pages", long, len(items), firsts(items))
	}
	ls.lists[0].left.Store(true) // a long list's reader returned
	if got := firsts(ls.nextBatch()); got != batch {
		t.Fatalf("after a long list's reader returned: %d first pages, want %d", got, batch)
	}
}

// TestMemberListsReaderErrorEndsTheRead: the first error a reader returns
// is MemberLists', and the other readers' lists are cancelled.
func TestMemberListsReaderErrorEndsTheRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t, graphsim.Spec{Seed: 4, Users: 10})
	ids := manyGroups(t, f, 30, 1)
	c := f.newClient(t, f.config(t))
	boom := errors.New("publishing failed")
	err := c.MemberLists(t.Context(), ids, ListOptions{Batch: 5},
		func(ctx context.Context, gid string, seq iter.Seq2[[]Member, error]) error {
			if gid == ids[7] {
				return boom
			}
			_, _, err := collect(t, seq, 999)
			return err
		})
	if !errors.Is(err, boom) {
		t.Fatalf("MemberLists: %v, want the reader's error", err)
	}
	if _, items, _ := batches(f.graphRequests()); len(items) == len(ids) {
		t.Errorf("all %d lists were read after a reader failed", len(ids))
	}
}

// TestMemberListsReaderMayStopEarly: a reader that stops after a list's
// first page ends the read of that list: its later pages are not asked
// beyond the pages read ahead, and MemberLists returns once every reader
// has.
func TestMemberListsReaderMayStopEarly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, graphsim.Spec{Seed: 5, Users: 40})
	ids := manyGroups(t, f, 3, 40)
	cfg := f.config(t)
	cfg.PageSize = 2 // 20 pages a list
	c := f.newClient(t, cfg)
	err := c.MemberLists(t.Context(), ids, ListOptions{},
		func(ctx context.Context, gid string, seq iter.Seq2[[]Member, error]) error {
			for _, err := range seq {
				return err
			}
			return nil
		})
	if err != nil {
		t.Fatalf("MemberLists: %v", err)
	}
	_, items, single := batches(f.graphRequests())
	if asked := len(items) + len(single); asked > len(ids)*(1+listAhead) {
		t.Errorf("%d pages asked for %d lists whose readers stopped after one; want at most %d",
			asked, len(ids), len(ids)*(1+listAhead))
	}
}

// TestMemberListsBlockedReaderHoldsOnePageAhead: a reader that does not
// take its list's pages (its tenant's events in flight are at their
// bound) has one page asked ahead of those it took, not more, however
// many batches go by meanwhile; once it takes them, the list is read to
// its end. With one batch in flight at a time, a batch is sent only after
// the one before was answered and its pages handed out, so four batches
// sent leave the blocked list two batches in which to have asked more.
func TestMemberListsBlockedReaderHoldsOnePageAhead(t *testing.T) {
	t.Parallel()
	f := newFixture(t, graphsim.Spec{Seed: 8, Users: 40})
	ids := manyGroups(t, f, 31, 1)
	long := ids[0]
	users := f.dir.Users()
	for _, u := range users[1:20] {
		if err := f.dir.AddMember(long, graphsim.Member{ID: u.ID, Type: graphsim.TypeUser}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := f.config(t)
	cfg.PageSize = 2 // the long list: 10 pages; the others: 1
	c := f.newClient(t, cfg)
	f.sim.ResetRequests()

	longPages := func(reqs []graphsim.Request) int {
		n := 0
		for _, r := range reqs {
			if strings.Contains(r.Path, long) {
				n++
			}
		}
		return n
	}
	var aheadWhileBlocked int
	var read []Member
	err := c.MemberLists(t.Context(), ids, ListOptions{Batch: 5, Lanes: 1},
		func(ctx context.Context, gid string, seq iter.Seq2[[]Member, error]) error {
			first := true
			for ms, err := range seq {
				if err != nil {
					return err
				}
				if gid != long {
					continue
				}
				read = append(read, ms...)
				if !first {
					continue
				}
				first = false
				deadline := time.Now().Add(10 * time.Second)
				for {
					bs, _, _ := batches(f.graphRequests())
					if len(bs) >= 4 {
						break
					}
					if time.Now().After(deadline) {
						return fmt.Errorf("only %d batches sent while a reader held its list", len(bs))
					}
					time.Sleep(time.Millisecond)
				}
				aheadWhileBlocked = longPages(f.graphRequests()) - 1
			}
			return nil
		})
	if err != nil {
		t.Fatalf("MemberLists: %v", err)
	}
	if aheadWhileBlocked != 1 {
		t.Errorf("a reader that took 1 page and waited through 4 batches had %d pages asked ahead; want 1", aheadWhileBlocked)
	}
	if len(read) != 20 || longPages(f.graphRequests()) != 10 {
		t.Errorf("the long list read %d members in %d pages; want 20 in 10", len(read), longPages(f.graphRequests()))
	}
}
