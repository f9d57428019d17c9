package tests

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// collectMessages polls from cursor until it has seen want message events
// (or the deadline passes) and returns their texts in order of arrival.
func collectMessages(t *testing.T, c *client, cursor *int64, want int, within time.Duration) []string {
	t.Helper()
	var texts []string
	deadline := time.Now().Add(within)
	for len(texts) < want && time.Now().Before(deadline) {
		a := c.poll(*cursor, 2*time.Second)
		if a.Cursor < *cursor {
			t.Fatalf("cursor went backwards: %d after %d", a.Cursor, *cursor)
		}
		for _, e := range a.Events {
			if e.ID <= *cursor {
				t.Fatalf("event %d delivered again after cursor %d", e.ID, *cursor)
			}
			if e.Type == "message" {
				texts = append(texts, e.Message.Text)
			}
		}
		*cursor = a.Cursor
	}
	return texts
}

func seq(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

func TestReplayExactlyOnceAcrossReconnects(t *testing.T) {
	srv := startServer(t, "CHATD_POST_RATE=-1")
	alice := register(t, srv, "alice", "password1")
	bob := register(t, srv, "bob", "password1")

	cursor := bob.state()
	for _, m := range seq("first", 0, 10) {
		alice.post("lobby", m)
	}
	// Bob reads part of it, "disconnects", more arrives, he comes back with
	// his cursor: he sees the rest once each, in order.
	got := collectMessages(t, bob, &cursor, 10, 10*time.Second)
	for _, m := range seq("second", 0, 15) {
		alice.post("lobby", m)
	}
	got = append(got, collectMessages(t, bob, &cursor, 15, 10*time.Second)...)
	want := append(seq("first", 0, 10), seq("second", 0, 15)...)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("bob saw\n%q\nwant\n%q", got, want)
	}
	// Nothing more is pending: a poll in poll mode answers empty with the
	// same cursor.
	if a := bob.poll(cursor, 0); len(a.Events) != 0 || a.Cursor != cursor {
		t.Fatalf("poll after catching up = %+v, want no events and cursor %d", a, cursor)
	}
}

func TestReplayExactlyOnceAcrossKill9(t *testing.T) {
	srv := startServer(t, "CHATD_POST_RATE=-1")
	alice := register(t, srv, "alice", "password1")
	bob := register(t, srv, "bob", "password1")
	cursor := bob.state()

	before := seq("before crash", 0, 20)
	for _, m := range before {
		alice.post("lobby", m)
	}
	got := collectMessages(t, bob, &cursor, 5, 10*time.Second)
	// Bob has read some; the server dies without warning.
	srv.Kill(t)
	srv.Start(t)
	after := seq("after restart", 0, 5)
	for _, m := range after {
		alice.post("lobby", m)
	}
	got = append(got, collectMessages(t, bob, &cursor, 25-len(got), 15*time.Second)...)
	want := append(before, after...)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("after kill -9, bob saw\n%q\nwant\n%q", got, want)
	}
}

func TestAcknowledgedMessagesSurviveKill9(t *testing.T) {
	srv := startServer(t, "CHATD_POST_RATE=-1")
	const posters, each = 8, 40
	var clients []*client
	for i := range posters {
		clients = append(clients, register(t, srv, fmt.Sprintf("poster%d", i), "password1"))
	}
	reader := clients[0]
	var mu sync.Mutex
	var acked []int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				select {
				case <-stop:
					return
				default:
				}
				// Use the raw HTTP client: requests cut off by the kill
				// are expected to fail, and must not fail the test.
				req, _ := http.NewRequest("POST", srv.URL+"/api/rooms/lobby/messages", strings.NewReader(fmt.Sprintf("p%d m%d", i, j)))
				req.Header.Set("Content-Type", "text/plain")
				resp, err := c.http.Do(req)
				if err != nil {
					return
				}
				resp.Body.Close()
				if resp.StatusCode == 201 {
					var id int64
					fmt.Sscanf(resp.Header.Get("Location"), "/api/messages/%d", &id)
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}()
	}
	// Kill the server while the posters are mid-flight.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= posters*each/3 {
			break
		}
		time.Sleep(time.Millisecond) // the posters run; nothing to wait on but their progress
	}
	srv.Kill(t)
	close(stop)
	wg.Wait()
	srv.Start(t)

	stored := map[int64]bool{}
	for _, m := range reader.history("lobby") {
		stored[m.ID] = true
	}
	lost := 0
	for _, id := range acked {
		if !stored[id] {
			lost++
		}
	}
	t.Logf("acknowledged %d messages before kill -9, stored after restart %d, lost %d", len(acked), len(stored), lost)
	if len(acked) == 0 || lost > 0 {
		t.Fatalf("%d of %d acknowledged messages lost", lost, len(acked))
	}
}

