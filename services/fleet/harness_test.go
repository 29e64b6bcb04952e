package fleet_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/store/storetest"
	"github.com/entrasync/entrasync/services/fleet"
	"github.com/entrasync/entrasync/services/graphsim"
)

func TestMain(m *testing.M) { os.Exit(devenv.RunTests(m)) }

const adminToken = "test-admin-token-0123456789"

// harness is one fleet on its own NATS and database, with its own Graph
// simulator.
type harness struct {
	t       testing.TB
	sim     *graphsim.Server
	fleet   *fleet.Fleet
	api     string
	natsURL string
	db      *pgxpool.Pool
}

func newHarness(t testing.TB, fetchers, reconcilers int) *harness {
	t.Helper()
	return newHarnessWith(t, fetchers, reconcilers, nil)
}

// newHarnessWith is newHarness with a last say on the fleet's config.
func newHarnessWith(t testing.TB, fetchers, reconcilers int, tweak func(*fleet.Config)) *harness {
	t.Helper()
	ctx := context.Background()
	logger := zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger().Level(zerolog.WarnLevel)
	if testing.Verbose() {
		logger = logger.Level(zerolog.InfoLevel)
	}
	sim, err := graphsim.New(graphsim.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })

	h := &harness{t: t, sim: sim, natsURL: devenv.NATS(t)}
	dbURL := devenv.Database(t)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: sim.CAPool(), MinVersion: tls.VersionTLS12}
	cfg := fleet.Config{
		DatabaseURL:    dbURL,
		NATSURL:        h.natsURL,
		GraphBaseURL:   sim.GraphURL(),
		AuthorityHost:  sim.AuthorityURL(),
		GraphTransport: transport,
		AdminToken:     adminToken,
		SecretKey:      bytes.Repeat([]byte{42}, 32),
		Fetchers:       fetchers,
		Reconcilers:    reconcilers,
		Logger:         logger,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	h.fleet, err = fleet.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.fleet.Stop(ctx); err != nil {
			t.Errorf("stop fleet: %v", err)
		}
	})
	h.api = "http://" + h.fleet.API.Addr()
	h.db, err = pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.db.Close)
	return h
}

// entraTenant is a tenant registered in the simulator.
type entraTenant struct {
	ID, ClientID, Secret string
	Dir                  *graphsim.Directory
}

func (h *harness) addEntraTenant(spec graphsim.Spec) entraTenant {
	e := entraTenant{ID: uuid.NewString(), ClientID: uuid.NewString(), Secret: "s3cret-" + uuid.NewString(), Dir: graphsim.Generate(spec)}
	h.sim.AddTenant(e.ID, e.ClientID, e.Secret, e.Dir)
	return e
}

// do sends a request to the api and decodes a JSON answer into out.
func (h *harness) do(method, path string, body any, out any) int {
	h.t.Helper()
	var r io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			r = strings.NewReader(b)
		default:
			raw, _ := json.Marshal(b)
			r = bytes.NewReader(raw)
		}
	}
	req, err := http.NewRequest(method, h.api+path, r)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

func (h *harness) connect(e entraTenant, seats int) string {
	h.t.Helper()
	var out struct {
		ID string `json:"id"`
	}
	code := h.do("POST", "/v1/tenants", map[string]any{
		"name": "tenant " + e.ID[:8], "entraTenantId": e.ID, "clientId": e.ClientID,
		"clientSecret": e.Secret, "seats": seats,
	}, &out)
	if code != http.StatusCreated || out.ID == "" {
		h.t.Fatalf("POST /v1/tenants = %d %+v", code, out)
	}
	return out.ID
}

type runView struct {
	RunID         string           `json:"runId"`
	Kind          string           `json:"kind"`
	ReadStrategy  string           `json:"readStrategy"`
	Status        string           `json:"status"`
	HeldReason    string           `json:"heldReason"`
	Plan          map[string]int64 `json:"plan"`
	Trigger       string           `json:"trigger"`
	Error         string           `json:"error"`
	Counts        map[string]int64 `json:"counts"`
	GraphRequests int64            `json:"graphRequests"`
	Throttled     int64            `json:"throttled"`
	StartedAt     *time.Time       `json:"startedAt"`
	FinishedAt    *time.Time       `json:"finishedAt"`
}

// trigger queues a run of the kind the tenant's rule chooses (a delta
// run once a full run saved links).
func (h *harness) trigger(tenantID string) string {
	h.t.Helper()
	return h.triggerWith(tenantID, nil)
}

// triggerFull queues a run that reads the whole directory.
func (h *harness) triggerFull(tenantID string) string {
	h.t.Helper()
	return h.triggerWith(tenantID, map[string]string{"kind": "full"})
}

func (h *harness) triggerWith(tenantID string, body any) string {
	h.t.Helper()
	var out struct {
		RunID string `json:"runId"`
	}
	if code := h.do("POST", "/v1/tenants/"+tenantID+"/syncs", body, &out); code != http.StatusAccepted || out.RunID == "" {
		h.t.Fatalf("POST syncs = %d %+v", code, out)
	}
	return out.RunID
}

