package fetcher

import (
	"cmp"
	"context"
	"errors"
	"sync"

	"github.com/entrasync/entrasync/libs/graph"
	"github.com/entrasync/entrasync/libs/plan"
	syncv1 "github.com/entrasync/entrasync/proto/entrasync/sync/v1"
)

// deltaRounds reads one users and one groups delta round from the
// tenant's saved links and publishes their pages; links receives the
// links the rounds ended with. It reports false, having published
// nothing that matters, when the run must read the whole directory
// instead: no saved links, links too old, a users filter (users delta
// takes no $filter but ids), Graph asking for a resync (410 Gone,
// syncStateNotFound, resyncRequired), or a round Graph refused otherwise
// or answered unreadably (refusedRound). Pages a round published before
// that stay: they are true changes, and the full read that follows sees
// everything anyway.
//
// The two rounds are read side by side. Each is a chain of pages, a
// nextLink leading to the next; they share nothing but the run's window
// of events in flight, and pages may be applied in any order (the events
// contract). A round Graph sends back to a resync, or refuses, lets the
// other finish:
// stopped mid-publish, it would leave a page number it took unpublished,
// and the run would wait for that page for ever. Any other error fails
// the attempt, so it stops the other round at once.
func (r *runner) deltaRounds(ctx context.Context, filter string, links *[2]string) (bool, error) {
	saved, err := r.f.store.DeltaLinks(ctx, r.tenant)
	if err != nil {
		return false, err
	}
	log := r.log.Info()
	switch {
	case saved.Users == "" || saved.Groups == "":
		log.Msg("no delta links saved yet; reading the whole directory")
		return false, nil
	case r.f.cfg.Clock().Sub(saved.TakenAt) > plan.MaxDeltaLinkAge:
		log.Time("taken_at", saved.TakenAt).Msg("delta links too old; reading the whole directory")
		return false, nil
	case filter != "":
		log.Msg("a users filter takes no delta round; reading the whole directory")
		return false, nil
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		failed, fallback error // fallback: a resync, or a refusedRound
	)
	from := [2]string{saved.Users, saved.Groups}
	for i, round := range [2]func(context.Context, string) (string, error){r.usersDelta, r.groupsDelta} {
		wg.Go(func() {
			link, err := round(rctx, from[i])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, graph.ErrResync), refusedRound(err):
				fallback = cmp.Or(fallback, err)
			case err != nil && failed == nil:
				failed = err // the first, not the other round's cancellation
				stop()
			}
			links[i] = link
		})
	}
	wg.Wait()
	switch {
	case failed != nil:
		*links = [2]string{}
		return false, failed
	case fallback != nil:
		r.log.Warn().Err(fallback).Msg("a delta round cannot go on from the saved links; reading the whole directory")
		*links = [2]string{}
		return false, nil
	}
	return true, nil
}

// refusedRound says whether err ends a delta round in a way the same link
// would end it again on every run until the link ages out (6 days): a
// refusal other than a resync (a 4xx such as 404), or an answer that
// cannot be read. The run reads the whole directory instead, as after a
// resync; a listing that meets the same trouble fails the run with it.
// Authentication failures are not among them: the listing would fail on
// them at once.
func refusedRound(err error) bool {
	return graph.IsPermanent(err) && !errors.Is(err, graph.ErrAuth)
}

// usersDelta publishes a users delta round's pages and returns the link
// the round ended with.
func (r *runner) usersDelta(ctx context.Context, link string) (string, error) {
	type item struct {
		user    *syncv1.User
		removed *syncv1.Removed
	}
	next := ""
	for page, err := range r.client.UsersDelta(ctx, link) {
		if err != nil {
			return "", err
		}
		items := make([]item, 0, len(page.Changed)+len(page.Removed))
		for _, u := range usersOf(page.Changed) {
			items = append(items, item{user: u})
		}
		for _, rm := range page.Removed {
			items = append(items, item{removed: &syncv1.Removed{Id: rm.ID, Restorable: rm.Restorable()}})
		}
		_, err = sendFitting(ctx, r, items, func(ev *syncv1.SyncEvent, its []item, _ int32, _ bool) {
			p := &syncv1.UsersDeltaPage{}
			for _, it := range its {
				if it.user != nil {
					p.Users = append(p.Users, it.user)
				} else {
					p.Removed = append(p.Removed, it.removed)
				}
			}
			ev.Body = &syncv1.SyncEvent_UsersDelta{UsersDelta: p}
		})
		if err != nil {
			return "", err
		}
		next = page.DeltaLink
	}
	return next, nil
}

// groupsDelta publishes a groups delta round's pages, each changed group
// with its direct member changes, and returns the link the round ended
// with.
//
// Graph may answer with one group whose members@delta fill the page
// (delta-query-groups.md), more than one event holds. Each member change
// is an item of its own, so sendFitting can spread a group's changes over
// several pages, the group with the first of them: a page's changes of
// one group are merged into one entry, and the store takes a group's
// changes on any page of the run.
func (r *runner) groupsDelta(ctx context.Context, link string) (string, error) {
	type item struct {
		group   *syncv1.Group
		gone    *syncv1.Removed
		groupID string // the group of a member change: added or removed
		added   *syncv1.Member
		removed string
	}
	next := ""
	for page, err := range r.client.GroupsDelta(ctx, link) {
		if err != nil {
			return "", err
		}
		items := make([]item, 0, len(page.Changed)+len(page.Removed))
		for _, g := range page.Changed {
			items = append(items, item{group: groupsOf([]graph.Group{g.Group})[0]})
			for _, m := range membersOf(g.MembersAdded) {
				items = append(items, item{groupID: g.ID, added: m})
			}
			for _, m := range g.MembersRemoved {
				items = append(items, item{groupID: g.ID, removed: m.ID})
			}
		}
		for _, rm := range page.Removed {
			items = append(items, item{gone: &syncv1.Removed{Id: rm.ID, Restorable: rm.Restorable()}})
		}
		_, err = sendFitting(ctx, r, items, func(ev *syncv1.SyncEvent, its []item, _ int32, _ bool) {
			p := &syncv1.GroupsDeltaPage{}
			changes := map[string]*syncv1.GroupMembersDelta{}
			for _, it := range its {
				switch {
				case it.group != nil:
					p.Groups = append(p.Groups, it.group)
				case it.gone != nil:
					p.Removed = append(p.Removed, it.gone)
				default:
					md := changes[it.groupID]
					if md == nil {
						md = &syncv1.GroupMembersDelta{GroupId: it.groupID}
						changes[it.groupID] = md
						p.Members = append(p.Members, md)
					}
					if it.added != nil {
						md.Added = append(md.Added, it.added)
					} else {
						md.Removed = append(md.Removed, it.removed)
					}
				}
			}
			ev.Body = &syncv1.SyncEvent_GroupsDelta{GroupsDelta: p}
		})
		if err != nil {
			return "", err
		}
		next = page.DeltaLink
	}
	return next, nil
}
