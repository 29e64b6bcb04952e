package devenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
//
// A postmaster killed outright leaves its backends running for a moment,
// until they notice; they hold the cluster's shared memory, and a
// postgres started meanwhile refuses to ("pre-existing shared memory
// block is still in use"). So, the postmaster gone, clearStaleLock also
// waits, within the same limit, until nothing is attached to the shared
// memory segment the lock file names.
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
		pid, ok := lockPID(string(raw))
		if !ok || !livePostgres(pid) {
			if id, ok := lockShmID(string(raw)); ok && shmInUse(id) {
				if time.Now().After(deadline) {
					return fmt.Errorf("devenv: the backends of a stopped postgres still hold shared memory segment %d of %s", id, dir)
				}
				time.Sleep(100 * time.Millisecond)
				continue
			}
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

// lockPID is the postmaster's pid, the first line of a postmaster.pid.
func lockPID(lockFile string) (int, bool) {
	first, _, _ := strings.Cut(lockFile, "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	return pid, err == nil && pid > 0
}

// procStat is /proc/<pid>/stat's fields from the 3rd (the state) on: the
// command name before them, in parentheses, may hold spaces, so they are
// counted from the last ')'. Field n of proc(5) is procStat's n-3.
func procStat(pid int) ([]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return nil, fmt.Errorf("devenv: unreadable /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 20 {
		return nil, fmt.Errorf("devenv: unreadable /proc/%d/stat", pid)
	}
	return fields, nil
}

// procState is the state letter of a process (R, S, D, Z, ...).
func procState(pid int) (byte, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	return f[0][0], nil
}

// lockShmID is the id of the System V shared memory segment a
// postmaster.pid names: the second field of its seventh line ("key id").
func lockShmID(lockFile string) (int, bool) {
	lines := strings.Split(lockFile, "\n")
	if len(lines) < 7 {
		return 0, false
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return 0, false
	}
	id, err := strconv.Atoi(f[1])
	return id, err == nil && id >= 0
}

// shmInUse reports whether processes are attached to System V shared
// memory segment id (/proc/sysvipc/shm); a segment that is gone, or a
// table that cannot be read, is not.
func shmInUse(id int) bool {
	raw, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return false
	}
	return shmAttached(raw, id) > 0
}

// shmAttached reads the attach count (nattch) of segment id from a
// /proc/sysvipc/shm table; 0 when the segment is not in it.
func shmAttached(table []byte, id int) int {
	lines := strings.Split(string(table), "\n")
	header := strings.Fields(lines[0])
	idCol, nattchCol := slices.Index(header, "shmid"), slices.Index(header, "nattch")
	if idCol < 0 || nattchCol < 0 {
		return 0
	}
	want := strconv.Itoa(id)
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) <= max(idCol, nattchCol) || f[idCol] != want {
			continue
		}
		n, _ := strconv.Atoi(f[nattchCol])
		return n
	}
	return 0
}
