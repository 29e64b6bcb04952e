package graphsim

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

const (
	defaultPageSize = 100
	maxPageSize     = 999
)

// queryOpts are the OData options of one Graph request, validated.
type queryOpts struct {
	top      int
	topSet   bool            // $top was asked for (it changes the request's cost)
	sel      map[string]bool // canonical names; nil = default set
	selList  []string        // as asked, for @odata.context
	filter   *filterNode
	search   *searchExpr
	count    bool   // @odata.count wanted and allowed (ConsistencyLevel: eventual)
	after    string // last ID of the previous page (from $skiptoken)
	canon    string // canonical query without $skiptoken, carried in skip tokens
	resumed  bool   // this request came from a nextLink
	hasQuery bool   // any option besides $skiptoken
}

// entityType is what a collection's $select and $filter are checked
// against.
type entityType struct {
	name  string            // "microsoft.graph.user", for messages
	props map[string]string // lower-case → canonical property names
	// filterAdvancedOnly: any $filter needs the advanced query parameters
	// (member collections), not just ne/not/endsWith.
	filterAdvancedOnly bool
}

var (
	userEntity    = entityType{name: "microsoft.graph.user", props: userPropNames}
	groupEntity   = entityType{name: "microsoft.graph.group", props: groupPropNames}
	deviceEntity  = entityType{name: "microsoft.graph.device", props: devicePropNames}
	contactEntity = entityType{name: "microsoft.graph.orgContact", props: contactPropNames}
	// directoryObjectEntity is a mixed member list: a property is valid
	// when any member type has it.
	directoryObjectEntity = entityType{name: "microsoft.graph.directoryObject", props: unionProps(userPropNames, groupPropNames, devicePropNames, contactPropNames), filterAdvancedOnly: true}
)

func unionProps(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// eventual reports whether the request asks for eventual consistency, the
// header that unlocks Graph's advanced directory queries.
func eventual(r *http.Request) bool {
	return strings.EqualFold(strings.TrimSpace(r.Header.Get("ConsistencyLevel")), "eventual")
}

// splitQuery parses a raw query into options, lower-casing the names of
// $-options (Graph matches them case-insensitively) and refusing repeats.
func splitQuery(raw string) (url.Values, *graphError) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badRequest("BadRequest", "The query string is malformed: %v", err)
	}
	out := url.Values{}
	for k, vs := range vals {
		key := k
		if strings.HasPrefix(k, "$") {
			key = strings.ToLower(k)
		}
		if len(vs) > 1 || len(out[key]) > 0 {
			return nil, badRequest("BadRequest", "Query option '%s' was specified more than once, but it must be specified at most once.", key)
		}
		out[key] = vs
	}
	return out, nil
}