func TestPendingPollAnsweredPromptly(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv, "alice", "password1")
	bob := register(t, srv, "bob", "password1")
	cursor := bob.online()

	var lat []time.Duration
	for i := range 15 {
		type answer struct {
			a  pollAnswer
			at time.Time
		}
		ch := make(chan answer, 1)
		go func() {
			a := bob.poll(cursor, 20*time.Second)
			ch <- answer{a, time.Now()}
		}()
		// The poll must be pending before the post, or the test would
		// measure a replay: wait for the server to count it.
		waitPending(t, srv, 1)
		sent := time.Now()
		alice.post("lobby", fmt.Sprintf("ping %d", i))
		ans := <-ch
		if len(ans.a.Events) == 0 || ans.a.Events[len(ans.a.Events)-1].Type != "message" {
			t.Fatalf("pending poll answered with %+v", ans.a)
		}
		cursor = ans.a.Cursor
		lat = append(lat, ans.at.Sub(sent))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("post-to-delivery (including the post's fsync): p50 %v, max %v", lat[len(lat)/2], lat[len(lat)-1])
	if lat[len(lat)/2] > 100*time.Millisecond {
		t.Fatalf("median post-to-delivery %v, want within 100ms", lat[len(lat)/2])
	}
}

// waitPending waits until the server reports n pending polls.
func waitPending(t testing.TB, srv *server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if metric(t, srv, "chatd_long_polls_pending") == float64(n) {
			return
		}
		time.Sleep(2 * time.Millisecond) // polling /metrics: the server has no push for it
	}
	t.Fatalf("chatd_long_polls_pending never reached %d", n)
}

// metric reads one unlabelled sample from /metrics.
func metric(t testing.TB, srv *server, name string) float64 {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			fmt.Sscanf(v, "%g", &f)
			return f
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestSecondPollSupersedesFirst(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv, "alice", "password1")
	cursor := alice.online()

	first := alice.pollAsync(cursor, 30*time.Second)
	waitPending(t, srv, 1)
	second := alice.pollAsync(cursor, 30*time.Second)

	r := <-first
	if r.Status != 409 || r.ErrorCode() != "superseded" {
		t.Fatalf("older poll: %d %s, want 409 superseded", r.Status, r.Body)
	}
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("superseded answer has no Retry-After")
	}
	// The newer poll is still waiting, and it alone counts.
	waitPending(t, srv, 1)
	alice.post("lobby", "for the newer poll")
	r = <-second
	if r.Status != 200 || !strings.Contains(string(r.Body), "for the newer poll") {
		t.Fatalf("newer poll: %d %s", r.Status, r.Body)
	}

	// Two different browsers of one user are two clients: neither
	// supersedes the other.
	other := login(t, srv, "alice", "password1")
	c2 := other.state()
	a, b := alice.pollAsync(c2, 30*time.Second), other.pollAsync(c2, 30*time.Second)
	waitPending(t, srv, 2)
	alice.post("lobby", "both")
	for _, ch := range []<-chan *response{a, b} {
		if r := <-ch; r.Status != 200 {
			t.Fatalf("poll of one of two browsers: %d %s", r.Status, r.Body)
		}
	}
}

