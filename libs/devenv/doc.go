// Package devenv starts the servers entrasync's tests and `make run` need on
// a fresh machine: an embedded NATS JetStream server and a private
// PostgreSQL cluster made from the system's PostgreSQL binaries.
//
// Tests call NATS(t) and Database(t); a package that uses them wraps its
// tests with RunTests in TestMain so the private cluster is stopped when the
// test binary ends:
//
//	func TestMain(m *testing.M) { os.Exit(devenv.RunTests(m)) }
//
// When TEST_DATABASE_URL (or else DATABASE_URL) is set, Database makes its
// throwaway databases on that server instead of starting a cluster.
package devenv
