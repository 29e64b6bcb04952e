package fetcher

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"sync"

	"github.com/entrasync/entrasync/libs/graph"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

// readScope publishes, for a run read transitively (store.ReadTransitive),
// the users in the scope groups' nested memberships instead of the whole
// directory: each scope group's transitiveMembers cast to users, with
// the properties a users listing has. Each user goes out once, on a users
// page, the first time a list names it; each group's list goes out as
// TransitiveMembersPage parts, the last marked, as a member list would.
// The store judges such a run a scoped listing: it tombstones nobody for
// being outside it and takes the scope from the lists.
//
// Every page of the scope groups' lists is an item of the run's stream
// of Graph JSON batches (graph.TransitiveUserLists), GroupConcurrency
// batches at once, each list published by a goroutine of its own. The
// run keeps the ids of the users it published (so that a user in several
// scope groups is written once): memory grows with the scope, not with
// the tenant.
//
// A scope group Graph deleted since reads as an empty list (its users
// leave the scope, as when a full read finds the group gone); one whose
// members Graph refuses to show fails the run: without its list nobody
// can tell who is in scope, and a plan without it would take its users
// out of the app.
func (r *runner) readScope(ctx context.Context, groups []string) error {
	published := &publishedUsers{ids: map[string]bool{}}
	opts := graph.ListOptions{Batch: r.f.cfg.MemberBatch, Lanes: r.f.cfg.GroupConcurrency}
	err := r.client.TransitiveUserLists(ctx, groups, opts, func(ctx context.Context, gid string, list iter.Seq2[[]graph.User, error]) error {
		return r.scopeList(ctx, gid, list, published)
	})
	if err != nil {
		return err
	}
	r.log.Info().Int("scope_groups", len(groups)).Int("users", len(published.ids)).Msg("scope groups read transitively")
	return nil
}

// publishedUsers are the ids of the users a scoped run published, shared
// by the goroutines publishing its lists.
type publishedUsers struct {
	mu  sync.Mutex
	ids map[string]bool
}

// fresh returns those of users not published yet, and counts them as
// published.
func (p *publishedUsers) fresh(users []graph.User) []graph.User {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []graph.User
	for _, u := range users {
		if !p.ids[u.ID] {
			p.ids[u.ID] = true
			out = append(out, u)
		}
	}
	return out
}

// scopeList publishes one scope group's transitive user list: the users
// not published yet on users pages, and the list's TransitiveMembers
// pages.
func (r *runner) scopeList(ctx context.Context, gid string, list iter.Seq2[[]graph.User, error], published *publishedUsers) error {
	ids := func(yield func([]string, error) bool) {
		for users, err := range list {
			if err != nil {
				yield(nil, err)
				return
			}
			ids := make([]string, len(users))
			for i, u := range users {
				ids[i] = u.ID
			}
			fresh := published.fresh(users)
			if len(fresh) > 0 {
				_, err := sendFitting(ctx, r, fresh, func(ev *syncv1.SyncEvent, us []graph.User, _ int32, _ bool) {
					ev.Body = &syncv1.SyncEvent_Users{Users: &syncv1.UsersPage{Users: usersOf(us)}}
				})
				if err != nil {
					yield(nil, err)
					return
				}
			}
			if !yield(ids, nil) {
				return
			}
		}
	}
	err := eachPart(ctx, r, gid, ids, func(ev *syncv1.SyncEvent, ids []string, part int32, last bool) {
		ev.Body = &syncv1.SyncEvent_TransitiveMembers{TransitiveMembers: &syncv1.TransitiveMembersPage{
			GroupId: gid, UserIds: ids, Part: part, Last: last,
		}}
	})
	var ge *graph.Error
	if errors.As(err, &ge) && ge.Status == http.StatusForbidden {
		return &runFailure{err: err, msg: fmt.Sprintf("Graph refused the members of scope group %s (%s: %s); "+
			"without them the run cannot tell who is in scope", gid, ge.Code, ge.Message)}
	}
	return err
}
