package graphsim

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Delta queries: GET /users/delta and /groups/delta (also written
// delta(), microsoft.graph.delta and microsoft.graph.delta(): the SDK
// sends delta()). What follows Microsoft's documentation
// (concepts/delta-query-overview.md, delta-query-users.md,
// delta-query-groups.md, api-reference/v1.0/api/user-delta.md,
// group-delta.md) is described in README.md; in short:
//
//   - a round is one or more pages, each but the last with an
//     @odata.nextLink carrying only an opaque $skiptoken, the last with an
//     @odata.deltaLink carrying only an opaque $deltatoken;
//   - query options ($select, $filter=id eq ...) are taken on the first
//     request only and carried in the tokens;
//   - the first round serves every current object (and soft-deleted ones
//     as removed); later rounds the objects changed since the deltaLink;
//   - tokens are signed and expire (syncStateNotFound).

const (
	defaultDeltaPageSize    = 200
	defaultDeltaMemberChunk = 100
	defaultDeltaTokenTTL    = 7 * 24 * time.Hour
	maxDeltaFilterIDs       = 50
)

// deltaToken is the state a nextLink or deltaLink carries. Next tokens
// ($skiptoken) are in the middle of a round; delta tokens ($deltatoken)
// start the next one. Signed like skip tokens, so a client cannot craft
// or edit one.
type deltaToken struct {
	Next   bool     `json:"n,omitempty"` // a $skiptoken
	Tenant string   `json:"t"`
	Dir    string   `json:"e"` // the directory's epoch: a replaced directory invalidates tokens
	Coll   string   `json:"c"` // "users" or "groups"
	Select []string `json:"s,omitempty"`
	IDs    []string `json:"f,omitempty"`
	Issued int64    `json:"i"` // unix seconds by the server's clock

	// A delta token: changes after From. A next token: the round covers
	// (From, To], or every current object when Full.
	From  uint64 `json:"from"`
	To    uint64 `json:"to,omitempty"`
	Full  bool   `json:"full,omitempty"`
	After string `json:"a,omitempty"` // last object served
	// AfterMember: After is a group whose members@delta continue after
	// this member ID (by ID, so members changing between pages neither
	// shift nor hide the rest).
	AfterMember string `json:"m,omitempty"`
	Again       bool   `json:"r,omitempty"` // replay After at the start of the next page
}

func (s *Server) encodeDeltaToken(t deltaToken) string {
	payload, _ := json.Marshal(t)
	mac := s.mac(append([]byte("delta:"), payload...))[:16]
	return base64.RawURLEncoding.EncodeToString(append(mac, payload...))
}

func (s *Server) decodeDeltaToken(tok string) (deltaToken, bool) {
	var t deltaToken
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) <= 16 {
		return t, false
	}
	mac, payload := raw[:16], raw[16:]
	if !hmac.Equal(mac, s.mac(append([]byte("delta:"), payload...))[:16]) {
		return t, false
	}
	return t, json.Unmarshal(payload, &t) == nil
}

// isDeltaSegment reports whether a path segment names the delta function.
func isDeltaSegment(seg string) bool {
	switch strings.ToLower(seg) {
	case "delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()":
		return true
	}
	return false
}

var deltaFilterClause = regexp.MustCompile(`(?i)^\(?\s*id\s+eq\s+'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'\s*\)?$`)
var orSplit = regexp.MustCompile(`(?i)\s+or\s+`)

