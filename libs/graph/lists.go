package graph

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"golang.org/x/sync/errgroup"
)

// Many groups' lists are read through one stream of JSON batches
// (concepts/json-batching.md): every page of every list, the first and
// those a nextLink names, is an item of some batch. A batch holds the
// next pages of the lists being read (their nextLinks, as soon as the page
// before has come) and, in the room left, the first pages of lists not
// started yet. A long list's pages thus ride along with other lists'
// first pages instead of costing a round trip each, and a run's member
// lists take about one request per twenty pages whatever their lengths.
//
// A batch goes out when it is full, or, when nothing is in flight, with
// what there is: waiting would bring nothing more. ListOptions.Lanes
// says how many batches may be in flight at once. The fewer, the fuller
// each batch (a list's next page joins the batch after the one that
// brought its last page) and the steadier the draw on the tenant's Graph
// budget; the more, the sooner the lists are read.
//
// Each list goes to its reader (the caller's each), in a goroutine of its
// own, once its first page has come. A list is read at most listAhead
// pages ahead of its reader, and at most ListOptions.Open lists are open
// (started and not yet returned by their readers) at once, of which about
// ListOptions.Long run past their first page: memory holds a bounded
// number of pages however slowly the readers publish, and a bounded number
// of full ones however large the groups. (Without the second bound, the
// long lists of a tenant of 1M users, whose largest groups have hundreds
// of pages, filled the open lists' pages to 999 members each: a fetcher's
// peak resident set doubled from 100k users to 1M.)

// ListOptions tunes how MemberLists and TransitiveUserLists read.
type ListOptions struct {
	// Batch is the most requests one batch holds, 1..MaxBatch; 0 is
	// MaxBatch. A batch of one request is sent as that request alone (a
	// $batch around it would cost the same round trip), unless it is a
	// retry of a batch item, which goes on counting its attempts as
	// batch items do. 1 sends every page on its own.
	Batch int
	// Lanes is how many batches may be in flight at once; below 1 is one.
	Lanes int
	// Open is the most lists open at once; 0 is 8 × Batch.
	Open int
	// Long is how many open lists may have gone past their first page
	// before no new list is started; 0 is Batch. Those already asked
	// for may still turn long: at most Long - 1 + Lanes × Batch are.
	Long int
}

// listAhead is how many pages a list is read ahead of its reader. A
// reader waiting for its next page counts as having taken it, so the
// next page is asked as soon as one arrives, in time for the next batch,
// while the reader still publishes the one before. A reader that keeps
// up thus never waits on its list's read-ahead, and one that is blocked
// (its tenant's events in flight are at their bound) holds one page
// asked ahead, not two: a 1M-user tenant's long lists, each of 999-member
// pages, are where the fetcher's memory goes.
const listAhead = 1

// outCap is the room in a list's out channel, so that the loop never
// blocks handing out a page: pages asked and not taken are at most
// listAhead, one more while the reader waits, and a page can come with
// the error that ends its list (a bad nextLink).
const outCap = listAhead + 2

// MemberLists reads the direct member lists of groupIDs, as Members
// would, every page through the batches described above, and gives each
// group's list to each, in a goroutine of its own, once its first page
// has come. Lists go to each in the order their first pages come, not in
// the order of groupIDs.
//
// A list Graph answered with an error (404 for a group deleted since it
// was listed, 403) ends with the same *Error Members gives. A page
// answered 429, 503 or 504 is asked again in a later batch once its own
// Retry-After has passed (or after an exponential backoff when it has
// none), never before, at most Config.MaxAttempts times; then its answer
// ends its list. A Retry-After longer than Config.MaxRetryAfter ends the
// list with an error wrapping ErrWaitTooLong.
//
// The returned error is the first each returned, or a batch's own failure
// (after the retrier's attempts, or an answer that cannot be read), which
// cancels the lists being read. The lists given to each can be ranged
// over once.
func (c *Client) MemberLists(ctx context.Context, groupIDs []string, opts ListOptions,
	each func(ctx context.Context, groupID string, list iter.Seq2[[]Member, error]) error,
) error {
	return readLists(ctx, c, groupIDs, opts, listKind[wireMember, Member]{
		what: membersWhat, request: c.membersRequest, convert: toMember,
	}, each)
}

