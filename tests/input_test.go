package tests

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBadInputGetsAClearClientError sends malformed, oversized and
// nonsensical requests to every kind of endpoint: each must be answered
// promptly with the contract's 4xx error shape, never a 500 or a hang, and
// must change nothing.
func TestBadInputGetsAClearClientError(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv, "alice", "password1")
	msg := alice.post("lobby", "the only message")
	big := strings.Repeat("x", 17<<10)
	cases := []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"POST", "/api/register", []byte(`{"username":`), 400, "invalid_argument"},
		{"POST", "/api/register", []byte(`[]`), 400, "invalid_argument"},
		{"POST", "/api/register", []byte(``), 400, "invalid_argument"},
		{"POST", "/api/register", map[string]string{"username": "bad name!", "password": "password1"}, 400, "invalid_argument"},
		{"POST", "/api/register", map[string]string{"username": strings.Repeat("a", 33), "password": "password1"}, 400, "invalid_argument"},
		{"POST", "/api/register", map[string]string{"username": "ok", "password": "short"}, 400, "invalid_argument"},
		{"POST", "/api/register", map[string]string{"username": "ok", "password": strings.Repeat("p", 257)}, 400, "invalid_argument"},
		{"POST", "/api/register", map[string]string{"username": "ALICE", "password": "password1"}, 409, "conflict"},
		{"POST", "/api/register", map[string]any{"username": "ok", "password": "password1", "admin": true}, 400, "invalid_argument"},
		{"POST", "/api/register", []byte(big), 413, "too_large"},
		{"POST", "/api/login", map[string]string{"username": "alice", "password": "wrong-password"}, 401, "unauthenticated"},
		{"POST", "/api/login", map[string]string{"username": "nobody", "password": "wrong-password"}, 401, "unauthenticated"},
		{"POST", "/api/rooms", map[string]any{"name": "Bad Name"}, 400, "invalid_argument"},
		{"POST", "/api/rooms", map[string]any{"name": "-x"}, 400, "invalid_argument"},
		{"POST", "/api/rooms", map[string]any{"name": strings.Repeat("r", 65)}, 400, "invalid_argument"},
		{"POST", "/api/rooms", map[string]any{"name": "lobby"}, 409, "conflict"},
		{"POST", "/api/rooms", map[string]any{"name": "t", "topic": strings.Repeat("t", 600)}, 400, "invalid_argument"},
		{"POST", "/api/rooms", map[string]any{"name": 7}, 400, "invalid_argument"},
		{"GET", "/api/rooms/nope", nil, 404, "not_found"},
		{"GET", "/api/rooms/%00", nil, 404, "not_found"},
		{"POST", "/api/rooms/nope/join", nil, 404, "not_found"},
		{"POST", "/api/rooms/lobby/messages", map[string]string{}, 400, "invalid_argument"},
		{"POST", "/api/rooms/lobby/messages", map[string]any{"text": 5}, 400, "invalid_argument"},
		{"POST", "/api/rooms/lobby/messages", map[string]string{"text": "a", "html": "b"}, 400, "invalid_argument"},
		{"POST", "/api/rooms/lobby/messages", map[string]string{"text": "   "}, 400, "invalid_argument"},
		{"POST", "/api/rooms/lobby/messages", map[string]string{"html": "<script>x</script>"}, 400, "invalid_argument"},
		{"POST", "/api/rooms/lobby/messages", map[string]string{"text": strings.Repeat("é", 4001)}, 413, "too_large"},
		{"POST", "/api/rooms/lobby/messages", big, 413, "too_large"},
		{"POST", "/api/rooms/lobby/messages", "\xff\xfe", 400, "invalid_argument"},
		{"POST", "/api/rooms/nope/messages", "hi", 404, "not_found"},
		{"POST", "/api/users/nobody/messages", "hi", 404, "not_found"},
		{"GET", "/api/rooms/lobby/messages?limit=0", nil, 400, "invalid_argument"},
		{"GET", "/api/rooms/lobby/messages?limit=x", nil, 400, "invalid_argument"},
		{"GET", "/api/rooms/lobby/messages?before=-1", nil, 400, "invalid_argument"},
		{"PATCH", "/api/messages/abc", map[string]string{"text": "x"}, 400, "invalid_argument"},
		{"PATCH", "/api/messages/999999", map[string]string{"text": "x"}, 404, "not_found"},
		{"PATCH", "/api/messages/" + strconv.FormatInt(msg.ID, 10), []byte(`{"text":`), 400, "invalid_argument"},
		{"DELETE", "/api/messages/0", nil, 400, "invalid_argument"},
		{"DELETE", "/api/messages/99999999999999999999", nil, 400, "invalid_argument"},
		{"POST", "/api/presence", map[string]string{"status": "invisible"}, 400, "invalid_argument"},
		{"GET", "/api/events?cursor=-5", nil, 400, "invalid_argument"},
		{"GET", "/api/events?cursor=abc", nil, 400, "invalid_argument"},
		{"GET", "/api/events?cursor=99999999", nil, 400, "invalid_argument"},
		{"GET", "/api/events?cursor=1&timeout=-1", nil, 400, "invalid_argument"},
		{"GET", "/api/events?cursor=1&timeout=NaN", nil, 400, "invalid_argument"},
		{"GET", "/api/events?cursor=1&wait=maybe", nil, 400, "invalid_argument"},
		{"GET", "/api/nothing-here", nil, 404, "not_found"},
	}
	for _, c := range cases {
		start := time.Now()
		r := alice.do(c.method, c.path, c.body)
		if r.Status != c.status || r.ErrorCode() != c.code {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.path, r.Status, r.Body, c.status, c.code)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s %s took %v", c.method, c.path, d)
		}
	}
	// Nothing was written by any of it: the lobby holds one message.
	var page struct{ Messages []message }
	alice.must(200, "GET", "/api/rooms/lobby/messages", nil).JSON(t, &page)
	if len(page.Messages) != 1 {
		t.Fatalf("lobby has %d messages after bad requests, want 1", len(page.Messages))
	}
	// Unauthenticated calls are 401 everywhere.
	anon := newClient(t, srv)
	for _, p := range []string{"/api/me", "/api/rooms", "/api/state", "/api/events?wait=0"} {
		if r := anon.do("GET", p, nil); r.Status != 401 || r.ErrorCode() != "unauthenticated" {
			t.Errorf("anonymous GET %s: %d %s", p, r.Status, r.Body)
		}
	}
	anon.Token = "chatd_not-a-real-token"
	if r := anon.do("GET", "/api/me", nil); r.Status != 401 {
		t.Errorf("bad bearer token: %d", r.Status)
	}
}

