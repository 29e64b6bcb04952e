// Package api is entrasync's HTTP JSON API: tenants are connected and
// inspected, syncs are triggered and followed, and the synced users and
// groups are read back. It is a thin layer: triggering a sync records a
// run and publishes its job; it never talks to Microsoft Graph itself.
//
// Every route but /healthz and /readyz needs `Authorization: Bearer <ADMIN_TOKEN>`.
// openapi.yaml next to this file is the contract; errors always have the
// shape {"error": {"code", "message", "field"?}}.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
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
}

// Server is the api. Handler serves it in-process (tests); Start and Stop
// run it on Config.Addr.
type Server struct {
	cfg     Config
	st      *store.Store
	bus     *bus.Bus
	log     zerolog.Logger
	token   [sha256.Size]byte
	handler http.Handler
	now     func() time.Time

	mu  sync.Mutex
	srv *http.Server
	ln  net.Listener
}

// minTokenLen keeps a guessable token out of production.
const minTokenLen = 16

// New checks the configuration and builds the server.
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
	s := &Server{
		cfg:   cfg,
		st:    deps.Store,
		bus:   deps.Bus,
		log:   deps.Logger,
		token: sha256.Sum256([]byte(cfg.AdminToken)),
		now:   time.Now,
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the api's HTTP handler, with authentication, logging and
// panic recovery.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on Config.Addr and serves in the background.
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

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)

	auth := s.authenticate
	// route serves a path's methods; any other method gets a JSON 405
	// naming the allowed ones, instead of the mux's plain-text answer.
	route := func(path string, handlers map[string]http.HandlerFunc) {
		methods := slices.Sorted(maps.Keys(handlers))
		for _, m := range methods {
			mux.Handle(m+" "+path, auth(handlers[m]))
		}
		allow := strings.Join(methods, ", ")
		mux.Handle(path, auth(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "", "this path allows "+allow)
		})))
	}
	route("/v1/tenants", map[string]http.HandlerFunc{"POST": s.createTenant})
	route("/v1/tenants/{tenantId}", map[string]http.HandlerFunc{"GET": s.getTenant})
	route("/v1/tenants/{tenantId}/syncs", map[string]http.HandlerFunc{"GET": s.listRuns, "POST": s.triggerSync})
	route("/v1/tenants/{tenantId}/syncs/{runId}", map[string]http.HandlerFunc{"GET": s.getRun})
	route("/v1/tenants/{tenantId}/users", map[string]http.HandlerFunc{"GET": s.listUsers})
	route("/v1/tenants/{tenantId}/groups", map[string]http.HandlerFunc{"GET": s.listGroups})
	mux.Handle("/", auth(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "", "no such route")
	})))
	return s.recoverAndLog(mux)
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
