package graph

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"strings"

	"github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
)

// Delta queries (concepts/delta-query-overview.md, delta-query-users.md,
// delta-query-groups.md, api-reference/v1.0/api/user-delta.md,
// group-delta.md).
//
// A round is one or more pages: every page but the last has an
// @odata.nextLink, the last an @odata.deltaLink, which is saved and
// followed, verbatim, to start the next round. Query options go on the
// first request of a round only; Graph encodes them in its links.
//
// What a changed object carries. The client never sends
// "Prefer: return=minimal", so by the docs' default ("return the same
// properties as initial delta request") every changed user or group comes
// with every selected property: the new value of those that changed
// (null included), the old value of those that did not, and nothing for a
// property that was never set. A property missing from a changed object
// therefore means "never set", which entrasync reads as it reads null:
// a changed User or Group is the object's whole current state, as a
// listing would give it, never a patch. (The overview's looser "at least
// the properties that have been updated" is what return=minimal gives.)
// accountEnabled is always set on a user; a changed user without it is
// ErrMalformed, as in a listing, rather than read as disabled.
//
// "@removed" (an object with an optional string "reason") and
// "members@delta" (an array of objects with "@odata.type", "id",
// "displayName" and their own "@removed") are decoded with the object
// (wire.go); anything of another shape is ErrMalformed. A null
// "@removed" or "members@delta" reads as absent (not removed, no member
// changes).

// DeltaResource names a collection that delta queries track.
type DeltaResource string

// Collections with delta queries that entrasync reads.
const (
	DeltaUsers  DeltaResource = "users"
	DeltaGroups DeltaResource = "groups"
)

// RemovalReason is why a delta round reports an object removed
// (the "reason" of its "@removed" annotation).
type RemovalReason string

// Reasons Graph gives; any other value is kept as Graph sent it, and ""
// means Graph gave none (the docs say the annotation "may" carry one).
const (
	// RemovedChanged: deleted and restorable from the deleted items
	// (a soft-deleted user or Microsoft 365 group).
	RemovedChanged RemovalReason = "changed"
	// RemovedDeleted: deleted for good.
	RemovedDeleted RemovalReason = "deleted"
)

// Removal is an object a delta round reports removed from the
// collection.
type Removal struct {
	ID     string
	Reason RemovalReason
}

// Restorable reports whether the object may come back (Graph said
// "changed": it waits in the deleted items). A restored object comes
// again, whole, in a later round.
func (r Removal) Restorable() bool { return r.Reason == RemovedChanged }

// UsersDeltaPage is one page of a users delta round. In a round started
// from "" (or from a 410's Location) Changed holds every user and
// Removed the users waiting in the deleted items; in a round from a
// deltaLink, the users created, changed, restored or removed since.
// Within a page an id is in at most one of Changed and Removed (the last
// of its occurrences on the page wins); an object can come again on a
// later page (Graph's replays), and the later page wins.
type UsersDeltaPage struct {
	Changed []User
	Removed []Removal
	// DeltaLink is set on the round's last page only: the link that
	// starts the next round. A round stopped before it has no link.
	DeltaLink string
}

// GroupsDeltaPage is one page of a groups delta round, like
// UsersDeltaPage, with each changed group's direct membership changes.
//
// A group with many members spans several pages: each copy carries the
// same properties and the next part of its members@delta. Within a page
// the copies are merged (one GroupDelta per id); across pages the caller
// merges by group id, in page order. Graph also replays objects and
// promises no order.
type GroupsDeltaPage struct {
	Changed   []GroupDelta
	Removed   []Removal
	DeltaLink string // set on the round's last page only
}

