package graphsim

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// serveGraph answers /v1.0/...: it checks the bearer token, then serves
// the request (answer) or the batch of requests ($batch) it carries.
func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	began := time.Now()
	reqID := randomGUID()
	sw := &statusWriter{ResponseWriter: w}
	rec := Request{At: start, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	defer func() {
		rec.Status = sw.status
		rec.RetryAfter = sw.Header().Get("Retry-After")
		rec.ThrottleScope = sw.Header().Get("x-ms-throttle-scope")
		rec.ResourceUnits = resourceUnits(sw.Header())
		s.record(rec)
		s.log.Debug().Str("tenant", rec.Tenant).Str("method", r.Method).Str("path", r.URL.Path).
			Str("query", r.URL.RawQuery).Int("status", sw.status).Dur("took", time.Since(began)).Msg("graph request")
	}()
	h := sw.Header()
	setResponseIDs(h, r, reqID)
	h.Set("x-ms-ags-diagnostic", `{"ServerInfo":{"DataCenter":"Local","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"graphsim"}}`)
	h.Set("Strict-Transport-Security", "max-age=31536000")

	t, gerr := s.authenticate(r)
	if gerr != nil {
		h.Set("WWW-Authenticate", `Bearer realm="", authorization_uri="`+s.origin+`/common/oauth2/authorize", client_id="`+graphAppID+`"`)
		writeGraphError(sw, r, start, reqID, gerr)
		return
	}
	rec.Tenant, rec.Authorized = t.id, true
	if isBatchPath(r.URL.Path) {
		s.serveBatch(sw, r, t, start, reqID)
		return
	}
	s.answer(sw, r, t, start, reqID)
}

// resourceUnits is the cost an answer's x-ms-resource-unit header states,
// 0 without one.
func resourceUnits(h http.Header) int {
	n, _ := strconv.Atoi(h.Get("x-ms-resource-unit"))
	return n
}

func setResponseIDs(h http.Header, r *http.Request, reqID string) {
	h.Set("request-id", reqID)
	h.Set("client-request-id", clientRequestID(r, reqID))
	h.Set("Cache-Control", "no-cache")
}

// answer serves one authenticated Graph request, on its own or as an
// item of a batch: the tenant's faults first, then the resource, then
// the resource-unit budget.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, t *tenant, start time.Time, reqID string) {
	h := w.Header()
	status, retryAfter, latency := s.fault(t.id)
	if latency > 0 {
		timer := time.NewTimer(latency)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return
		}
	}
	if status != 0 {
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		writeGraphError(w, r, start, reqID, faultError(status))
		return
	}

	res, gerr := s.route(r, t, s.accessOf(t.id))
	// A request Graph refuses is metered too: "all requests accrue
	// against your usage limits" (throttling.md), and json-batching.md's
	// example answers its refused directory requests (403, 405) with
	// x-ms-resource-unit 1. It can be throttled like any other.
	cost := 1
	if gerr == nil {
		cost = res.cost
	}
	sp := s.spend(t, t.dir.userCount(), cost)
	// throttling-limits.md: past 80% of the limit, on every answer (up to
	// 1.8 when throttled).
	if sp.percentage != "" {
		h.Set("x-ms-throttle-limit-percentage", sp.percentage)
	}
	if sp.retryAfter != "" {
		// throttling-limits.md, "Throttled responses requests": the scope
		// (<Scope>/<Limit>/<ApplicationId>/<TenantId|UserId|ResourceId>)
		// and the reason. The docs do not say which id an Application
		// scope ends with; it is the tenant the request was for.
		h.Set("Retry-After", sp.retryAfter)
		h.Set("x-ms-throttle-scope", string(sp.scope)+"/ReadWrite/"+t.clientID+"/"+t.id)
		h.Set("x-ms-throttle-information", "ResourceUnitLimitExceeded")
		writeGraphError(w, r, start, reqID, faultError(http.StatusTooManyRequests))
		return
	}
	h.Set("x-ms-resource-unit", strconv.Itoa(cost))
	if gerr != nil {
		writeGraphError(w, r, start, reqID, gerr)
		return
	}
	if res.text {
		h.Set("Content-Type", "text/plain")
	} else {
		h.Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
		h.Set("OData-Version", "4.0")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.body)
}

// result is a successful Graph answer.
type result struct {
	body []byte
	text bool // text/plain ($count)
	cost int  // resource units, sent as x-ms-resource-unit
}

var guidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// castTypes maps the cast segments Graph accepts on member lists (full
// and short names; the Go SDK sends the short one, e.g. graph.user) to
// the object type they keep. Service principals and applications are
// valid casts with nothing behind them here.
var castTypes = map[string]ObjectType{
	"microsoft.graph.user": TypeUser, "graph.user": TypeUser,
	"microsoft.graph.group": TypeGroup, "graph.group": TypeGroup,
	"microsoft.graph.device": TypeDevice, "graph.device": TypeDevice,
	"microsoft.graph.orgcontact": TypeOrgContact, "graph.orgcontact": TypeOrgContact,
	"microsoft.graph.serviceprincipal": "servicePrincipal", "graph.serviceprincipal": "servicePrincipal",
	"microsoft.graph.application": "application", "graph.application": "application",
}

// route finds the resource a path names. Segment names match without
// regard to case, as Graph's do. Members of the unreadable types are
// served with limited information.
func (s *Server) route(r *http.Request, t *tenant, acc access) (*result, *graphError) {
	d := t.dir
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/v1.0"), "/")
	var segs []string
	if rest != "" {
		segs = strings.Split(strings.TrimSuffix(rest, "/"), "/")
	}
	if len(segs) == 0 {
		return nil, segmentNotFound("v1.0")
	}
	var handler func() (*result, *graphError)
	switch strings.ToLower(segs[0]) {
	case "users":
		switch {
		case len(segs) == 2 && isDeltaSegment(segs[1]):
			handler = func() (*result, *graphError) { return s.serveDelta(r, t, "users") }
		case len(segs) == 1:
			handler = func() (*result, *graphError) { return s.listUsers(r, d) }
		case len(segs) == 2 && segs[1] == "$count":
			handler = func() (*result, *graphError) { return s.countCollection(r, d, "users", userEntity, "", "", acc) }
		case len(segs) == 2:
			handler = func() (*result, *graphError) { return s.getUser(r, d, segs[1]) }
		default:
			return nil, segmentNotFound(segs[2])
		}
	case "groups":
		switch {
		case len(segs) == 2 && isDeltaSegment(segs[1]):
			handler = func() (*result, *graphError) { return s.serveDelta(r, t, "groups") }
		case len(segs) == 1:
			handler = func() (*result, *graphError) { return s.listGroups(r, d) }
		case len(segs) == 2 && segs[1] == "$count":
			handler = func() (*result, *graphError) { return s.countCollection(r, d, "groups", groupEntity, "", "", acc) }
		case len(segs) == 2:
			handler = func() (*result, *graphError) { return s.getGroup(r, d, segs[1]) }
		default:
			nav := strings.ToLower(segs[2])
			if nav != "members" && nav != "transitivemembers" {
				return nil, segmentNotFound(segs[2])
			}
			var cast ObjectType
			tail := segs[3:]
			if len(tail) > 0 && tail[0] != "$count" {
				c, ok := castTypes[strings.ToLower(tail[0])]
				if !ok {
					return nil, segmentNotFound(tail[0])
				}
				cast, tail = c, tail[1:]
			}
			switch {
			case len(tail) == 0:
				handler = func() (*result, *graphError) { return s.listMembers(r, d, segs[1], nav, cast, acc) }
			case len(tail) == 1 && tail[0] == "$count":
				handler = func() (*result, *graphError) {
					return s.countCollection(r, d, nav, directoryObjectEntity, segs[1], cast, acc)
				}
			default:
				return nil, segmentNotFound(tail[0])
			}
		}
	default:
		return nil, segmentNotFound(segs[0])
	}
	if r.Method != http.MethodGet {
		return nil, &graphError{status: http.StatusMethodNotAllowed, code: "Request_BadRequest",
			message: "Specified HTTP method is not allowed for the request target."}
	}
	return handler()
}

// cost is the resource units a request takes from the tenant's budget
// (throttling-limits.md, identity and access): users 2, members 3,
// transitive members 5, others 1; $select takes one off, and so does a
// $top below 20; at least 1. ($expand would add one; the simulator
// refuses it.)
func cost(base int, q *queryOpts) int {
	if q != nil && q.sel != nil {
		base--
	}
	if q != nil && q.topSet && q.top < 20 {
		base--
	}
	return max(base, 1)
}

