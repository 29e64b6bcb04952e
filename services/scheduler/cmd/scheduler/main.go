// Command scheduler publishes the sync jobs of due tenants and republishes
// the jobs of runs stuck in queued. Run two replicas for availability: the
// store and JetStream's dedup keep them from doubling runs.
//
// Environment: DATABASE_URL, NATS_URL, SECRET_KEY (required), LOG_LEVEL.
package main

import (
	"github.com/entrasync/entrasync/libs/process"
	"github.com/entrasync/entrasync/services/scheduler"
)

func main() {
	process.Main("scheduler", nil, func(d process.Deps) (process.Service, error) {
		return scheduler.New(scheduler.Config{}, scheduler.Deps{Bus: d.Bus, Store: d.Store, Logger: d.Logger})
	})
}
