package chatd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"chatd/comet"
)

// laneEnv serves a fuzzEnv's server on a real listener, through Listen, as
// cmd/chatd does, so polls run on the lane.
func laneEnv(t *testing.T) (*fuzzEnv, string) {
	t.Helper()
	e := newFuzzEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: e.srv, ConnState: e.srv.ConnState, ReadHeaderTimeout: ReadHeaderTimeout, IdleTimeout: IdleTimeout}
	go hs.Serve(e.srv.Listen(ln))
	t.Cleanup(func() { hs.Close() })
	return e, ln.Addr().String()
}

// rawConn is one client connection on which the test writes requests by
// hand and reads the answers in order.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// send writes requests as they are given (several make a pipeline).
func (rc *rawConn) send(reqs ...string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, strings.Join(reqs, "")); err != nil {
		rc.t.Fatal(err)
	}
}

// read reads the next answer, within 10 s.
func (rc *rawConn) read() (*http.Response, string) {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		rc.t.Fatalf("reading an answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("reading an answer's body: %v", err)
	}
	return resp, string(b)
}

func pollReq(query, token string, extra ...string) string {
	h := "GET /api/events?" + query + " HTTP/1.1\r\nHost: chat.test\r\n"
	if token != "" {
		h += "Authorization: Bearer " + token + "\r\n"
	}
	for _, x := range extra {
		h += x + "\r\n"
	}
	return h + "\r\n"
}

type pollAnswer struct {
	Cursor int64
	Events []struct {
		ID      int64
		Type    string
		Message struct {
			Text string
		}
	}
}

func decodePoll(t *testing.T, resp *http.Response, body string) pollAnswer {
	t.Helper()
	if resp.StatusCode != 200 {
		t.Fatalf("poll: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("poll answer Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("poll answer Cache-Control %q", cc)
	}
	if resp.Header.Get("Date") == "" {
		t.Fatal("poll answer without Date")
	}
	var a pollAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("poll answer %q: %v", body, err)
	}
	return a
}

// catchUp polls with wait=0 from cursor (-1: the newest) until an answer
// has no events, and returns the cursor to wait from.
func (rc *rawConn) catchUp(cursor int64, cred string) int64 {
	rc.t.Helper()
	for {
		q := "wait=0"
		if cursor >= 0 {
			q = fmt.Sprintf("cursor=%d&wait=0", cursor)
		}
		rc.send(pollReq(q, "", cred))
		a := rc.answer()
		if cursor >= 0 && len(a.Events) == 0 {
			return cursor
		}
		cursor = a.Cursor
	}
}

// answer reads the next answer, which must be a poll's 200.
func (rc *rawConn) answer() pollAnswer {
	rc.t.Helper()
	resp, body := rc.read()
	return decodePoll(rc.t, resp, body)
}

func (e *fuzzEnv) post(t *testing.T, addr, text string) {
	t.Helper()
	r, _ := http.NewRequest("POST", "http://"+addr+"/api/rooms/lobby/messages", strings.NewReader(fmt.Sprintf(`{"text":%q}`, text)))
	r.Header.Set("Authorization", "Bearer "+e.token)
	r.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("post: %d", resp.StatusCode)
	}
}

