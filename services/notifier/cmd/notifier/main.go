// Command notifier delivers notification tasks to the tenants' webhooks
// as signed CloudEvents. Run two replicas for availability: a task is
// claimed by one at a time (see package notifier).
//
// Environment: DATABASE_URL, NATS_URL, SECRET_KEY (required: the store
// opens the tenants' signing secrets with SECRET_KEY; NATS serves the
// readiness check every service shares), NOTIFY_POLL (time between two
// passes, default 5s), NOTIFY_TIMEOUT (one POST, default 10s),
// METRICS_ADDR (/metrics, /healthz and /readyz; default 127.0.0.1:9104),
// DEBUG_PPROF (Go's profiles on that address too), LOG_LEVEL.
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/entrasync/entrasync/libs/metrics"
	"github.com/entrasync/entrasync/libs/process"
	"github.com/entrasync/entrasync/services/notifier"
)

// defaultMetricsAddr follows the other workers' (9101 to 9103).
const defaultMetricsAddr = "127.0.0.1:9104"

func main() {
	process.Main("notifier", nil, func(d process.Deps) (process.Service, error) {
		cfg, err := configFromEnv(os.Getenv)
		if err != nil {
			return nil, err
		}
		// The notifier has no consumer of its own: "".
		_, srv, err := metrics.WorkerFromEnv(os.Getenv, defaultMetricsAddr, d.Bus, d.Store, "", nil, d.Logger)
		if err != nil {
			return nil, err
		}
		svc, err := notifier.New(cfg, notifier.Deps{Store: d.Store, Logger: d.Logger})
		if err != nil {
			return nil, err
		}
		return metrics.WithServer(svc, srv), nil
	})
}

// configFromEnv reads the notifier's own variables; a bad one stops the
// process with its name.
func configFromEnv(getenv func(string) string) (notifier.Config, error) {
	var cfg notifier.Config
	var errs []error
	for _, v := range []struct {
		name string
		to   *time.Duration
	}{{"NOTIFY_POLL", &cfg.PollEvery}, {"NOTIFY_TIMEOUT", &cfg.Timeout}} {
		if s := getenv(v.name); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a positive duration such as 10s", v.name, s))
			}
			*v.to = d
		}
	}
	return cfg, errors.Join(errs...)
}