// parseDeltaFilter accepts the one filter the docs allow on users and
// groups delta: id eq '<id>', several joined by or, at most 50.
func parseDeltaFilter(f string) ([]string, *graphError) {
	var ids []string
	for _, clause := range orSplit.Split(strings.TrimSpace(f), -1) {
		m := deltaFilterClause.FindStringSubmatch(strings.TrimSpace(clause))
		if m == nil {
			return nil, badRequest("Request_UnsupportedQuery",
				"Unsupported query: delta supports only $filter=id eq '<id>', several joined by 'or'.")
		}
		if id := strings.ToLower(m[1]); !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(ids) > maxDeltaFilterIDs {
		return nil, badRequest("Request_UnsupportedQuery",
			"The $filter names %d objects; delta tracks at most %d.", len(ids), maxDeltaFilterIDs)
	}
	slices.Sort(ids)
	return ids, nil
}

// deltaRequest is a delta request's state: from its token, or from the
// options of a first request.
type deltaRequest struct {
	tok     deltaToken
	first   bool // no token: a new round over every object
	latest  bool // $deltatoken=latest
	minimal bool // Prefer: return=minimal
}

// parseDelta reads a delta request. Query options are allowed only
// without a token ($deltatoken=latest and the empty $deltatoken of a 410's
// Location are first requests).
func (s *Server) parseDelta(r *http.Request, t *tenant, coll string) (*deltaRequest, *graphError) {
	vals, gerr := splitQuery(r.URL.RawQuery)
	if gerr != nil {
		return nil, gerr
	}
	req := &deltaRequest{}
	for _, p := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(p, ",") {
			if strings.EqualFold(strings.ReplaceAll(strings.TrimSpace(part), " ", ""), "return=minimal") {
				req.minimal = true
			}
		}
	}
	skip, hasSkip := vals["$skiptoken"]
	delta, hasDelta := vals["$deltatoken"]
	vals.Del("$skiptoken")
	vals.Del("$deltatoken")
	var options []string
	for k := range vals {
		if strings.HasPrefix(k, "$") {
			options = append(options, k)
		}
	}
	slices.Sort(options)

	tokenText := ""
	switch {
	case hasSkip && hasDelta:
		return nil, badRequest("BadRequest", "A delta request takes either $skiptoken or $deltatoken, not both.")
	case hasSkip:
		tokenText = skip[0]
	case hasDelta && strings.EqualFold(delta[0], "latest"):
		req.latest = true
	case hasDelta:
		tokenText = delta[0]
	}
	if tokenText != "" || hasSkip {
		if len(options) > 0 {
			return nil, badRequest("Request_UnsupportedQuery",
				"Query option '%s' cannot be combined with a state token: give query options on the first delta request only; the tokens carry them.", options[0])
		}
		tok, ok := s.decodeDeltaToken(tokenText)
		if !ok || tok.Next != hasSkip || tok.Coll != coll || tok.Tenant != t.id {
			return nil, badRequest("Request_BadRequest", "Invalid state token.")
		}
		if tok.Dir != t.dir.epoch || tok.From > t.dir.Seq() ||
			s.now().Sub(time.Unix(tok.Issued, 0)) > s.deltaTokenTTL() {
			return nil, &graphError{status: http.StatusBadRequest, code: "syncStateNotFound",
				message: "The sync state generation is not found. The delta token is expired and data must be synchronized again."}
		}
		req.tok = tok
		return req, nil
	}

	// A first request: its options become the round's.
	req.first = !req.latest
	req.tok = deltaToken{Tenant: t.id, Dir: t.dir.epoch, Coll: coll}
	et := userEntity
	if coll == "groups" {
		et = groupEntity
	}
	for _, key := range options {
		val := vals.Get(key)
		switch key {
		case "$select":
			for _, name := range strings.Split(val, ",") {
				name = strings.TrimSpace(name)
				if name == "" {
					continue
				}
				canon, ok := et.props[strings.ToLower(name)]
				if !ok && coll == "groups" && strings.EqualFold(name, "members") {
					canon, ok = "members", true
				}
				if !ok {
					return nil, badRequest("BadRequest", "Parsing OData Select and Expand failed: Could not find a property named '%s' on type '%s'.", name, et.name)
				}
				if !slices.Contains(req.tok.Select, canon) {
					req.tok.Select = append(req.tok.Select, canon)
				}
			}
		case "$filter":
			ids, gerr := parseDeltaFilter(val)
			if gerr != nil {
				return nil, gerr
			}
			req.tok.IDs = ids
		case "$top", "$orderby", "$expand", "$search", "$count", "$skip":
			// delta-query-overview.md: "$expand is not supported. $top is
			// not supported. $orderby is not supported." (users, groups)
			return nil, badRequest("Request_UnsupportedQuery", "The query parameter '%s' is not supported with delta.", key)
		case "$format":
		default:
			return nil, badRequest("BadRequest", "The query parameter '%s' is not supported.", key)
		}
	}
	return req, nil
}

func (s *Server) deltaTokenTTL() time.Duration {
	if s.opts.DeltaTokenTTL > 0 {
		return s.opts.DeltaTokenTTL
	}
	return defaultDeltaTokenTTL
}

