package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseReplyInPieces(t *testing.T) {
	chunked := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nTrailer: z\r\n\r\n"
	cases := []struct {
		name, raw string
		eof       bool // the reply ends with the connection
		status    int
		body      string
		close     bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nEtag: 7\r\n\r\nhello", false, 200, "hello", false},
		{"chunked", chunked, false, 200, "hello world", false},
		{"no body", "HTTP/1.1 304 Not Modified\r\nEtag: 7\r\n\r\n", false, 304, "", false},
		{"bare line feeds", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", false, 200, "ok", false},
		{"close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye", false, 200, "bye", true},
		{"to the end", "HTTP/1.0 200 OK\r\n\r\nuntil the end", true, 200, "until the end", true},
	}
	for _, tc := range cases {
		var r reply
		// Every cut short of the whole reply asks for more.
		for i := range len(tc.raw) {
			if n, err := parseReply([]byte(tc.raw[:i]), false, &r); n != 0 || err != nil {
				t.Fatalf("%s: the first %d bytes parsed as %d, %v; want 0, nil", tc.name, i, n, err)
			}
		}
		// The whole reply, and a next one behind it, parse.
		raw := []byte(tc.raw + "HTTP/1.1 204 No Content\r\n\r\n")
		if tc.eof {
			raw = []byte(tc.raw)
		}
		n, err := parseReply(raw, tc.eof, &r)
		if err != nil || n != len(tc.raw) {
			t.Fatalf("%s: parsed %d bytes, %v; want %d", tc.name, n, err, len(tc.raw))
		}
		if r.status != tc.status || string(r.body) != tc.body || r.close != tc.close {
			t.Errorf("%s: status %d, body %q, close %v; want %d, %q, %v", tc.name, r.status, r.body, r.close, tc.status, tc.body, tc.close)
		}
		if !tc.eof {
			if n, err := parseReply(raw[n:], false, &r); err != nil || r.status != 204 || n != len(raw)-len(tc.raw) {
				t.Errorf("%s: the reply behind it parsed as %d bytes, status %d, %v", tc.name, n, r.status, err)
			}
		}
	}
	var r reply
	for _, bad := range []string{"SMTP ready\r\n", "HTTP/1.1 2x0 OK\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"} {
		if _, err := parseReply([]byte(bad), false, &r); err == nil {
			t.Errorf("%q parsed without an error", bad)
		}
	}
	if _, err := parseReply(nil, true, &r); !errors.Is(err, errNoStatus) {
		t.Errorf("an end before any byte: %v, want errNoStatus", err)
	}
	if _, err := parseReply([]byte("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"), true, &r); err == nil {
		t.Error("a body cut short by the end parsed without an error")
	}
	if _, err := parseReply([]byte("HTTP/1.1 200 OK\r\nX: "+strings.Repeat("a", maxHead)), false, &r); err == nil {
		t.Error("a head past maxHead did not fail")
	}
}

// countingSystem is a system whose polls fetch /poll and whose replies
// carry a number the listener must see increase by one each time.
type countingSystem struct {
	system // only the poll methods are used
	addr   string
	mu     sync.Mutex
	seen   map[*listener][]int
}

func (s *countingSystem) appendPoll(b []byte, l *listener, timeout time.Duration) []byte {
	return appendRequest(b, "GET", "/poll?l="+strconv.Itoa(l.id), s.addr, nil, "", nil)
}

func (s *countingSystem) onPoll(l *listener, r *reply, now int64, ph *phase) time.Duration {
	if r.status != 200 {
		ph.stats.pollError(fmt.Errorf("HTTP %d", r.status))
		return 100 * time.Millisecond
	}
	n, err := strconv.Atoi(string(r.body))
	if err != nil {
		ph.stats.pollError(fmt.Errorf("body %q", r.body))
		return 0
	}
	s.mu.Lock()
	s.seen[l] = append(s.seen[l], n)
	s.mu.Unlock()
	return 0
}

// each reports whether every listener has seen n replies.
func (s *countingSystem) each(ls []*listener, n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range ls {
		if len(s.seen[l]) < n {
			return false
		}
	}
	return true
}

// pollUntil runs the fleet's listeners on the event loops until each has
// seen n replies or limit has passed, stops them, and returns the phase's
// counts.
func (s *countingSystem) pollUntil(t *testing.T, f *fleet, n int, limit time.Duration) *phaseStats {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ph := &phase{sys: s, fleet: f, stats: &phaseStats{}, pollTimeout: 5 * time.Second, ctx: ctx, cancel: cancel}
	if err := ph.startListeners(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(limit)
	for !s.each(f.listeners, n) && time.Now().Before(deadline) {
		pause(ctx, 5*time.Millisecond)
	}
	ph.stopping.Store(true)
	ph.listenWG.Wait()
	return ph.stats
}

// TestEventLoopKeepsPollingAcrossClosedConnections runs listeners on the
// event loops against a server that drops every third connection after a
// reply, as a server closing idle connections does, and answers some polls
// in chunks. Each listener must see every answer in order, with no poll
// error: a poll that meets a closed connection is sent again on a new one.
func TestEventLoopKeepsPollingAcrossClosedConnections(t *testing.T) {
	var conns atomic.Int64
	var mu sync.Mutex
	counts := map[string]int{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		counts[r.URL.Query().Get("l")]++
		n := counts[r.URL.Query().Get("l")]
		mu.Unlock()
		switch {
		case n%3 == 0:
			// Reply, then close the connection without saying so.
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			body := strconv.Itoa(n)
			fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			brw.Flush()
			c.Close()
		case n%3 == 1:
			f := w.(http.Flusher)
			s := strconv.Itoa(n)
			for i := range s {
				fmt.Fprint(w, s[i:i+1])
				f.Flush()
			}
		default:
			fmt.Fprint(w, n)
		}
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	sys := &countingSystem{addr: addr, seen: map[*listener][]int{}}
	f := &fleet{}
	for i := range 4 {
		l := &listener{id: i, conn: newHTTPConn(addr, i)}
		f.listeners = append(f.listeners, l)
	}
	// The first listener comes with its connection open, as after prime.
	if err := f.listeners[0].conn.dial(); err != nil {
		t.Fatal(err)
	}
	const want = 30
	stats := sys.pollUntil(t, f, want, 20*time.Second)

	if n := stats.pollErrs.Load(); n != 0 {
		t.Errorf("%d poll errors: %v", n, stats.errorSamples(3))
	}
	sys.mu.Lock()
	defer sys.mu.Unlock()
	for _, l := range f.listeners {
		seen := sys.seen[l]
		if len(seen) < want {
			t.Errorf("listener %d saw %d replies, want at least %d", l.id, len(seen), want)
		}
		for i, n := range seen {
			if n != i+1 {
				t.Fatalf("listener %d saw %v; want 1, 2, 3, …", l.id, seen)
			}
		}
	}
	if c := conns.Load(); c < int64(len(f.listeners))*want/3 {
		t.Errorf("the server saw %d connections; every third reply should have cost one", c)
	}
}

// Replies that the loop reads in pieces are put together: a reply written
// a byte at a time arrives whole.
func TestEventLoopReadsReplyInPieces(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for i := 1; ; i++ {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			body := strconv.Itoa(i)
			reply := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			for j := range reply {
				if _, err := c.Write([]byte{reply[j]}); err != nil {
					return
				}
			}
		}
	}()
	addr := ln.Addr().String()
	sys := &countingSystem{addr: addr, seen: map[*listener][]int{}}
	l := &listener{conn: newHTTPConn(addr, 1)}
	stats := sys.pollUntil(t, &fleet{listeners: []*listener{l}}, 20, 10*time.Second)
	sys.mu.Lock()
	defer sys.mu.Unlock()
	if seen := sys.seen[l]; len(seen) < 20 || seen[19] != 20 || stats.pollErrs.Load() != 0 {
		t.Errorf("saw %v with %d poll errors; want 1 … 20 and none", seen, stats.pollErrs.Load())
	}
}
