package graphsim_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/services/graphsim"
)

// sim is a running simulator with one client that trusts its CA.
type sim struct {
	t      *testing.T
	srv    *graphsim.Server
	client *http.Client
}

func newSim(t *testing.T, opts graphsim.Options) *sim {
	t.Helper()
	opts.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	srv, err := graphsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &sim{t: t, srv: srv, client: srv.HTTPClient()}
}

// tenantCreds is a tenant registered in a simulator.
type tenantCreds struct {
	id, clientID, secret string
	dir                  *graphsim.Directory
	token                string
}

var tenantSeq atomic.Int64

// addTenant registers a directory under fresh credentials and fetches a
// token for it.
func (s *sim) addTenant(d *graphsim.Directory) *tenantCreds {
	s.t.Helper()
	n := tenantSeq.Add(1)
	tc := &tenantCreds{
		id:       "1a2b3c4d-0000-4000-8000-" + pad12(n),
		clientID: "c11e0700-0000-4000-8000-" + pad12(n),
		secret:   "secret-" + pad12(n),
		dir:      d,
	}
	s.srv.AddTenant(tc.id, tc.clientID, tc.secret, d)
	status, body := s.tokenRequest(tc.id, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {tc.clientID},
		"client_secret": {tc.secret}, "scope": {"https://graph.microsoft.com/.default"},
	})
	if status != http.StatusOK {
		s.t.Fatalf("token for %s: %d %v", tc.id, status, body)
	}
	tc.token = body["access_token"].(string)
	return tc
}

func pad12(n int64) string { return fmt.Sprintf("%012d", n) }

// tokenRequest posts a form to a tenant's token endpoint.
func (s *sim) tokenRequest(tenant string, form url.Values) (int, map[string]any) {
	s.t.Helper()
	resp, err := s.client.PostForm(s.srv.AuthorityURL()+tenant+"/oauth2/v2.0/token", form)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decode(s.t, resp.Body)
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

func decode(t *testing.T, r io.Reader) map[string]any {
	t.Helper()
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &m) != nil {
		return map[string]any{"_raw": string(raw)}
	}
	return m
}

// response is one Graph answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
	took   time.Duration
}

// get sends a Graph GET with a bearer token (none when token is "") and
// extra headers given as name, value pairs. path is relative to /v1.0 or
// an absolute URL (a nextLink).
func (s *sim) get(token, path string, headers ...string) response {
	s.t.Helper()
	return s.do(http.MethodGet, token, path, headers...)
}

func (s *sim) do(method, token, path string, headers ...string) response {
	s.t.Helper()
	u := path
	if !strings.HasPrefix(path, "https://") {
		u = s.srv.GraphURL() + path
	}
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw), took: time.Since(start)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// values returns a collection answer's items.
func (r response) values() []map[string]any {
	var out []map[string]any
	for _, v := range r.body["value"].([]any) {
		out = append(out, v.(map[string]any))
	}
	return out
}

// graphErr returns the code and message of a Graph error answer.
func (r response) graphErr() (code, message string) {
	e, _ := r.body["error"].(map[string]any)
	code, _ = e["code"].(string)
	message, _ = e["message"].(string)
	return code, message
}

// listAll follows nextLinks verbatim from path and returns every item and
// the number of pages.
func (s *sim) listAll(token, path string, headers ...string) ([]map[string]any, int) {
	s.t.Helper()
	var all []map[string]any
	pages := 0
	for next := path; next != ""; {
		r := s.get(token, next, headers...)
		if r.status != http.StatusOK {
			s.t.Fatalf("GET %s: %d %s", next, r.status, r.raw)
		}
		all = append(all, r.values()...)
		pages++
		next, _ = r.body["@odata.nextLink"].(string)
		if pages > 100000 {
			s.t.Fatal("paging does not end")
		}
	}
	return all, pages
}

func ids(items []map[string]any) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i], _ = it["id"].(string)
	}
	return out
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
