package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/bus"
)

// EnvAddr is the environment variable that sets where a worker serves
// /metrics, /healthz and /readyz.
const EnvAddr = "METRICS_ADDR"

// Default listen addresses of the workers' metrics servers: one port per
// service, so that all of them run side by side on one host.
const (
	DefaultSchedulerAddr  = "127.0.0.1:9101"
	DefaultFetcherAddr    = "127.0.0.1:9102"
	DefaultReconcilerAddr = "127.0.0.1:9103"
)

// EnvProfiles is the environment variable that, set to a true value
// ("1", "true"), makes a worker's metrics server also serve the Go
// runtime's profiles (heap, goroutines, CPU) under /debug/pprof/. Off by
// default: a profile shows the process's internals to whoever reaches the
// address, and the CPU profile costs while it runs.
const EnvProfiles = "DEBUG_PPROF"

// ProfilesFromEnv reports whether DEBUG_PPROF asks for profiles; a value
// that is not a boolean is an error that names the variable.
func ProfilesFromEnv(getenv func(string) string) (bool, error) {
	v := getenv(EnvProfiles)
	if v == "" {
		return false, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("config: %s=%q is not a boolean", EnvProfiles, v)
	}
	return on, nil
}

// AddrFromEnv returns METRICS_ADDR, or def when it is unset; a value that
// is not host:port is an error that names the variable.
func AddrFromEnv(getenv func(string) string, def string) (string, error) {
	addr := getenv(EnvAddr)
	if addr == "" {
		return def, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", fmt.Errorf("config: %s=%q is not host:port: %w", EnvAddr, addr, err)
	}
	return addr, nil
}

// Check is one condition of readiness: nil when it holds.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Pinger is what answers when Postgres does; *store.Store is one.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Connection reports whether NATS is connected; *bus.Bus is one.
type Connection interface{ Connected() error }

// WorkerChecks are the readiness checks of a worker: Postgres answers,
// NATS is connected and, when consumer is not "", that durable consumer
// is bound on the server (JetStream answers its consumer info) and, when
// consuming is not nil, consuming in this process. consuming is the
// service's own word (the fetcher's and reconciler's Ready): a durable
// stays bound on the server after the process's consumer died.
func WorkerChecks(db Pinger, nc Connection, lag LagSource, consumer string, consuming func() error) []Check {
	checks := []Check{
		{"postgres", db.Ping},
		{"nats", func(context.Context) error { return nc.Connected() }},
	}
	if consumer != "" && (lag != nil || consuming != nil) {
		checks = append(checks, Check{"consumer " + consumer, func(ctx context.Context) error {
			if consuming != nil {
				if err := consuming(); err != nil {
					return err
				}
			}
			if lag == nil {
				return nil
			}
			return ConsumerBound(ctx, lag, consumer)
		}})
	}
	return checks
}

// ConsumerBound reports an error unless JetStream answers the info of the
// named durable consumer.
func ConsumerBound(ctx context.Context, lag LagSource, consumer string) error {
	lags, err := lag.Lag(ctx)
	if err != nil {
		return err
	}
	for _, l := range lags {
		if l.Consumer == consumer {
			return nil
		}
	}
	return fmt.Errorf("metrics: consumer %s is not bound", consumer)
}

// Probes serves /healthz (the process answers), /readyz (every check
// holds, each within timeout) and /metrics on mux.
func Probes(mux *http.ServeMux, m *Metrics, checks []Check, timeout time.Duration, log zerolog.Logger) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /readyz", ReadyHandler(checks, timeout, log))
	if m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
}

