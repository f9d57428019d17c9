package tests

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

// smallDisk mounts a tmpfs of the given size for the test: a real file
// system that really fills up. It needs root (CI runs as root).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file until the disk is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

func health(t *testing.T, srv *server) int {
	t.Helper()
	r := newClient(t, srv).do("GET", "/healthz", nil)
	return r.Status
}

// postUntilRefused posts until the server refuses; every answer must be a
// 201 or the contract's 503 unavailable, never a 500.
func postUntilRefused(t *testing.T, c *client, acked map[string]bool) {
	t.Helper()
	for i := range 5000 {
		text := fmt.Sprintf("msg %d at %d", i, time.Now().UnixNano())
		r := c.do("POST", "/api/rooms/lobby/messages", text)
		switch r.Status {
		case 201:
			acked[text] = true
		case 503:
			if r.ErrorCode() != "unavailable" || r.Header.Get("Retry-After") == "" {
				t.Fatalf("503 without the unavailable code or Retry-After: %s", r.Body)
			}
			return
		default:
			t.Fatalf("post on a failing disk: %d %s", r.Status, r.Body)
		}
	}
	t.Fatal("5000 posts on a full disk were all accepted")
}

func waitHealthy(t *testing.T, srv *server) time.Duration {
	t.Helper()
	start := time.Now()
	for health(t, srv) != 200 {
		if time.Since(start) > 20*time.Second {
			t.Fatal("the server did not recover within 20s")
		}
		time.Sleep(50 * time.Millisecond) // the server retries on its own; we watch /healthz
	}
	return time.Since(start)
}

func checkAllStored(t *testing.T, srv *server, c *client, acked map[string]bool) {
	t.Helper()
	stored := map[string]bool{}
	for _, m := range c.history("lobby") {
		stored[m.Text] = true
	}
	for text := range acked {
		if !stored[text] {
			t.Errorf("acknowledged message %q lost", text)
		}
	}
}

func integrityCheck(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check = %q, %v", res, err)
	}
}

func TestFullDiskRefusesWritesAndRecovers(t *testing.T) {
	disk := smallDisk(t, "3m")
	srv := startServer(t, "CHATD_POST_RATE=-1", "CHATD_DB="+filepath.Join(disk, "chatd.db"))
	srv.DB = filepath.Join(disk, "chatd.db")
	alice := register(t, srv, "alice", "password1")
	acked := map[string]bool{}

	filler := filepath.Join(disk, "filler")
	fill(t, filler)
	postUntilRefused(t, alice, acked)
	if s := health(t, srv); s != 503 {
		t.Fatalf("/healthz on a full disk: %d, want 503", s)
	}
	// Reads still work.
	alice.must(200, "GET", "/api/rooms/lobby/messages", nil)

	os.Remove(filler)
	took := waitHealthy(t, srv)
	t.Logf("%d messages acknowledged before the disk filled; recovered %v after space returned", len(acked), took)
	text := "after recovery"
	alice.must(201, "POST", "/api/rooms/lobby/messages", text)
	acked[text] = true
	checkAllStored(t, srv, alice, acked)
	srv.Stop(t)
	integrityCheck(t, srv.DB)
}
