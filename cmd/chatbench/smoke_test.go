package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testLog sends the harness's log lines to the test log.
type testLog struct{ tb testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// runSmokeCheck runs chatbench -smoke with extra flags and fails the test
// unless it exits 0. It returns the report.
func runSmokeCheck(t *testing.T, args ...string) string {
	t.Helper()
	cfg, err := parseFlags(append([]string{"-smoke"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cfg.stdout = &out
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code, err := run(ctx, cfg, slog.New(slog.NewTextHandler(testLog{t}, nil)))
	if code != 0 || err != nil {
		t.Fatalf("chatbench -smoke exited %d: %v\n%s", code, err, out.String())
	}
	t.Log(out.String())
	return out.String()
}

// TestSmokeChatd builds chatd, starts it, and runs the smoke scenario: a
// few hundred clients for a few seconds, every message delivered to every
// member exactly once. This is what keeps the harness from rotting.
func TestSmokeChatd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real chatd")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "chatd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/chatd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/chatd: %v\n%s", err, out)
	}
	report := runSmokeCheck(t, "-chatd-bin", bin, "-fsync-probe", "500ms")
	// The disk's share is reported beside the figures it explains.
	for _, want := range []string{"fsync probe before it", "its commits while measured", "its writes (the caller's wait"} {
		if !strings.Contains(report, want) {
			t.Errorf("the report's conditions lack %q", want)
		}
	}
}

// TestSmokeNchan runs the same check against nchan where nginx and the
// module are installed, so the reference side cannot rot either.
func TestSmokeNchan(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nginx")
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/lib/nginx/modules/ngx_nchan_module.so"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("nchan is not installed: %v", err)
		}
	}
	runSmokeCheck(t, "-systems", "nchan")
}
