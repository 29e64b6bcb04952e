package devenv

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A test binary's private cluster lives in a directory of its own under
// the system's temporary directory, removed when the binary ends through
// RunTests. A binary killed mid-run (a CI job cut off at its time limit,
// a benchmark stopped by hand) leaves it behind: hundreds of megabytes, and
// gigabytes after a 1M-user benchmark. Each directory names the process
// that made it (ownerFile); the next test binary that starts a cluster
// removes the directories whose process is gone.

// ownerFile holds "<pid> <start time>" of the process a directory belongs
// to.
const ownerFile = "owner"

// processIdentity is pid and its start time (field 22 of /proc/<pid>/stat,
// in clock ticks since boot): a pid the kernel gave to another process
// since has another start time.
func processIdentity(pid int) (string, error) {
	f, err := procStat(pid)
	if err != nil {
		return "", err
	}
	return strconv.Itoa(pid) + " " + f[22-3], nil
}

// claimDir writes this process's identity into dir's ownerFile.
func claimDir(dir string) error {
	id, err := processIdentity(os.Getpid())
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(id+"\n"), 0o644)
}

// ownerGone reports whether the process dir's ownerFile names has ended.
// A directory without one is not known to be stale: another version of
// devenv made it, or its process has not written the file yet.
func ownerGone(dir string) bool {
	raw, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return false
	}
	owner := strings.TrimSpace(string(raw))
	pid, err := strconv.Atoi(strings.Fields(owner + " x")[0])
	if err != nil || pid <= 0 {
		return false
	}
	now, err := processIdentity(pid)
	return err != nil || now != owner
}

// sweepStale removes the directories parent/prefix* whose owner is gone
// and whose cluster (dir/data) no postgres runs any more, and returns
// them. Failures leave a directory for the next sweep.
func sweepStale(parent, prefix string) []string {
	dirs, _ := filepath.Glob(filepath.Join(parent, prefix+"*"))
	var removed []string
	for _, dir := range dirs {
		if !ownerGone(dir) || clusterRunning(filepath.Join(dir, "data")) {
			continue
		}
		if os.RemoveAll(dir) == nil {
			removed = append(removed, dir)
		}
	}
	return removed
}

// clusterRunning reports whether the postmaster data's lock file names
// still runs.
func clusterRunning(data string) bool {
	raw, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return false
	}
	pid, ok := lockPID(string(raw))
	return ok && livePostgres(pid)
}