// parseListQuery validates a collection request's options. A $skiptoken
// brings back the options of the first request; options sent alongside it
// must be the same ones (Graph's nextLinks repeat them), or it is a token
// used in a different request.
func (s *Server) parseListQuery(r *http.Request, path string, et entityType, list bool) (*queryOpts, *graphError) {
	vals, gerr := splitQuery(r.URL.RawQuery)
	if gerr != nil {
		return nil, gerr
	}
	q := &queryOpts{top: defaultPageSize}
	if tok := vals.Get("$skiptoken"); tok != "" || vals.Has("$skiptoken") {
		if !list {
			return nil, badRequest("BadRequest", "The query parameter '$skiptoken' is not supported.")
		}
		st, ok := s.decodeSkipToken(tok)
		if !ok || st.Path != path {
			return nil, badRequest("Request_BadRequest", "Invalid skip token.")
		}
		vals.Del("$skiptoken")
		if len(vals) > 0 && vals.Encode() != st.Query {
			return nil, badRequest("Request_BadRequest", "The skip token does not belong to this request: its query options differ.")
		}
		if vals, gerr = splitQuery(st.Query); gerr != nil {
			return nil, gerr
		}
		q.after, q.resumed = st.After, true
	}
	q.canon = vals.Encode()
	q.hasQuery = len(vals) > 0

	ev := eventual(r)
	countAsked := false
	if v, ok := vals["$count"]; ok {
		switch strings.ToLower(v[0]) {
		case "true":
			countAsked = true
		case "false":
		default:
			return nil, badRequest("BadRequest", "Invalid value '%s' for query option $count: it must be true or false.", v[0])
		}
	}
	// Without ConsistencyLevel: eventual, $count=true is silently ignored
	// (aad-advanced-queries.md). A /$count segment is a use of $count too:
	// with the header it is an advanced query.
	advanced := ev && (countAsked || strings.HasSuffix(path, "/$count"))
	q.count = advanced && !q.resumed

	for key, v := range vals {
		val := v[0]
		switch key {
		case "$top":
			if !list {
				return nil, badRequest("BadRequest", "The query parameter '$top' is not supported.")
			}
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil || n < 1 || n > maxPageSize {
				return nil, badRequest("Request_UnsupportedQuery", "Invalid page size specified: '%s'. Must be between 1 and 999 inclusive.", val)
			}
			q.top, q.topSet = n, true
		case "$select":
			q.sel = map[string]bool{}
			for _, name := range strings.Split(val, ",") {
				name = strings.TrimSpace(name)
				if name == "" {
					continue
				}
				canon, ok := et.props[strings.ToLower(name)]
				if !ok {
					return nil, badRequest("BadRequest", "Parsing OData Select and Expand failed: Could not find a property named '%s' on type '%s'.", name, et.name)
				}
				if !q.sel[canon] {
					q.selList = append(q.selList, canon)
				}
				q.sel[canon] = true
			}
			if len(q.sel) == 0 {
				q.sel, q.selList = nil, nil
			}
		case "$filter":
			f, gerr := parseFilter(val, et.props, et.name)
			if gerr != nil {
				return nil, gerr
			}
			if gerr := et.checkFilter(f, advanced); gerr != nil {
				return nil, gerr
			}
			q.filter = f
		case "$search":
			if !ev {
				return nil, badRequest("Request_UnsupportedQuery", "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'")
			}
			se, gerr := parseSearch(val, et.props)
			if gerr != nil {
				return nil, gerr
			}
			q.search = se
		case "$count":
		case "$format":
			if !strings.EqualFold(val, "json") && !strings.EqualFold(val, "application/json") {
				return nil, badRequest("BadRequest", "The $format '%s' is not supported; use json.", val)
			}
		case "$skip":
			return nil, badRequest("Request_BadRequest", "'$skip' is not supported by the service.")
		case "$orderby":
			return nil, badRequest("Request_UnsupportedQuery", "$orderby is not supported by the Graph simulator; results come in a stable order by id.")
		case "$expand":
			return nil, badRequest("Request_UnsupportedQuery", "$expand is not supported by the Graph simulator.")
		default:
			if strings.HasPrefix(key, "$") {
				return nil, badRequest("BadRequest", "The query parameter '%s' is not supported.", key)
			}
			// Other names are custom query options, which Graph ignores.
		}
	}
	return q, nil
}

// checkFilter judges a parsed filter as Graph would on this collection:
// on users by the docs' per-property tables (filtersupport.go); on other
// types only by the operators that always need the advanced query
// parameters (ne, not, endsWith), and on member lists every filter needs
// them.
func (et entityType) checkFilter(f *filterNode, advanced bool) *graphError {
	if et.name == userEntity.name {
		return checkUserFilter(f, advanced, et.filterAdvancedOnly)
	}
	if advanced {
		return nil
	}
	if op := f.advancedOperator(); op != "" {
		return missingAdvancedOperator(op)
	}
	if et.filterAdvancedOnly {
		return missingAdvancedCollection(f, strings.TrimPrefix(et.name, "microsoft.graph."))
	}
	return nil
}

func firstProp(f *filterNode) string {
	if f.prop != "" {
		return f.prop
	}
	for _, k := range f.kids {
		if p := firstProp(k); p != "" {
			return p
		}
	}
	return ""
}

// skipToken is the state a nextLink carries: which collection, the
// original query, and where the previous page ended. It is signed, so a
// garbled or forged token is refused rather than misread.
type skipToken struct {
	Path  string `json:"p"`
	Query string `json:"q"`
	After string `json:"a"`
}

func (s *Server) encodeSkipToken(t skipToken) string {
	payload, _ := json.Marshal(t)
	mac := s.mac(payload)[:16]
	return base64.RawURLEncoding.EncodeToString(append(mac, payload...))
}

func (s *Server) decodeSkipToken(tok string) (skipToken, bool) {
	var t skipToken
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) <= 16 {
		return t, false
	}
	mac, payload := raw[:16], raw[16:]
	if !hmac.Equal(mac, s.mac(payload)[:16]) {
		return t, false
	}
	return t, json.Unmarshal(payload, &t) == nil
}

// nextLink is the absolute URL of the next page: the request's own path
// and options (as sent), with the $skiptoken replaced.
func (s *Server) nextLink(r *http.Request, tok string) string {
	var kept []string
	for _, part := range strings.Split(r.URL.RawQuery, "&") {
		if part == "" {
			continue
		}
		name, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil && strings.EqualFold(n, "$skiptoken") {
			continue
		}
		kept = append(kept, part)
	}
	kept = append(kept, "$skiptoken="+tok)
	return s.origin + r.URL.EscapedPath() + "?" + strings.Join(kept, "&")
}