func TestCrossOriginWritesRefused(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv, "alice", "password1")
	evil := []http.Header{
		{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}},
		{"Origin": {"https://evil.example"}},
		{"Sec-Fetch-Site": {"same-site"}, "Origin": {"https://sub." + strings.TrimPrefix(srv.URL, "http://")}},
	}
	for _, h := range evil {
		alice.Header = h
		for _, req := range []struct{ method, path string }{
			{"POST", "/api/rooms/lobby/messages"},
			{"POST", "/api/rooms"},
			{"POST", "/api/logout"},
			{"DELETE", "/api/messages/1"},
			{"POST", "/api/login"},
		} {
			r := alice.do(req.method, req.path, "x")
			if r.Status != 403 || r.ErrorCode() != "forbidden" {
				t.Errorf("%v %s %s: %d %s, want 403 forbidden", h, req.method, req.path, r.Status, r.Body)
			}
		}
	}
	// Reads from another origin are not state changes, and same-origin
	// writes work.
	alice.Header = http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}
	alice.must(200, "GET", "/api/me", nil)
	alice.Header = http.Header{"Origin": {srv.URL}, "Sec-Fetch-Site": {"same-origin"}}
	alice.must(201, "POST", "/api/rooms/lobby/messages", "same origin is fine")
	alice.Header = http.Header{}
	var page struct{ Messages []message }
	alice.must(200, "GET", "/api/rooms/lobby/messages", nil).JSON(t, &page)
	if len(page.Messages) != 1 {
		t.Fatalf("%d messages stored, want only the same-origin one", len(page.Messages))
	}
}

func TestPostingRateLimited(t *testing.T) {
	srv := startServer(t, "CHATD_POST_RATE=2", "CHATD_POST_BURST=5")
	alice := register(t, srv, "alice", "password1")
	bob := register(t, srv, "bob", "password1")
	var limited *response
	for i := range 20 {
		r := alice.do("POST", "/api/rooms/lobby/messages", fmt.Sprint("flood ", i))
		if r.Status == 429 {
			limited = r
			if i < 5 {
				t.Fatalf("limited after %d messages, burst is 5", i)
			}
			break
		}
		if r.Status != 201 {
			t.Fatalf("post %d: %d %s", i, r.Status, r.Body)
		}
	}
	if limited == nil {
		t.Fatal("20 messages at once were never limited")
	}
	if limited.ErrorCode() != "rate_limited" || limited.Header.Get("Retry-After") == "" {
		t.Fatalf("429 answer %s without rate_limited code or Retry-After", limited.Body)
	}
	// Another user is not affected.
	bob.must(201, "POST", "/api/rooms/lobby/messages", "bob is fine")
}

func TestFailedLoginsRateLimited(t *testing.T) {
	srv := startServer(t)
	register(t, srv, "alice", "password1")
	c := newClient(t, srv)
	var status int
	var r *response
	for i := range 10 {
		r = c.do("POST", "/api/login", map[string]string{"username": "alice", "password": fmt.Sprint("guess", i, "xxx")})
		status = r.Status
		if status == 429 {
			break
		}
		if status != 401 {
			t.Fatalf("wrong password %d: %d", i, status)
		}
	}
	if status != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("10 wrong passwords: last status %d, want 429 with Retry-After", status)
	}
	// While the account is limited, even the right password waits: a
	// guesser cannot tell a hit.
	if r := c.do("POST", "/api/login", map[string]string{"username": "alice", "password": "password1"}); r.Status != 429 {
		t.Fatalf("right password while limited: %d", r.Status)
	}
}
