// Package api is entrasync's HTTP JSON API: tenants are connected,
// inspected and tuned, syncs are triggered and followed, a plan held for
// approval is read and approved or rejected, the synced users and groups
// are read back and users edited, and the admins' notifications are
// listed. It is a thin layer: triggering a sync records a run and
// publishes its job, a decision or an edit is one store call; it never
// talks to Microsoft Graph itself.
//
// Every route but /healthz, /readyz and /metrics needs `Authorization: Bearer <ADMIN_TOKEN>`.
// /metrics (Prometheus, when Deps.Metrics is set) is outside openapi.yaml.
// openapi.yaml next to this file is the contract, and it is enforced: it
// is embedded, and every request is checked against its operation there
// (path and query parameters, body shape and limits) before a handler
// runs, so a limit is stated once, in the spec. Errors always have the
// shape {"error": {"code", "message", "field"?}}.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/store"
)

// Config is the api's own settings.
type Config struct {
	// Addr is the host:port to listen on; port 0 picks a free one.
	Addr string
	// AdminToken is the bearer token every request must carry.
	AdminToken string
}

// Deps are the api's collaborators.
type Deps struct {
	Store  *store.Store
	Bus    *bus.Bus
	Logger zerolog.Logger
	// Metrics, when set, is served on GET /metrics without a token, like
	// the probes (libs/metrics builds it).
	Metrics http.Handler
}

// Server is the api. Handler serves it in-process (tests); Start and Stop
// run it on Config.Addr.
type Server struct {
	cfg     Config
	st      *store.Store
	bus     *bus.Bus
	log     zerolog.Logger
	metrics http.Handler
	token   [sha256.Size]byte
	handler http.Handler
	now     func() time.Time
	// defaultLimit is the page size of lists when the request gives none,
	// as openapi.yaml states it.
	defaultLimit int

	mu  sync.Mutex
	srv *http.Server
	ln  net.Listener
}

// minTokenLen keeps a guessable token out of production.
const minTokenLen = 16

// New checks the configuration, loads openapi.yaml and builds the server.
func New(cfg Config, deps Deps) (*Server, error) {
	if len(cfg.AdminToken) < minTokenLen {
		return nil, fmt.Errorf("api: admin token must be at least %d characters", minTokenLen)
	}
	if deps.Store == nil || deps.Bus == nil {
		return nil, errors.New("api: a store and a bus are required")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	c, err := loadContract(context.Background())
	if err != nil {
		return nil, err
	}
	limit, err := c.queryDefault("limit")
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:          cfg,
		st:           deps.Store,
		bus:          deps.Bus,
		log:          deps.Logger,
		metrics:      deps.Metrics,
		token:        sha256.Sum256([]byte(cfg.AdminToken)),
		now:          time.Now,
		defaultLimit: limit,
	}
	if s.handler, err = s.routes(c); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler returns the api's HTTP handler, with authentication, logging and
// panic recovery.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on Config.Addr and serves in the background. Its ctx
// bounds only the start; requests are served until Stop.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("api: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	srv := s.srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("api server stopped")
		}
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Msg("api listening")
	return nil
}

// Addr returns the address the server listens on (the real port when
// Config.Addr asked for port 0), or Config.Addr before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.cfg.Addr
}

// Stop stops accepting connections and waits for requests in flight until
// ctx is done.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("api: shutdown: %w", err)
	}
	return nil
}

// route is one operation of openapi.yaml and its handler.
type route struct {
	method, path string
	handler      http.HandlerFunc
}

