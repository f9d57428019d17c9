package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ext4Disk makes a small ext4 file system in a file, mounts it through a
// loop device with errors=remount-ro, and returns the mount point and the
// file holding the file system. It needs root and loop devices; without
// them the test is skipped.
func ext4Disk(t *testing.T) (dir, image string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a loop device needs root")
	}
	for _, tool := range []string{"mkfs.ext4", "e2fsck", "findmnt"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is missing: %v", tool, err)
		}
	}
	base := t.TempDir()
	image = filepath.Join(base, "disk.img")
	dir = filepath.Join(base, "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("truncate", "-s", "64M", image).CombinedOutput(); err != nil {
		t.Fatalf("truncate: %v: %s", err, out)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", image).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	mountExt4(t, image, dir)
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir, image
}

func mountExt4(t *testing.T, image, dir string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", image, dir).CombinedOutput(); err != nil {
		t.Skipf("no loop device to mount ext4 on: %v: %s", err, out)
	}
}

// makeReadOnly has the kernel turn the mounted file system read-only, as
// it does when the disk under it reports an error: ext4 records the error,
// aborts its journal and remounts itself read-only, with chatd's files
// open.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	out, err := exec.Command("findmnt", "-no", "SOURCE", dir).Output()
	if err != nil {
		t.Fatalf("findmnt %s: %v", dir, err)
	}
	dev := filepath.Base(strings.TrimSpace(string(out)))
	trigger := filepath.Join("/sys/fs/ext4", dev, "trigger_fs_error")
	if err := os.WriteFile(trigger, []byte("chatd test: the disk failed\n"), 0o200); err != nil {
		t.Skipf("cannot trigger an ext4 error through %s: %v", trigger, err)
	}
	eventually(t, "the file system to be read-only", 5*time.Second, func() bool {
		f, err := os.CreateTemp(dir, "probe")
		if err == nil {
			f.Close()
			os.Remove(f.Name())
			return false
		}
		return true
	})
}

// TestReadOnlyDiskRefusesWritesWithoutCorruption turns the file system
// under a running server read-only (an ext4 error: the kernel remounts it
// read-only with the database open) while a user posts. Every write after
// that is refused with 503 unavailable and Retry-After, never a 500;
// /healthz says 503; reading history still works. The server stops
// cleanly; after the operator's repair (e2fsck, mount) it starts again
// with every acknowledged message and a database that passes
// integrity_check.
func TestReadOnlyDiskRefusesWritesWithoutCorruption(t *testing.T) {
	dir, image := ext4Disk(t)
	db := filepath.Join(dir, "chatd.db")
	srv := startServer(t, "CHATD_POST_RATE=-1", "CHATD_DB="+db)
	srv.DB = db
	alice := register(t, srv, "alice", "password1")
	acked := map[string]bool{}
	for i := range 100 {
		text := "before the disk failed " + string(rune('a'+i%26)) + time.Now().Format(time.RFC3339Nano)
		alice.must(201, "POST", "/api/rooms/lobby/messages", text)
		acked[text] = true
	}

	makeReadOnly(t, dir)
	postUntilRefused(t, alice, acked)
	refused := 1
	for range 50 {
		r := alice.do("POST", "/api/rooms/lobby/messages", "on a read-only disk")
		if r.Status != 503 || r.ErrorCode() != "unavailable" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("a post on a read-only disk: %d %s", r.Status, r.Body)
		}
		refused++
	}
	if s := health(t, srv); s != 503 {
		t.Errorf("/healthz on a read-only disk: %d, want 503", s)
	}
	var page struct{ Messages []message }
	alice.must(200, "GET", "/api/rooms/lobby/messages?limit=10", nil).JSON(t, &page)
	if len(page.Messages) == 0 {
		t.Errorf("history on a read-only disk is empty")
	}
	srv.Stop(t)

	// The operator's repair: unmount, check, mount again.
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	out, err := exec.Command("e2fsck", "-fy", image).CombinedOutput()
	if code := exitCode(err); code > 1 {
		t.Fatalf("e2fsck: %v: %s", err, out)
	}
	mountExt4(t, image, dir)
	srv.Start(t)
	checkAllStored(t, srv, alice, acked)
	alice.must(201, "POST", "/api/rooms/lobby/messages", "after the repair")
	srv.Stop(t)
	integrityCheck(t, db)
	t.Logf("read-only disk: %d messages acknowledged before, all present after the repair; %d writes refused with 503, none with 500; integrity_check ok",
		len(acked), refused)
}

// exitCode returns the exit status of a command's error (0 for nil).
func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
