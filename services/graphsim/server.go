package graphsim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	stdlog "log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Options configure a Server.
type Options struct {
	Addr          string         // listen address; default "127.0.0.1:0"
	Logger        zerolog.Logger // one line per request at debug level
	CertDir       string         // if set, ca.pem is written there (for SSL_CERT_FILE)
	TokenLifetime time.Duration  // lifetime of issued access tokens; default 1h

	// Hostname is the host clients put in URLs; default the listen IP, or
	// 127.0.0.1 when listening on every interface. It is in the
	// certificate, with localhost, 127.0.0.1 and ::1.
	Hostname string
	// Clock tells the time (token expiry, error dates); default time.Now.
	// Tests move it forward to expire tokens without sleeping.
	Clock func() time.Time
	// MaxRequests bounds the request log (oldest dropped first);
	// default 100,000.
	MaxRequests int
	// BatchSeed seeds the order in which $batch responses come back:
	// shuffled, the same way for the same seed and request ids.
	BatchSeed int64

	// DeltaTokenTTL is how long delta state tokens ($deltatoken,
	// $skiptoken of a delta round) stay valid, by Clock; older ones answer
	// 400 syncStateNotFound. Default 7 days (delta-query-overview.md,
	// "Token duration": seven days for directory objects).
	DeltaTokenTTL time.Duration
	// DeltaPageSize is the objects per delta page; default 200. Clients
	// cannot change it ($top is refused on delta).
	DeltaPageSize int
	// DeltaMemberChunk is how many members@delta entries one copy of a
	// group carries on a page; a group with more continues on the next
	// page, as the same group again. Default 100.
	DeltaMemberChunk int
}

// Faults are failures injected into one tenant's Graph requests (or every
// tenant's, under the tenant ID ""). Token requests are affected only by
// StallAuthority. Requests are counted per tenant from the last SetFaults.
type Faults struct {
	ThrottleEvery           int    // every Nth Graph request answers 429 with RetryAfter (0 = never)
	RetryAfter              string // the Retry-After header value exactly, e.g. "1.5"; default "1"
	ServiceUnavailableEvery int    // every Nth request answers 503 (with ServiceUnavailableRetryAfter)
	// ServiceUnavailableRetryAfter is the Retry-After of injected 503s
	// (ServiceUnavailableEvery and 503s in FailNext); "" sends none.
	// throttling.md: a 503 may carry Retry-After, or not.
	ServiceUnavailableRetryAfter string
	FailNext                     []int         // the next len(FailNext) requests answer these statuses in order
	Latency                      time.Duration // added before every Graph response

	// EnforceBudget throttles like Graph's identity and access limit, a
	// token bucket (throttling.md): the bucket holds Budget resource units
	// and refills at Budget per 10 s; each request spends its units
	// (x-ms-resource-unit). A request that finds too few answers 429 with
	// Retry-After (fractional seconds) until the bucket holds its cost,
	// and still counts: Graph keeps counting a throttled client's
	// requests, so one that retries early only waits longer. The debt is
	// bounded at 80% of the budget. x-ms-throttle-limit-percentage (the
	// share of the budget in use, 0.8 up to 1.8) appears past 80%.
	EnforceBudget bool
	// Budget is the bucket's resource units per 10 s; 0 takes Graph's
	// (throttling-limits.md): 3,500 for tenants under 50 users, 5,000 up
	// to 500 users, 8,000 above.
	Budget int
	// AppBudget sizes the second bucket EnforceBudget fills: the one of
	// the tenant's app registration (its client id) across every tenant
	// it is consented in, holding AppBudget resource units and refilling
	// at AppBudget per 20 s; 0 takes Graph's 150,000 (throttling-limits.md:
	// "application | 150,000 ResourceUnits per 20 seconds"). Every request
	// of a tenant that enforces the budget pays into both buckets, with the
	// same rules; one its app's bucket cannot pay for answers 429 with
	// x-ms-throttle-scope Application/ReadWrite/<client id>/<tenant id>,
	// and the other tenants of the app are throttled with it. The bucket
	// is the app's, not the tenant's: give every tenant of one app the
	// same AppBudget (a request sizes the bucket by its own tenant's).
	AppBudget int

	// DeltaGoneNext: the tenant's next N delta requests answer 410 Gone
	// with a Location header: the first request of the round again, with
	// an empty $deltatoken (delta-query-overview.md, "Synchronization
	// reset").
	DeltaGoneNext int
	// DeltaResyncNext: the tenant's next N delta requests answer 400 with
	// the error code resyncRequired and no Location.
	DeltaResyncNext int
	// DeltaReplay makes delta pages replay: each page after the first
	// begins with the last object of the page before, again
	// (delta-query-overview.md, "Replays").
	DeltaReplay bool

	// StallAuthority is how many of the tenant's next token-authority
	// requests (openid-configuration and token, by tenant ID or domain)
	// get no answer at all: each hangs until its client gives up, as an
	// authority that is slow or cut off looks to the client.
	StallAuthority int
}

