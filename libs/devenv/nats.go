package devenv

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartNATS starts an embedded nats-server with JetStream on 127.0.0.1,
// storing streams in dir. port 0 picks a free port. monitorPort > 0 also
// serves the monitoring endpoints (/varz, /jsz) there, -1 on any free port. The caller shuts the
// server down with Shutdown and WaitForShutdown.
func StartNATS(dir string, port, monitorPort int) (*server.Server, string, error) {
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "entrasync-dev",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoLog:      true,
		NoSigs:     true,
	}
	if monitorPort != 0 {
		opts.HTTPHost = "127.0.0.1"
		opts.HTTPPort = monitorPort
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, "", fmt.Errorf("devenv: nats server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, "", fmt.Errorf("devenv: nats server not ready after 15s")
	}
	return ns, ns.ClientURL(), nil
}

// NATS starts an embedded JetStream server for one test and returns its URL.
// The server and its store are removed when the test ends.
func NATS(t testing.TB) string {
	t.Helper()
	ns, url, err := StartNATS(t.TempDir(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return url
}