// TransitiveUserLists is MemberLists for the lists TransitiveUsers reads:
// groupIDs' transitive user lists, each page of each an advanced query
// with its header.
func (c *Client) TransitiveUserLists(ctx context.Context, groupIDs []string, opts ListOptions,
	each func(ctx context.Context, groupID string, list iter.Seq2[[]User, error]) error,
) error {
	return readLists(ctx, c, groupIDs, opts, listKind[wireUser, User]{
		what: transitiveWhat, request: c.transitiveRequest, convert: toUser,
	}, each)
}

// listKind is a kind of per-group list: how to name it, the request for
// one of its pages (next "" for the first), and how to convert an item.
type listKind[T, O any] struct {
	what    func(groupID string) string
	request func(ctx context.Context, groupID, next string) (*abs.RequestInformation, error)
	convert func(*T) (O, error)
}

// listPage is one page of a list, or the error that ends it.
type listPage[O any] struct {
	items []O
	err   error
}

// openList is one list as the reading loop keeps it. Only the loop
// touches its fields but taken and left, which its reader sets.
type openList[O any] struct {
	gid, what string
	out       chan listPage[O] // pages for the reader; cap outCap
	asked     int              // pages asked, the first included
	next      string           // nextLink of the page to ask next, once one has come
	held      bool             // next is known but waits for room ahead of the reader
	ended     bool             // the last page or the ending error is in out
	long      bool             // a page of it had a nextLink

	taken   atomic.Int32 // pages the reader has taken from out
	waiting atomic.Bool  // the reader waits for a page from out
	left    atomic.Bool  // the reader returned
}

// listItem is one page request waiting to be sent, or sent.
type listItem[O any] struct {
	l        *openList[O]
	page     int    // the page's number in its list
	next     string // "" for the first page
	attempts int
	due      time.Time // not to be sent before
	bo       interface{ NextBackOff() time.Duration }
}

// sentBatch is the answer to one batch.
type sentBatch[O any] struct {
	items   []*listItem[O]
	answers map[string]batchAnswer // by item index as id
	err     error
}

// lister reads one set of lists.
type lister[T, O any] struct {
	c    *Client
	kind listKind[T, O]
	opts ListOptions
	each func(ctx context.Context, groupID string, list iter.Seq2[[]O, error]) error

	// firsts are the groups whose lists are not started yet. A list's
	// state is made when it starts: made up front, it was 400 bytes for
	// each of a 1M-user tenant's 25,000 groups, a third of the fetcher's
	// live heap.
	firsts   []string
	due      []*listItem[O] // pages to ask, in the order they came
	lists    []*openList[O] // lists started, for the held ones' sake
	longs    []*openList[O] // long lists whose readers have not returned
	inflight int
	started  int          // lists whose first page was asked
	returned atomic.Int32 // readers that returned
	sleeping time.Time    // a timer wakes the loop then; zero: none

	wake    chan struct{}  // a reader took a page or returned
	alarm   chan time.Time // a timer set for then ran out
	answers chan sentBatch[O]
	sends   sync.WaitGroup // batches being sent, timers
	readers *errgroup.Group
	rctx    context.Context // the readers'
}

func readLists[T, O any](ctx context.Context, c *Client, groupIDs []string, opts ListOptions, kind listKind[T, O],
	each func(ctx context.Context, groupID string, list iter.Seq2[[]O, error]) error,
) error {
	if opts.Batch <= 0 || opts.Batch > MaxBatch {
		opts.Batch = MaxBatch
	}
	if opts.Open <= 0 {
		opts.Open = 8 * opts.Batch
	}
	if opts.Long <= 0 {
		opts.Long = opts.Batch
	}
	ls := &lister[T, O]{c: c, kind: kind, opts: opts, each: each,
		wake: make(chan struct{}, 1), alarm: make(chan time.Time), answers: make(chan sentBatch[O])}
	for _, gid := range groupIDs {
		if gid == "" {
			return fmt.Errorf("graph: lists of %s: group id is empty", kind.what("?"))
		}
	}
	ls.firsts = groupIDs

	// A batch's failure cancels the readers (ctx); the end of the loop,
	// for whatever reason, its timers and batches (lctx).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ls.readers, ls.rctx = errgroup.WithContext(ctx)
	lctx, lcancel := context.WithCancel(ls.rctx)
	err := ls.loop(lctx)
	lcancel()
	if err != nil {
		cancel()
	}
	ls.sends.Wait()
	readers := ls.readers
	if rerr := readers.Wait(); rerr != nil {
		return rerr
	}
	return err
}