// Permissions say which member types a tenant's app registration may
// read. The zero value reads every type, as an app with Directory.Read.All
// does.
type Permissions struct {
	// Unreadable are the member types the app has no permission to read:
	// TypeDevice without Device.Read.All, TypeOrgContact without
	// OrgContact.Read.All, TypeUser without User.Read.All, TypeGroup
	// without Group.Read.All. Member lists (members, transitiveMembers and
	// their casts) still return such members, with limited information:
	// @odata.type and id, every other property null. Everything else,
	// /users and /groups included, is served as before.
	Unreadable []ObjectType
	// NoHiddenMembership says the app lacks Member.Read.Hidden: the
	// member lists (members, transitiveMembers) of a group whose
	// visibility is HiddenMembership answer 403 Authorization_RequestDenied
	// (group-list-members.md: "To list the members of a hidden membership
	// group, the Member.Read.Hidden permission is required").
	NoHiddenMembership bool
}

// access is what a tenant's app may read: Permissions as the server
// keeps them.
type access struct {
	unreadable map[ObjectType]bool // member types served with limited information
	noHidden   bool                // no Member.Read.Hidden
}

// Request is one request the server answered, for assertions.
type Request struct {
	At         time.Time // when it arrived
	Tenant     string    // Entra tenant ID (from the bearer token, or the token URL), lower case
	Method     string
	Path       string // URL path, e.g. /v1.0/users or /{tenant}/oauth2/v2.0/token
	RawQuery   string
	Status     int
	RetryAfter string // the Retry-After header sent, if any
	// ThrottleScope is the x-ms-throttle-scope sent with a 429 of the
	// budget, e.g. Application/ReadWrite/<client id>/<tenant id>.
	ThrottleScope string
	Authorized    bool // the bearer token (Graph) or client secret (token endpoint) was accepted
	InBatch       bool // an item of a $batch request (logged before the batch itself)
	// ResourceUnits is what the answer's x-ms-resource-unit header said
	// the request cost (0 when it sent none: errors, 429s, the authority).
	ResourceUnits int
}

// Server is a Microsoft Graph v1.0 and Entra ID token authority on one
// HTTPS listener, with its own CA made at start.
type Server struct {
	opts   Options
	log    zerolog.Logger
	ln     net.Listener
	srv    *http.Server
	origin string // https://host:port
	caPEM  []byte
	caPool *x509.CertPool
	key    []byte // signs access tokens and skip tokens

	mu      sync.RWMutex
	tenants map[string]*tenant // by lower-case tenant ID
	domains map[string]string  // initial domain → tenant ID
	// access holds each tenant's Permissions, by lower-case tenant ID
	// ("" = every tenant without its own).
	access map[string]access

	faultMu sync.Mutex
	faults  map[string]*faultState
	// apps are the resource-unit buckets of the app registrations, by
	// lower-case client id, shared by all their tenants that enforce a
	// budget (guarded by faultMu).
	apps map[string]*budgetState

	reqMu sync.Mutex
	reqs  []Request

	startOnce sync.Once
	closeOnce sync.Once
	serveErr  chan error
}