// Readiness is the answer of /readyz, the api's shape: status "ready" or
// "unavailable", and "ok" or "unavailable" per check. Why a check fails
// is logged, not answered: probes are served without a token.
type Readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// ReadyHandler answers 200 when every check holds, else 503; both with a
// Readiness.
func ReadyHandler(checks []Check, timeout time.Duration, log zerolog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		res := Readiness{Status: "ready", Checks: make(map[string]string, len(checks))}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range checks {
			wg.Go(func() {
				err := c.Check(ctx)
				mu.Lock()
				defer mu.Unlock()
				res.Checks[c.Name] = "ok"
				if err != nil {
					log.Warn().Err(err).Str("check", c.Name).Msg("readiness: check failed")
					res.Checks[c.Name], res.Status = "unavailable", "unavailable"
				}
			})
		}
		wg.Wait()
		code := http.StatusOK
		if res.Status != "ready" {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, res)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Server serves /metrics, /healthz and /readyz of a worker on its own
// address, beside the service it watches.
type Server struct {
	addr    string
	handler http.Handler
	mux     *http.ServeMux
	log     zerolog.Logger

	// anyPortIfTaken: serve on a free port, logged, when addr is taken.
	anyPortIfTaken bool

	mu  sync.Mutex
	srv *http.Server
	ln  net.Listener
}

// ReadyTimeout bounds all of /readyz's checks together.
const ReadyTimeout = 3 * time.Second

// NewServer builds a worker's metrics server on addr (port 0: any free one).
func NewServer(addr string, m *Metrics, checks []Check, log zerolog.Logger) *Server {
	mux := http.NewServeMux()
	Probes(mux, m, checks, ReadyTimeout, log)
	return &Server{addr: addr, handler: mux, mux: mux, log: log}
}

// ServeProfiles adds the Go runtime's profiles under /debug/pprof/ (as
// net/http/pprof serves them). Call it before Start.
func (s *Server) ServeProfiles() {
	s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// Handler is the server's handler, for tests.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens and serves in the background. ctx bounds only the
// start (the listen): serving goes on until Stop.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("metrics: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil && s.anyPortIfTaken {
		if host, _, herr := net.SplitHostPort(s.addr); herr == nil {
			s.log.Warn().Err(err).Msg("default metrics address taken; serving on a free port (set " + EnvAddr + ")")
			ln, err = lc.Listen(ctx, "tcp", net.JoinHostPort(host, "0"))
		}
	}
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", s.addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	srv := s.srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("metrics server stopped")
		}
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics, /healthz, /readyz")
	return nil
}

// Addr is where the server listens, once started.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return s.addr
	}
	return s.ln.Addr().String()
}

// Stop stops serving, letting scrapes in flight finish within ctx.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// Service is the lifecycle of a long-running part (as libs/process has it).
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// WithServer runs the metrics server alongside svc: started before it
// (so /healthz answers while the service starts) and stopped after it.
func WithServer(svc Service, srv *Server) Service { return &withServer{svc: svc, srv: srv} }

type withServer struct {
	svc Service
	srv *Server
}

func (w *withServer) Start(ctx context.Context) error {
	if err := w.srv.Start(ctx); err != nil {
		return err
	}
	if err := w.svc.Start(ctx); err != nil {
		_ = w.srv.Stop(context.WithoutCancel(ctx))
		return err
	}
	return nil
}

func (w *withServer) Stop(ctx context.Context) error {
	err := w.svc.Stop(ctx)
	return errors.Join(err, w.srv.Stop(ctx))
}

// Worker builds the metrics of a worker service from its bus and store:
// lag read from JetStream, readiness of Postgres, NATS and consumer (""
// for a worker without one, the scheduler), with consuming as in
// WorkerChecks (nil for none).
func Worker(b *bus.Bus, db Pinger, consumer string, consuming func() error, addr string, log zerolog.Logger) (*Metrics, *Server) {
	m := New(Sources{Lag: b})
	return m, NewServer(addr, m, WorkerChecks(db, b, b, consumer, consuming), log)
}

// WorkerFromEnv is Worker on METRICS_ADDR, or on def when it is unset,
// serving profiles too when DEBUG_PPROF is true. Only def gives way when taken (to a free port, logged), so replicas
// started side by side on one host without METRICS_ADDR all run; an
// address an operator chose is never silently changed.
func WorkerFromEnv(getenv func(string) string, def string, b *bus.Bus, db Pinger, consumer string, consuming func() error,
	log zerolog.Logger) (*Metrics, *Server, error) {
	addr, err := AddrFromEnv(getenv, def)
	if err != nil {
		return nil, nil, err
	}
	profiles, err := ProfilesFromEnv(getenv)
	if err != nil {
		return nil, nil, err
	}
	m, srv := Worker(b, db, consumer, consuming, addr, log)
	srv.anyPortIfTaken = getenv(EnvAddr) == ""
	if profiles {
		srv.ServeProfiles()
		log.Warn().Msg("serving Go profiles under /debug/pprof/ (" + EnvProfiles + ")")
	}
	return m, srv, nil
}