// routes serves the api. Every route but the probes is authenticated,
// then checked against its operation in openapi.yaml, then handled. It
// fails when the routes and the spec's operations are not the same set,
// so that neither can gain a path the other lacks.
func (s *Server) routes(c *contract) (http.Handler, error) {
	table := []route{
		{"POST", "/v1/tenants", s.createTenant},
		{"GET", "/v1/tenants/{tenantId}", s.getTenant},
		{"PATCH", "/v1/tenants/{tenantId}", s.updateSettings},
		{"POST", "/v1/tenants/{tenantId}/disconnect", s.disconnectTenant},
		{"POST", "/v1/tenants/{tenantId}/connect", s.connectTenant},
		{"GET", "/v1/tenants/{tenantId}/syncs", s.listRuns},
		{"POST", "/v1/tenants/{tenantId}/syncs", s.triggerSync},
		{"GET", "/v1/tenants/{tenantId}/syncs/{runId}", s.getRun},
		{"GET", "/v1/tenants/{tenantId}/syncs/{runId}/plan", s.getPlan},
		{"POST", "/v1/tenants/{tenantId}/syncs/{runId}/approve", s.approveRun},
		{"POST", "/v1/tenants/{tenantId}/syncs/{runId}/reject", s.rejectRun},
		{"GET", "/v1/tenants/{tenantId}/notifications", s.listNotifications},
		{"GET", "/v1/tenants/{tenantId}/activity", s.listActivity},
		{"POST", "/v1/tenants/{tenantId}/notify/secret", s.newNotifySecret},
		{"GET", "/v1/tenants/{tenantId}/users", s.listUsers},
		{"GET", "/v1/tenants/{tenantId}/users/{entraId}", s.getUser},
		{"PATCH", "/v1/tenants/{tenantId}/users/{entraId}", s.updateUser},
		{"GET", "/v1/tenants/{tenantId}/groups", s.listGroups},
		{"POST", "/v1/tenants/{tenantId}/groups", s.createLocalGroup},
		{"GET", "/v1/tenants/{tenantId}/groups/{entraId}", s.getGroup},
		{"PATCH", "/v1/tenants/{tenantId}/groups/{entraId}", s.updateGroup},
		{"DELETE", "/v1/tenants/{tenantId}/groups/{entraId}", s.deleteGroup},
		{"POST", "/v1/tenants/{tenantId}/groups/{entraId}/archive", s.archiveGroup},
		{"GET", "/v1/tenants/{tenantId}/users/{entraId}/grants", s.listUserGrants},
		{"PUT", "/v1/tenants/{tenantId}/roles/{name}", s.putRole},
		{"DELETE", "/v1/tenants/{tenantId}/roles/{name}", s.deleteRole},
		{"PUT", "/v1/tenants/{tenantId}/sharing/{name}", s.putSharing},
		{"DELETE", "/v1/tenants/{tenantId}/sharing/{name}", s.deleteSharing},
	}
	probes := []route{
		{"GET", "/healthz", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		}},
		{"GET", "/readyz", s.ready},
	}
	served := []string{}
	for _, rt := range slices.Concat(table, probes) {
		served = append(served, rt.method+" "+rt.path)
	}
	slices.Sort(served)
	if spec := c.operations(); !slices.Equal(served, spec) {
		return nil, fmt.Errorf("api: the routes %v and openapi.yaml's operations %v differ", served, spec)
	}

	mux := http.NewServeMux()
	for _, rt := range probes {
		mux.Handle(rt.method+" "+rt.path, rt.handler)
	}
	// Prometheus's text format is not JSON: /metrics is kept out of the
	// contract, which describes the JSON API.
	if s.metrics != nil {
		mux.Handle("GET /metrics", s.metrics)
	}
	auth := s.authenticate
	allowed := map[string][]string{}
	for _, rt := range table {
		op, err := c.route(rt.method, rt.path)
		if err != nil {
			return nil, err
		}
		mux.Handle(rt.method+" "+rt.path, auth(c.validate(op, rt.handler)))
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	// Any other method of a known path gets a JSON 405 naming the allowed
	// ones, instead of the mux's plain-text answer.
	for path, methods := range allowed {
		slices.Sort(methods)
		allow := strings.Join(methods, ", ")
		mux.Handle(path, auth(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "", "this path allows "+allow)
		})))
	}
	mux.Handle("/", auth(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "", "no such route")
	})))
	return s.recoverAndLog(mux), nil
}

// authenticate lets through requests that carry the admin token. The
// comparison is of fixed-size hashes in constant time, so neither the
// token's content nor its length leaks through timing.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		scheme, tok, ok := strings.Cut(h, " ")
		given := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(given[:], s.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="entrasync"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "", "a valid bearer token is required (Authorization: Bearer <admin token>)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statusWriter remembers the status code for the access log.
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

// recoverAndLog logs each request (never its headers or body: they carry
// the token and client secrets) and turns a panic into a 500.
func (s *Server) recoverAndLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error().Str("method", r.Method).Str("path", r.URL.Path).
					Str("stack", string(debug.Stack())).Msgf("handler panicked: %v", p)
				if sw.status == 0 {
					writeError(sw, http.StatusInternalServerError, "internal", "", "internal error")
				}
			}
			lvl := zerolog.DebugLevel
			if sw.status >= 500 {
				lvl = zerolog.WarnLevel
			}
			s.log.WithLevel(lvl).Str("method", r.Method).Str("path", r.URL.Path).
				Int("status", sw.status).Dur("took", time.Since(start)).Msg("request")
		}()
		next.ServeHTTP(sw, r)
	})
}