func TestPrivateRoomEventsInvisibleToOutsiders(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv, "alice", "password1")
	bob := register(t, srv, "bob", "password1")
	carol := register(t, srv, "carol", "password1")
	bobCursor, carolCursor := bob.state(), carol.state()

	alice.must(201, "POST", "/api/rooms", map[string]any{"name": "secret", "topic": "shh", "private": true})
	alice.must(200, "POST", "/api/rooms/secret/invite", map[string]string{"user": "bob"})
	alice.post("secret", "classified")
	alice.post("lobby", "public marker")

	// Bob, a member, sees the message; Carol sees only the public marker.
	saw := bob.waitFor(&bobCursor, 10*time.Second, func(e event) bool { return e.Type == "message" && e.Message.Text == "public marker" })
	if !containsMessage(saw, "classified") {
		t.Fatalf("bob (member) did not see the private message: %+v", saw)
	}
	saw = carol.waitFor(&carolCursor, 10*time.Second, func(e event) bool { return e.Type == "message" && e.Message.Text == "public marker" })
	for _, e := range saw {
		if e.Room == "secret" {
			t.Fatalf("carol saw an event of a private room: %+v", e)
		}
	}
	// Nor can she read, join, post to or list it.
	if r := carol.do("GET", "/api/rooms/secret/messages", nil); r.Status != 403 {
		t.Errorf("carol reads history: %d", r.Status)
	}
	if r := carol.do("POST", "/api/rooms/secret/join", nil); r.Status != 403 {
		t.Errorf("carol joins: %d", r.Status)
	}
	if r := carol.do("POST", "/api/rooms/secret/messages", "hi"); r.Status != 403 {
		t.Errorf("carol posts: %d", r.Status)
	}
	if r := carol.must(200, "GET", "/api/rooms", nil); strings.Contains(string(r.Body), "secret") {
		t.Errorf("carol's room list shows the private room: %s", r.Body)
	}

	// Replay from SQLite after a restart keeps the same visibility.
	srv.Restart(t)
	from := int64(0)
	var all []event
	for {
		a := carol.poll(from, 0)
		all = append(all, a.Events...)
		if a.Cursor == from {
			break
		}
		from = a.Cursor
	}
	for _, e := range all {
		if e.Room == "secret" {
			t.Fatalf("carol's replay from 0 holds a private room event: %+v", e)
		}
	}
	if !containsMessage(all, "public marker") {
		t.Fatalf("carol's replay misses the public message: %+v", all)
	}
}

func containsMessage(evs []event, text string) bool {
	for _, e := range evs {
		if e.Type == "message" && e.Message != nil && e.Message.Text == text {
			return true
		}
	}
	return false
}

func isEvent(typ, who string) func(event) bool {
	return func(e event) bool { return e.Type == typ && e.User == who }
}

func TestPresenceLoginAwayDisconnectLogout(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv, "alice", "password1")
	bob := register(t, srv, "bob", "password1")
	cursor := alice.state()
	alice.poll(cursor, 0)
	alice.waitFor(&cursor, 5*time.Second, isEvent("login", "alice"))

	// Bob's first poll brings him online.
	bobCursor := bob.state()
	bob.poll(bobCursor, 0)
	alice.waitFor(&cursor, 5*time.Second, isEvent("login", "bob"))

	// Away and back.
	bob.must(204, "POST", "/api/presence", map[string]string{"status": "away"})
	saw := alice.waitFor(&cursor, 5*time.Second, isEvent("presence", "bob"))
	if saw[len(saw)-1].Status != "away" {
		t.Fatalf("presence event %+v, want away", saw[len(saw)-1])
	}
	var room struct {
		Members []struct{ Name, Status string }
	}
	alice.must(200, "GET", "/api/rooms/lobby", nil).JSON(t, &room)
	for _, m := range room.Members {
		if m.Name == "bob" && m.Status != "away" {
			t.Fatalf("lobby shows bob %s, want away", m.Status)
		}
	}
	bob.must(204, "POST", "/api/presence", map[string]string{"status": "online"})
	alice.waitFor(&cursor, 5*time.Second, func(e event) bool { return e.Type == "presence" && e.User == "bob" && e.Status == "online" })

	// Bob leaves with an explicit disconnect.
	bob.must(204, "POST", "/api/disconnect", nil)
	alice.waitFor(&cursor, 5*time.Second, isEvent("logout", "bob"))

	// He comes back, and leaves with a logout, which also ends the session.
	bob.poll(bobCursor, 0)
	alice.waitFor(&cursor, 5*time.Second, isEvent("login", "bob"))
	bob.must(204, "POST", "/api/logout", nil)
	alice.waitFor(&cursor, 5*time.Second, isEvent("logout", "bob"))
	if r := bob.do("GET", "/api/me", nil); r.Status != 401 {
		t.Fatalf("after logout /api/me = %d, want 401", r.Status)
	}
	// A second browser of alice's does not log her out when it leaves.
	other := login(t, srv, "alice", "password1")
	other.poll(-1, 0)
	other.must(204, "POST", "/api/logout", nil)
	alice.must(201, "POST", "/api/rooms/lobby/messages", "still here")
	saw = alice.waitFor(&cursor, 5*time.Second, func(e event) bool { return e.Type == "message" && e.Message.Text == "still here" })
	for _, e := range saw {
		if e.Type == "logout" && e.User == "alice" {
			t.Fatalf("closing one of alice's browsers logged her out")
		}
	}
}

