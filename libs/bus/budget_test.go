package bus_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/budget"
	"github.com/entrasync/entrasync/libs/bus"
	"github.com/entrasync/entrasync/libs/devenv"
)

// Two buses on one server share one budget: what one replica takes, the
// other sees gone.
func TestNewBudgetIsSharedThroughNATS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := devenv.NATS(t)
	connect := func() *bus.Bus {
		b, err := bus.Connect(ctx, url, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		return b
	}
	cfg := budget.Config{Limits: budget.Limits{Small: 100}, Margin: 1}
	one, err := connect().NewBudget(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	two, err := connect().NewBudget(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	key := budget.Key{App: "app-1", Tenant: "tenant-1"}
	if err := one.Take(ctx, key, 30); err != nil {
		t.Fatal(err)
	}
	left, _, _, err := two.Available(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if left > 71 || left < 70 {
		t.Fatalf("the other replica sees %.1f units left of 100 after 30 were taken", left)
	}

	// The budget lives in the KV bucket operators find by name.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.KeyValue(ctx, budget.DefaultBucket); err != nil {
		t.Fatalf("KV bucket %s: %v", budget.DefaultBucket, err)
	}
}