// One kept-alive connection carries polls (served by the lane after the
// first), a post (handed back to the HTTP server), bad and unauthenticated
// polls, a pipeline and a non-poll GET, each answered in order.
func TestLaneServesAConnectionsRequests(t *testing.T) {
	e, addr := laneEnv(t)
	rc := dialRaw(t, addr)

	rc.send(pollReq("wait=0", e.token))
	first := rc.answer()

	// A waiting poll on the lane is answered when a message is posted.
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=20", first.Cursor), e.token))
	untilPending(t, e.srv, 1)
	e.post(t, addr, "to the waiting poll")
	got := rc.answer()
	if len(got.Events) != 1 || got.Events[0].Message.Text != "to the waiting poll" {
		t.Fatalf("waiting poll answered %+v", got)
	}
	// That poll was answered within holdAfter: the connection is busy and
	// its next waiting poll is held by its goroutine.
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=20", got.Cursor), e.token))
	untilPending(t, e.srv, 1)
	e.post(t, addr, "to the held poll")
	got = rc.answer()
	if len(got.Events) != 1 || got.Events[0].Message.Text != "to the held poll" {
		t.Fatalf("held poll answered %+v", got)
	}

	// A post on the same connection goes to the HTTP server and is stored.
	body := `{"text":"on the poll connection"}`
	rc.send(fmt.Sprintf("POST /api/rooms/lobby/messages HTTP/1.1\r\nHost: chat.test\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", e.token, len(body), body))
	if resp, b := rc.read(); resp.StatusCode != 201 {
		t.Fatalf("post on the poll connection: %d %s", resp.StatusCode, b)
	}
	rc.send(pollReq(fmt.Sprintf("cursor=%d&wait=0", got.Cursor), e.token))
	got = rc.answer()
	if len(got.Events) != 1 || got.Events[0].Message.Text != "on the poll connection" {
		t.Fatalf("poll after the post answered %+v", got)
	}
	cursor := got.Cursor

	// Refused polls get the contract's errors and keep the connection.
	rc.send(pollReq("wait=0", ""))
	if resp, b := rc.read(); resp.StatusCode != 401 || !strings.Contains(b, `"unauthenticated"`) {
		t.Fatalf("poll without credentials: %d %s", resp.StatusCode, b)
	}
	rc.send(pollReq("cursor=abc&wait=0", e.token))
	if resp, b := rc.read(); resp.StatusCode != 400 || !strings.Contains(b, `"invalid_argument"`) {
		t.Fatalf("poll with a bad cursor: %d %s", resp.StatusCode, b)
	}
	rc.send(pollReq("cursor=99999999&wait=0", e.token))
	if resp, b := rc.read(); resp.StatusCode != 400 {
		t.Fatalf("poll with a future cursor: %d %s", resp.StatusCode, b)
	}

	// A pipeline of two polls and a GET of another path: three answers,
	// in order.
	rc.send(pollReq(fmt.Sprintf("cursor=%d&wait=0", first.Cursor), e.token),
		pollReq(fmt.Sprintf("cursor=%d&wait=0", cursor), e.token),
		"GET /api/eventsX HTTP/1.1\r\nHost: chat.test\r\n\r\n")
	if a := rc.answer(); a.Cursor != cursor || len(a.Events) != 3 {
		t.Fatalf("first pipelined poll: %+v", a)
	}
	if a := rc.answer(); a.Cursor != cursor || len(a.Events) != 0 {
		t.Fatalf("second pipelined poll: %+v", a)
	}
	if resp, b := rc.read(); resp.StatusCode != 404 || !strings.Contains(b, `"not_found"`) {
		t.Fatalf("GET /api/eventsX: %d %s", resp.StatusCode, b)
	}

	// Connection: close is honoured.
	rc.send(pollReq(fmt.Sprintf("cursor=%d&wait=0", cursor), e.token, "Connection: close"))
	resp, _ := rc.read()
	if !resp.Close {
		t.Fatal("the answer to a poll with Connection: close does not close")
	}
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after Connection: close, read gives %v, want EOF", err)
	}
}