func TestPresenceTimeoutLogsOut(t *testing.T) {
	srv := startServer(t, "CHATD_PRESENCE_TIMEOUT=1s")
	alice := register(t, srv, "alice", "password1")
	bob := register(t, srv, "bob", "password1")
	cursor := alice.state()
	bob.poll(-1, 0)
	alice.waitFor(&cursor, 5*time.Second, isEvent("login", "bob"))
	// Bob stops polling; alice keeps polling, so she stays.
	start := time.Now()
	saw := alice.waitFor(&cursor, 10*time.Second, isEvent("logout", "bob"))
	t.Logf("logout %v after bob's last poll (timeout 1s)", time.Since(start))
	for _, e := range saw {
		if e.Type == "logout" && e.User == "alice" {
			t.Fatalf("alice, who kept polling, was logged out")
		}
	}
}

// TestCrowdLeavesAtOnce: when many users stop polling together (the end of
// a class, an outage on their side), everyone who stays sees each of them
// log out exactly once. The logouts share commits rather than costing one
// fsync each in a row, which held the writer, and every message posted
// meanwhile, for seconds when thousands left at once.
func TestCrowdLeavesAtOnce(t *testing.T) {
	const n = 200
	srv := startServer(t, "CHATD_PRESENCE_TIMEOUT=2s")
	bots := makeBots(t, srv, "crowd", n, true)
	alice := register(t, srv, "alice", "password1")
	cursor := alice.state()

	var wg sync.WaitGroup
	for i, b := range bots {
		c := clientFrom(t, srv, loopbackIP(i))
		c.Token = b.Token
		wg.Go(func() { c.poll(-1, 0) })
	}
	wg.Wait()
	online := map[string]bool{}
	alice.waitFor(&cursor, 20*time.Second, func(e event) bool {
		if e.Type == "login" && strings.HasPrefix(e.User, "crowd") {
			online[e.User] = true
		}
		return len(online) == n
	})
	if len(online) != n {
		t.Fatalf("alice saw %d of the %d bots come online", len(online), n)
	}
	commits := metric(t, srv, "chatd_store_commits_total")

	// None of them polls again: after the presence timeout all are gone.
	loggedOut := map[string]int{}
	gone := 0 // bots seen logging out
	tally := func(e event) {
		if e.Type != "logout" {
			return
		}
		loggedOut[e.User]++
		if loggedOut[e.User] == 1 && strings.HasPrefix(e.User, "crowd") {
			gone++
		}
	}
	alice.waitFor(&cursor, 30*time.Second, func(e event) bool {
		tally(e)
		return gone == n
	})
	if gone != n {
		t.Fatalf("alice saw %d of the %d bots log out", gone, n)
	}
	// Anything that came with the last one, and right after it.
	for _, e := range alice.poll(cursor, 0).Events {
		tally(e)
	}
	for who, times := range loggedOut {
		if times != 1 || !strings.HasPrefix(who, "crowd") {
			t.Errorf("%s logged out %d times", who, times)
		}
	}
	used := metric(t, srv, "chatd_store_commits_total") - commits
	t.Logf("%d logouts in %.0f commits", n, used)
	if used > n/2 {
		t.Errorf("%d logouts took %.0f commits: each was committed on its own", n, used)
	}
}

