package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowConn is a connection that sends its request a little at a time and
// notes when the server hangs up on it.
type slowConn struct {
	conn   net.Conn
	closed chan struct{}
	after  time.Duration // from opening to the server's hang-up
}

// openSlow opens n connections from loopback addresses that each send part
// of a request (what the server has of it is given by head) and then
// nothing more unless trickled.
func openSlow(t *testing.T, srv *server, n int, head func(i int) string) []*slowConn {
	t.Helper()
	out := make([]*slowConn, n)
	for i := range n {
		conn, err := dialFrom(loopbackIP(i)).Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		if _, err := io.WriteString(conn, head(i)); err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		sc := &slowConn{conn: conn, closed: make(chan struct{})}
		opened := time.Now()
		go func() {
			io.Copy(io.Discard, conn)
			sc.after = time.Since(opened)
			close(sc.closed)
		}()
		out[i] = sc
	}
	t.Cleanup(func() {
		for _, sc := range out {
			sc.conn.Close()
		}
	})
	return out
}

// trickle writes line(k) to every connection every second until ctx ends.
func trickle(ctx context.Context, conns []*slowConn, line func(k int) string) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for k := 1; ; k++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, sc := range conns {
			sc.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			io.WriteString(sc.conn, line(k)) // fails once the server hung up
		}
	}
}

// userLatency has bob long-poll while alice posts, rounds times, and
// returns the times from post to delivery and of a plain read.
func userLatency(t *testing.T, alice, bob *client, cursor *int64, rounds int, label string) (deliver, read []time.Duration) {
	t.Helper()
	for i := range rounds {
		text := fmt.Sprintf("%s %d", label, i)
		got := make(chan awaited, 1)
		go func(cur int64) { got <- awaitMessage(bob, cur, text, 20*time.Second) }(*cursor)
		waitPendingAtLeast(t, alice.srv, 1)
		sent := time.Now()
		alice.post("lobby", text)
		a := <-got
		if a.err != nil {
			t.Fatalf("%s waiting for %q: %v", bob.Name, text, a.err)
		}
		*cursor = a.cursor
		deliver = append(deliver, a.at.Sub(sent))
		start := time.Now()
		alice.must(200, "GET", "/api/rooms", nil)
		read = append(read, time.Since(start))
	}
	return deliver, read
}

// awaited is how a wait for a message ended.
type awaited struct {
	at     time.Time
	cursor int64
	err    error
}

// awaitMessage long-polls as c from cursor until a message with the text
// arrives. It makes no test calls, so it may run on its own goroutine.
func awaitMessage(c *client, cursor int64, text string, within time.Duration) awaited {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		req, err := http.NewRequest("GET", fmt.Sprintf("%s/api/events?cursor=%d&timeout=5", c.srv.URL, cursor), nil)
		if err != nil {
			return awaited{err: err}
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return awaited{err: err}
		}
		var a pollAnswer
		err = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			return awaited{err: fmt.Errorf("poll from %d: status %d, %v", cursor, resp.StatusCode, err)}
		}
		cursor = a.Cursor
		for _, e := range a.Events {
			if e.Type == "message" && e.Message.Text == text {
				return awaited{at: time.Now(), cursor: cursor}
			}
		}
	}
	return awaited{err: fmt.Errorf("no message %q within %v", text, within)}
}

// waitPendingAtLeast waits until the server holds at least n long-polls.
func waitPendingAtLeast(t testing.TB, srv *server, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d pending polls", n), 20*time.Second, func() bool {
		return metric(t, srv, "chatd_long_polls_pending") >= float64(n)
	})
}

