package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Helpers of the fault, abuse and security campaign (docs/RELIABILITY.md,
// docs/SECURITY.md). Every long version runs only with CHATD_LONG=1; CI runs
// the short ones.

// longRun reports whether the long versions of the campaign's tests run.
func longRun() bool { return os.Getenv("CHATD_LONG") == "1" }

// scale returns short in a normal run and long with CHATD_LONG=1.
func scale(short, long int) int {
	if longRun() {
		return long
	}
	return short
}

// procStatus reads a field of /proc/PID/status in KiB (VmRSS, VmHWM, ...),
// or 0 if it cannot.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// rssMiB returns the server's resident memory in MiB.
func rssMiB(srv *server) float64 { return float64(procStatus(srv.PID(), "VmRSS")) / 1024 }

// openFDs counts the server's open file descriptors.
func openFDs(srv *server) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", srv.PID()))
	if err != nil {
		return -1
	}
	return len(ents)
}

// raiseNoFile lifts this process's open-file limit to its hard limit, so
// that thousands of connections fit; servers started afterwards inherit it.
func raiseNoFile(t *testing.T) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		old := lim.Cur
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			lim.Cur = old
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		})
	}
	return lim.Cur
}

// loopbackIP returns one of 250 loopback source addresses (127.0.0.2 to
// 127.0.0.251), so that many clients do not share one address and its
// ephemeral ports.
func loopbackIP(i int) net.IP { return net.IPv4(127, 0, 0, byte(2+i%250)) }

// dialFrom returns a dialer whose connections come from the address.
func dialFrom(ip net.IP) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 5 * time.Second}
}

// clientFrom returns a client of srv whose connections come from the
// address, with its own connection pool.
func clientFrom(t testing.TB, srv *server, ip net.IP) *client {
	c := newClient(t, srv)
	c.http.Transport = &http.Transport{
		DialContext:         dialFrom(ip).DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	return c
}

// botCred is a bot account's name and token.
type botCred struct{ Name, Token string }

// makeBots creates n bots (in the lobby, or in no room) with the operator's
// bulk command, which writes to the database directly: the server is
// stopped for it and started again.
func makeBots(t *testing.T, srv *server, prefix string, n int, lobby bool) []botCred {
	t.Helper()
	srv.Stop(t)
	out, err := exec.Command(binary, "bots", "-db", srv.DB, "-prefix", prefix, "-n", strconv.Itoa(n), "-lobby="+strconv.FormatBool(lobby)).Output()
	if err != nil {
		t.Fatalf("chatd bots: %v", err)
	}
	var bots []botCred
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, token, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("chatd bots printed %q", line)
		}
		bots = append(bots, botCred{name, token})
	}
	if len(bots) != n {
		t.Fatalf("chatd bots made %d bots, want %d", len(bots), n)
	}
	srv.Start(t)
	return bots
}

// rawEvent is an event as the server encoded it, with its id.
type rawEvent struct {
	ID   int64
	JSON string
}

// replay polls as c from cursor in poll mode until nothing is left and
// returns every event it was given, in order. It fails the test on a gap in
// the cursors or a repeated event.
func replay(t testing.TB, c *client, cursor int64) []rawEvent {
	t.Helper()
	var out []rawEvent
	for {
		r := c.must(200, "GET", fmt.Sprintf("/api/events?cursor=%d&wait=0", cursor), nil)
		var a struct {
			Cursor int64             `json:"cursor"`
			Events []json.RawMessage `json:"events"`
		}
		r.JSON(t, &a)
		if len(a.Events) == 0 {
			return out
		}
		for _, raw := range a.Events {
			var e struct {
				ID int64 `json:"id"`
			}
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("event %s: %v", raw, err)
			}
			if e.ID <= cursor {
				t.Fatalf("replay from %d returned event %d again", cursor, e.ID)
			}
			cursor = e.ID
			out = append(out, rawEvent{e.ID, string(raw)})
		}
		if a.Cursor != cursor {
			t.Fatalf("poll answer cursor %d is not its last event %d", a.Cursor, cursor)
		}
	}
}

// percentiles returns p50, p99 and the maximum of ds (sorted in place).
func percentiles(ds []time.Duration) (p50, p99, maxd time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], ds[min(len(ds)-1, len(ds)*99/100)], ds[len(ds)-1]
}

// eventually checks cond every 20 ms until it holds, failing the test after
// within; it returns how long that took.
func eventually(t testing.TB, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("waited %v for %s", within, what)
		}
		<-tick.C
	}
	return time.Since(start)
}

// rawPost posts text to the room as c without failing the test (the server
// may be going away) and returns the new message's id, or 0 when it was not
// acknowledged with 201.
func rawPost(ctx context.Context, c *client, room, text string) int64 {
	req, err := http.NewRequestWithContext(ctx, "POST", c.srv.URL+"/api/rooms/"+room+"/messages", strings.NewReader(text))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return 0
	}
	var id int64
	if _, err := fmt.Sscanf(resp.Header.Get("Location"), "/api/messages/%d", &id); err != nil {
		return 0
	}
	return id
}
