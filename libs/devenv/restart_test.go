package devenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// zombie starts a child that exits at once and is not reaped: its pid
// stays taken, as a crashed make run's postmaster stays until its new
// parent reaps it. It runs as the user the cluster runs as: PostgreSQL
// takes a pid it may not signal for another user's, not its own.
func zombie(t *testing.T, dir string) int {
	t.Helper()
	cmd := exec.Command("true")
	if cred, err := dropRoot(dir); err != nil {
		t.Fatal(err)
	} else if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Wait() })
	pid := cmd.Process.Pid
	WaitFor(t, 10*time.Second, "the child to exit", func() bool {
		state, _ := procState(pid)
		return state == 'Z'
	})
	return pid
}

// startCluster starts a cluster in a directory of the test's, or skips
// the test in -short mode.
func startCluster(t *testing.T) (*Postgres, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	dir := filepath.Join(t.TempDir(), "pg")
	p, err := StartPostgres(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return p, dir
}

func TestPostgresStartsAgainAfterACrash(t *testing.T) {
	ctx := context.Background()
	p, dir := startCluster(t)
	p.Stop()

	// A power cut: the postmaster died without removing its lock file,
	// and its pid is still held by an unreaped process.
	lock := filepath.Join(dir, "postmaster.pid")
	content := fmt.Sprintf("%d\n%s\n%d\n5432\n%s\n127.0.0.1\n  1234567     12345\nready   \n",
		zombie(t, dir), dir, time.Now().Unix(), dir)
	if err := os.WriteFile(lock, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if cred, err := dropRoot(dir); err == nil && cred != nil {
		_ = os.Chown(lock, int(cred.Uid), int(cred.Gid))
	}
	p, err := StartPostgres(ctx, dir)
	if err != nil {
		t.Fatalf("restart after a crash: %v", err)
	}
	p.Stop()
}

func TestLockOfALivePostgresIsNotRemoved(t *testing.T) {
	dir := t.TempDir()
	// A live process named like a postmaster, as a second make run on the
	// same state would find the first one.
	cmd := exec.Command("bash", "-c", "exec -a postgres sleep 30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	WaitFor(t, 10*time.Second, "the stand-in to show its name", func() bool {
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
		return strings.HasPrefix(string(raw), "postgres")
	})
	lock := filepath.Join(dir, "postmaster.pid")
	if err := os.WriteFile(lock, []byte(fmt.Sprintf("%d\n%s\n", cmd.Process.Pid, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	err := clearStaleLock(dir, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "still runs") {
		t.Fatalf("clearStaleLock = %v", err)
	}
	if _, err := os.Stat(lock); err != nil {
		t.Fatal("the live postmaster's lock file was removed")
	}
}

// TestStartWaitsForTheBackendsOfAKilledPostmaster: a postmaster killed
// outright leaves backends that still hold its shared memory until they
// notice; a postgres started meanwhile would refuse to run. Here one
// backend is held stopped: the lock is not cleared while it holds the
// segment, and is once it has gone.
func TestStartWaitsForTheBackendsOfAKilledPostmaster(t *testing.T) {
	ctx := context.Background()
	p, dir := startCluster(t)
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(backend, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(backend, syscall.SIGKILL) })
	_ = p.cmd.Process.Kill()
	<-p.done

	raw, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	id, ok := lockShmID(string(raw))
	if !ok || !shmInUse(id) {
		t.Fatalf("shared memory segment %d (found %v) not in use with a backend stopped", id, ok)
	}
	if err := clearStaleLock(dir, 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "still hold shared memory") {
		t.Fatalf("clearStaleLock with a backend holding the segment = %v", err)
	}

	if err := syscall.Kill(backend, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	p, err = StartPostgres(ctx, dir)
	if err != nil {
		t.Fatalf("start once the backend could go: %v", err)
	}
	p.Stop()
}

func TestShmTables(t *testing.T) {
	lock := "4242\n/data\n1796227273\n5432\n/data\n127.0.0.1\n  10649681    196655\nready   \n"
	if id, ok := lockShmID(lock); !ok || id != 196655 {
		t.Errorf("lockShmID = %d, %v; want 196655", id, ok)
	}
	if _, ok := lockShmID("4242\n/data\n"); ok {
		t.Error("lockShmID found an id in a short lock file")
	}
	table := []byte(`       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
    745552          4   600                    56  2249  2277      5   101   104   101   104 1796221628 1796221628 1796221626                  4096                     0
  10649681     196655   600                    56 25822 25838      0   101   104   101   104 1796227274 1796227274 1796227273                  4096                     0
`)
	for id, want := range map[int]int{4: 5, 196655: 0, 7: 0} {
		if got := shmAttached(table, id); got != want {
			t.Errorf("shmAttached(%d) = %d, want %d", id, got, want)
		}
	}
}