// obj is one directory object of any type.
type obj struct {
	typ ObjectType
	u   *User
	g   *Group
	dv  *Device
	c   *OrgContact
}

func (o obj) get(name string) (any, bool) {
	switch o.typ {
	case TypeUser:
		return lookup(userProps, o.u, name)
	case TypeGroup:
		return lookup(groupProps, o.g, name)
	case TypeDevice:
		return lookup(deviceProps, o.dv, name)
	case TypeOrgContact:
		return lookup(contactProps, o.c, name)
	}
	return nil, false
}

func (o obj) id() string {
	switch o.typ {
	case TypeUser:
		return o.u.ID
	case TypeGroup:
		return o.g.ID
	case TypeDevice:
		return o.dv.ID
	}
	return o.c.ID
}

// appendJSON writes the object as a collection item or entity. limited
// writes it as Graph does for a type the app may not read: @odata.type
// (in mixed lists) and id, every other property it would serve as null.
func (o obj) appendJSON(b []byte, sel map[string]bool, mixed, limited bool) []byte {
	typeName := ""
	if mixed {
		typeName = string(o.typ)
	}
	if limited {
		switch o.typ {
		case TypeUser:
			return appendLimited(b, userProps, o.id(), sel, typeName)
		case TypeGroup:
			return appendLimited(b, groupProps, o.id(), sel, typeName)
		case TypeDevice:
			return appendLimited(b, deviceProps, o.id(), sel, typeName)
		}
		return appendLimited(b, contactProps, o.id(), sel, typeName)
	}
	switch o.typ {
	case TypeUser:
		return appendEntity(b, userProps, o.u, sel, typeName)
	case TypeGroup:
		return appendEntity(b, groupProps, o.g, sel, typeName)
	case TypeDevice:
		return appendEntity(b, deviceProps, o.dv, sel, typeName)
	}
	return appendEntity(b, contactProps, o.c, sel, typeName)
}

// resolve finds a member's object; callers hold d.mu.
func (d *Directory) resolve(m Member) (obj, bool) {
	switch m.Type {
	case TypeUser:
		u, ok := d.users[m.ID]
		return obj{typ: TypeUser, u: u}, ok
	case TypeGroup:
		g, ok := d.groups[m.ID]
		return obj{typ: TypeGroup, g: g}, ok
	case TypeDevice:
		dv, ok := d.devices[m.ID]
		return obj{typ: TypeDevice, dv: dv}, ok
	case TypeOrgContact:
		c, ok := d.contacts[m.ID]
		return obj{typ: TypeOrgContact, c: c}, ok
	}
	return obj{}, false
}

// source is an ordered (by ID) collection the pager walks.
type source struct {
	n  int
	id func(i int) string
	at func(i int) (obj, bool)
}

func (d *Directory) userSource() source {
	ids := d.userIDs
	return source{n: len(ids), id: func(i int) string { return ids[i] },
		at: func(i int) (obj, bool) { u, ok := d.users[ids[i]]; return obj{typ: TypeUser, u: u}, ok }}
}

func (d *Directory) groupSource() source {
	ids := d.groupIDs
	return source{n: len(ids), id: func(i int) string { return ids[i] },
		at: func(i int) (obj, bool) { g, ok := d.groups[ids[i]]; return obj{typ: TypeGroup, g: g}, ok }}
}

func (d *Directory) memberSource(ms []Member) source {
	return source{n: len(ms), id: func(i int) string { return ms[i].ID },
		at: func(i int) (obj, bool) { return d.resolve(ms[i]) }}
}

// listing describes one collection for the pager.
type listing struct {
	path    string // canonical, for skip tokens
	context string // @odata.context fragment, e.g. "users"
	mixed   bool   // objects carry @odata.type
	cast    ObjectType
	// limited are the types served with limited information: the app
	// may not read them (Permissions).
	limited map[ObjectType]bool
}