type tenant struct {
	id, clientID, secret string
	dir                  *Directory
}

type faultState struct {
	f        Faults
	failNext []int
	stalls   int                     // authority requests still to stall
	gone     int                     // delta requests still to answer 410
	resync   int                     // delta requests still to answer resyncRequired
	counts   map[string]int          // per tenant
	windows  map[string]*budgetState // per tenant
}

// budgetState is one resource-unit bucket (a tenant's app, or an app
// across its tenants): the units it held at the last request (negative:
// in debt), and when that was.
type budgetState struct {
	tokens float64
	at     time.Time
}

// spend refills the bucket, which holds size units and refills at size
// per window, up to now and takes a request's cost from it. A request
// the bucket cannot pay for still counts (Graph counts a throttled
// client's requests), down to a debt of 80% of size. used is the share
// of size in use afterwards; wait, when the bucket could not pay, how
// long until it holds the cost again (0 when it could).
func (b *budgetState) spend(now time.Time, size float64, window time.Duration, cost float64) (used float64, wait time.Duration) {
	rate := size / window.Seconds() // units per second
	if elapsed := now.Sub(b.at).Seconds(); elapsed > 0 {
		b.tokens = b.tokens + elapsed*rate
		b.at = now
	}
	b.tokens = min(size, b.tokens) // also when the size shrank
	throttled := b.tokens < cost
	b.tokens = max(b.tokens-cost, -0.8*size)
	used = 1 - b.tokens/size
	if !throttled {
		return used, 0
	}
	secs := max((cost-b.tokens)/rate, 0.001)
	return used, time.Duration(secs * float64(time.Second))
}

// budgetWindow is the time Graph's identity and access budget of an app
// in a tenant takes to refill from empty; appBudgetWindow that of an app
// across all tenants (throttling-limits.md).
const (
	budgetWindow    = 10 * time.Second
	appBudgetWindow = 20 * time.Second
)

// defaultAppBudget is Graph's resource-unit budget per 20 s of an app
// across all tenants (throttling-limits.md, identity and access service:
// "application | 150,000 ResourceUnits per 20 seconds").
const defaultAppBudget = 150_000

// defaultBudget is Graph's resource-unit budget per 10 s for a tenant of
// the given size (throttling-limits.md, identity and access service).
func defaultBudget(users int) int {
	switch {
	case users < 50:
		return 3500
	case users <= 500:
		return 5000
	}
	return 8000
}

// New makes the CA and the server certificate and binds the listener, so
// the URLs are known before Start.
func New(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = time.Hour
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MaxRequests <= 0 {
		opts.MaxRequests = 100_000
	}
	s := &Server{
		opts: opts, log: opts.Logger,
		tenants: map[string]*tenant{}, domains: map[string]string{}, access: map[string]access{},
		faults: map[string]*faultState{}, apps: map[string]*budgetState{}, serveErr: make(chan error, 1),
	}
	s.key = make([]byte, 32)
	if _, err := rand.Read(s.key); err != nil {
		return nil, fmt.Errorf("graphsim: signing key: %w", err)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("graphsim: listen on %s: %w", opts.Addr, err)
	}
	host := opts.Hostname
	addr := ln.Addr().(*net.TCPAddr)
	if host == "" {
		host = addr.IP.String()
		if addr.IP.IsUnspecified() {
			host = "127.0.0.1"
		}
	}
	s.origin = "https://" + net.JoinHostPort(host, fmt.Sprint(addr.Port))
	cert, err := s.makeCerts(host)
	if err != nil {
		ln.Close()
		return nil, err
	}
	if opts.CertDir != "" {
		if err := os.MkdirAll(opts.CertDir, 0o755); err != nil {
			ln.Close()
			return nil, fmt.Errorf("graphsim: cert dir: %w", err)
		}
		if err := os.WriteFile(filepath.Join(opts.CertDir, "ca.pem"), s.caPEM, 0o644); err != nil {
			ln.Close()
			return nil, fmt.Errorf("graphsim: write ca.pem: %w", err)
		}
	}
	s.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second,
		// TLS handshake failures (a client without the CA) are the
		// client's problem; keep them out of stderr.
		ErrorLog: stdlog.New(debugWriter{s.log}, "", 0)}
	return s, nil
}

