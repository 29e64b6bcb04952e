package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/metrics"
	"github.com/entrasync/entrasync/libs/store/storetest"
	"github.com/entrasync/entrasync/services/api"
)

// /metrics is served without a token, outside openapi.yaml, when the api
// is given a registry; without one it is an unknown, authenticated path.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	st := storetest.New(t)
	b, err := bus.Connect(ctx, devenv.NATS(t), log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	get := func(h http.Handler) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return rec
	}

	m := metrics.New(metrics.Sources{Lag: b})
	srv, err := api.New(api.Config{AdminToken: token}, api.Deps{Store: st, Bus: b, Logger: log, Metrics: m.Handler()})
	if err != nil {
		t.Fatal(err)
	}
	rec := get(srv.Handler())
	want := metrics.NameStreamPending + `{consumer="reconcilers",stream="SYNC_EVENTS"} 0`
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("GET /metrics without a token: %d, want 200 with %q:\n%s", rec.Code, want, rec.Body)
	}

	bare, err := api.New(api.Config{AdminToken: token}, api.Deps{Store: st, Bus: b, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if rec := get(bare.Handler()); rec.Code != http.StatusUnauthorized {
		t.Fatalf("GET /metrics of an api without metrics: %d, want 401", rec.Code)
	}
}
