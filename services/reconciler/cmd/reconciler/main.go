// Command reconciler applies sync events from JetStream to Postgres. Run as
// many replicas as the event stream's lag asks for; they share one durable
// consumer.
//
// Environment: DATABASE_URL, NATS_URL, SECRET_KEY (required), CONCURRENCY
// (events applied at once per replica, default 4), LOG_LEVEL.
package main

import (
	"github.com/entrasync/entrasync/libs/process"
	"github.com/entrasync/entrasync/services/reconciler"
)

func main() {
	process.Main("reconciler", nil, func(d process.Deps) (process.Service, error) {
		return reconciler.New(reconciler.Config{Concurrency: d.Config.Concurrency},
			reconciler.Deps{Bus: d.Bus, Store: d.Store, Logger: d.Logger})
	})
}
