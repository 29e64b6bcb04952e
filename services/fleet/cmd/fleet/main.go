// Command fleet runs all of entrasync in one process for a first look:
// embedded NATS JetStream, a private PostgreSQL cluster when DATABASE_URL is
// unset, and, unless GRAPH_BASE_URL is set, the Graph simulator with a demo
// tenant already connected. State lives in .run/ so a restart keeps it.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/budget"
	"github.com/entrasync/entrasync/libs/config"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/log"
	"github.com/entrasync/entrasync/libs/process"
	"github.com/entrasync/entrasync/libs/store"
	"github.com/entrasync/entrasync/services/fleet"
	"github.com/entrasync/entrasync/services/graphsim"
	"github.com/entrasync/entrasync/services/scheduler"
)

func main() {
	logger := log.Console("fleet", os.Getenv("LOG_LEVEL"))
	if err := run(logger); err != nil {
		logger.Error().Err(err).Msg("fleet stopped")
		os.Exit(1)
	}
}

func run(logger zerolog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := config.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	stateDir := os.Getenv("ENTRASYNC_RUN_DIR")
	if stateDir == "" {
		stateDir = ".run"
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	stateDir, _ = filepath.Abs(stateDir)

	if cfg.AdminToken == "" {
		if cfg.AdminToken, err = persisted(filepath.Join(stateDir, "admin-token"), 24, hex.EncodeToString); err != nil {
			return err
		}
	}
	if cfg.SecretKey == nil {
		k, err := persisted(filepath.Join(stateDir, "secret-key"), 32, base64.StdEncoding.EncodeToString)
		if err != nil {
			return err
		}
		cfg.SecretKey, _ = config.ParseSecretKey(k)
	}

	if cfg.DatabaseURL == "" {
		logger.Info().Str("dir", filepath.Join(stateDir, "pg")).Msg("starting a private PostgreSQL cluster")
		pg, err := devenv.StartDurablePostgres(ctx, filepath.Join(stateDir, "pg"))
		if err != nil {
			return err
		}
		defer pg.Stop()
		if err := ensureDatabase(ctx, pg.URL("postgres"), "entrasync"); err != nil {
			return err
		}
		cfg.DatabaseURL = pg.URL("entrasync")
	}

	monitorURL := ""
	if cfg.NATSURL == "" {
		ns, url, err := devenv.StartNATS(filepath.Join(stateDir, "nats"), 0, -1)
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		cfg.NATSURL = url
		if a := ns.MonitorAddr(); a != nil {
			monitorURL = "http://" + a.String()
		}
		logger.Info().Str("url", url).Str("monitor", monitorURL).Msg("embedded NATS JetStream started")
	}

	fcfg := fleet.Config{
		DatabaseURL:   cfg.DatabaseURL,
		NATSURL:       cfg.NATSURL,
		GraphBaseURL:  cfg.GraphBaseURL,
		AuthorityHost: cfg.AuthorityHost,
		GraphScope:    cfg.GraphScope,
		APIAddr:       cfg.APIAddr,
		AdminToken:    cfg.AdminToken,
		SecretKey:     cfg.SecretKey,
		Fetchers:      2,
		Reconcilers:   2,
		Scheduler:     true,
		Notifier:      true,
		Logger:        logger,

		GraphMaxRetryAfter: cfg.GraphMaxRetryAfter,
		GraphBudget:        budget.Config{Margin: cfg.GraphBudgetMargin},
		GraphUnbudgeted:    !cfg.GraphBudget,
		Bus:                process.BusOptions(cfg),
		LeaseTTL:           cfg.LeaseTTL,
		Scheduling: scheduler.Config{
			TickEvery: cfg.TickEvery, StaleQueued: cfg.StaleQueued, StuckAfter: cfg.StuckAfter,
		},
	}

	var sim *graphsim.Server
	if os.Getenv("GRAPH_BASE_URL") == "" {
		sim, err = graphsim.New(graphsim.Options{Logger: logger.With().Str("service", "graphsim").Logger(), CertDir: filepath.Join(stateDir, "graphsim")})
		if err != nil {
			return err
		}
		if err := sim.Start(); err != nil {
			return err
		}
		defer sim.Close()
		spec, err := fleet.DemoSpec(os.Getenv("DEMO_USERS"))
		if err != nil {
			return err
		}
		fleet.AddDemoDirectory(sim, spec)
		fcfg.GraphBaseURL = sim.GraphURL()
		fcfg.AuthorityHost = sim.AuthorityURL()
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: sim.CAPool(), MinVersion: tls.VersionTLS12}
		fcfg.GraphTransport = t
		logger.Info().Str("graph", sim.GraphURL()).Str("authority", sim.AuthorityURL()).Msg("Graph simulator started")
	}

	f, err := fleet.Start(ctx, fcfg)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.Stop(sctx); err != nil {
			logger.Warn().Err(err).Msg("stopping the fleet")
		}
	}()
	apiURL := "http://" + f.API.Addr()

	tenantID := ""
	if sim != nil {
		if tenantID, err = demoTenant(ctx, f.Store, apiURL, cfg.AdminToken, filepath.Join(stateDir, "demo-tenant")); err != nil {
			return err
		}
	}
	printWelcome(apiURL, cfg.AdminToken, tenantID, monitorURL)
	<-ctx.Done()
	logger.Info().Msg("shutting down")
	return nil
}

// demoTenant returns the demo tenant's id, connecting it on first start.
func demoTenant(ctx context.Context, st *store.Store, apiURL, token, file string) (string, error) {
	if b, err := os.ReadFile(file); err == nil {
		id := strings.TrimSpace(string(b))
		if _, err := st.GetTenant(ctx, id); err == nil {
			return id, nil
		}
	}
	id, err := fleet.ConnectDemoTenant(ctx, apiURL, token)
	if err != nil {
		return "", err
	}
	return id, os.WriteFile(file, []byte(id+"\n"), 0o600)
}

func printWelcome(apiURL, token, tenantID, monitorURL string) {
	fmt.Println()
	fmt.Println("entrasync is running: api, scheduler, 2 fetchers, 2 reconcilers.")
	fmt.Printf("Prometheus metrics (stream lag, runs, Graph): %s/metrics\n", apiURL)
	if monitorURL != "" {
		fmt.Printf("NATS monitoring (stream lag): %s/jsz?consumers=true\n", monitorURL)
	}
	if tenantID == "" {
		fmt.Printf("API %s, admin token %s. Connect a tenant with POST /v1/tenants.\n", apiURL, token)
		return
	}
	fmt.Println("A demo tenant is connected to the local Graph simulator. In another shell:")
	fmt.Println()
	fmt.Print(fleet.Instructions(apiURL, token, tenantID))
	fmt.Println()
	fmt.Println("Stop with Ctrl-C; state is kept in .run/ (make clean-run forgets it).")
}

// persisted returns the value stored in file, or makes n random bytes,
// encodes them and stores them there.
func persisted(file string, n int, encode func([]byte) string) (string, error) {
	if b, err := os.ReadFile(file); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	v := encode(buf)
	return v, os.WriteFile(file, []byte(v+"\n"), 0o600)
}

func ensureDatabase(ctx context.Context, serverURL, name string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}