// restartLocation is the URL a 410 sends the client to: the first request
// again, with its options and an empty $deltatoken
// (delta-query-overview.md, "Synchronization reset").
func (s *Server) restartLocation(r *http.Request, coll string, tok deltaToken) string {
	q := []string{}
	if len(tok.Select) > 0 {
		q = append(q, "$select="+url.QueryEscape(strings.Join(tok.Select, ",")))
	}
	if len(tok.IDs) > 0 {
		clauses := make([]string, len(tok.IDs))
		for i, id := range tok.IDs {
			clauses[i] = "id eq '" + id + "'"
		}
		q = append(q, "$filter="+url.QueryEscape(strings.Join(clauses, " or ")))
	}
	q = append(q, "$deltatoken=")
	return s.origin + deltaPath(r, coll) + "?" + strings.Join(q, "&")
}

// deltaPath is the path links point at: the one the request used (delta
// or delta(), ...), or /v1.0/<coll>/delta for a request inside a batch
// whose path is not absolute.
func deltaPath(r *http.Request, coll string) string {
	p := r.URL.EscapedPath()
	if strings.HasPrefix(p, "/v1.0/") {
		return p
	}
	return "/v1.0/" + coll + "/delta"
}

// deltaItem is one object of a round, by ID.
type deltaItem struct {
	id      string
	all     bool            // created or restored in the round, or a first round: every property
	props   map[string]bool // properties changed in the round
	members []Member        // members touched in the round (groups), by ID
}

// roundItems lists the objects of a round in ID order, from the first
// with an ID not below from; a first round (Full) stops after limit
// objects, every one of which is served. Callers hold d.mu.
func (d *Directory) roundItems(tok deltaToken, from string, limit int) []deltaItem {
	var items []deltaItem
	if tok.Full {
		active, deleted := d.userIDs, d.delUserIDs
		if tok.Coll == "groups" {
			active, deleted = d.groupIDs, d.delGroupIDs
		}
		if len(tok.IDs) > 0 {
			limit = len(active) + len(deleted) // at most 50 pass the filter
		}
		i, _ := slices.BinarySearch(active, from)
		j, _ := slices.BinarySearch(deleted, from)
		for len(items) < limit && (i < len(active) || j < len(deleted)) {
			if j == len(deleted) || i < len(active) && active[i] < deleted[j] {
				items = append(items, deltaItem{id: active[i], all: true})
				i++
			} else {
				items = append(items, deltaItem{id: deleted[j], all: true})
				j++
			}
		}
	} else {
		byID := map[string]*deltaItem{}
		get := func(id string) *deltaItem {
			it := byID[id]
			if it == nil {
				it = &deltaItem{id: id, props: map[string]bool{}}
				byID[id] = it
			}
			return it
		}
		users := tok.Coll == "users"
		for _, c := range d.changesAfterLocked(tok.From, tok.To) {
			switch c.Kind {
			case ChangeUser, ChangeUserDeleted, ChangeUserPurged:
				if !users {
					continue
				}
			case ChangeGroup, ChangeGroupDeleted, ChangeGroupPurged:
				if users {
					continue
				}
			case ChangeMemberAdded, ChangeMemberRemoved:
				if users {
					continue
				}
				it := get(c.ID)
				if i, found := searchMember(it.members, c.Member.ID); !found {
					it.members = slices.Insert(it.members, i, c.Member)
				}
				continue
			}
			it := get(c.ID)
			if c.Props == nil {
				it.all = true
			}
			for _, p := range c.Props {
				it.props[p] = true
			}
		}
		for _, it := range byID {
			items = append(items, *it)
		}
		slices.SortFunc(items, func(a, b deltaItem) int { return strings.Compare(a.id, b.id) })
	}
	if len(tok.IDs) > 0 {
		items = slices.DeleteFunc(items, func(it deltaItem) bool {
			_, found := slices.BinarySearch(tok.IDs, it.id)
			return !found
		})
	}
	return items
}