// TestSlowlorisDoesNotStopNormalUsers opens thousands of connections that
// send a request's first headers and then trickle one more header line a
// second, never finishing, and connections that send whole headers and then
// trickle the body a byte a second. Meanwhile normal users register, post
// and long-poll as usual. The server hangs up on every header trickler at
// its header deadline (10 s) and on every body trickler at the body
// deadline (30 s), whether the body's handler reads it, refuses the caller
// first, or does not exist.
//
// CI opens 500 and 60 connections; CHATD_LONG=1 opens 5,000 of each.
func TestSlowlorisDoesNotStopNormalUsers(t *testing.T) {
	n, nBodies := scale(500, 5000), scale(60, 5000)
	raiseNoFile(t)
	srv := startServer(t, "CHATD_POST_RATE=-1", "CHATD_LOG_LEVEL=info")
	alice := register(t, srv, "alice", "password1")
	bob := register(t, srv, "bob", "password1")
	cursor := bob.online()
	baseDeliver, _ := userLatency(t, alice, bob, &cursor, 10, "before the attack")
	rssBefore := rssMiB(srv)

	headers := openSlow(t, srv, n, func(i int) string {
		return fmt.Sprintf("POST /api/login HTTP/1.1\r\nHost: %s\r\nUser-Agent: slowloris/%d\r\n", srv.Addr, i)
	})
	// Complete headers, then a body a byte a second: to an endpoint that
	// reads it, to one that refuses the caller before reading it, and to
	// one that does not exist.
	paths := []string{"/api/login", "/api/rooms/lobby/messages", "/no/such/page"}
	bodies := openSlow(t, srv, nBodies, func(i int) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n{", paths[i%len(paths)], srv.Addr)
	})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go trickle(ctx, headers, func(k int) string { return fmt.Sprintf("X-Slow-%d: a\r\n", k) })
	go trickle(ctx, bodies, func(int) string { return " " })
	fds := openFDs(srv)

	// Normal users keep being served: a new account, posts, polls, reads.
	carol := register(t, srv, "carol", "password1")
	carol.post("lobby", "carol joined during the attack")
	deliver, read := userLatency(t, alice, bob, &cursor, 20, "during the attack")
	rssDuring := rssMiB(srv)

	hungUp := func(conns []*slowConn, within time.Duration, what string) time.Duration {
		var slowest time.Duration
		for i, sc := range conns {
			select {
			case <-sc.closed:
			case <-time.After(within):
				t.Fatalf("%s %d still open %v after it started", what, i, within)
			}
			slowest = max(slowest, sc.after)
		}
		return slowest
	}
	headersDone := hungUp(headers, 40*time.Second, "a connection trickling headers")
	bodiesDone := hungUp(bodies, 60*time.Second, "a connection trickling a body")
	stop()
	p50, _, maxd := percentiles(deliver)
	b50, _, _ := percentiles(baseDeliver)
	r50, _, rmax := percentiles(read)
	t.Logf("slowloris: %d connections trickling headers and %d trickling bodies (server fds %d); during the attack a new account, a post and 20 deliveries all served: "+
		"delivery p50 %v max %v (p50 %v before), reads p50 %v max %v; every header trickler hung up on within %v, every body trickler within %v; RSS %.0f → %.0f MiB",
		n, nBodies, fds, p50.Round(time.Microsecond), maxd.Round(time.Microsecond), b50.Round(time.Microsecond),
		r50.Round(time.Microsecond), rmax.Round(time.Microsecond), headersDone.Round(time.Millisecond), bodiesDone.Round(time.Millisecond), rssBefore, rssDuring)
}

// holdPoll long-polls as c with the query until an answer is empty (the
// poll timed out or was ended), is not 200, or carries an event that done
// accepts; it returns the last status and how long the last poll took.
// Answers with other events (presence comings and goings) are followed, as
// a client does.
func holdPoll(t *testing.T, c *client, query string, done func(event) bool) (int, time.Duration) {
	cursor := ""
	for {
		began := time.Now()
		r := c.do("GET", "/api/events?"+query+cursor, nil)
		if r.Status != 200 {
			return r.Status, time.Since(began)
		}
		var a pollAnswer
		r.JSON(t, &a)
		if len(a.Events) == 0 || slices.ContainsFunc(a.Events, done) {
			return r.Status, time.Since(began)
		}
		cursor = fmt.Sprintf("&cursor=%d", a.Cursor)
	}
}

// statusCount counts answers by status.
type statusCount struct {
	mu sync.Mutex
	m  map[int]int
}

func (s *statusCount) add(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[int]int{}
	}
	s.m[code]++
}

func (s *statusCount) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for _, code := range []int{200, 201, 204, 400, 401, 403, 404, 409, 410, 429, 500, 503} {
		if s.m[code] > 0 {
			parts = append(parts, fmt.Sprintf("%d×%d", s.m[code], code))
		}
	}
	return strings.Join(parts, " ")
}

