// Command scheduler publishes the sync jobs of due tenants and republishes
// the jobs of runs stuck in queued. Run two replicas for availability: the
// store and JetStream's dedup keep them from doubling runs.
//
// Environment: DATABASE_URL, NATS_URL, SECRET_KEY (required), METRICS_ADDR
// (/metrics, /healthz and /readyz; default 127.0.0.1:9101), DEBUG_PPROF
// (Go's profiles on that address too), LOG_LEVEL.
package main

import (
	"os"

	"github.com/entrasync/entrasync/libs/metrics"
	"github.com/entrasync/entrasync/libs/process"
	"github.com/entrasync/entrasync/services/scheduler"
)

func main() {
	process.Main("scheduler", nil, func(d process.Deps) (process.Service, error) {
		// The scheduler has no consumer of its own to be bound: "".
		_, srv, err := metrics.WorkerFromEnv(os.Getenv, metrics.DefaultSchedulerAddr, d.Bus, d.Store, "", nil, d.Logger)
		if err != nil {
			return nil, err
		}
		svc, err := scheduler.New(scheduler.Config{
			TickEvery: d.Config.TickEvery, StaleQueued: d.Config.StaleQueued, StuckAfter: d.Config.StuckAfter,
		}, scheduler.Deps{Bus: d.Bus, Store: d.Store, Logger: d.Logger})
		if err != nil {
			return nil, err
		}
		return metrics.WithServer(svc, srv), nil
	})
}