// deltaPage serves one page of a round.
func (s *Server) deltaPage(r *http.Request, d *Directory, coll string, req *deltaRequest, replay bool) []byte {
	d.mu.RLock()
	defer d.mu.RUnlock()
	tok := req.tok
	now := s.now().Unix()
	ctx := s.GraphURL() + "/$metadata#" + coll
	if len(tok.Select) > 0 {
		ctx += "(" + strings.Join(tok.Select, ",") + ")"
	}
	b := append([]byte(`{"@odata.context":`), appendString(nil, ctx)...)

	if req.latest {
		next := deltaToken{Tenant: tok.Tenant, Dir: tok.Dir, Coll: coll, Select: tok.Select, IDs: tok.IDs, From: d.seq, Issued: now}
		b = append(b, `,"@odata.deltaLink":`...)
		b = appendString(b, s.origin+deltaPath(r, coll)+"?$deltatoken="+s.encodeDeltaToken(next))
		return append(b, `,"value":[]}`...)
	}
	if req.first {
		tok.Full, tok.From, tok.To = true, 0, d.seq
	} else if !tok.Next {
		// A deltaLink: the round covers the changes since it was issued.
		tok.To, tok.Full = d.seq, false
	}

	sel := map[string]bool(nil)
	membersTracked := coll == "groups" && len(tok.Select) == 0
	if len(tok.Select) > 0 {
		sel = map[string]bool{}
		for _, p := range tok.Select {
			if p == "members" {
				membersTracked = true
				continue
			}
			sel[p] = true
		}
	}
	pageSize, chunk := s.opts.DeltaPageSize, s.opts.DeltaMemberChunk
	if pageSize <= 0 {
		pageSize = defaultDeltaPageSize
	}
	if chunk <= 0 {
		chunk = defaultDeltaMemberChunk
	}

	items := d.roundItems(tok, tok.After, pageSize+2) // After itself, a page, one to tell whether more follow
	start, _ := slices.BinarySearchFunc(items, tok.After, func(it deltaItem, id string) int { return strings.Compare(it.id, id) })
	if tok.Next && start < len(items) && items[start].id == tok.After && tok.AfterMember == "" && !tok.Again {
		start++ // After was served in full
	}
	var values []byte
	served, after, afterMember, more := 0, "", "", false
	for i := start; i < len(items); i++ {
		if served == pageSize {
			more = true
			break
		}
		it := items[i]
		again := tok.Again && it.id == tok.After // a replay, not counted against the page
		obj, entries, removed, ok := d.deltaObject(coll, it, sel, membersTracked, req.minimal && !tok.Full)
		if !ok {
			continue
		}
		if tok.Next && it.id == tok.After && tok.AfterMember != "" {
			k, found := slices.BinarySearchFunc(entries, tok.AfterMember, func(e memberEntry, id string) int { return strings.Compare(e.m.ID, id) })
			if found {
				k++
			}
			entries = entries[k:]
		}
		n := min(chunk, len(entries))
		chunkOut, rest := entries[:n], len(entries)-n
		if len(values) > 0 {
			values = append(values, ',')
		}
		values = appendDeltaObject(values, obj, removed, chunkOut)
		if !again {
			served++
		}
		after, afterMember = it.id, ""
		if rest > 0 {
			// A big group's members continue on the next page, on
			// another copy of the same group (delta-query-groups.md,
			// "Paging through members in a large group").
			afterMember, more = chunkOut[n-1].m.ID, true
			break
		}
	}
	if more {
		next := tok
		next.Next, next.After, next.AfterMember, next.Again, next.Issued = true, after, afterMember, replay && afterMember == "", now
		b = append(b, `,"@odata.nextLink":`...)
		b = appendString(b, s.origin+deltaPath(r, coll)+"?$skiptoken="+s.encodeDeltaToken(next))
	} else {
		next := deltaToken{Tenant: tok.Tenant, Dir: tok.Dir, Coll: coll, Select: tok.Select, IDs: tok.IDs, From: tok.To, Issued: now}
		b = append(b, `,"@odata.deltaLink":`...)
		b = appendString(b, s.origin+deltaPath(r, coll)+"?$deltatoken="+s.encodeDeltaToken(next))
	}
	b = append(b, `,"value":[`...)
	b = append(b, values...)
	return append(b, "]}"...)
}

// memberEntry is one item of members@delta.
type memberEntry struct {
	m       Member
	removed bool
}

