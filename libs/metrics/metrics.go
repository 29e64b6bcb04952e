// Package metrics is what operators see of an entrasync process: one
// Prometheus registry per process with the fleet's metrics under public
// names (a contract, like the HTTP API), and the /metrics, /healthz and
// /readyz endpoints of the worker services.
//
// Two kinds of metric live here. Those that can be read from the truth at
// scrape time are: stream lag from JetStream's consumer info (Sources.Lag),
// dead letters from SYNC_DLQ (Sources.DeadLetters) and runs from Postgres
// (Sources.Runs). Those only the code doing the work can see are
// recorded by it through the methods of *Metrics (GraphRequest,
// GraphThrottled, PageApplied, RunEnded, and BudgetTaken and
// BudgetCorrected as the shared Graph budget's Observer); every method is a no-op on a nil
// *Metrics, so a service may be built without metrics.
//
// It uses github.com/prometheus/client_golang, the reference client: its
// text format is what Prometheus, Grafana Agent and KEDA's prometheus
// scaler read, and its collectors let a scrape ask JetStream and Postgres
// directly instead of keeping copies in memory that drift.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/entrasync/entrasync/libs/budget"
	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/store"
)

// The public metric names. Dashboards, alert rules (deploy/) and
// autoscalers depend on them: change one only with them.
const (
	NameStreamPending     = "entrasync_stream_pending_messages"
	NameDeadLetters       = "entrasync_dead_letters_total"
	NameRuns              = "entrasync_runs_total"
	NameRunDuration       = "entrasync_run_duration_seconds"
	NameGraphRequests     = "entrasync_graph_requests_total"
	NameGraphThrottled    = "entrasync_graph_throttled_total"
	NameGraphRetryWait    = "entrasync_graph_retry_wait_seconds_total"
	NamePagesApplied      = "entrasync_pages_applied_total"
	NameApplySeconds      = "entrasync_apply_seconds"
	NameTenantLastSuccess = "entrasync_tenant_last_success_timestamp_seconds"
	NameBudgetUnits       = "entrasync_graph_budget_units_total"
	NameBudgetWait        = "entrasync_graph_budget_wait_seconds_total"
	NameBudgetCorrected   = "entrasync_graph_budget_corrected_units_total"
	NameEventsWindowWait  = "entrasync_fetcher_events_window_wait_seconds_total"
)

// Values of the direction label of NameBudgetCorrected.
const (
	// DirectionTaken: Graph charged more than estimated; the difference
	// was taken from the budget too.
	DirectionTaken = "taken"
	// DirectionReturned: Graph charged less; the difference went back.
	DirectionReturned = "returned"
)

// DefaultScrapeTimeout bounds each source's read in one scrape.
const DefaultScrapeTimeout = 5 * time.Second

// Names lists every public metric name, for tests and documentation.
var Names = []string{
	NameStreamPending, NameDeadLetters, NameRuns, NameRunDuration,
	NameGraphRequests, NameGraphThrottled, NameGraphRetryWait,
	NamePagesApplied, NameApplySeconds, NameTenantLastSuccess,
	NameBudgetUnits, NameBudgetWait, NameBudgetCorrected,
	NameEventsWindowWait,
}

// Metrics hears what the shared Graph budget hands out.
var _ budget.Observer = (*Metrics)(nil)

// LagSource reports the lag of the durable consumers; *bus.Bus is one.
type LagSource interface {
	Lag(ctx context.Context) ([]bus.ConsumerLag, error)
}

// DeadLetterSource counts the messages kept in the dead-letter stream,
// by the stream they were dead-lettered from (SYNC_JOBS, SYNC_EVENTS).
// bus.Bus.DeadLetters is one.
type DeadLetterSource interface {
	DeadLetters(ctx context.Context) (map[string]uint64, error)
}

// RunStats is what Postgres knows of runs at scrape time.
type RunStats struct {
	// Ended counts runs by the final status they reached (succeeded,
	// failed, rejected). Runs only ever enter these, so each count grows.
	Ended map[string]uint64
	// LastSuccess is when each tenant's newest succeeded run finished.
	LastSuccess map[string]time.Time
}

// RunSource reads RunStats from the store (StoreRuns).
type RunSource interface {
	RunStats(ctx context.Context) (RunStats, error)
}

// Sources are what a scrape reads; any may be nil, and its metrics are
// then absent from this process's /metrics.
type Sources struct {
	Lag         LagSource
	DeadLetters DeadLetterSource
	Runs        RunSource
	// Timeout bounds each source's read in one scrape
	// (DefaultScrapeTimeout when 0).
	Timeout time.Duration
}

