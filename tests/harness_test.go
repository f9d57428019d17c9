// Package tests holds chatd's black-box tests: they build the real binary,
// start it on a free port with a real SQLite file in a temporary directory,
// and talk to it over HTTP as browsers and bots do.
package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the chatd executable built once for the whole run.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chatd-tests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "chatd")
	args := []string{"build", "-o", binary}
	if raceBuild {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "chatd/cmd/chatd")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building chatd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a chatd process under test.
type server struct {
	URL  string // http://127.0.0.1:PORT
	Addr string
	DB   string
	Env  []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
	t    testing.TB
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer starts chatd with a fresh database; extraEnv adds CHATD_*
// settings. The server is stopped when the test ends.
func startServer(t testing.TB, extraEnv ...string) *server {
	t.Helper()
	addr := freeAddr(t)
	s := &server{
		URL:  "http://" + addr,
		Addr: addr,
		DB:   filepath.Join(t.TempDir(), "chatd.db"),
		Env:  extraEnv,
		t:    t,
	}
	s.Start(t)
	t.Cleanup(func() {
		s.mu.Lock()
		cmd := s.cmd
		s.mu.Unlock()
		if cmd != nil {
			s.Stop(t)
		}
		// A race-built server reports a data race on its stderr; after
		// SIGTERM it also exits non-zero, but a killed one cannot.
		if strings.Contains(s.Log(), "WARNING: DATA RACE") {
			t.Errorf("the race detector found a data race in chatd")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
	})
	return s
}

// Start runs the binary on the server's address and database and waits
// until /healthz answers.
func (s *server) Start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(),
		"CHATD_ADDR="+s.Addr,
		"CHATD_DB="+s.DB,
		"CHATD_LOG_LEVEL=debug",
	)
	cmd.Env = append(cmd.Env, s.Env...)
	s.mu.Lock()
	if s.log == nil {
		s.log = &bytes.Buffer{}
	}
	cmd.Stdout = lockedWriter{&s.mu, s.log}
	cmd.Stderr = lockedWriter{&s.mu, s.log}
	s.mu.Unlock()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chatd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-done:
			t.Fatalf("chatd exited at start:\n%s", s.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("chatd did not become healthy:\n%s", s.Log())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Log returns what the server has logged so far.
func (s *server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// PID returns the process id of the running server, or 0 when it is
// stopped.
func (s *server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop sends SIGTERM and waits for a clean exit (status 0).
func (s *server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("chatd did not stop within 20s of SIGTERM")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("chatd exited with status %d after SIGTERM", code)
	}
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *server) Kill(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Restart stops the server with SIGTERM and starts it again on the same
// address and database.
func (s *server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.Start(t)
}

// client is one API client: a browser (cookie jar) or a bot (token).
type client struct {
	t     testing.TB
	srv   *server
	http  *http.Client
	Name  string
	Token string
	// Header is added to every request.
	Header http.Header
}

func newClient(t testing.TB, srv *server) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, srv: srv, http: &http.Client{Jar: jar, Timeout: 90 * time.Second}, Header: http.Header{}}
}

// response is an answer from the server.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test when it cannot.
func (r *response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %q: %v", r.Body, err)
	}
}

// ErrorCode returns the contract error code of the body ("" if none).
func (r *response) ErrorCode() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// do sends a request; body may be nil, a string (sent as text/plain), a
// []byte (sent as is, no content type) or any value (sent as JSON).
func (c *client) do(method, path string, body any) *response {
	c.t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ctype = strings.NewReader(b), "text/plain; charset=utf-8"
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, c.srv.URL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// must sends a request and fails the test unless the status is want.
func (c *client) must(want int, method, path string, body any) *response {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.Status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// register makes an account and returns its signed-in browser client.
func register(t testing.TB, srv *server, name, password string) *client {
	t.Helper()
	return signedIn(t, srv, 201, "/api/register", name, password)
}

// login signs an existing account in on a new browser client.
func login(t testing.TB, srv *server, name, password string) *client {
	t.Helper()
	return signedIn(t, srv, 200, "/api/login", name, password)
}

// signedIn posts a name and password to path on a new browser client,
// which must answer want.
func signedIn(t testing.TB, srv *server, want int, path, name, password string) *client {
	t.Helper()
	c := newClient(t, srv)
	c.Name = name
	c.must(want, "POST", path, map[string]string{"username": name, "password": password})
	return c
}

// event is an event as clients receive it.
type event struct {
	ID        int64    `json:"id"`
	Type      string   `json:"type"`
	TS        string   `json:"ts"`
	Room      string   `json:"room"`
	User      string   `json:"user"`
	Status    string   `json:"status"`
	Message   *message `json:"message"`
	MessageID int64    `json:"message_id"`
	Kicked    bool     `json:"kicked"`
}

type message struct {
	ID       int64  `json:"id"`
	Room     string `json:"room"`
	User     string `json:"user"`
	Text     string `json:"text"`
	HTML     string `json:"html"`
	TS       string `json:"ts"`
	EditedTS string `json:"edited_ts"`
}

type pollAnswer struct {
	Cursor int64   `json:"cursor"`
	Events []event `json:"events"`
}

// poll long-polls once from cursor (a negative cursor means none) and
// returns the answer, failing unless it is 200.
func (c *client) poll(cursor int64, timeout time.Duration) pollAnswer {
	c.t.Helper()
	q := url.Values{}
	if cursor >= 0 {
		q.Set("cursor", fmt.Sprint(cursor))
	}
	if timeout == 0 {
		q.Set("wait", "0")
	} else {
		q.Set("timeout", fmt.Sprint(timeout.Seconds()))
	}
	r := c.must(200, "GET", "/api/events?"+q.Encode(), nil)
	var a pollAnswer
	r.JSON(c.t, &a)
	return a
}

// state fetches /api/state.
func (c *client) state() (cursor int64) {
	c.t.Helper()
	var s struct {
		Cursor int64 `json:"cursor"`
	}
	c.must(200, "GET", "/api/state", nil).JSON(c.t, &s)
	return s.Cursor
}

// post sends a text message to a room and returns it.
func (c *client) post(room, text string) message {
	c.t.Helper()
	var r struct {
		Message message `json:"message"`
	}
	c.must(201, "POST", "/api/rooms/"+room+"/messages", map[string]string{"text": text}).JSON(c.t, &r)
	return r.Message
}

// waitFor polls from *cursor until an event satisfying match arrives or
// the deadline passes; it advances *cursor and returns every event seen.
func (c *client) waitFor(cursor *int64, within time.Duration, match func(event) bool) []event {
	c.t.Helper()
	deadline := time.Now().Add(within)
	var seen []event
	for time.Now().Before(deadline) {
		left := time.Until(deadline)
		a := c.poll(*cursor, min(left, 5*time.Second).Round(time.Millisecond)+time.Millisecond)
		*cursor = a.Cursor
		for _, e := range a.Events {
			seen = append(seen, e)
			if match(e) {
				return seen
			}
		}
	}
	c.t.Fatalf("%s: no matching event within %v; saw %+v", c.Name, within, seen)
	return nil
}

// online brings the client online (its first poll announces its login)
// and returns a cursor after that login event, so that later polls wait.
func (c *client) online() int64 {
	c.t.Helper()
	cursor := c.state()
	c.waitFor(&cursor, 5*time.Second, func(e event) bool { return e.Type == "login" && strings.EqualFold(e.User, c.Name) })
	return cursor
}

// history returns every stored message of a room, oldest first, paging
// back through GET /api/rooms/{room}/messages.
func (c *client) history(room string) []message {
	c.t.Helper()
	var all []message
	var before int64
	for {
		path := "/api/rooms/" + room + "/messages?limit=200"
		if before > 0 {
			path += fmt.Sprintf("&before=%d", before)
		}
		var page struct{ Messages []message }
		c.must(200, "GET", path, nil).JSON(c.t, &page)
		if len(page.Messages) == 0 {
			return all
		}
		all = append(page.Messages, all...)
		before = page.Messages[0].ID
	}
}

// userPolls sums the pending polls of the user's clients, as admin sees them
// in /api/admin/clients, and counts those clients.
func userPolls(t testing.TB, admin *client, user string) (polls, clients int) {
	t.Helper()
	var body struct {
		Clients []struct {
			User         string `json:"user"`
			PendingPolls int    `json:"pending_polls"`
		} `json:"clients"`
	}
	admin.must(200, "GET", "/api/admin/clients", nil).JSON(t, &body)
	for _, c := range body.Clients {
		if strings.EqualFold(c.User, user) {
			polls += c.PendingPolls
			clients++
		}
	}
	return polls, clients
}