// TestHangUpOnWaitingPollLogsOut: a browser that goes away while its poll
// waits (its last tabs closed together, so none sent the goodbye beacon)
// is offline within seconds, not after the 60 s presence timeout. One that
// polls on after a hang-up (a tab handing the poll to another) stays
// online. Both on a kept-alive connection (the poll lane) and on one the
// client asked to close (held by the HTTP server).
func TestHangUpOnWaitingPollLogsOut(t *testing.T) {
	for _, closeConn := range []bool{false, true} {
		t.Run(fmt.Sprintf("close=%v", closeConn), func(t *testing.T) {
			alice, bob, cursor, bobCursor := aliceSeesBob(t)

			bob.hangUpOnPoll(bobCursor, closeConn)
			bobCursor = bob.pollFor(bobCursor, 4*time.Second)
			a := alice.poll(cursor, 0)
			cursor = a.Cursor
			noLogout(t, a.Events, "bob", "who polled again right after hanging up")

			bob.hangUpOnPoll(bobCursor, closeConn)
			left := time.Now()
			alice.waitFor(&cursor, 10*time.Second, isEvent("logout", "bob"))
			t.Logf("logout %v after bob hung up for good", time.Since(left).Round(time.Millisecond))
		})
	}
}

// TestPollAfterDisconnectDoesNotStayOnline: a closing tab may send a poll
// just before its goodbye beacon and have it arrive after. That poll brings
// the user back, but unless the client polls on (a page that reloads) the
// user is offline again within seconds, not after the presence timeout.
func TestPollAfterDisconnectDoesNotStayOnline(t *testing.T) {
	alice, bob, cursor, bobCursor := aliceSeesBob(t)

	// A reload: goodbye, then the new page polls on.
	bob.must(204, "POST", "/api/disconnect", nil)
	alice.waitFor(&cursor, 5*time.Second, isEvent("logout", "bob"))
	bobCursor = bob.pollFor(bobCursor, 4*time.Second)
	saw := alice.waitFor(&cursor, 5*time.Second, isEvent("login", "bob"))
	a := alice.poll(cursor, 0)
	cursor = a.Cursor
	noLogout(t, append(saw, a.Events...), "bob", "whose page polled on after its goodbye")

	// A straggler: goodbye, then one poll from the closing page, then
	// nothing.
	bob.must(204, "POST", "/api/disconnect", nil)
	alice.waitFor(&cursor, 5*time.Second, isEvent("logout", "bob"))
	bob.poll(bobCursor, 0)
	alice.waitFor(&cursor, 5*time.Second, isEvent("login", "bob"))
	left := time.Now()
	alice.waitFor(&cursor, 10*time.Second, isEvent("logout", "bob"))
	t.Logf("logout %v after the straggling poll", time.Since(left).Round(time.Millisecond))
}

// aliceSeesBob starts a server on which alice, online, has seen bob come
// online, and returns their clients and cursors.
func aliceSeesBob(t *testing.T) (alice, bob *client, cursor, bobCursor int64) {
	t.Helper()
	srv := startServer(t)
	alice = register(t, srv, "alice", "password1")
	bob = register(t, srv, "bob", "password1")
	cursor = alice.online()
	bobCursor = bob.online()
	alice.waitFor(&cursor, 5*time.Second, isEvent("login", "bob"))
	return alice, bob, cursor, bobCursor
}

// pollFor keeps polling from cursor, a second at a time, for d, and returns
// the cursor reached. Polling for 4 s outlasts presence's grace after a
// hang-up or a goodbye (2 s) and its sweep's tick (1 s).
func (c *client) pollFor(cursor int64, d time.Duration) int64 {
	c.t.Helper()
	for until := time.Now().Add(d); time.Now().Before(until); {
		cursor = c.poll(cursor, time.Second).Cursor
	}
	return cursor
}

// noLogout fails the test when evs announce that who logged out.
func noLogout(t *testing.T, evs []event, who, why string) {
	t.Helper()
	for _, e := range evs {
		if isEvent("logout", who)(e) {
			t.Fatalf("%s, %s, was logged out", who, why)
		}
	}
}

// hangUpOnPoll starts a long poll from cursor, waits until it is pending
// (nobody else may be polling) and closes the connection under it.
func (c *client) hangUpOnPoll(cursor int64, closeConn bool) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/events?cursor=%d&timeout=50", c.srv.URL, cursor), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Close = closeConn
	done := make(chan error, 1)
	go func() {
		resp, err := c.http.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitPending(c.t, c.srv, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		c.t.Fatalf("the poll hung up on ended with %v", err)
	}
	waitPending(c.t, c.srv, 0)
}