// A second poll of the same client on another connection takes over: the
// waiting one is answered 409 at once, and its connection serves on.
func TestLaneSupersededPoll(t *testing.T) {
	e, addr := laneEnv(t)
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	a.send(pollReq("wait=0", e.token))
	cursor := a.answer().Cursor
	a.send(pollReq(fmt.Sprintf("cursor=%d&timeout=20", cursor), e.token))
	untilPending(t, e.srv, 1)
	b.send(pollReq(fmt.Sprintf("cursor=%d&timeout=20", cursor), e.token))
	resp, body := a.read()
	if resp.StatusCode != 409 || resp.Header.Get("Retry-After") != "2" || !strings.Contains(body, `"superseded"`) {
		t.Fatalf("the older poll: %d %q %s, want 409 superseded with Retry-After 2", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// The older poll's connection serves on.
	a.send(pollReq(fmt.Sprintf("cursor=%d&wait=0", cursor), "", "Connection: close"))
	if resp, _ := a.read(); resp.StatusCode != 401 {
		t.Fatalf("a request after the 409: %d", resp.StatusCode)
	}
	// The surviving poll gets the next message.
	e.post(t, addr, "after the takeover")
	got := b.answer()
	if len(got.Events) != 1 || got.Events[0].Message.Text != "after the takeover" {
		t.Fatalf("surviving poll answered %+v", got)
	}
}

// Drain answers the waiting lane polls, held and parked, with
// Connection: close, and closes a lane connection that waits for its next
// request.
func TestLaneDrain(t *testing.T) {
	e, addr := laneEnv(t)
	held, parked, idle := dialRaw(t, addr), dialRaw(t, addr), dialRaw(t, addr)
	bot, admin := "Authorization: Bearer "+e.token, "Cookie: "+e.cookie
	idle.send(pollReq("wait=0", "", bot))
	idle.answer()
	// The other client (a browser session) comes online.
	pc := parked.catchUp(-1, admin)
	// A poll answered soon after it waited makes its connection busy.
	cursor := held.catchUp(-1, bot)
	held.send(pollReq(fmt.Sprintf("cursor=%d&timeout=30", cursor), "", bot))
	untilPending(t, e.srv, 1)
	e.post(t, addr, "makes the connection busy")
	cursor = held.answer().Cursor
	// The session's poll parks; the bot's is held.
	pc = parked.catchUp(pc, admin)
	parked.send(pollReq(fmt.Sprintf("cursor=%d&timeout=30", pc), "", admin))
	held.send(pollReq(fmt.Sprintf("cursor=%d&timeout=30", cursor), "", bot))
	untilPending(t, e.srv, 2)

	e.srv.Drain()
	for name, rc := range map[string]*rawConn{"held": held, "parked": parked} {
		resp, body := rc.read()
		if a := decodePoll(t, resp, body); !resp.Close || len(a.Events) != 0 {
			t.Fatalf("drained %s poll: close=%v %+v", name, resp.Close, a)
		}
	}
	idle.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle lane connection after Drain: %v, want EOF", err)
	}
}

// A busy connection's polls repeat their headers, and the lane does not
// look up who sends them every time; a disconnect still takes the client
// off the list until its next poll, and a logout refuses that poll.
func TestLaneRepeatedPollsFollowLogout(t *testing.T) {
	e, addr := laneEnv(t)
	rc := dialRaw(t, addr)
	admin := "Cookie: " + e.cookie
	cursor := rc.catchUp(-1, admin)
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=30", cursor), "", admin))
	untilPending(t, e.srv, 1)
	e.post(t, addr, "makes the connection busy")
	cursor = rc.answer().Cursor
	for range 3 {
		rc.send(pollReq(fmt.Sprintf("cursor=%d&wait=0", cursor), "", admin))
		if a := rc.answer(); a.Cursor != cursor || len(a.Events) != 0 {
			t.Fatalf("repeated poll answered %+v", a)
		}
	}
	// A client that said it is leaving and polls again is back online.
	online := func() bool {
		for _, c := range e.srv.presence.Clients() {
			if c.User == "root" {
				return true
			}
		}
		return false
	}
	if w := e.serve(t, httptest.NewRequest("POST", "/api/disconnect", nil), e.cookie); w.Code >= 300 {
		t.Fatalf("disconnect: %d %s", w.Code, w.Body)
	}
	if online() {
		t.Fatal("the client is still listed after /api/disconnect")
	}
	rc.send(pollReq(fmt.Sprintf("cursor=%d&wait=0", cursor), "", admin))
	cursor = rc.answer().Cursor
	if !online() {
		t.Fatal("the client polled again after /api/disconnect and is not listed")
	}
	if w := e.serve(t, httptest.NewRequest("POST", "/api/logout", nil), e.cookie); w.Code >= 300 {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	rc.send(pollReq(fmt.Sprintf("cursor=%d&wait=0", cursor), "", admin))
	if resp, b := rc.read(); resp.StatusCode != 401 || !strings.Contains(b, `"unauthenticated"`) {
		t.Fatalf("poll after logout: %d %s", resp.StatusCode, b)
	}
}

// A busy connection's poll is held (its goroutine reads on while an answer
// writer waits for the answer); a client that closes that connection has
// the poll ended at once.
func TestLaneClientClosesHeldPoll(t *testing.T) {
	e, addr, rc := watchedLane(t)
	cursor := rc.catchUp(-1, "Authorization: Bearer "+e.token)
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=50", cursor), e.token))
	untilPending(t, e.srv, 1)
	e.post(t, addr, "makes the connection busy")
	hangUpOnWaitingPoll(t, e, rc, rc.answer().Cursor, "held")
}

// On a busy connection the lane's goroutine reads on while its poll waits,
// and an answer writer writes the answer. A request the client sends behind
// the waiting poll is served after that answer, in order; and a client that
// hangs up on a waiting poll has its lane closed.
func TestLaneHeldPollAnswersBeforeTheNextRequest(t *testing.T) {
	e, addr, rc, cursor := busyLane(t)
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=20", cursor), e.token),
		"GET /api/eventsX HTTP/1.1\r\nHost: chat.test\r\n\r\n")
	untilPending(t, e.srv, 1)
	e.post(t, addr, "to the held poll")
	got := rc.answer()
	if len(got.Events) != 1 || got.Events[0].Message.Text != "to the held poll" {
		t.Fatalf("held poll answered %+v", got)
	}
	if resp, b := rc.read(); resp.StatusCode != 404 {
		t.Fatalf("the request behind the held poll: %d %s", resp.StatusCode, b)
	}

	// The GET went to the HTTP server; a poll comes back to the lane, is
	// answered soon after it waited (busy again), and the next one is
	// held when the client hangs up.
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=20", got.Cursor), e.token))
	untilPending(t, e.srv, 1)
	e.post(t, addr, "busy again")
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=20", rc.answer().Cursor), e.token))
	untilPending(t, e.srv, 1)
	rc.c.Close()
	untilPending(t, e.srv, 0)
	eventually(t, func() bool { return e.srv.lanes() == 0 }, func() string {
		return fmt.Sprintf("%d lanes open 10 s after the client hung up", e.srv.lanes())
	})
}

// A held poll's goroutine reads on under the deadline set before the poll
// waited; the answer writer gives the client IdleTimeout from the answer,
// so a client that takes its time over its next request keeps its
// connection. (The test shortens the deadline in force to 500 ms.)
func TestLaneHeldAnswerExtendsReadDeadline(t *testing.T) {
	e, addr, rc, cursor := busyLane(t)
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=20", cursor), e.token))
	untilPending(t, e.srv, 1)
	untilReading(t)
	var l *lane
	e.srv.recycle.mu.Lock()
	for k := range e.srv.recycle.lanes {
		l = k
	}
	e.srv.recycle.mu.Unlock()
	d := time.Now().Add(500 * time.Millisecond)
	l.rdl.Store(d.UnixNano())
	l.conn.SetReadDeadline(d)

	e.post(t, addr, "to the held poll")
	got := rc.answer()
	time.Sleep(time.Second) // the client is slower than the shortened deadline
	rc.send(pollReq(fmt.Sprintf("cursor=%d&wait=0", got.Cursor), e.token))
	if a := rc.answer(); a.Cursor != got.Cursor {
		t.Fatalf("the next poll after a pause answered %+v", a)
	}
}

// busyLane is laneEnv with one client connection made busy: its last poll
// waited and was answered at once, so its next poll that waits is held.
// It returns the cursor after that answer.
func busyLane(t *testing.T) (*fuzzEnv, string, *rawConn, int64) {
	t.Helper()
	e, addr := laneEnv(t)
	rc := dialRaw(t, addr)
	cursor := rc.catchUp(-1, "Authorization: Bearer "+e.token)
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=20", cursor), e.token))
	untilPending(t, e.srv, 1)
	e.post(t, addr, "makes the connection busy")
	return e, addr, rc, rc.answer().Cursor
}

// untilReading waits until a lane's goroutine is blocked reading the
// client's next request while its poll is held.
func untilReading(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	eventually(t, func() bool {
		stacks := string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "(*Reader).Peek") && strings.Contains(g, "chatd.(*lane).next") && strings.Contains(g, "IO wait") {
				return true
			}
		}
		return false
	}, func() string { return "no lane goroutine is reading" })
}

