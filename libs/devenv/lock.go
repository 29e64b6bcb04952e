package devenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clearStaleLock removes dir's postmaster.pid when the postmaster it names
// is gone, so that a cluster whose process died (make run killed, a power
// cut) starts again. PostgreSQL removes a stale lock file itself when its
// pid is free, but not when the pid is still taken: by a dead postmaster
// its new parent has not reaped yet (a zombie, which a container without
// an init may keep for good), or by an unrelated process that got the
// number. While the pid belongs to a live postgres, clearStaleLock waits
// for it to go, up to limit, then says it still runs.
func clearStaleLock(dir string, limit time.Duration) error {
	lock := filepath.Join(dir, "postmaster.pid")
	deadline := time.Now().Add(limit)
	for {
		raw, err := os.ReadFile(lock)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("devenv: %w", err)
		}
		first, _, _ := strings.Cut(string(raw), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(first))
		if err != nil || pid <= 0 || !livePostgres(pid) {
			if err := os.Remove(lock); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("devenv: remove stale %s: %w", lock, err)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("devenv: postgres (pid %d) still runs on %s; stop it first", pid, dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// livePostgres reports whether pid is a running (not zombie) process
// whose command is postgres.
func livePostgres(pid int) bool {
	state, err := procState(pid)
	if err != nil || state == 'Z' || state == 'X' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	name, _, _ := bytes.Cut(cmdline, []byte{0})
	return filepath.Base(string(name)) == "postgres" || strings.HasPrefix(string(name), "postgres:")
}

// procState is the state letter of a process (R, S, D, Z, ...) from
// /proc/<pid>/stat.
func procState(pid int) (byte, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may hold spaces: the state follows
	// the last ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 || i+2 >= len(raw) {
		return 0, fmt.Errorf("devenv: unreadable /proc/%d/stat", pid)
	}
	return raw[i+2], nil
}