// Metrics is one process's registry and the metrics its code records.
type Metrics struct {
	reg *prometheus.Registry

	graphRequests  *prometheus.CounterVec
	graphThrottled prometheus.Counter
	graphRetryWait prometheus.Counter
	pagesApplied   prometheus.Counter
	applySeconds   prometheus.Histogram
	runDuration    prometheus.Histogram

	budgetUnits     prometheus.Counter
	budgetWait      prometheus.Counter
	budgetCorrected *prometheus.CounterVec

	eventsWindowWait prometheus.Counter
}

// New builds a registry with the Go runtime and process collectors, the
// scrape-time collectors of src, and the recorded metrics.
func New(src Sources) *Metrics {
	if src.Timeout <= 0 {
		src.Timeout = DefaultScrapeTimeout
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		graphRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameGraphRequests,
			Help: "Microsoft Graph requests answered, by HTTP status code (0: no answer).",
		}, []string{"code"}),
		graphThrottled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameGraphThrottled,
			Help: "Graph answers that asked to wait (429, or 503/504 with Retry-After).",
		}),
		graphRetryWait: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameGraphRetryWait,
			Help: "Seconds spent waiting before retrying Graph (Retry-After and backoff).",
		}),
		pagesApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NamePagesApplied,
			Help: "Graph pages applied to the directory mirror by reconcilers.",
		}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    NameApplySeconds,
			Help:    "Time to apply one event (a Graph page) to Postgres.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12), // 5 ms … 10 s
		}),
		runDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    NameRunDuration,
			Help:    "Time from a run's creation to its end (succeeded, failed or held).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15), // 1 s … 4.5 h
		}),
		budgetUnits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameBudgetUnits,
			Help: "Graph resource units taken from the shared budget, as estimated before each request.",
		}),
		budgetWait: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameBudgetWait,
			Help: "Seconds requests spent taking units from the shared Graph budget: waiting for a refill or for a tenant paused by Retry-After, and the round trips to NATS.",
		}),
		budgetCorrected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: NameBudgetCorrected,
			Help: "Resource units by which Graph's x-ms-resource-unit corrected the estimates: taken (cost more) or returned (cost less).",
		}, []string{"direction"}),
		eventsWindowWait: prometheus.NewCounter(prometheus.CounterOpts{
			Name: NameEventsWindowWait,
			Help: "Seconds fetcher runs waited before publishing an event because their tenant already had its share of events in SYNC_EVENTS (EVENTS_IN_FLIGHT): time the reconcilers were the bottleneck.",
		}),
	}
	// Both directions are served from the start, at 0, so that a rate
	// over them never starts from a missing series.
	m.budgetCorrected.WithLabelValues(DirectionTaken)
	m.budgetCorrected.WithLabelValues(DirectionReturned)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.graphRequests, m.graphThrottled, m.graphRetryWait,
		m.pagesApplied, m.applySeconds, m.runDuration,
		m.budgetUnits, m.budgetWait, m.budgetCorrected,
		m.eventsWindowWait,
	)
	if src.Lag != nil || src.DeadLetters != nil || src.Runs != nil {
		m.reg.MustRegister(&scraper{src: src})
	}
	return m
}

