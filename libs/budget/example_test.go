package budget_test

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/entrasync/entrasync/libs/budget"
)

// A fetcher's Graph client for one tenant: every request to Graph pays its
// resource units from the budget all replicas share; the token authority
// is not budgeted.
func ExampleTransport() {
	ctx := context.Background()
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		panic(err)
	}
	b, err := budget.New(ctx, js, budget.Config{})
	if err != nil {
		panic(err)
	}
	key := budget.Key{App: "9a3d526c-b3c1-4479-ba74-197b5c5751ae", Tenant: "0785ef7c-2d7a-4542-b048-95bcab406e0b"}
	// The user count the mirror holds from the last run: the tenant's tier.
	if err := b.SetTenantSize(ctx, key, 1200); err != nil {
		panic(err)
	}
	hc := &http.Client{Transport: &budget.Transport{
		Base:   http.DefaultTransport,
		Budget: b,
		KeyFor: budget.ForHost("graph.microsoft.com", key),
	}}
	resp, err := hc.Get("https://graph.microsoft.com/v1.0/users?$select=id&$top=999")
	if err == nil {
		resp.Body.Close()
	}
}
