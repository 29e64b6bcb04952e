// Command fetcher runs one entrasync fetcher replica against external NATS
// and Postgres: it takes sync jobs, reads tenants' directories from
// Microsoft Graph and publishes them as events.
//
// Configuration comes from the environment: DATABASE_URL, NATS_URL and
// SECRET_KEY are required; GRAPH_BASE_URL, GRAPH_SCOPE,
// GRAPH_MAX_RETRY_AFTER, AZURE_AUTHORITY_HOST, CONCURRENCY,
// GROUP_CONCURRENCY, MEMBER_BATCH, EVENTS_IN_FLIGHT, GRAPH_BUDGET, GRAPH_BUDGET_MARGIN, METRICS_ADDR (/metrics, /healthz and /readyz; default
// 127.0.0.1:9102), DEBUG_PPROF (Go's profiles on that address too) and
// LOG_LEVEL are optional. A private CA for Graph or the
// authority is trusted through SSL_CERT_FILE.
package main

import (
	"os"

	"github.com/entrasync/entrasync/libs/budget"
	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/graph"
	"github.com/entrasync/entrasync/libs/metrics"
	"github.com/entrasync/entrasync/libs/process"
	"github.com/entrasync/entrasync/services/fetcher"
)

func main() {
	process.Main("fetcher", nil, func(d process.Deps) (process.Service, error) {
		// The metrics come first (the Graph client reports to them); the
		// readiness they serve asks the fetcher, built just below.
		var svc *fetcher.Fetcher
		ready := func() error { return svc.Ready() }
		m, srv, err := metrics.WorkerFromEnv(os.Getenv, metrics.DefaultFetcherAddr, d.Bus, d.Store, bus.ConsumerFetchers, ready, d.Logger)
		if err != nil {
			return nil, err
		}
		svc, err = fetcher.New(fetcher.Config{
			Graph: graph.Config{
				BaseURL: d.Config.GraphBaseURL, AuthorityHost: d.Config.AuthorityHost,
				Scope: d.Config.GraphScope, MaxRetryAfter: d.Config.GraphMaxRetryAfter,
				Observer: m,
			},
			Concurrency:      d.Config.Concurrency,
			GroupConcurrency: d.Config.GroupConcurrency,
			MemberBatch:      d.Config.MemberBatch,
			EventsInFlight:   d.Config.EventsInFlight,
			Observer:         m,
			LeaseTTL:         d.Config.LeaseTTL,
			// Every replica spends from one Graph budget in NATS; the
			// metrics hear what this one takes and waits.
			Budget:     budget.Config{Margin: d.Config.GraphBudgetMargin, Observer: m},
			Unbudgeted: !d.Config.GraphBudget,
		}, fetcher.Deps{Bus: d.Bus, Store: d.Store, Logger: d.Logger})
		if err != nil {
			return nil, err
		}
		return metrics.WithServer(svc, srv), nil
	})
}