// lanes returns how many connections the lane serves.
func (s *Server) lanes() int {
	s.recycle.mu.Lock()
	defer s.recycle.mu.Unlock()
	return len(s.recycle.lanes)
}

// watchedLane is laneEnv with one client connection, for the tests of the
// hang-up watcher (Linux only: elsewhere they are skipped).
func watchedLane(t *testing.T) (*fuzzEnv, string, *rawConn) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the hang-up watcher is Linux only")
	}
	e, addr := laneEnv(t)
	return e, addr, dialRaw(t, addr)
}

// hangUpOnWaitingPoll sends a poll that waits (up to 50 s), closes its
// connection and waits for the poll to end, which it must within
// untilPending's 10 s.
func hangUpOnWaitingPoll(t *testing.T, e *fuzzEnv, rc *rawConn, cursor int64, what string) {
	t.Helper()
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=50", cursor), e.token))
	untilPending(t, e.srv, 1)
	start := time.Now()
	rc.c.Close()
	untilPending(t, e.srv, 0)
	t.Logf("the %s poll ended %v after its client closed", what, time.Since(start))
}

// untilPending waits until the hub holds n pending polls.
func untilPending(t *testing.T, s *Server, n int) {
	t.Helper()
	eventually(t, func() bool { return s.hub.Pending() == n }, func() string {
		return fmt.Sprintf("pending polls %d, want %d", s.hub.Pending(), n)
	})
}

