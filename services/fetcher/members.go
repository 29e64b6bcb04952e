package fetcher

import (
	"context"
	"sync/atomic"

	"github.com/entrasync/entrasync/libs/graph"
)

// memberBatches publishes every group's direct member list. Every page of
// every list is an item of the run's stream of Graph JSON batches
// (graph.MemberLists): a long list's later pages ride along with other
// lists' first pages, so the lists cost about one request per
// Config.MemberBatch pages. Graph meters each request of a batch as if
// sent alone: batching saves round trips, not resource units.
//
// While the users listing is still being read (usersRead not yet set),
// one batch at a time is in flight: the run's read cannot end before that
// chain of pages does, so reading the lists sooner gains nothing, and one
// batch at a time packs each batch fullest and draws on the tenant's
// Graph budget most evenly. Then GroupConcurrency batches go at once.
//
// Each list is published by a goroutine of its own, exactly as if it had
// been read on its own (same pages, parts and last marks). Pages get
// their numbers as they are made, so the run's pages stay numbered
// without gaps whatever order the lists finish in.
func (r *runner) memberBatches(ctx context.Context, groupIDs []string, usersRead *atomic.Bool) error {
	lanes := func() int {
		if usersRead.Load() {
			return r.f.cfg.GroupConcurrency
		}
		return 1
	}
	return r.client.MemberLists(ctx, groupIDs, graph.ListOptions{Batch: r.f.cfg.MemberBatch, Lanes: lanes}, r.memberLists)
}
