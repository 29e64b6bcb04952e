package fetcher

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/entrasync/entrasync/libs/graph"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
	"github.com/entrasync/entrasync/services/graphsim"
)

// TestMemberListsAreBatched: a tenant of many small groups and a few
// longer ones. The run reads every page of their member lists, first and
// later ones, twenty to a Graph $batch: about one request per twenty
// pages, never fewer than that and never more than one per page of the
// longest list beyond it. It publishes exactly the pages that reading
// each list on its own gives: same members in the same order, same
// parts, same last marks.
func TestMemberListsAreBatched(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	users := e.dir.Users()
	for i := range 45 {
		g := e.dir.AddGroup(graphsim.Group{DisplayName: fmt.Sprintf("Team %d", i), SecurityEnabled: true})
		for j := range i % 4 { // 0 to 3 members: one page
			if err := e.dir.AddMember(g.ID, graphsim.Member{ID: users[(i+j)%len(users)].ID, Type: graphsim.TypeUser}); err != nil {
				t.Fatal(err)
			}
		}
	}
	rec := e.record()
	run := e.queueRun()
	e.startFetcher("fetcher-a", nil)
	evs := rec.waitEnd(t, run.ID)
	checkRun(t, e, run, evs)
	runReqs := e.graphRequests()

	got := map[string][]*syncv1.MembersPage{}
	for _, ev := range evs {
		if m := ev.GetMembers(); m != nil {
			got[m.GetGroupId()] = append(got[m.GetGroupId()], m)
		}
	}

	// Each list read on its own, as the run read them before batching.
	e.sim.ResetRequests()
	creds, err := e.st.TenantCredentials(t.Context(), e.tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := graph.New(e.graphConfig(), graph.Credentials{TenantID: creds.EntraTenantID, ClientID: creds.ClientID, ClientSecret: creds.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	groups := e.dir.Groups()
	alone, longer, longest := 0, 0, 0
	for _, g := range groups {
		var pages [][]graph.Member
		for ms, err := range c.Members(t.Context(), g.ID) {
			if err != nil {
				t.Fatalf("members of %s: %v", g.ID, err)
			}
			pages = append(pages, ms)
		}
		alone += len(pages)
		longest = max(longest, len(pages))
		if len(pages) > 1 {
			longer++
		}
		var want []*syncv1.MembersPage
		for i, ms := range pages {
			want = append(want, &syncv1.MembersPage{GroupId: g.ID, Members: membersOf(ms), Part: int32(i), Last: i == len(pages)-1})
		}
		have := slices.Clone(got[g.ID])
		slices.SortFunc(have, func(a, b *syncv1.MembersPage) int { return int(a.GetPart() - b.GetPart()) })
		if !slices.EqualFunc(have, want, func(a, b *syncv1.MembersPage) bool { return proto.Equal(a, b) }) {
			t.Errorf("group %s (%s): the run published\n%v\nreading the list on its own gives\n%v", g.ID, g.DisplayName, have, want)
		}
	}
	if longer == 0 {
		t.Fatal("no member list is longer than a page: nothing shows the later pages are read")
	}

	var batches, items, laterPages, total int
	for _, r := range runReqs {
		switch {
		case r.InBatch:
			items++
			continue
		case strings.HasSuffix(r.Path, "/$batch"):
			batches++
		case strings.HasSuffix(r.Path, "/members"):
			laterPages++
		}
		total++
	}
	n := len(groups)
	least := (alone + graph.MaxBatch - 1) / graph.MaxBatch
	// A lone page goes on its own rather than in a batch of one.
	if sent := batches + laterPages; items+laterPages != alone || sent < least || sent > least+longest-1 {
		t.Errorf("%d groups, %d member pages, the longest list %d pages: %d batches of %d requests and %d member pages alone; "+
			"want every page read in %d to %d requests", n, alone, longest, batches, items, laterPages, least, least+longest-1)
	}
	t.Logf("%d groups, %d member pages: the run sent %d Graph requests, %d for member lists (%d batches, %d pages alone); "+
		"one request a page would have sent %d, %d for member lists",
		n, alone, total, batches+laterPages, batches, laterPages, total-(batches+laterPages)+alone, alone)
}

// beforeFirstBatch runs do once, just before the first $batch request is
// sent.
type beforeFirstBatch struct {
	next http.RoundTripper
	once sync.Once
	do   func()
}

func (b *beforeFirstBatch) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/$batch") {
		b.once.Do(b.do)
	}
	return b.next.RoundTrip(req)
}

// TestBatchedListsGoneOrRefused: inside a batch, Graph refuses one
// group's member list (403, hidden membership without
// Member.Read.Hidden) and no longer has another (404: deleted after the
// group listing). As when each list is read on its own, the first is
// published as unreadable and the run goes on, the second is an empty
// list, one page marked last; every other list is complete.
func TestBatchedListsGoneOrRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	someone := e.dir.Users()[0].ID
	hidden := e.dir.AddGroup(graphsim.Group{DisplayName: "Hidden", SecurityEnabled: true, Visibility: "HiddenMembership"})
	doomed := e.dir.AddGroup(graphsim.Group{DisplayName: "Doomed", SecurityEnabled: true})
	for _, g := range []string{hidden.ID, doomed.ID} {
		if err := e.dir.AddMember(g, graphsim.Member{ID: someone, Type: graphsim.TypeUser}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.sim.SetPermissions(e.entra, graphsim.Permissions{NoHiddenMembership: true}); err != nil {
		t.Fatal(err)
	}
	listed := len(e.dir.Groups())
	hook := &beforeFirstBatch{next: e.sim.HTTPClient().Transport, do: func() {
		if err := e.dir.DeleteGroup(doomed.ID); err != nil {
			t.Error(err)
		}
	}}
	rec := e.record()
	run := e.queueRun()
	e.startFetcher("fetcher-a", func(c *Config) { c.Graph.Transport = hook })
	evs := rec.waitEnd(t, run.ID)
	if evs[len(evs)-1].GetFetched() == nil {
		t.Fatalf("the run did not fetch: %v", kinds(evs))
	}

	lasts := map[string]int{}
	var doomedPages []*syncv1.MembersPage
	var unreadable []*syncv1.GroupUnreadable
	for _, ev := range evs {
		if m := ev.GetMembers(); m != nil {
			if m.GetLast() {
				lasts[m.GetGroupId()]++
			}
			if m.GetGroupId() == doomed.ID {
				doomedPages = append(doomedPages, m)
			}
		}
		if u := ev.GetUnreadable(); u != nil {
			unreadable = append(unreadable, u)
		}
	}
	if len(unreadable) != 1 || unreadable[0].GetGroupId() != hidden.ID || unreadable[0].GetStatus() != http.StatusForbidden ||
		unreadable[0].GetCode() != "Authorization_RequestDenied" || lasts[hidden.ID] != 0 {
		t.Errorf("unreadable %v, %d last pages of the hidden group; want it alone unreadable with Graph's 403", unreadable, lasts[hidden.ID])
	}
	if len(doomedPages) != 1 || !doomedPages[0].GetLast() || len(doomedPages[0].GetMembers()) != 0 {
		t.Errorf("the deleted group's list: %v; want one empty page marked last", doomedPages)
	}
	if len(lasts) != listed-1 {
		t.Errorf("%d lists complete, want %d: every listed group's but the hidden one", len(lasts), listed-1)
	}
	for gid, n := range lasts {
		if n != 1 {
			t.Errorf("group %s: %d pages marked last", gid, n)
		}
	}
	var notFound int
	for _, r := range e.graphRequests() {
		if r.InBatch && r.Status == http.StatusNotFound {
			notFound++
		}
	}
	if notFound != 1 {
		t.Errorf("%d batch items answered 404, want the deleted group's", notFound)
	}
}