// wait polls a run until it has finished, one way or the other.
func (h *harness) wait(tenantID, runID string) runView {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var v runView
		if code := h.do("GET", "/v1/tenants/"+tenantID+"/syncs/"+runID, nil, &v); code != http.StatusOK {
			h.t.Fatalf("GET run = %d", code)
		}
		switch v.Status {
		case "succeeded", "failed", "awaiting_approval", "rejected":
			return v
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("run %s still %s after 5 minutes", runID, v.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sync triggers a run and waits for it to succeed.
func (h *harness) sync(tenantID string) runView {
	h.t.Helper()
	return h.succeed(tenantID, h.trigger(tenantID))
}

// syncFull is sync for a run that reads the whole directory.
func (h *harness) syncFull(tenantID string) runView {
	h.t.Helper()
	return h.succeed(tenantID, h.triggerFull(tenantID))
}

func (h *harness) succeed(tenantID, runID string) runView {
	h.t.Helper()
	v := h.wait(tenantID, runID)
	if v.Status != "succeeded" {
		h.t.Fatalf("run %s: %s: %s", v.RunID, v.Status, v.Error)
	}
	return v
}

type userView struct {
	EntraID     string `json:"entraId"`
	Email       string `json:"email"`
	DisplayName string `json:"displayName"`
	Enabled     bool   `json:"enabled"`
	License     string `json:"license"`
}

type groupView struct {
	EntraID           string `json:"entraId"`
	DisplayName       string `json:"displayName"`
	Kind              string `json:"kind"`
	EntraMemberCount  int    `json:"entraMemberCount"`
	SyncedMemberCount int    `json:"syncedMemberCount"`
}

// list reads every page of a collection; it returns the items and the
// number of pages it took.
func list[T any](h *harness, path string) ([]T, int) {
	h.t.Helper()
	var all []T
	after, pages := "", 0
	for {
		var page struct {
			Items []T     `json:"items"`
			Next  *string `json:"next"`
		}
		p := path
		if after != "" {
			sep := "?" // path may carry a query of its own
			if strings.Contains(path, "?") {
				sep = "&"
			}
			p += sep + "after=" + url.QueryEscape(after)
		}
		if code := h.do("GET", p, nil, &page); code != http.StatusOK {
			h.t.Fatalf("GET %s = %d", p, code)
		}
		all = append(all, page.Items...)
		pages++
		if page.Next == nil || *page.Next == "" {
			return all, pages
		}
		after = *page.Next
		if pages > 10000 {
			h.t.Fatal("paging does not end")
		}
	}
}

func (h *harness) users(tenantID string) []userView {
	u, _ := list[userView](h, "/v1/tenants/"+tenantID+"/users")
	return u
}

func (h *harness) groups(tenantID string) []groupView {
	g, _ := list[groupView](h, "/v1/tenants/"+tenantID+"/groups")
	return g
}

// expectedUsers is what the app side should hold for a directory on a
// tenant's first sync: Member users only; seats go to enabled users in
// order of their Entra id while they last.
func expectedUsers(dir *graphsim.Directory, seats int) []userView {
	var out []userView
	for _, u := range dir.Users() {
		if u.UserType != "Member" {
			continue
		}
		v := userView{EntraID: u.ID, Email: u.Mail, DisplayName: u.DisplayName, Enabled: u.AccountEnabled, License: "none"}
		if v.Email == "" {
			v.Email = u.UserPrincipalName
		}
		if !u.AccountEnabled {
			v.License = "disabled"
		} else if seats > 0 {
			v.License = "assigned"
			seats--
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EntraID < out[j].EntraID })
	return out
}

func groupKind(g graphsim.Group) string {
	switch {
	case slices.Contains(g.GroupTypes, "Unified"):
		return "microsoft365"
	case g.SecurityEnabled && g.MailEnabled:
		return "mailEnabledSecurity"
	case g.SecurityEnabled:
		return "security"
	default:
		return "distribution"
	}
}

// expectedGroups: every group; Entra's count is every user of the nested
// membership, the synced count those that are app users (Members).
func expectedGroups(dir *graphsim.Directory) []groupView {
	var out []groupView
	for _, g := range dir.Groups() {
		v := groupView{EntraID: g.ID, DisplayName: g.DisplayName, Kind: groupKind(g)}
		for _, u := range dir.TransitiveUsers(g.ID) {
			v.EntraMemberCount++
			if u.UserType == "Member" {
				v.SyncedMemberCount++
			}
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EntraID < out[j].EntraID })
	return out
}

// diff describes how got differs from want, item by item, or "" when equal.
func diff[T comparable](got, want []T, key func(T) string) string {
	var b strings.Builder
	gm := map[string]T{}
	for _, g := range got {
		if _, dup := gm[key(g)]; dup {
			fmt.Fprintf(&b, "duplicate %s\n", key(g))
		}
		gm[key(g)] = g
	}
	n := 0
	for _, w := range want {
		g, ok := gm[key(w)]
		switch {
		case !ok:
			fmt.Fprintf(&b, "missing %+v\n", w)
			n++
		case g != w:
			fmt.Fprintf(&b, "got  %+v\nwant %+v\n", g, w)
			n++
		}
		delete(gm, key(w))
		if n > 10 {
			b.WriteString("...\n")
			return b.String()
		}
	}
	for _, g := range gm {
		fmt.Fprintf(&b, "unexpected %+v\n", g)
	}
	return b.String()
}

func userKey(u userView) string   { return u.EntraID }
func groupKey(g groupView) string { return g.EntraID }

// tableHashes returns an md5 of every table's rows (storetest.TableHashes).
func (h *harness) tableHashes() map[string]string {
	h.t.Helper()
	return storetest.TableHashes(h.t, h.db)
}

// rowVersions maps each row's key to its xmin (storetest.RowVersions).
func (h *harness) rowVersions(query string, args ...any) map[string]uint32 {
	h.t.Helper()
	return storetest.RowVersions(h.t, h.db, query, args...)
}

// parallel runs f for each item concurrently and waits.
func parallel[T any](items []T, f func(T)) {
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Add(1)
		go func() { defer wg.Done(); f(it) }()
	}
	wg.Wait()
}