// deltaObject renders an item's object (without members@delta) and its
// member entries (nil when members are not tracked or none changed). ok
// is false when nothing tracked changed: the object is left out.
// Callers hold d.mu.
func (d *Directory) deltaObject(coll string, it deltaItem, sel map[string]bool, membersTracked, minimal bool) (body []byte, entries []memberEntry, removed, ok bool) {
	var o obj
	reason := ""
	if coll == "users" {
		if u := d.users[it.id]; u != nil {
			o = obj{typ: TypeUser, u: u}
		} else if _, soft := d.deletedUsers[it.id]; soft {
			reason = "changed"
		} else {
			reason = "deleted"
		}
	} else {
		if g := d.groups[it.id]; g != nil {
			o = obj{typ: TypeGroup, g: g}
		} else if _, soft := d.deletedGroups[it.id]; soft {
			reason = "changed"
		} else {
			reason = "deleted"
		}
	}
	if reason != "" {
		// "changed": deleted and restorable; "deleted": gone for good
		// (delta-query-overview.md).
		b := append([]byte(`{"id":`), appendString(nil, it.id)...)
		b = append(b, `,"@removed":{"reason":`...)
		b = appendString(b, reason)
		return append(b, "}}"...), nil, true, true
	}

	tracked := it.all
	if !tracked {
		for p := range it.props {
			if sel == nil || sel[p] {
				tracked = true
				break
			}
		}
	}
	if membersTracked {
		if it.all {
			for _, m := range d.members[it.id] {
				entries = append(entries, memberEntry{m: m})
			}
		} else {
			for _, m := range it.members {
				entries = append(entries, memberEntry{m: m, removed: !d.isMemberLocked(it.id, m.ID)})
			}
		}
		if len(entries) > 0 {
			tracked = true
		}
	}
	if !tracked {
		return nil, nil, false, false
	}
	changed := it.props
	if it.all {
		changed = nil
	}
	if o.typ == TypeUser {
		return appendDeltaEntity(nil, userProps, o.u, sel, changed, it.all, minimal), entries, false, true
	}
	return appendDeltaEntity(nil, groupProps, o.g, sel, changed, it.all, minimal), entries, false, true
}

// appendDeltaEntity writes an object of a delta page: the selected
// properties (or the default set) and always id. As the docs say, a
// property that was never set (null) is left out unless it changed to
// null in this round; with Prefer: return=minimal only the changed
// properties come. The closing brace is left off for members@delta.
func appendDeltaEntity[T any](b []byte, props []prop[T], o *T, sel, changed map[string]bool, all, minimal bool) []byte {
	b = append(b, '{')
	first := true
	for _, p := range props {
		if p.name != "id" {
			if sel == nil && !p.def || sel != nil && !sel[p.name] {
				continue
			}
			if minimal && !all && !changed[p.name] {
				continue
			}
		}
		v := p.val(o)
		if v == nil && !changed[p.name] {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, p.name)
		b = append(b, ':')
		b = appendValue(b, v)
	}
	return b
}

// appendDeltaObject closes an object from deltaObject, adding its
// members@delta when there are entries. Removed objects come closed.
func appendDeltaObject(b, obj []byte, removed bool, entries []memberEntry) []byte {
	b = append(b, obj...)
	if removed {
		return b
	}
	if len(entries) > 0 {
		b = append(b, `,"members@delta":[`...)
		for i, e := range entries {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"@odata.type":`...)
			b = appendString(b, "#microsoft.graph."+string(e.m.Type))
			b = append(b, `,"id":`...)
			b = appendString(b, e.m.ID)
			if e.removed {
				b = append(b, `,"@removed":{"reason":"deleted"}`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// serveDelta answers a users or groups delta request.
func (s *Server) serveDelta(r *http.Request, t *tenant, coll string) (*result, *graphError) {
	req, gerr := s.parseDelta(r, t, coll)
	if gerr != nil {
		return nil, gerr
	}
	switch s.deltaFault(t.id) {
	case deltaGone:
		e := &graphError{status: http.StatusGone, code: "resyncRequired",
			message: "Resync required: replace any local cached data with a full synchronization from the Location header."}
		e.headers = map[string]string{"Location": s.restartLocation(r, coll, req.tok)}
		return nil, e
	case deltaResync:
		return nil, &graphError{status: http.StatusBadRequest, code: "resyncRequired",
			message: "The delta token is no longer valid, and the app must reset the sync state."}
	}
	body := s.deltaPage(r, t.dir, coll, req, s.deltaReplay(t.id))
	// throttling-limits.md lists no delta path: "any identity path not
	// listed" costs 1, and a cost never goes below 1 ($select).
	return &result{body: body, cost: 1}, nil
}