func TestDisconnectEndsPendingPoll(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv, "alice", "password1")
	done := alice.pollAsync(alice.online(), 50*time.Second)
	waitPending(t, srv, 1)
	alice.must(204, "POST", "/api/disconnect", nil)
	select {
	case r := <-done:
		if r.Status != 200 {
			t.Fatalf("poll ended by disconnect: %d %s", r.Status, r.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("disconnect did not end the pending poll")
	}
}

func TestGracefulShutdownAnswersPendingPolls(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv, "alice", "password1")
	done := alice.pollAsync(alice.online(), 50*time.Second)
	waitPending(t, srv, 1)
	start := time.Now()
	srv.Stop(t) // fails the test unless chatd exits 0
	r := <-done
	if r.Status != 200 {
		t.Fatalf("pending poll at shutdown: %d %s", r.Status, r.Body)
	}
	t.Logf("shutdown with a pending poll took %v", time.Since(start))
}

func TestCursorOlderThanReplayWindowMustResync(t *testing.T) {
	srv := startServer(t, "CHATD_REPLAY_WINDOW=2s")
	alice := register(t, srv, "alice", "password1")
	old := alice.state()
	alice.post("lobby", "soon forgotten")
	if a := alice.poll(old, 0); len(a.Events) == 0 {
		t.Fatal("a fresh cursor replays nothing")
	}
	// Once the window has passed over the events after the old cursor,
	// the old cursor must resynchronise.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := alice.do("GET", fmt.Sprintf("/api/events?cursor=%d&wait=0", old), nil)
		if r.Status == 410 {
			if r.ErrorCode() != "resync_required" {
				t.Fatalf("410 with code %q", r.ErrorCode())
			}
			break
		}
		if r.Status != 200 || time.Now().After(deadline) {
			t.Fatalf("old cursor after the window: %d %s", r.Status, r.Body)
		}
		time.Sleep(100 * time.Millisecond) // the window is wall-clock time passing
	}
	// The state snapshot gives a cursor that works again.
	fresh := alice.state()
	alice.post("lobby", "after resync")
	a := alice.poll(fresh, 5*time.Second)
	if !containsMessage(a.Events, "after resync") {
		t.Fatalf("poll from the fresh cursor: %+v", a)
	}
}

// pollAsync starts a long-poll from cursor and returns where its raw
// answer (whatever the status) will arrive.
func (c *client) pollAsync(cursor int64, timeout time.Duration) <-chan *response {
	ch := make(chan *response, 1)
	path := fmt.Sprintf("/api/events?cursor=%d&timeout=%d", cursor, int(timeout.Seconds()))
	go func() { ch <- c.do("GET", path, nil) }()
	return ch
}

// An operator can tell a slow disk from a slow server: /metrics times each
// commit's WAL append and fsync, and how long each write's caller waited,
// which includes the commit it shared.
func TestMetricsTimeCommits(t *testing.T) {
	srv := startServer(t)
	c := register(t, srv, "alice", "password1")
	before := metric(t, srv, "chatd_store_commit_seconds_count")
	writesBefore := metric(t, srv, "chatd_store_write_seconds_count")
	c.must(201, "POST", "/api/rooms/lobby/messages", map[string]string{"text": "hello"})
	after := metric(t, srv, "chatd_store_commit_seconds_count")
	if before < 1 || after <= before {
		t.Fatalf("commits timed: %v after signing up, %v after posting; want at least one each time, and more after", before, after)
	}
	if writes := metric(t, srv, "chatd_store_write_seconds_count"); writesBefore < 1 || writes <= writesBefore {
		t.Fatalf("writes timed: %v after signing up, %v after posting; want at least one each time, and more after", writesBefore, writes)
	}
	commitSum := metric(t, srv, "chatd_store_commit_seconds_sum")
	if commitSum <= 0 {
		t.Fatalf("commit time sum %v, want > 0", commitSum)
	}
	// Each commit had a caller waiting through it. (A background write's
	// caller is told its wait a moment after the writer timed its commit,
	// so the writes' sum may take that moment to catch up.)
	eventually(t, fmt.Sprintf("the writes' waits to add up to at least the %v s their commits took", commitSum), 5*time.Second, func() bool {
		return metric(t, srv, "chatd_store_write_seconds_sum") >= commitSum
	})
}
