package devenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a private PostgreSQL cluster run as a child process. It
// listens on 127.0.0.1 only, trusts local connections and, being
// throwaway, trades durability for speed (no fsync).
type Postgres struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan error
}

// ErrNoPostgres means no PostgreSQL server binaries were found.
var ErrNoPostgres = errors.New("devenv: PostgreSQL server binaries not found " +
	"(install Debian's postgresql package, run scripts/deps.sh, or set PG_BINDIR)")

// StartPostgres starts a throwaway cluster whose data lives in dir,
// creating it with initdb when dir holds none yet: fast, because it does
// not wait for the disk, so a crash of its processes can lose the last
// commits. Tests use it. It runs as the `postgres` system user when the
// caller is root, because PostgreSQL refuses to run as root.
func StartPostgres(ctx context.Context, dir string) (*Postgres, error) {
	return startPostgres(ctx, dir, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
}

// StartDurablePostgres is StartPostgres for state that must survive a
// crash (make run's): every commit is on disk before it is acknowledged.
func StartDurablePostgres(ctx context.Context, dir string) (*Postgres, error) {
	return startPostgres(ctx, dir)
}

func startPostgres(ctx context.Context, dir string, settings ...string) (*Postgres, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devenv: %w", err)
	}
	cred, err := dropRoot(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
			"-D", dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := initdb.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("devenv: initdb: %w\n%s", err, out)
		}
	}
	if err := clearStaleLock(dir, 30*time.Second); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"-D", dir, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300", "-c", "shared_buffers=128MB"}, settings...)
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	logFile, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("devenv: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("devenv: start postgres: %w", err)
	}
	p := &Postgres{dir: dir, port: port, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logFile.Close() }()
	if err := p.waitReady(ctx, 30*time.Second); err != nil {
		p.Stop()
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return p, nil
}

// URL returns a connection URL for database db on this cluster.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

// Stop shuts the cluster down (fast mode) and waits for it.
func (p *Postgres) Stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *Postgres) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("devenv: postgres exited: %v", err)
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, p.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("devenv: postgres not ready after %s: %w", limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// findBinDir finds initdb and postgres: PG_BINDIR, then the newest
// /usr/lib/postgresql/<version>/bin, then PATH.
func findBinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	sort.Slice(versions, func(i, j int) bool { return pgMajor(versions[i]) > pgMajor(versions[j]) })
	if len(versions) > 0 {
		return filepath.Dir(versions[0]), nil
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	return "", ErrNoPostgres
}

func pgMajor(path string) int {
	n, _ := strconv.Atoi(strings.Split(strings.TrimPrefix(path, "/usr/lib/postgresql/"), "/")[0])
	return n
}

// dropRoot returns the credential to run PostgreSQL with (nil when not
// root) and hands dir, and the directories above it, to that user as
// far as needed for it to reach dir.
func dropRoot(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("devenv: running as root needs a `postgres` system user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, fmt.Errorf("devenv: %w", err)
	}
	// Parents made by os.MkdirTemp are 0700 root: let others traverse them.
	for p := filepath.Dir(dir); p != "/" && p != "."; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			break
		}
		if fi.Mode().Perm()&0o001 == 0 {
			_ = os.Chmod(p, fi.Mode().Perm()|0o011)
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("devenv: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// sharedPrefix names the directories of the test binaries' clusters.
const sharedPrefix = "entrasync-pg-"

// shared is the cluster of one test binary, started on first use.
var shared struct {
	once    sync.Once
	pg      *Postgres
	tmp     string
	baseURL string
	err     error
}

// serverURL returns the URL of the server that throwaway databases are made
// on, starting the private cluster the first time it is needed.
func serverURL() (string, error) {
	shared.once.Do(func() {
		for _, v := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
			if u := os.Getenv(v); u != "" {
				shared.baseURL = u
				return
			}
		}
		sweepStale(os.TempDir(), sharedPrefix)
		shared.tmp, shared.err = os.MkdirTemp("", sharedPrefix)
		if shared.err != nil {
			return
		}
		if shared.err = claimDir(shared.tmp); shared.err != nil {
			return
		}
		shared.pg, shared.err = StartPostgres(context.Background(), filepath.Join(shared.tmp, "data"))
		if shared.err == nil {
			shared.baseURL = shared.pg.URL("postgres")
		}
	})
	return shared.baseURL, shared.err
}

func stopShared() {
	if shared.pg != nil {
		shared.pg.Stop()
	}
	if shared.tmp != "" {
		_ = os.RemoveAll(shared.tmp)
	}
}