// TestAbusiveClientsCostBoundedMemory measures the server's memory while
// clients misbehave in the ways the contract allows: users who never poll
// while their rooms are busy, polls asking for huge timeouts, polls from
// random old cursors as fast as they can, and one user signed in from many
// sessions at once. What each costs is bounded: queues exist only for
// users who poll and hold at most queue-size events, timeouts are capped at
// 55 s, old cursors are read from SQLite in bounded batches, and clients
// that stop polling are dropped after the presence timeout.
//
// CHATD_LONG=1 multiplies every count by ten (messages by twenty) and waits
// out the 55 s cap.
func TestAbusiveClientsCostBoundedMemory(t *testing.T) {
	silentN, hugeN, spamN, sessionsN, messagesN := scale(500, 5000), scale(200, 2000), scale(2000, 20000), scale(50, 500), scale(500, 10000)
	raiseNoFile(t)
	srv := startServer(t, "CHATD_POST_RATE=-1", "CHATD_PRESENCE_TIMEOUT=2s", "CHATD_LOG_LEVEL=info")
	alice := register(t, srv, "alice", "password1")
	silent := makeBots(t, srv, "silent", silentN, true)
	// The bots that wait share no room with anyone, so that nothing but
	// their timeout ends their polls.
	huge := makeBots(t, srv, "waiter", hugeN, false)
	report := []string{fmt.Sprintf("start %.0f MiB", rssMiB(srv))}
	var peak float64
	stage := func(name string) {
		m := rssMiB(srv)
		peak = max(peak, m)
		report = append(report, fmt.Sprintf("%s %.0f MiB", name, m))
	}
	statuses := &statusCount{}

	// Users who never poll: their rooms are busy, and nothing is kept for
	// them in memory.
	for i := range messagesN {
		alice.post("lobby", fmt.Sprintf("busy lobby %d", i))
	}
	q := metric(t, srv, "chatd_queues")
	if q > 0 {
		t.Errorf("%d users never polled, yet %v queues are in memory", silentN, q)
	}
	stage(fmt.Sprintf("after %d messages to %d silent members (%v queues)", messagesN, len(silent), q))

	// Huge timeouts: held, and capped.
	type answer struct {
		status int
		took   time.Duration
	}
	answers := make(chan answer, hugeN)
	waiters := make([]*client, hugeN)
	for i, b := range huge {
		c := clientFrom(t, srv, loopbackIP(i))
		c.Token = b.Token
		waiters[i] = c
		timeout := []string{"1e9", "Inf", "86400", "55.000001"}[i%4]
		go func() {
			var status int
			var took time.Duration
			defer func() { answers <- answer{status, took} }() // even if the poll fails the test
			// The first answer is the bot's own login; the next poll waits.
			status, took = holdPoll(t, c, "timeout="+timeout, func(event) bool { return false })
		}()
	}
	waitPendingAtLeast(t, srv, hugeN)
	stage(fmt.Sprintf("%d polls with huge timeouts pending", hugeN))
	if longRun() {
		var slowest time.Duration
		for range hugeN {
			a := <-answers
			statuses.add(a.status)
			slowest = max(slowest, a.took)
		}
		if slowest > 65*time.Second {
			t.Errorf("a poll asking for a huge timeout was held %v; the cap is 55 s", slowest)
		}
		report = append(report, fmt.Sprintf("huge timeouts answered within %v", slowest.Round(time.Second)))
	} else {
		// Not waiting out the cap here: each client ends its own poll.
		for _, c := range waiters {
			c.must(204, "POST", "/api/disconnect", nil)
		}
		for range hugeN {
			statuses.add((<-answers).status)
		}
	}

	// Cursor spam: random old cursors, in poll mode, from a few sessions as
	// fast as they go; and cursors from the future.
	last := alice.state()
	var wg sync.WaitGroup
	for w := range 8 {
		c := login(t, srv, "alice", "password1")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range spamN / 8 {
				cursor := rand.Int64N(last + 1)
				if i%50 == 0 {
					cursor = last + 1000 + int64(w)
				}
				r := c.do("GET", fmt.Sprintf("/api/events?cursor=%d&wait=0", cursor), nil)
				statuses.add(r.Status)
			}
		}()
	}
	wg.Wait()
	stage(fmt.Sprintf("after %d polls from random cursors", spamN))

	// Many sessions of one user, each polling at once, then all gone.
	sessions := make([]*client, sessionsN)
	for i := range sessions {
		sessions[i] = login(t, srv, "alice", "password1")
	}
	before := metric(t, srv, "chatd_clients_connected")
	for _, c := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _ := holdPoll(t, c, "timeout=30", func(e event) bool {
				return e.Type == "message" && e.Message.Text == "answer them all"
			})
			statuses.add(status)
		}()
	}
	waitPendingAtLeast(t, srv, sessionsN)
	stage(fmt.Sprintf("%d sessions of one user polling", sessionsN))
	connected := metric(t, srv, "chatd_clients_connected")
	alice.post("lobby", "answer them all")
	wg.Wait()
	swept := eventually(t, "clients that stopped polling to be dropped", 30*time.Second, func() bool {
		return metric(t, srv, "chatd_clients_connected") == 0
	})
	stage("after they all stopped")

	queues, queued := metric(t, srv, "chatd_queues"), metric(t, srv, "chatd_queued_events")
	if queued > queues*512 {
		t.Errorf("%v events in %v queues: more than the queue size", queued, queues)
	}
	statuses.mu.Lock()
	for code, k := range statuses.m {
		if code >= 500 {
			t.Errorf("%d answers with status %d", k, code)
		}
	}
	statuses.mu.Unlock()
	if peak > 1024 {
		t.Errorf("the server's memory peaked at %.0f MiB", peak)
	}
	t.Logf("abusive clients: %s; clients connected %v before the sessions, %v with them, 0 again %v after they stopped (presence timeout 2s); "+
		"%v queues holding %v events at the end; answers: %s",
		strings.Join(report, ", "), before, connected, swept.Round(time.Millisecond), queues, queued, statuses)
}
