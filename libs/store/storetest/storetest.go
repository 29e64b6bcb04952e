// Package storetest gives tests a Store on a fresh, migrated database of
// their own. The package's TestMain must run devenv.RunTests.
package storetest

import (
	"bytes"
	"context"
	"testing"

	"github.com/rs/zerolog"

	"github.com/entrasync/entrasync/libs/devenv"
	"github.com/entrasync/entrasync/libs/secret"
	"github.com/entrasync/entrasync/libs/store"
)

// Key is the secret key test stores seal tenant secrets with.
var Key = bytes.Repeat([]byte{7}, secret.KeySize)

// New returns a Store on a new empty database, migrated, closed when the
// test ends.
func New(t testing.TB, opts ...store.Option) *store.Store {
	t.Helper()
	st, _ := NewWithURL(t, opts...)
	return st
}

// NewWithURL is New, also returning the database's URL for tests that
// look at the tables directly.
func NewWithURL(t testing.TB, opts ...store.Option) (*store.Store, string) {
	t.Helper()
	ctx := context.Background()
	url := devenv.Database(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	box, err := secret.NewBox(Key)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	if testing.Verbose() {
		log = log.Level(zerolog.DebugLevel)
	}
	st, err := store.Open(ctx, url, box, log, append([]store.Option{store.WithoutMigrate()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st, url
}
