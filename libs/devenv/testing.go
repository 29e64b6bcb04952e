package devenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RunTests runs the package's tests and then stops the private PostgreSQL
// cluster if one was started. Call it from TestMain.
func RunTests(m *testing.M) int {
	code := m.Run()
	stopShared()
	return code
}

// Database creates an empty database for one test and returns its URL. The
// database is dropped when the test ends.
func Database(t testing.TB) string {
	t.Helper()
	base, err := serverURL()
	if err != nil {
		t.Fatalf("devenv: %v", err)
	}
	name, err := CreateDatabase(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := DropDatabase(context.Background(), base, name); err != nil {
			t.Logf("devenv: %v", err)
		}
	})
	return withDatabase(base, name)
}

// CreateDatabase makes a database with a random name on the server that
// serverURL points at and returns the name.
func CreateDatabase(ctx context.Context, serverURL string) (string, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "entrasync_test_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", fmt.Errorf("devenv: connect %s: %w", redact(serverURL), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("devenv: create database: %w", err)
	}
	return name, nil
}

// DropDatabase drops a database made by CreateDatabase, closing whatever
// connections are still open to it.
func DropDatabase(ctx context.Context, serverURL, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("devenv: connect: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// withDatabase swaps the database of a postgres:// URL.
func withDatabase(serverURL, name string) string {
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme == "" {
		return serverURL + " dbname=" + name // key=value form
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