// page writes one page of a collection: objects after the skip token's
// position that pass the cast, $filter and $search, up to $top, then a
// nextLink when another such object exists. Paging by the last ID seen
// (not by offset) keeps pages exact while a test changes the directory.
// Callers hold d.mu for reading.
func (s *Server) page(r *http.Request, src source, l listing, q *queryOpts) []byte {
	match := func(o obj) bool {
		if l.cast != "" && o.typ != l.cast {
			return false
		}
		if q.filter != nil && !q.filter.eval(o.get) {
			return false
		}
		return q.search == nil || q.search.eval(o.get)
	}
	start := 0
	if q.after != "" {
		lo, hi := 0, src.n
		for lo < hi { // first ID > after
			mid := (lo + hi) / 2
			if src.id(mid) <= q.after {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		start = lo
	}
	b := make([]byte, 0, 512*min(q.top, 64))
	b = append(b, `{"@odata.context":`...)
	ctx := s.GraphURL() + "/$metadata#" + l.context
	if q.sel != nil {
		ctx += "(" + strings.Join(q.selList, ",") + ")"
	}
	b = appendString(b, ctx)
	if q.count {
		n := 0
		for i := 0; i < src.n; i++ {
			if o, ok := src.at(i); ok && match(o) {
				n++
			}
		}
		b = append(b, `,"@odata.count":`...)
		b = strconv.AppendInt(b, int64(n), 10)
	}
	var items []byte
	taken, last, more := 0, "", false
	for i := start; i < src.n; i++ {
		o, ok := src.at(i)
		if !ok || !match(o) {
			continue
		}
		if taken == q.top {
			more = true
			break
		}
		if taken > 0 {
			items = append(items, ',')
		}
		items = o.appendJSON(items, q.sel, l.mixed, l.limited[o.typ])
		taken++
		last = o.id()
	}
	if more {
		tok := s.encodeSkipToken(skipToken{Path: l.path, Query: q.canon, After: last})
		b = append(b, `,"@odata.nextLink":`...)
		b = appendString(b, s.nextLink(r, tok))
	}
	b = append(b, `,"value":[`...)
	b = append(b, items...)
	return append(b, "]}"...)
}

func (s *Server) listUsers(r *http.Request, d *Directory) (*result, *graphError) {
	q, gerr := s.parseListQuery(r, "users", userEntity, true)
	if gerr != nil {
		return nil, gerr
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	body := s.page(r, d.userSource(), listing{path: "users", context: "users"}, q)
	return &result{body: body, cost: cost(2, q)}, nil
}

func (s *Server) listGroups(r *http.Request, d *Directory) (*result, *graphError) {
	q, gerr := s.parseListQuery(r, "groups", groupEntity, true)
	if gerr != nil {
		return nil, gerr
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	body := s.page(r, d.groupSource(), listing{path: "groups", context: "groups"}, q)
	return &result{body: body, cost: cost(1, q)}, nil
}

// castEntity is the type a cast segment narrows a member list to.
func castEntity(cast ObjectType) (entityType, string) {
	switch cast {
	case TypeUser:
		return userEntity, "users"
	case TypeGroup:
		return groupEntity, "groups"
	case TypeDevice:
		return deviceEntity, "devices"
	case TypeOrgContact:
		return contactEntity, "contacts"
	case "servicePrincipal":
		return entityType{name: "microsoft.graph.servicePrincipal", props: map[string]string{"id": "id", "displayname": "displayName"}}, "servicePrincipals"
	case "application":
		return entityType{name: "microsoft.graph.application", props: map[string]string{"id": "id", "displayname": "displayName"}}, "applications"
	}
	return directoryObjectEntity, "directoryObjects"
}

// listMembers answers a group's members or transitiveMembers, optionally
// cast to one type. Members of the unreadable types come with limited
// information; the docs describe this for directoryObject collections
// only, and the simulator keeps it on casts too (see README).
func (s *Server) listMembers(r *http.Request, d *Directory, groupID, nav string, cast ObjectType, acc access) (*result, *graphError) {
	gid, gerr := groupKey(groupID)
	if gerr != nil {
		return nil, gerr
	}
	et, context := castEntity(cast)
	et.filterAdvancedOnly = true
	path := "groups/" + gid + "/" + nav
	if cast != "" {
		path += "/" + string(cast)
	}
	q, gerr := s.parseListQuery(r, path, et, true)
	if gerr != nil {
		return nil, gerr
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	g, ok := d.groups[gid]
	if !ok {
		return nil, notFound(groupID)
	}
	if acc.noHidden && strings.EqualFold(g.Visibility, "HiddenMembership") {
		return nil, faultError(http.StatusForbidden)
	}
	ms, base := d.members[gid], 3
	if nav == "transitivemembers" {
		ms, base = d.transitiveLocked(gid), 5
	}
	body := s.page(r, d.memberSource(ms), listing{path: path, context: context, mixed: cast == "", cast: cast, limited: acc.unreadable}, q)
	return &result{body: body, cost: cost(base, q)}, nil
}

// countCollection answers .../$count: a bare number, only with
// ConsistencyLevel: eventual (aad-advanced-queries.md).
func (s *Server) countCollection(r *http.Request, d *Directory, nav string, et entityType, groupID string, cast ObjectType, acc access) (*result, *graphError) {
	if !eventual(r) {
		return nil, badRequest("Request_BadRequest", "$count is not currently supported.")
	}
	if cast != "" {
		et, _ = castEntity(cast)
	}
	q, gerr := s.parseListQuery(r, nav+"/$count", et, false)
	if gerr != nil {
		return nil, gerr
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	var src source
	switch nav {
	case "users":
		src = d.userSource()
	case "groups":
		src = d.groupSource()
	default:
		gid, gerr := groupKey(groupID)
		if gerr != nil {
			return nil, gerr
		}
		g, ok := d.groups[gid]
		if !ok {
			return nil, notFound(groupID)
		}
		if acc.noHidden && strings.EqualFold(g.Visibility, "HiddenMembership") {
			return nil, faultError(http.StatusForbidden)
		}
		ms := d.members[gid]
		if nav == "transitivemembers" {
			ms = d.transitiveLocked(gid)
		}
		src = d.memberSource(ms)
	}
	n := 0
	for i := 0; i < src.n; i++ {
		o, ok := src.at(i)
		if !ok || cast != "" && o.typ != cast {
			continue
		}
		if q.filter != nil && !q.filter.eval(o.get) || q.search != nil && !q.search.eval(o.get) {
			continue
		}
		n++
	}
	return &result{body: []byte(strconv.Itoa(n)), text: true, cost: 1}, nil
}

// groupKey checks that a group key is a GUID, as Graph does before it
// looks the group up.
func groupKey(id string) (string, *graphError) {
	if !guidRe.MatchString(id) {
		return "", badRequest("Request_BadRequest", "Invalid object identifier '%s'.", id)
	}
	return strings.ToLower(id), nil
}

// entity wraps one object with its @odata.context.
func (s *Server) entity(context string, q *queryOpts, o obj) []byte {
	ctx := s.GraphURL() + "/$metadata#" + context
	if q.sel != nil {
		ctx = s.GraphURL() + "/$metadata#" + strings.TrimSuffix(context, "/$entity") + "(" + strings.Join(q.selList, ",") + ")/$entity"
	}
	b := append([]byte(`{"@odata.context":`), appendString(nil, ctx)...)
	body := o.appendJSON(nil, q.sel, false, false)
	if len(body) > 2 {
		b = append(b, ',')
	}
	return append(b, body[1:]...)
}

// getUser answers /users/{id | userPrincipalName}.
func (s *Server) getUser(r *http.Request, d *Directory, key string) (*result, *graphError) {
	q, gerr := s.parseListQuery(r, "users/"+key, userEntity, false)
	if gerr != nil {
		return nil, gerr
	}
	if q.filter != nil || q.search != nil {
		return nil, badRequest("BadRequest", "$filter and $search are not supported on a single entity.")
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	u, ok := d.users[strings.ToLower(key)]
	if !ok {
		if id, byUPN := d.upns[strings.ToLower(key)]; byUPN {
			u, ok = d.users[id]
		}
	}
	if !ok {
		return nil, notFound(key)
	}
	return &result{body: s.entity("users/$entity", q, obj{typ: TypeUser, u: u}), cost: 1}, nil
}

func (s *Server) getGroup(r *http.Request, d *Directory, key string) (*result, *graphError) {
	gid, gerr := groupKey(key)
	if gerr != nil {
		return nil, gerr
	}
	q, gerr := s.parseListQuery(r, "groups/"+gid, groupEntity, false)
	if gerr != nil {
		return nil, gerr
	}
	if q.filter != nil || q.search != nil {
		return nil, badRequest("BadRequest", "$filter and $search are not supported on a single entity.")
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	g, ok := d.groups[gid]
	if !ok {
		return nil, notFound(key)
	}
	return &result{body: s.entity("groups/$entity", q, obj{typ: TypeGroup, g: g}), cost: 1}, nil
}