// eventually waits up to 10 s for cond to hold, looking every 5 ms, and
// fails the test with what report says when it does not.
func eventually(t *testing.T, cond func() bool, report func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(report())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FuzzParseHead checks the lane's parser against net/http's: whatever it
// accepts, net/http reads as the same request (method, target, host,
// close, no body, and the headers the poll path reads).
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET /api/events?cursor=5&timeout=25 HTTP/1.1\r\nHost: chat.test\r\nCookie: chatd_session=abc\r\nUser-Agent: x\r\n\r\n",
		"GET /api/events HTTP/1.1\r\nhost: a\r\nauthorization: Bearer t\r\nConnection: keep-alive, close\r\n\r\n",
		"GET /api/events?x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET /api/events HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nX-Other: \t v \r\n\r\n",
		"GET /api/events HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"GET /api/events#f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		r, ok := parseHead(head, make(http.Header))
		if !ok {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("parseHead accepted %q, net/http refuses it: %v", head, err)
		}
		if r.Method != want.Method || r.URL.Path != want.URL.Path || r.URL.RawQuery != want.URL.RawQuery ||
			r.Host != want.Host || r.Close != want.Close || r.RequestURI != want.RequestURI ||
			want.ContentLength != 0 || r.ProtoMajor != want.ProtoMajor || r.ProtoMinor != want.ProtoMinor {
			t.Fatalf("%q: parseHead %+v\nnet/http %+v", head, r, want)
		}
		for _, k := range laneHeaders {
			if k == "Host" {
				continue
			}
			if r.Header.Get(k) != want.Header.Get(k) || len(r.Header.Values(k)) != len(want.Header.Values(k)) {
				t.Fatalf("%q: header %s: parseHead %q, net/http %q", head, k, r.Header.Values(k), want.Header.Values(k))
			}
		}
		if r.UserAgent() != want.UserAgent() {
			t.Fatalf("%q: user agent differs", head)
		}
	})
}