// GroupDelta is a group of a delta page: its properties (the whole
// current state, see the package's delta notes) and the direct membership
// changes this page carries for it.
//
// In a round started from "", and for a group created or restored since
// the last round, MembersAdded (over every page the group is on) is its
// whole direct membership, and a group absent from members@delta has no
// members. In a round from a deltaLink, a group without member changes
// has none. Group delta reports direct edges only: nested membership
// changes never show (compute the transitive sets locally).
type GroupDelta struct {
	Group
	// MembersAdded are members that joined, with their type and, when
	// Graph sent it, their name ("" otherwise; with $select=members
	// Graph sends only @odata.type and id).
	MembersAdded []Member
	// MembersRemoved are members that left ("@removed"; the object
	// itself may still exist). DisplayName is usually "".
	MembersRemoved []Member
}

// deltaGroupSelect is what group delta rounds select: the listing's
// properties, and members, so members@delta comes.
var deltaGroupSelect = append(append([]string(nil), groupSelect...), "members")

// UsersDelta reads one round of users delta queries, a page at a time.
// link "" starts a full round (every user, with the properties the users
// listing selects); otherwise link is a deltaLink from a previous round
// (or a 410's Location), followed verbatim. nextLinks are followed
// verbatim too; the last page carries the next round's DeltaLink.
//
// Pages are Graph's size (about 200 objects): delta takes no $top, so
// Config.PageSize does not apply. A link whose state Graph no longer has
// (expired after seven days, reset, 410 Gone) is an error wrapping
// ErrResync (*ResyncError): read the whole directory again. Token expiry
// is Graph's to judge; the client only reports it.
func (c *Client) UsersDelta(ctx context.Context, link string) iter.Seq2[UsersDeltaPage, error] {
	rb := c.sdk.Users().Delta()
	get := func(ctx context.Context, next string) ([]byte, error) {
		if next != "" {
			return c.sendRaw(ctx)(rb.WithUrl(next).ToGetRequestInformation(ctx, nil))
		}
		return c.sendRaw(ctx)(rb.ToGetRequestInformation(ctx, &users.DeltaRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.DeltaRequestBuilderGetQueryParameters{Select: userSelect},
		}))
	}
	return deltaPages(ctx, c, "users delta", link, get, userDeltaPage)
}

// GroupsDelta reads one round of groups delta queries, a page at a time,
// as UsersDelta does users; a full round selects the listing's properties
// and members, so that each group comes with members@delta.
func (c *Client) GroupsDelta(ctx context.Context, link string) iter.Seq2[GroupsDeltaPage, error] {
	rb := c.sdk.Groups().Delta()
	get := func(ctx context.Context, next string) ([]byte, error) {
		if next != "" {
			return c.sendRaw(ctx)(rb.WithUrl(next).ToGetRequestInformation(ctx, nil))
		}
		return c.sendRaw(ctx)(rb.ToGetRequestInformation(ctx, &groups.DeltaRequestBuilderGetRequestConfiguration{
			QueryParameters: &groups.DeltaRequestBuilderGetQueryParameters{Select: deltaGroupSelect},
		}))
	}
	return deltaPages(ctx, c, "groups delta", link, get, groupDeltaPage)
}

// LatestDeltaLink asks Graph for a deltaLink at "now" ($deltatoken=latest),
// with the properties UsersDelta and GroupsDelta select, without reading
// any object. Taken before a full enumeration (the listings), its link's
// first round reports every change made since, those made during the
// enumeration included, so nothing falls between the two.
//
// An answer that carries objects is ErrMalformed: the docs promise none.
func (c *Client) LatestDeltaLink(ctx context.Context, resource DeltaResource) (string, error) {
	var sel []string
	switch resource {
	case DeltaUsers:
		sel = userSelect
	case DeltaGroups:
		sel = deltaGroupSelect
	default:
		return "", fmt.Errorf("graph: latest delta link: unknown resource %q", resource)
	}
	q := url.Values{"$select": {strings.Join(sel, ",")}, "$deltatoken": {"latest"}}
	link := c.cfg.BaseURL + "/" + string(resource) + "/delta?" + q.Encode()
	var dl string
	var err error
	if resource == DeltaUsers {
		dl, err = latest(c.UsersDelta(ctx, link), func(p UsersDeltaPage) (int, string) {
			return len(p.Changed) + len(p.Removed), p.DeltaLink
		})
	} else {
		dl, err = latest(c.GroupsDelta(ctx, link), func(p GroupsDeltaPage) (int, string) {
			return len(p.Changed) + len(p.Removed), p.DeltaLink
		})
	}
	if err != nil {
		return "", fmt.Errorf("graph: latest %s delta link: %w", resource, err)
	}
	return dl, nil
}

