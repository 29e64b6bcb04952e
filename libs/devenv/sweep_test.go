package devenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// TestSweepStaleRemovesOnlyDirectoriesOfEndedProcesses: the directory of
// a process that ended, and of a pid now held by another process, go;
// this process's, and one whose owner is not known, stay.
func TestSweepStaleRemovesOnlyDirectoriesOfEndedProcesses(t *testing.T) {
	parent := t.TempDir()
	mk := func(name, owner string) string {
		dir := filepath.Join(parent, "entrasync-pg-"+name)
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	ended := exec.Command("true")
	if err := ended.Run(); err != nil {
		t.Fatal(err)
	}
	gone := mk("ended", strconv.Itoa(ended.Process.Pid)+" 1")
	reused := mk("reused", strconv.Itoa(os.Getpid())+" 1") // this pid, another start time
	mine := mk("mine", "")
	if err := claimDir(mine); err != nil {
		t.Fatal(err)
	}
	unknown := mk("unknown", "")
	other := filepath.Join(parent, "other-dir")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}

	removed := sweepStale(parent, "entrasync-pg-")
	slices.Sort(removed)
	want := []string{gone, reused}
	slices.Sort(want)
	if !slices.Equal(removed, want) {
		t.Fatalf("removed %v, want %v", removed, want)
	}
	for _, dir := range []string{mine, unknown, other} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
	}
	for _, dir := range want {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", dir, err)
		}
	}
}