// The lane's answer is the HTTP response net/http would send for the same
// poll: same body, a Content-Length that counts it exactly.
func TestAppendAnswer(t *testing.T) {
	for _, res := range []comet.Result{pollResult(9), pollResult(3, `{"id":2}`, `{"id":3,"text":"é"}`)} {
		for _, closing := range []bool{false, true} {
			raw := appendAnswer(nil, res, closing, time.Now())
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
			if err != nil {
				t.Fatalf("%q: %v", raw, err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || string(body) != string(encodePoll(res))+"\n" || resp.Close != closing {
				t.Fatalf("%q: body %q (%v), close %v", raw, body, err, resp.Close)
			}
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("%q: status or headers", raw)
			}
			if _, err := http.ParseTime(resp.Header.Get("Date")); err != nil {
				t.Fatalf("%q: Date: %v", raw, err)
			}
		}
	}
}

// A poll on a quiet connection (its last poll waited over holdAfter) is
// parked without a goroutine and still answered when a message comes; a
// heartbeat answers with the same cursor and no events.
func TestLaneParkedPoll(t *testing.T) {
	e, addr := laneEnv(t)
	rc := dialRaw(t, addr)
	rc.send(pollReq("wait=0", e.token))
	cursor := rc.answer().Cursor
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=1.2", cursor), e.token))
	if hb := rc.answer(); hb.Cursor != cursor || len(hb.Events) != 0 {
		t.Fatalf("heartbeat: %+v", hb)
	}
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=20", cursor), e.token))
	untilPending(t, e.srv, 1)
	e.post(t, addr, "to the parked poll")
	if got := rc.answer(); len(got.Events) != 1 || got.Events[0].Message.Text != "to the parked poll" {
		t.Fatalf("parked poll answered %+v", got)
	}
}

// A client that closes the connection of its parked poll is noticed at
// once: its poll ends (no longer pending) well before its timeout.
func TestLaneClientClosesParkedPoll(t *testing.T) {
	e, addr, rc := watchedLane(t)
	rc.send(pollReq("wait=0", e.token))
	cursor := rc.answer().Cursor
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=1.2", cursor), e.token))
	rc.answer() // a heartbeat: the connection is quiet, its next poll parks
	hangUpOnWaitingPoll(t, e, rc, cursor, "parked")

	// A client that comes back polls as before.
	rc = dialRaw(t, addr)
	rc.send(pollReq(fmt.Sprintf("cursor=%d&timeout=20", cursor), e.token))
	untilPending(t, e.srv, 1)
	e.post(t, addr, "after the reconnect")
	if got := rc.answer(); len(got.Events) != 1 || got.Events[0].Message.Text != "after the reconnect" {
		t.Fatalf("poll after the reconnect answered %+v", got)
	}
}

// A connection that goes back to the HTTP server for a request that is not
// a poll, and is taken over again by the next poll, is watched as before:
// a browser posts on its poll connection all the time.
func TestLaneClientClosesPollAfterHandBack(t *testing.T) {
	e, _, rc := watchedLane(t)
	cursor := rc.catchUp(-1, "Authorization: Bearer "+e.token)
	for i := range 3 {
		rc.send(fmt.Sprintf("GET /api/state HTTP/1.1\r\nHost: chat.test\r\nAuthorization: Bearer %s\r\n\r\n", e.token))
		if resp, b := rc.read(); resp.StatusCode != 200 {
			t.Fatalf("state %d on the poll connection: %d %s", i, resp.StatusCode, b)
		}
		rc.send(pollReq(fmt.Sprintf("cursor=%d&wait=0", cursor), e.token))
		cursor = rc.answer().Cursor
	}
	e.srv.recycle.mu.Lock()
	for l := range e.srv.recycle.lanes {
		if _, ok := l.conn.(*net.TCPConn); !ok {
			t.Errorf("a lane serves a %T, not the TCP connection itself", l.conn)
		}
	}
	e.srv.recycle.mu.Unlock()
	hangUpOnWaitingPoll(t, e, rc, cursor, "parked, after three hand-backs,")
}