// latest reads a $deltatoken=latest round: no objects, then a deltaLink.
func latest[P any](seq iter.Seq2[P, error], read func(P) (objects int, deltaLink string)) (string, error) {
	for p, err := range seq {
		if err != nil {
			return "", err
		}
		n, dl := read(p)
		if n > 0 {
			return "", fmt.Errorf("%w: $deltatoken=latest answered with %d objects", ErrMalformed, n)
		}
		if dl != "" {
			return dl, nil
		}
	}
	return "", fmt.Errorf("%w: no deltaLink", ErrMalformed)
}

// deltaPages follows one delta round from link ("" for a first request),
// converting each page as it comes.
func deltaPages[T, P any](ctx context.Context, c *Client, what, link string,
	get func(ctx context.Context, next string) ([]byte, error), convert func([]*T) (P, error),
) iter.Seq2[P, error] {
	return func(yield func(P, error) bool) {
		var zero P
		fail := func(page int, err error) {
			yield(zero, fmt.Errorf("graph: %s, page %d: %w", what, page, err))
		}
		if link != "" {
			if err := checkLink(link); err != nil {
				fail(0, fmt.Errorf("link %q: %w", link, err))
				return
			}
		}
		next := link
		for page := 0; ; page++ {
			if err := ctx.Err(); err != nil {
				fail(page, err)
				return
			}
			body, x, err := exchangeOnce(ctx, next, get)
			if err != nil {
				if ctx.Err() != nil {
					fail(page, ctx.Err())
					return
				}
				fail(page, asResync(translate(err, x), x))
				return
			}
			if body == nil {
				fail(page, fmt.Errorf("%w: empty body (HTTP %d)", ErrMalformed, x.status))
				return
			}
			resp, err := decodePage[T](body, x.status)
			if err != nil {
				fail(page, err)
				return
			}
			items := resp.Value
			out, err := convert(items)
			if err != nil {
				fail(page, err)
				return
			}
			nl, dl := deref(resp.NextLink), deref(resp.DeltaLink)
			switch {
			case nl != "" && dl != "":
				fail(page, fmt.Errorf("%w: both a nextLink and a deltaLink", ErrMalformed))
				return
			case nl == "" && dl == "":
				// A round ends with its deltaLink; without one the caller
				// would have nothing to resume from.
				fail(page, fmt.Errorf("%w: neither a nextLink nor a deltaLink", ErrMalformed))
				return
			case nl != "" && nl == next:
				fail(page, fmt.Errorf("%w: nextLink points to the same page", ErrMalformed))
				return
			}
			for _, l := range []string{nl, dl} {
				if l == "" {
					continue
				}
				if err := checkLink(l); err != nil {
					fail(page, fmt.Errorf("%w: link %q: %v", ErrMalformed, l, err))
					return
				}
			}
			if dl != "" {
				setDeltaLink(&out, dl)
			}
			c.log.Debug().Str("list", what).Int("page", page).Int("items", len(items)).Bool("more", nl != "").Msg("graph: delta page read")
			if !yield(out, nil) || nl == "" {
				return
			}
			next = nl
		}
	}
}

// checkLink accepts what Graph's links are: absolute URLs.
func checkLink(l string) error {
	u, err := url.Parse(l)
	if err != nil {
		return err
	}
	if !u.IsAbs() || u.Host == "" {
		return errors.New("not an absolute URL")
	}
	return nil
}

func setDeltaLink(p any, link string) {
	switch p := p.(type) {
	case *UsersDeltaPage:
		p.DeltaLink = link
	case *GroupsDeltaPage:
		p.DeltaLink = link
	}
}

