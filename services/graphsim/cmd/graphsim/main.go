// Command graphsim runs the Microsoft Graph simulator on its own: one
// generated tenant behind a local HTTPS Graph v1.0 and token authority.
//
// Every flag also reads an environment variable (GRAPHSIM_<FLAG>, dashes
// as underscores, e.g. GRAPHSIM_CLIENT_SECRET); a flag on the command line
// wins. On start it prints the settings a client needs: GRAPH_BASE_URL,
// AZURE_AUTHORITY_HOST and SSL_CERT_FILE.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/entrasync/entrasync/libs/log"
	"github.com/entrasync/entrasync/services/graphsim"
)

// Defaults of the generated tenant's credentials. They are not secrets:
// the simulator is a local test double.
const (
	defaultTenantID     = "8f3c0b7e-5d4a-4f0e-9a61-2b7d4c1e9f00"
	defaultClientID     = "3b9d2f64-1c8e-4a7b-b5d0-6e2f8a9c4d11"
	defaultClientSecret = "graphsim-local-secret"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "graphsim:", err)
		os.Exit(1)
	}
}

type config struct {
	addr, hostname, caOut          string
	tenant, clientID, clientSecret string
	tokenLifetime                  time.Duration
	spec                           graphsim.Spec
}

// parse reads flags, falling back to GRAPHSIM_* variables, then defaults.
func parse(args []string, getenv func(string) string) (config, error) {
	var c config
	demo := graphsim.DemoSpec()
	fs := flag.NewFlagSet("graphsim", flag.ContinueOnError)
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv("GRAPHSIM_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")))); v != "" {
			return v
		}
		return def
	}
	var errs []error
	envInt := func(name string, def int) int {
		v := env(name, strconv.Itoa(def))
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("GRAPHSIM_%s: %q is not a count", strings.ToUpper(strings.ReplaceAll(name, "-", "_")), v))
		}
		return n
	}
	fs.StringVar(&c.addr, "addr", env("addr", "127.0.0.1:8443"), "listen address")
	fs.StringVar(&c.hostname, "hostname", env("hostname", ""), "host name clients use in URLs (default: the listen IP)")
	fs.StringVar(&c.caOut, "ca-out", env("ca-out", filepath.Join(os.TempDir(), "graphsim", "ca.pem")), "file to write the CA certificate to (for SSL_CERT_FILE)")
	fs.StringVar(&c.tenant, "tenant-id", env("tenant-id", defaultTenantID), "Entra tenant ID of the generated tenant")
	fs.StringVar(&c.clientID, "client-id", env("client-id", defaultClientID), "client ID allowed to get tokens")
	fs.StringVar(&c.clientSecret, "client-secret", env("client-secret", defaultClientSecret), "its client secret")
	lifetime := env("token-lifetime", "1h")
	fs.Func("token-lifetime", "access token lifetime (default 1h)", func(v string) error { lifetime = v; return nil })
	seed, err := strconv.ParseInt(env("seed", "42"), 10, 64)
	if err != nil {
		errs = append(errs, fmt.Errorf("GRAPHSIM_SEED: %w", err))
	}
	fs.Int64Var(&c.spec.Seed, "seed", seed, "seed of the generated tenant")
	fs.IntVar(&c.spec.Users, "users", envInt("users", demo.Users), "enabled member users with mail")
	fs.IntVar(&c.spec.Guests, "guests", envInt("guests", demo.Guests), "guest users")
	fs.IntVar(&c.spec.Disabled, "disabled", envInt("disabled", demo.Disabled), "disabled member users")
	fs.IntVar(&c.spec.NoMail, "nomail", envInt("nomail", demo.NoMail), "member users without mail")
	fs.IntVar(&c.spec.Groups, "groups", envInt("groups", demo.Groups), "groups")
	fs.IntVar(&c.spec.NestingDepth, "depth", envInt("depth", demo.NestingDepth), "length of the nested group chain")
	fs.IntVar(&c.spec.Devices, "devices", envInt("devices", demo.Devices), "devices (members of security groups)")
	fs.IntVar(&c.spec.Contacts, "contacts", envInt("contacts", demo.Contacts), "organisational contacts (members of mail-enabled groups)")
	cycle, err := strconv.ParseBool(env("cycle", strconv.FormatBool(demo.Cycle)))
	if err != nil {
		errs = append(errs, fmt.Errorf("GRAPHSIM_CYCLE: %w", err))
	}
	fs.BoolVar(&c.spec.Cycle, "cycle", cycle, "two groups that contain each other")
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.tokenLifetime, err = time.ParseDuration(lifetime); err != nil || c.tokenLifetime <= 0 {
		return c, fmt.Errorf("token lifetime %q: want a positive duration such as 1h", lifetime)
	}
	for name, v := range map[string]int{"users": c.spec.Users, "guests": c.spec.Guests, "disabled": c.spec.Disabled,
		"nomail": c.spec.NoMail, "groups": c.spec.Groups, "depth": c.spec.NestingDepth, "devices": c.spec.Devices, "contacts": c.spec.Contacts} {
		if v < 0 {
			return c, fmt.Errorf("-%s: %d is negative", name, v)
		}
	}
	if c.tenant == "" || c.clientID == "" || c.clientSecret == "" {
		return c, errors.New("tenant id, client id and client secret must not be empty")
	}
	return c, nil
}

func run(args []string, getenv func(string) string, out io.Writer) error {
	c, err := parse(args, getenv)
	if err != nil {
		return err
	}
	logger := log.New("graphsim")
	sim, err := graphsim.New(graphsim.Options{Addr: c.addr, Hostname: c.hostname, Logger: logger, TokenLifetime: c.tokenLifetime})
	if err != nil {
		return err
	}
	defer sim.Close()
	if err := os.MkdirAll(filepath.Dir(c.caOut), 0o755); err != nil {
		return fmt.Errorf("CA file directory: %w", err)
	}
	if err := os.WriteFile(c.caOut, sim.CAPEM(), 0o644); err != nil {
		return fmt.Errorf("write CA file: %w", err)
	}
	started := time.Now()
	dir := graphsim.Generate(c.spec)
	sim.AddTenant(c.tenant, c.clientID, c.clientSecret, dir)
	logger.Info().Str("tenant", c.tenant).Int("users", len(dir.Users())).Int("groups", len(dir.Groups())).
		Dur("took", time.Since(started)).Msg("tenant generated")
	if err := sim.Start(); err != nil {
		return err
	}

	fmt.Fprintf(out, "GRAPH_BASE_URL=%s\n", sim.GraphURL())
	fmt.Fprintf(out, "AZURE_AUTHORITY_HOST=%s\n", sim.AuthorityURL())
	fmt.Fprintf(out, "SSL_CERT_FILE=%s\n", c.caOut)
	fmt.Fprintf(out, "# tenant %s (%s), client id %s", c.tenant, dir.Domain(), c.clientID)
	if c.clientSecret == defaultClientSecret {
		fmt.Fprintf(out, ", client secret %s", defaultClientSecret)
	}
	fmt.Fprintln(out)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	logger.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return sim.Shutdown(sctx)
}
