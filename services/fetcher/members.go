package fetcher

import (
	"context"

	"github.com/entrasync/entrasync/libs/graph"
)

// memberBatches publishes every group's direct member list. Every page of
// every list is an item of the run's stream of Graph JSON batches
// (graph.MemberLists), GroupConcurrency batches in flight at once: a long
// list's later pages ride along with other lists' first pages, so the
// lists cost about one request per Config.MemberBatch pages. Graph meters
// each request of a batch as if sent alone: batching saves round trips,
// not resource units.
//
// Each list is published by a goroutine of its own, exactly as if it had
// been read on its own (same pages, parts and last marks), and only
// GroupConcurrency pages of lists wait for the tenant's window at once
// (eachPart). Pages get their numbers as they are made, so the run's pages
// stay numbered without gaps whatever order the lists finish in.
func (r *runner) memberBatches(ctx context.Context, groupIDs []string) error {
	opts := graph.ListOptions{Batch: r.f.cfg.MemberBatch, Lanes: r.f.cfg.GroupConcurrency}
	return r.client.MemberLists(ctx, groupIDs, opts, r.memberLists)
}