// userDeltaPage converts a page of users: removed ones by their
// "@removed", the others as a listing converts them.
func userDeltaPage(items []*wireUser) (UsersDeltaPage, error) {
	type entry struct {
		user    *User
		removal *Removal
	}
	var order []string
	last := map[string]entry{}
	for i, u := range items {
		id := deref(u.ID)
		var e entry
		if u.Removed != nil {
			if id == "" {
				return UsersDeltaPage{}, fmt.Errorf("item %d: %w: removed user without id", i, ErrMalformed)
			}
			r := u.Removed.removal(id)
			e.removal = &r
		} else {
			user, err := toUser(u)
			if err != nil {
				return UsersDeltaPage{}, fmt.Errorf("item %d: %w", i, err)
			}
			e.user = &user
		}
		if _, seen := last[id]; !seen {
			order = append(order, id)
		}
		last[id] = e
	}
	var p UsersDeltaPage
	for _, id := range order {
		switch e := last[id]; {
		case e.removal != nil:
			p.Removed = append(p.Removed, *e.removal)
		default:
			p.Changed = append(p.Changed, *e.user)
		}
	}
	return p, nil
}

// groupDeltaPage converts a page of groups, merging the copies of a group
// the page holds: properties from the last copy, member changes from all
// copies since the group was last reported removed on the page, the
// later entry for a member winning.
func groupDeltaPage(items []*wireGroup) (GroupsDeltaPage, error) {
	type entry struct {
		group   *Group
		removal *Removal
		members []string // member ids in order of first appearance
		changes map[string]memberChange
	}
	var order []string
	last := map[string]*entry{}
	for i, g := range items {
		id := deref(g.ID)
		if id == "" {
			return GroupsDeltaPage{}, fmt.Errorf("item %d: %w: group without id", i, ErrMalformed)
		}
		if _, seen := last[id]; !seen {
			order = append(order, id)
		}
		if g.Removed != nil {
			r := g.Removed.removal(id)
			last[id] = &entry{removal: &r}
			continue
		}
		group, err := toGroup(g)
		if err != nil {
			return GroupsDeltaPage{}, fmt.Errorf("item %d: %w", i, err)
		}
		changes, err := membersDeltaOf(g.MembersDelta)
		if err != nil {
			return GroupsDeltaPage{}, fmt.Errorf("item %d (group %s): %w", i, id, err)
		}
		e := last[id]
		if e == nil || e.group == nil {
			e = &entry{changes: map[string]memberChange{}}
			last[id] = e
		}
		e.group = &group
		for _, ch := range changes {
			if _, seen := e.changes[ch.ID]; !seen {
				e.members = append(e.members, ch.ID)
			}
			e.changes[ch.ID] = ch
		}
	}
	var p GroupsDeltaPage
	for _, id := range order {
		e := last[id]
		if e.removal != nil {
			p.Removed = append(p.Removed, *e.removal)
			continue
		}
		gd := GroupDelta{Group: *e.group}
		for _, m := range e.members {
			ch := e.changes[m]
			if ch.removed {
				gd.MembersRemoved = append(gd.MembersRemoved, ch.Member)
			} else {
				gd.MembersAdded = append(gd.MembersAdded, ch.Member)
			}
		}
		p.Changed = append(p.Changed, gd)
	}
	return p, nil
}

// memberChange is one entry of members@delta.
type memberChange struct {
	Member
	removed bool
}

// membersDeltaOf reads a group's "members@delta": each entry needs an
// id; one without @odata.type is of a type entrasync does not model.
func membersDeltaOf(entries []*wireMember) ([]memberChange, error) {
	out := make([]memberChange, 0, len(entries))
	for i, m := range entries {
		if m == nil {
			return nil, fmt.Errorf("%w: members@delta entry %d is null", ErrMalformed, i)
		}
		member, err := toMember(m)
		if err != nil {
			return nil, fmt.Errorf("members@delta entry %d: %w", i, err)
		}
		out = append(out, memberChange{Member: member, removed: m.Removed != nil})
	}
	return out, nil
}
