// Package process is the main of every entrasync service that runs on its
// own: it reads the configuration, opens the store and the bus, starts the
// service, and on SIGINT or SIGTERM stops it gracefully, so that each
// cmd/<service>/main.go says only what is particular to its service.
package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/config"
	"github.com/entrasync/entrasync/libs/log"
	"github.com/entrasync/entrasync/libs/secret"
	"github.com/entrasync/entrasync/libs/store"
)

// StopTimeout bounds a graceful stop: work still running then is handed
// back to its stream for another replica.
const StopTimeout = 30 * time.Second

// Service is the lifecycle every long-running part implements.
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Deps is what a service is built from.
type Deps struct {
	Config config.Config
	Store  *store.Store
	Bus    *bus.Bus
	Logger zerolog.Logger
}

// Main runs the service named name until a signal arrives, then exits the
// process: 0 after a clean stop, 1 with the error logged otherwise.
// required lists the environment variables the service cannot run without,
// beyond DATABASE_URL, NATS_URL and SECRET_KEY, which every service needs
// (the store seals and opens tenant secrets with one key).
func Main(name string, required []string, build func(Deps) (Service, error)) {
	logger := log.New(name)
	if err := run(name, logger, required, build); err != nil {
		logger.Error().Err(err).Msg(name + " stopped")
		os.Exit(1)
	}
}

func run(name string, logger zerolog.Logger, required []string, build func(Deps) (Service, error)) error {
	cfg, err := config.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	if err := cfg.Require(append([]string{"DATABASE_URL", "NATS_URL", "SECRET_KEY"}, required...)...); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	box, err := secret.NewBox(cfg.SecretKey)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, box, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	b, err := bus.ConnectWith(ctx, cfg.NATSURL, BusOptions(cfg), logger)
	if err != nil {
		return err
	}
	defer b.Close()

	svc, err := build(Deps{Config: cfg, Store: st, Bus: b, Logger: logger})
	if err != nil {
		return err
	}
	// Work lives until Stop, not until the signal: Stop finishes or hands
	// back what is in flight, in order.
	if err := svc.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	<-ctx.Done()
	logger.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), StopTimeout)
	defer cancel()
	if err := svc.Stop(sctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

// BusOptions are the bus settings the environment gives (BUS_*); unset
// ones keep the bus's defaults.
func BusOptions(cfg config.Config) bus.Options {
	return bus.Options{
		JobsAckWait:   cfg.JobsAckWait,
		EventsAckWait: cfg.EventsAckWait,
		RetryBase:     cfg.RetryBase,
		RetryMax:      cfg.RetryMax,
		TransientFor:  cfg.TransientFor,
	}
}
