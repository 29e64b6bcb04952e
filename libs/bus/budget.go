package bus

import (
	"context"
	"fmt"

	"github.com/entrasync/entrasync/libs/budget"
)

// NewBudget returns the fleet's shared Graph budget (libs/budget) on this
// bus's NATS connection: its buckets live in a JetStream KV that every
// fetcher replica reads and writes, so the bus stays the one owner of the
// connection and nothing else needs a JetStream handle. A cfg without
// Replicas takes the bus's. The budget is valid until Close.
func (b *Bus) NewBudget(ctx context.Context, cfg budget.Config) (*budget.Budget, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = b.opts.Replicas
	}
	bg, err := budget.New(ctx, b.js, cfg)
	if err != nil {
		return nil, fmt.Errorf("bus: graph budget: %w", err)
	}
	return bg, nil
}
