package fetcher

import (
	"context"
	"slices"

	"golang.org/x/sync/errgroup"
)

// memberBatches publishes every group's direct member list. The first
// pages of Config.MemberBatch groups' lists are read in one Graph $batch
// (most groups' lists fit in one page, so most lists cost no round trip
// of their own); a list longer than a page goes on from its nextLink one
// request a page, as it would on its own. Graph meters each request of a
// batch as if sent alone: batching saves round trips, not resource units.
//
// GroupConcurrency batches are read and published at once; a batch's
// lists are published one after another, each exactly as if it had been
// read on its own (same pages, parts and last marks). Pages get their
// numbers as they are made, so the run's pages stay numbered without gaps
// whatever order the lists finish in.
func (r *runner) memberBatches(ctx context.Context, groupIDs []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.f.cfg.GroupConcurrency)
	for chunk := range slices.Chunk(groupIDs, r.f.cfg.MemberBatch) {
		g.Go(func() error {
			if len(chunk) == 1 {
				// A batch of one would cost a round trip all the same.
				return r.memberLists(gctx, chunk[0], r.client.Members(gctx, chunk[0]))
			}
			lists, err := r.client.MembersBatch(gctx, chunk)
			if err != nil {
				return err
			}
			for i, gid := range chunk {
				if err := r.memberLists(gctx, gid, lists[i]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}