// Registry is the process's registry, for metrics of its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A source that fails leaves its metrics out and the others in.
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// GraphRequest records one Graph answer; code 0 means none came (a
// timeout or a broken connection). Called once per HTTP attempt.
func (m *Metrics) GraphRequest(code int) {
	if m == nil {
		return
	}
	m.graphRequests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// GraphThrottled records that Graph asked to wait, and the wait taken.
func (m *Metrics) GraphThrottled(wait time.Duration) {
	if m == nil {
		return
	}
	m.graphThrottled.Inc()
	m.GraphRetryWait(wait)
}

// GraphRetryWait records a wait before retrying Graph that was not asked
// for (backoff after a 5xx or a broken connection).
func (m *Metrics) GraphRetryWait(wait time.Duration) {
	if m == nil || wait <= 0 {
		return
	}
	m.graphRetryWait.Add(wait.Seconds())
}

// PageApplied records one data page applied to the mirror and how long
// applying it took.
func (m *Metrics) PageApplied(took time.Duration) {
	if m == nil {
		return
	}
	m.pagesApplied.Inc()
	m.applySeconds.Observe(took.Seconds())
}

// RunEnded records how long a run took from creation to its end.
func (m *Metrics) RunEnded(took time.Duration) {
	if m == nil {
		return
	}
	m.runDuration.Observe(took.Seconds())
}

// BudgetTaken records units taken from the shared Graph budget for one
// request and how long the request waited for them (budget.Observer).
func (m *Metrics) BudgetTaken(units int, waited time.Duration) {
	if m == nil {
		return
	}
	m.budgetUnits.Add(float64(units))
	if waited > 0 {
		m.budgetWait.Add(waited.Seconds())
	}
}

// BudgetCorrected records a correction of an estimate by what Graph said
// the request cost: actual minus estimated units (budget.Observer).
func (m *Metrics) BudgetCorrected(units int) {
	switch {
	case m == nil || units == 0:
	case units > 0:
		m.budgetCorrected.WithLabelValues(DirectionTaken).Add(float64(units))
	default:
		m.budgetCorrected.WithLabelValues(DirectionReturned).Add(float64(-units))
	}
}

// EventsWindowWait records how long a fetcher run waited for room in
// SYNC_EVENTS before publishing an event (fetcher.Observer).
func (m *Metrics) EventsWindowWait(waited time.Duration) {
	if m == nil || waited <= 0 {
		return
	}
	m.eventsWindowWait.Add(waited.Seconds())
}

var (
	descPending = prometheus.NewDesc(NameStreamPending,
		"Messages a durable consumer has not finished: num_pending + num_ack_pending (what KEDA scales on).",
		[]string{"stream", "consumer"}, nil)
	descDeadLetters = prometheus.NewDesc(NameDeadLetters,
		"Messages kept in SYNC_DLQ, by the stream they were dead-lettered from.",
		[]string{"stream"}, nil)
	descRuns = prometheus.NewDesc(NameRuns,
		"Runs that ended, by final status, as recorded in Postgres.",
		[]string{"status"}, nil)
	descLastSuccess = prometheus.NewDesc(NameTenantLastSuccess,
		"When the tenant's newest succeeded run finished (Unix seconds).",
		[]string{"tenant"}, nil)
)

// scraper reads the sources at scrape time. Sources are read at once;
// each gets Sources.Timeout.
type scraper struct{ src Sources }

func (s *scraper) Describe(ch chan<- *prometheus.Desc) {
	if s.src.Lag != nil {
		ch <- descPending
	}
	if s.src.DeadLetters != nil {
		ch <- descDeadLetters
	}
	if s.src.Runs != nil {
		ch <- descRuns
		ch <- descLastSuccess
	}
}

func (s *scraper) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	read := func(desc *prometheus.Desc, f func(ctx context.Context) error) {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.src.Timeout)
			defer cancel()
			if err := f(ctx); err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					err = fmt.Errorf("metrics: a scrape source took over %s", s.src.Timeout)
				}
				ch <- prometheus.NewInvalidMetric(desc, err)
			}
		})
	}
	if s.src.Lag != nil {
		read(descPending, func(ctx context.Context) error {
			lags, err := s.src.Lag.Lag(ctx)
			if err != nil {
				return err
			}
			for _, l := range lags {
				ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue,
					float64(l.Total()), l.Stream, l.Consumer)
			}
			return nil
		})
	}
	if s.src.DeadLetters != nil {
		read(descDeadLetters, func(ctx context.Context) error {
			counts, err := s.src.DeadLetters.DeadLetters(ctx)
			if err != nil {
				return err
			}
			for stream, n := range counts {
				ch <- prometheus.MustNewConstMetric(descDeadLetters, prometheus.CounterValue, float64(n), stream)
			}
			return nil
		})
	}
	if s.src.Runs != nil {
		read(descRuns, func(ctx context.Context) error {
			st, err := s.src.Runs.RunStats(ctx)
			if err != nil {
				return err
			}
			for status, n := range st.Ended {
				ch <- prometheus.MustNewConstMetric(descRuns, prometheus.CounterValue, float64(n), status)
			}
			for tenant, at := range st.LastSuccess {
				ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue,
					float64(at.UnixNano())/1e9, tenant)
			}
			return nil
		})
	}
	wg.Wait()
}

// StoreRuns is the RunSource of a store.
func StoreRuns(st *store.Store) RunSource { return storeRuns{st} }

type storeRuns struct{ st *store.Store }

func (s storeRuns) RunStats(ctx context.Context) (RunStats, error) {
	rs, err := s.st.RunStats(ctx)
	return RunStats{Ended: rs.Ended, LastSuccess: rs.LastSuccess}, err
}