// loop sends batches and hands out their answers until every list has
// ended; it returns a batch's own failure, or ctx's error.
func (ls *lister[T, O]) loop(ctx context.Context) error {
	for {
		for ls.inflight < ls.lanes() {
			items := ls.nextBatch()
			if items == nil {
				break
			}
			ls.inflight++
			ls.sends.Add(1)
			go ls.send(ctx, items)
		}
		if ls.inflight == 0 && len(ls.firsts) == 0 && len(ls.due) == 0 && !ls.anyHeld() {
			return nil
		}
		ls.sleepUntilDue(ctx)
		select {
		case b := <-ls.answers:
			ls.inflight--
			if b.err != nil {
				return b.err
			}
			ls.take(ctx, b)
		case <-ls.wake:
			ls.release()
		case t := <-ls.alarm:
			if t.Equal(ls.sleeping) {
				ls.sleeping = time.Time{}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (ls *lister[T, O]) lanes() int { return max(1, ls.opts.Lanes) }

// nextBatch takes the next batch's items: the pages due now, then first
// pages while there is room, in the batch and among the open lists. It
// is nil when no batch should go now: nothing is due, or the batch would
// not be full while one in flight may still bring more, or while first
// pages wait only for readers to make room.
func (ls *lister[T, O]) nextBatch() []*listItem[O] {
	now := ls.c.cfg.Clock()
	live := ls.due[:0]
	for _, it := range ls.due {
		if !it.l.left.Load() { // else its reader is gone
			live = append(live, it)
		}
	}
	clear(ls.due[len(live):])
	ls.due = live
	var ready []int // indexes in ls.due
	for i, it := range ls.due {
		if !it.due.After(now) {
			ready = append(ready, i)
		}
	}
	room := ls.opts.Open - (ls.started - int(ls.returned.Load()))
	if ls.openLongs() >= ls.opts.Long {
		room = 0 // readers of long lists returning will let more in
	}
	firsts := max(0, min(len(ls.firsts), room))
	n := min(ls.opts.Batch, len(ready)+firsts)
	switch {
	case n == 0:
		return nil
	case n < ls.opts.Batch && ls.inflight > 0:
		return nil
	case n < ls.opts.Batch && len(ready) == 0 && firsts < len(ls.firsts):
		return nil // readers returning will let more first pages in
	}
	items := make([]*listItem[O], 0, n)
	taken := map[int]bool{}
	for _, i := range ready[:min(n, len(ready))] {
		items = append(items, ls.due[i])
		taken[i] = true
	}
	keep := ls.due[:0]
	for i, it := range ls.due {
		if !taken[i] {
			keep = append(keep, it)
		}
	}
	clear(ls.due[len(keep):])
	ls.due = keep
	for len(items) < n {
		gid := ls.firsts[0]
		ls.firsts = ls.firsts[1:]
		l := &openList[O]{gid: gid, what: ls.kind.what(gid), out: make(chan listPage[O], outCap)}
		ls.started++
		l.asked = 1
		ls.lists = append(ls.lists, l)
		items = append(items, &listItem[O]{l: l})
	}
	return items
}

// send sends one batch (a lone request as ListOptions.Batch says) and
// hands its answers to the loop.
func (ls *lister[T, O]) send(ctx context.Context, items []*listItem[O]) {
	defer ls.sends.Done()
	b := sentBatch[O]{items: items}
	for _, it := range items {
		if it.attempts > 0 {
			ls.c.rt.retries.Add(1)
		}
		it.attempts++
	}
	b.answers = make(map[string]batchAnswer, len(items))
	if len(items) == 1 && (items[0].attempts == 1 || ls.opts.Batch == 1) {
		b.answers["0"] = ls.alone(ctx, items[0])
	} else {
		reqs := make([]batchRequest, 0, len(items))
		for k, it := range items {
			req, err := ls.c.batchItem(ctx, it.l.what, func(ctx context.Context) (*abs.RequestInformation, error) {
				return ls.kind.request(ctx, it.l.gid, it.next)
			})
			if err != nil { // this page cannot be asked: its list ends
				b.answers[strconv.Itoa(k)] = batchAnswer{err: err}
				continue
			}
			req.ID = strconv.Itoa(k)
			reqs = append(reqs, req)
		}
		if len(reqs) > 0 {
			answers, err := ls.c.postBatch(ctx, reqs)
			b.err = err
			for id, a := range answers {
				b.answers[id] = a
			}
		}
	}
	select {
	case ls.answers <- b:
	case <-ctx.Done():
	}
}

// alone sends one page request on its own, through the retrier (which
// waits out its 429s), and gives its answer as a batch item's: a
// successful body, or the error that ends the list.
func (ls *lister[T, O]) alone(ctx context.Context, it *listItem[O]) batchAnswer {
	body, x, err := exchangeOnce(ctx, it.next, func(ctx context.Context, next string) ([]byte, error) {
		return ls.c.sendRaw(ctx)(ls.kind.request(ctx, it.l.gid, next))
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return batchAnswer{err: ctx.Err()}
	case err != nil:
		return batchAnswer{err: translate(err, x)}
	case body == nil:
		return batchAnswer{err: fmt.Errorf("%w: empty body (HTTP %d)", ErrMalformed, x.status)}
	}
	return batchAnswer{Status: x.status, Body: body}
}

// take hands out one batch's answers: pages to their lists' readers,
// retryable answers back among the pages due, later.
func (ls *lister[T, O]) take(ctx context.Context, b sentBatch[O]) {
	now := ls.c.cfg.Clock()
	for k, it := range b.items {
		l := it.l
		a := b.answers[strconv.Itoa(k)]
		if l.left.Load() {
			continue // its reader is gone: nobody wants the page
		}
		if it.page == 0 && it.attempts == 1 {
			ls.startReader(l)
		}
		switch {
		case a.err != nil:
			ls.end(l, fmt.Errorf("graph: list %s, page %d: %w", l.what, it.page, a.err))
		case retryableStatus(a.Status):
			if err := ls.again(it, a, now); err != nil {
				ls.end(l, err)
			}
		case a.Status < 200 || a.Status > 299:
			ls.end(l, fmt.Errorf("graph: list %s, page %d: %w", l.what, it.page, a.graphError(now)))
		default:
			ls.page(l, it, a)
		}
	}
}

// page gives a list's reader one page Graph answered, and asks for the
// next if there is one and room ahead of the reader.
func (ls *lister[T, O]) page(l *openList[O], it *listItem[O], a batchAnswer) {
	items, nl, err := pageOf(ls.c, l.what, it.page, a.Body, a.Status, ls.kind.convert)
	switch {
	case err != nil:
		ls.end(l, err)
		return
	case nl == "":
		l.out <- listPage[O]{items: items}
		ls.end(l, nil)
		return
	}
	// The page goes to the reader before a bad nextLink ends its list, as
	// a list read on its own gives them.
	l.out <- listPage[O]{items: items}
	if err := checkNextLink(l.what, it.page, nl); err != nil {
		ls.end(l, err)
		return
	}
	if nl == it.next {
		ls.end(l, fmt.Errorf("graph: list %s, page %d: %w: nextLink points to the same page", l.what, it.page, ErrMalformed))
		return
	}
	l.next, l.held = nl, true
	if !l.long {
		l.long = true
		ls.longs = append(ls.longs, l)
	}
	ls.askNext(l)
}

// openLongs counts the long lists whose readers have not returned, and
// forgets the others.
func (ls *lister[T, O]) openLongs() int {
	keep := ls.longs[:0]
	for _, l := range ls.longs {
		if !l.left.Load() {
			keep = append(keep, l)
		}
	}
	clear(ls.longs[len(keep):])
	ls.longs = keep
	return len(keep)
}

// askNext puts a list's next page among the pages due when its reader
// has room for it.
func (ls *lister[T, O]) askNext(l *openList[O]) {
	taken := int(l.taken.Load())
	if l.waiting.Load() {
		taken++ // the page it waits for is as good as taken
	}
	if !l.held || l.asked-taken >= listAhead {
		return
	}
	ls.due = append(ls.due, &listItem[O]{l: l, page: l.asked, next: l.next})
	l.asked++
	l.held = false
}

// release asks the next pages of lists whose readers made room, and
// forgets lists whose readers returned.
func (ls *lister[T, O]) release() {
	keep := ls.lists[:0]
	for _, l := range ls.lists {
		if l.left.Load() {
			l.held = false
			continue
		}
		ls.askNext(l)
		if !l.ended {
			keep = append(keep, l)
		}
	}
	clear(ls.lists[len(keep):])
	ls.lists = keep
}

func (ls *lister[T, O]) anyHeld() bool {
	for _, l := range ls.lists {
		if l.held && !l.left.Load() {
			return true
		}
	}
	return false
}

// end ends a list: with err when it is not nil, else after its last page.
func (ls *lister[T, O]) end(l *openList[O], err error) {
	if err != nil {
		l.out <- listPage[O]{err: err}
	}
	close(l.out)
	l.ended, l.held = true, false
}

// again puts a page Graph answered 429, 503 or 504 back among the pages
// due, after its Retry-After, or returns the error that ends its list.
func (ls *lister[T, O]) again(it *listItem[O], a batchAnswer, now time.Time) error {
	c, l := ls.c, it.l
	ge := a.graphError(now)
	wait := ge.RetryAfter
	if a.Status == http.StatusTooManyRequests {
		c.rt.throttled.Add(1)
	}
	switch {
	case wait > c.cfg.MaxRetryAfter:
		c.log.Warn().Str("list", l.what).Int("status", a.Status).Dur("retry_after", wait).Dur("max", c.cfg.MaxRetryAfter).
			Msg("graph: batch item's Retry-After longer than this client waits out; giving up the list")
		return fmt.Errorf("graph: list %s, page %d: %w", l.what, it.page, &waitTooLongError{ge: ge, max: c.cfg.MaxRetryAfter})
	case it.attempts >= c.cfg.MaxAttempts:
		c.log.Warn().Str("list", l.what).Int("attempts", it.attempts).Int("status", a.Status).
			Msg("graph: giving up a batch item after the last attempt")
		return fmt.Errorf("graph: list %s, page %d: %w", l.what, it.page, ge)
	case wait == 0:
		if it.bo == nil {
			it.bo = newBackoff()
		}
		wait = it.bo.NextBackOff()
		if c.rt.observer != nil {
			c.rt.observer.GraphRetryWait(wait)
		}
	case c.rt.observer != nil:
		c.rt.observer.GraphThrottled(wait)
	}
	c.log.Debug().Str("list", l.what).Int("attempt", it.attempts).Int("status", a.Status).Dur("wait", wait).
		Msg("graph: batch item to be sent again")
	it.due = now.Add(wait)
	ls.due = append(ls.due, it)
	return nil
}

// sleepUntilDue makes sure the loop wakes when the earliest page waiting
// out a Retry-After is due, if nothing else would wake it first.
func (ls *lister[T, O]) sleepUntilDue(ctx context.Context) {
	now := ls.c.cfg.Clock()
	var earliest time.Time
	for _, it := range ls.due {
		if it.due.After(now) && (earliest.IsZero() || it.due.Before(earliest)) {
			earliest = it.due
		}
	}
	if earliest.IsZero() || (!ls.sleeping.IsZero() && !earliest.Before(ls.sleeping)) {
		return
	}
	ls.sleeping = earliest
	ls.sends.Add(1)
	go func() {
		defer ls.sends.Done()
		if ls.c.cfg.Sleep(ctx, earliest.Sub(now)) != nil {
			return
		}
		select {
		case ls.alarm <- earliest:
		case <-ctx.Done():
		}
	}()
}

// poke wakes the loop, unless a wake-up is already waiting.
func (ls *lister[T, O]) poke() {
	select {
	case ls.wake <- struct{}{}:
	default:
	}
}

// startReader gives a list to the caller's each, in a goroutine of its
// own.
func (ls *lister[T, O]) startReader(l *openList[O]) {
	ctx := ls.rctx
	seq := func(yield func([]O, error) bool) {
		for {
			l.waiting.Store(true)
			select {
			case p, ok := <-l.out:
				l.waiting.Store(false)
				if !ok {
					return
				}
				l.taken.Add(1)
				ls.poke()
				if !yield(p.items, p.err) || p.err != nil {
					return
				}
			case <-ctx.Done():
				l.waiting.Store(false)
				yield(nil, fmt.Errorf("graph: list %s: %w", l.what, ctx.Err()))
				return
			}
		}
	}
	l.waiting.Store(true) // its first page is on its way to it
	ls.readers.Go(func() error {
		defer func() {
			l.left.Store(true)
			ls.returned.Add(1)
			ls.poke()
		}()
		return ls.each(ctx, l.gid, seq)
	})
}
