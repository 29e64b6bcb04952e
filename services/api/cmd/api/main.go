// Command api serves entrasync's HTTP JSON API (see services/api/openapi.yaml).
//
// Environment: DATABASE_URL, NATS_URL, ADMIN_TOKEN, SECRET_KEY (required),
// API_ADDR (default 127.0.0.1:8080; also serves /metrics, /healthz and
// /readyz without a token), LOG_LEVEL.
package main

import (
	"github.com/entrasync/entrasync/libs/metrics"
	"github.com/entrasync/entrasync/libs/process"
	"github.com/entrasync/entrasync/services/api"
)

func main() {
	process.Main("api", []string{"ADMIN_TOKEN"}, func(d process.Deps) (process.Service, error) {
		m := metrics.New(metrics.Sources{Lag: d.Bus, DeadLetters: d.Bus, Runs: metrics.StoreRuns(d.Store)})
		return api.New(api.Config{Addr: d.Config.APIAddr, AdminToken: d.Config.AdminToken},
			api.Deps{Store: d.Store, Bus: d.Bus, Logger: d.Logger, Metrics: m.Handler()})
	})
}