// makeCerts creates a CA (ECDSA P-256) and a server certificate it signs.
func (s *Server) makeCerts(host string) (tls.Certificate, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("graphsim: CA key: %w", err)
	}
	serial := func() *big.Int {
		n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
		return n
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "entrasync graphsim CA", Organization: []string{"entrasync"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("graphsim: CA certificate: %w", err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	s.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	s.caPool = x509.NewCertPool()
	s.caPool.AddCert(caCert)

	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("graphsim: server key: %w", err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(2 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil {
		leafTmpl.IPAddresses = append(leafTmpl.IPAddresses, ip)
	} else if host != "localhost" {
		leafTmpl.DNSNames = append(leafTmpl.DNSNames, host)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("graphsim: server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey}, nil
}

// Start serves in the background and returns at once.
func (s *Server) Start() error {
	started := false
	s.startOnce.Do(func() {
		started = true
		go func() {
			err := s.srv.Serve(s.ln)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			s.serveErr <- err
		}()
		s.log.Info().Str("graph", s.GraphURL()).Str("authority", s.AuthorityURL()).Msg("graph simulator listening")
	})
	if !started {
		return errors.New("graphsim: server already started")
	}
	return nil
}

// Close stops the server; requests in flight are cut.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		started := true
		s.startOnce.Do(func() { started = false }) // and Start can no longer run
		err = s.srv.Close()
		if !started {
			_ = s.ln.Close() // Serve never took it over
			return
		}
		if serr := <-s.serveErr; err == nil {
			err = serr
		}
	})
	return err
}

// Shutdown stops taking requests and waits for those in flight.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// GraphURL is the Graph v1.0 root, e.g. "https://127.0.0.1:PORT/v1.0"
// (GRAPH_BASE_URL).
func (s *Server) GraphURL() string { return s.origin + "/v1.0" }

// AuthorityURL is the token authority, e.g. "https://127.0.0.1:PORT/"
// (AZURE_AUTHORITY_HOST).
func (s *Server) AuthorityURL() string { return s.origin + "/" }

// CAPEM is the PEM of the CA that signed the server's certificate.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.caPEM...) }

// CAPool is a pool holding only the server's CA.
func (s *Server) CAPool() *x509.CertPool { return s.caPool.Clone() }

// HTTPClient is an HTTP client that trusts the server's CA, for tests.
func (s *Server) HTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: s.CAPool(), MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t, Timeout: time.Minute}
}

// AddTenant registers (or replaces) an Entra tenant: its ID, the one app
// registration allowed to get tokens for it, and its directory.
func (s *Server) AddTenant(entraTenantID, clientID, clientSecret string, d *Directory) {
	id := strings.ToLower(entraTenantID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.tenants[id]; ok && old.dir != nil {
		delete(s.domains, strings.ToLower(old.dir.Domain()))
	}
	s.tenants[id] = &tenant{id: id, clientID: strings.ToLower(clientID), secret: clientSecret, dir: d}
	if d != nil {
		s.domains[strings.ToLower(d.Domain())] = id
	}
}

// RemoveTenant forgets a tenant; its tokens stop working.
func (s *Server) RemoveTenant(entraTenantID string) {
	id := strings.ToLower(entraTenantID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.tenants[id]; ok && old.dir != nil {
		delete(s.domains, strings.ToLower(old.dir.Domain()))
	}
	delete(s.tenants, id)
}

// Directory returns a tenant's directory, or nil for an unknown tenant.
func (s *Server) Directory(entraTenantID string) *Directory {
	t := s.tenant(entraTenantID)
	if t == nil {
		return nil
	}
	return t.dir
}

// tenant finds a tenant by ID or by its initial domain, as the authority
// accepts either in its URLs.
func (s *Server) tenant(idOrDomain string) *tenant {
	key := strings.ToLower(idOrDomain)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t, ok := s.tenants[key]; ok {
		return t
	}
	if id, ok := s.domains[key]; ok {
		return s.tenants[id]
	}
	return nil
}

// SetFaults replaces the faults of a tenant ("" = every tenant without
// faults of its own) and restarts its request count. A zero Faults
// removes them (a tenant then falls back to the faults of "").
func (s *Server) SetFaults(entraTenantID string, f Faults) {
	key := strings.ToLower(entraTenantID)
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if f.isZero() {
		delete(s.faults, key)
		return
	}
	if f.RetryAfter == "" {
		f.RetryAfter = "1"
	}
	s.faults[key] = &faultState{f: f, failNext: append([]int(nil), f.FailNext...), stalls: f.StallAuthority, gone: f.DeltaGoneNext, resync: f.DeltaResyncNext, counts: map[string]int{}, windows: map[string]*budgetState{}}
}

func (f Faults) isZero() bool {
	return f.ThrottleEvery == 0 && f.ServiceUnavailableEvery == 0 && len(f.FailNext) == 0 && f.Latency == 0 &&
		!f.EnforceBudget && f.StallAuthority == 0 && f.DeltaGoneNext == 0 && f.DeltaResyncNext == 0 && !f.DeltaReplay
}

// deltaFaultKind is a failure injected into a delta request.
type deltaFaultKind int

const (
	deltaOK deltaFaultKind = iota
	deltaGone
	deltaResync
)

// deltaFault counts a delta request of a tenant against DeltaGoneNext and
// DeltaResyncNext.
func (s *Server) deltaFault(tenantID string) deltaFaultKind {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	st := s.faultsOf(tenantID)
	switch {
	case st == nil:
	case st.gone > 0:
		st.gone--
		return deltaGone
	case st.resync > 0:
		st.resync--
		return deltaResync
	}
	return deltaOK
}

func (s *Server) deltaReplay(tenantID string) bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	st := s.faultsOf(tenantID)
	return st != nil && st.f.DeltaReplay
}

// stallAuthority reports whether a token-authority request of a tenant
// is to get no answer, and counts it when so.
func (s *Server) stallAuthority(tenantID string) bool {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	st := s.faultsOf(tenantID)
	if st == nil || st.stalls == 0 {
		return false
	}
	st.stalls--
	return true
}

// SetPermissions replaces what the app registration of a tenant ("" =
// every tenant without permissions of its own) may read. A zero
// Permissions removes them: the tenant falls back to those of "", and
// without those its app reads everything. Types other than user, group,
// device and orgContact are refused with ErrInvalid.
func (s *Server) SetPermissions(entraTenantID string, p Permissions) error {
	set := map[ObjectType]bool{}
	for _, t := range p.Unreadable {
		switch t {
		case TypeUser, TypeGroup, TypeDevice, TypeOrgContact:
			set[t] = true
		default:
			return fmt.Errorf("graphsim: permissions: unknown member type %q: %w", t, ErrInvalid)
		}
	}
	key := strings.ToLower(entraTenantID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(set) == 0 && !p.NoHiddenMembership {
		delete(s.access, key)
		return nil
	}
	if len(set) == 0 {
		set = nil
	}
	s.access[key] = access{unreadable: set, noHidden: p.NoHiddenMembership}
	return nil
}

// accessOf is what a tenant's app may read (the zero access reads
// everything). Its set is never modified once stored.
func (s *Server) accessOf(tenantID string) access {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if a, ok := s.access[tenantID]; ok {
		return a
	}
	return s.access[""]
}

func (s *Server) faultsOf(tenantID string) *faultState {
	if st, ok := s.faults[tenantID]; ok {
		return st
	}
	return s.faults[""]
}

// throttleScope names the limit a 429 of the budget hit: the first part
// of x-ms-throttle-scope (throttling-limits.md, "Throttled responses
// requests").
type throttleScope string

const (
	// scopeTenantApp is "All requests for a particular tenant for the
	// current application."
	scopeTenantApp throttleScope = "Tenant_Application"
	// scopeApp is "All requests for the current application."
	scopeApp throttleScope = "Application"
)

// spent is what a request's resource units did to its budget: when it is
// to be refused, the Retry-After (fractional seconds) and the limit it
// hit; and the x-ms-throttle-limit-percentage to send ("" below 80%).
type spent struct {
	retryAfter string
	scope      throttleScope
	percentage string
}

// spend takes a request's resource units from the budget of the tenant's
// app in the tenant and from the app's budget across its tenants, when
// the tenant's faults enforce one. The request counts in both buckets
// whether or not they can pay; it is refused when either cannot, with
// the wait and scope of the one that holds it back longer.
func (s *Server) spend(t *tenant, users, cost int) spent {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	st := s.faultsOf(t.id)
	if st == nil || !st.f.EnforceBudget {
		return spent{}
	}
	now := s.now()
	size := st.f.Budget
	if size <= 0 {
		size = defaultBudget(users)
	}
	tb := st.windows[t.id]
	if tb == nil {
		tb = &budgetState{tokens: float64(size), at: now}
		st.windows[t.id] = tb
	}
	appSize := st.f.AppBudget
	if appSize <= 0 {
		appSize = defaultAppBudget
	}
	ab := s.apps[t.clientID]
	if ab == nil {
		ab = &budgetState{tokens: float64(appSize), at: now}
		s.apps[t.clientID] = ab
	}
	used, wait := tb.spend(now, float64(size), budgetWindow, float64(cost))
	appUsed, appWait := ab.spend(now, float64(appSize), appBudgetWindow, float64(cost))

	var out spent
	// throttling-limits.md: "Returned only when the application consumed
	// more than 0.8 of its limit", whichever limit that is.
	if p := max(used, appUsed); p > 0.8 {
		out.percentage = strconv.FormatFloat(p, 'f', 2, 64)
	}
	switch {
	case appWait > 0 && appWait >= wait:
		out.scope, wait = scopeApp, appWait
	case wait > 0:
		out.scope = scopeTenantApp
	default:
		return out
	}
	out.retryAfter = strconv.FormatFloat(wait.Seconds(), 'f', 3, 64)
	return out
}

// fault counts a Graph request of a tenant and returns the status to fail
// it with (0 = none), the Retry-After to send, and the latency to add.
func (s *Server) fault(tenantID string) (status int, retryAfter string, latency time.Duration) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	st := s.faultsOf(tenantID)
	if st == nil {
		return 0, "", 0
	}
	st.counts[tenantID]++
	n := st.counts[tenantID]
	latency = st.f.Latency
	switch {
	case len(st.failNext) > 0:
		status = st.failNext[0]
		st.failNext = st.failNext[1:]
	case st.f.ThrottleEvery > 0 && n%st.f.ThrottleEvery == 0:
		status = http.StatusTooManyRequests
	case st.f.ServiceUnavailableEvery > 0 && n%st.f.ServiceUnavailableEvery == 0:
		status = http.StatusServiceUnavailable
	}
	switch status {
	case http.StatusTooManyRequests:
		retryAfter = st.f.RetryAfter
	case http.StatusServiceUnavailable:
		retryAfter = st.f.ServiceUnavailableRetryAfter
	}
	return status, retryAfter, latency
}

// Requests returns a copy of the request log, oldest first.
func (s *Server) Requests() []Request {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// ResetRequests empties the request log.
func (s *Server) ResetRequests() {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	s.reqs = nil
}

func (s *Server) record(r Request) {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	if len(s.reqs) >= s.opts.MaxRequests {
		s.reqs = append(s.reqs[:0], s.reqs[len(s.reqs)-s.opts.MaxRequests+1:]...)
	}
	s.reqs = append(s.reqs, r)
}

func (s *Server) now() time.Time { return s.opts.Clock() }

// ServeHTTP routes Graph requests (/v1.0/...) and authority requests
// (/{tenant}/...).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1.0" || strings.HasPrefix(r.URL.Path, "/v1.0/") {
		s.serveGraph(w, r)
		return
	}
	s.serveAuthority(w, r)
}

// debugWriter turns net/http's log lines into debug events.
type debugWriter struct{ log zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// statusWriter remembers the status a handler sent.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
