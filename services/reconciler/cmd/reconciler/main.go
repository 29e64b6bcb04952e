// Command reconciler applies sync events from JetStream to Postgres. Run as
// many replicas as the event stream's lag asks for; they share one durable
// consumer.
//
// Environment: DATABASE_URL, NATS_URL, SECRET_KEY (required), CONCURRENCY
// (events applied at once per replica, default 4), METRICS_ADDR (/metrics,
// /healthz and /readyz; default 127.0.0.1:9103), DEBUG_PPROF (Go's profiles
// on that address too), LOG_LEVEL.
package main

import (
	"os"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/metrics"
	"github.com/entrasync/entrasync/libs/process"
	"github.com/entrasync/entrasync/services/reconciler"
)

func main() {
	process.Main("reconciler", nil, func(d process.Deps) (process.Service, error) {
		// The metrics come first (the reconciler reports to them); the
		// readiness they serve asks the reconciler, built just below.
		var svc *reconciler.Reconciler
		ready := func() error { return svc.Ready() }
		m, srv, err := metrics.WorkerFromEnv(os.Getenv, metrics.DefaultReconcilerAddr, d.Bus, d.Store, bus.ConsumerReconcilers, ready, d.Logger)
		if err != nil {
			return nil, err
		}
		svc, err = reconciler.New(reconciler.Config{Concurrency: d.Config.Concurrency},
			reconciler.Deps{Bus: d.Bus, Store: d.Store, Logger: d.Logger, Observer: m})
		if err != nil {
			return nil, err
		}
		return metrics.WithServer(svc, srv), nil
	})
}
