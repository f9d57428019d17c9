package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"
)

// liveReader long-polls as one client for as long as it runs, across
// crashes (it retries with the cursor it has until the server is back), and
// keeps every event it is given.
type liveReader struct {
	c *client

	mu     sync.Mutex
	events []rawEvent
	cursor int64
	errs   []string // answers that a live client must never get
}

func (lr *liveReader) run(ctx context.Context) {
	for ctx.Err() == nil {
		lr.mu.Lock()
		cursor := lr.cursor
		lr.mu.Unlock()
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/events?cursor=%d&timeout=5", lr.c.srv.URL, cursor), nil)
		resp, err := lr.c.http.Do(req)
		if err != nil {
			// The server is down (killed on purpose): try again soon.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			continue // cut off by the kill
		}
		if resp.StatusCode != 200 {
			lr.mu.Lock()
			lr.errs = append(lr.errs, fmt.Sprintf("poll from %d: %d %s", cursor, resp.StatusCode, body))
			lr.mu.Unlock()
			continue
		}
		var a struct {
			Cursor int64             `json:"cursor"`
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(body, &a); err != nil {
			lr.mu.Lock()
			lr.errs = append(lr.errs, fmt.Sprintf("poll from %d: %v", cursor, err))
			lr.mu.Unlock()
			continue
		}
		lr.mu.Lock()
		for _, raw := range a.Events {
			var e struct {
				ID int64 `json:"id"`
			}
			json.Unmarshal(raw, &e)
			lr.events = append(lr.events, rawEvent{e.ID, string(raw)})
		}
		lr.cursor = max(lr.cursor, a.Cursor)
		lr.mu.Unlock()
	}
}

func (lr *liveReader) snapshot() (int64, []rawEvent, []string) {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.cursor, append([]rawEvent(nil), lr.events...), append([]string(nil), lr.errs...)
}

// pacedPosters posts to the lobby from the clients at a total rate (one
// request every 1/rate s, spread over concurrent senders) until ctx ends,
// and records every acknowledged message: id → text.
func pacedPosters(ctx context.Context, clients []*client, rate int, round int, acked map[int64]string, mu *sync.Mutex) (sent func() int, wait func()) {
	tokens := make(chan int, rate)
	var wg sync.WaitGroup
	var sentMu sync.Mutex
	n := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(tokens)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case tokens <- i:
			default: // the senders fell behind: the rate is what they manage
			}
		}
	}()
	for s := range 4 * len(clients) {
		c := clients[s%len(clients)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tokens {
				text := fmt.Sprintf("round %d message %d from %s/%d", round, i, c.Name, s)
				sentMu.Lock()
				n++
				sentMu.Unlock()
				if id := rawPost(ctx, c, "lobby", text); id != 0 {
					mu.Lock()
					acked[id] = text
					mu.Unlock()
				}
			}
		}()
	}
	return func() int { sentMu.Lock(); defer sentMu.Unlock(); return n }, wg.Wait
}

// TestCrashUnderLoadLosesNothing kills the server with SIGKILL while
// posters send about 500 messages a second, again and again. After every
// crash: the database file passes PRAGMA integrity_check before anything
// touches it, every message that was acknowledged with 201 is in the log
// with its text, and a client polling from any cursor it held before a
// crash replays exactly what the log holds after it. A client that
// long-polled through all the crashes got exactly the events a replay from
// the start gives, byte for byte.
//
// CI runs 3 rounds; CHATD_LONG=1 runs 20.
func TestCrashUnderLoadLosesNothing(t *testing.T) {
	rounds := scale(3, 20)
	const rate = 500
	srv := startServer(t, "CHATD_POST_RATE=-1", "CHATD_LOG_LEVEL=info")
	var posters []*client
	for i := range 6 {
		posters = append(posters, register(t, srv, fmt.Sprintf("poster%d", i), "password1"))
	}
	watcher := register(t, srv, "watcher", "password1")
	liveStart := watcher.state()
	live := &liveReader{c: login(t, srv, "watcher", "password1"), cursor: liveStart}
	liveCtx, stopLive := context.WithCancel(context.Background())
	liveDone := make(chan struct{})
	go func() { live.run(liveCtx); close(liveDone) }()
	defer func() { stopLive(); <-liveDone }()

	var mu sync.Mutex
	acked := map[int64]string{}
	var oldCursors []int64
	totalSent, totalLost := 0, 0
	var roundTime time.Duration
	for round := range rounds {
		oldCursors = append(oldCursors, watcher.state())
		before := len(acked)
		// Crash at a different point each round.
		target := before + 300 + rand.IntN(600)
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		sent, wait := pacedPosters(ctx, posters, rate, round, acked, &mu)
		eventually(t, "the posters to be acknowledged", 60*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(acked) >= target
		})
		cursor, _, _ := live.snapshot()
		oldCursors = append(oldCursors, cursor)
		srv.Kill(t)
		roundTime += time.Since(start)
		cancel()
		wait()
		totalSent += sent()

		integrityCheck(t, srv.DB) // the file exactly as the crash left it
		srv.Start(t)

		// Every acknowledged message, of this round and the earlier ones,
		// is in the log with its text.
		stored := map[int64]string{}
		for _, e := range replay(t, watcher, 0) {
			var ev event
			json.Unmarshal([]byte(e.JSON), &ev)
			if ev.Type == "message" {
				stored[ev.Message.ID] = ev.Message.Text
			}
		}
		mu.Lock()
		lost := 0
		for id, text := range acked {
			if stored[id] != text {
				lost++
				t.Errorf("round %d: acknowledged message %d %q is %q after the crash", round, id, text, stored[id])
			}
		}
		totalLost += lost
		t.Logf("round %d: %d acknowledged this round, %d in all, %d lost", round, len(acked)-before, len(acked), lost)
		mu.Unlock()
	}

	// Replay from every cursor held before a crash equals the log after it.
	full := replay(t, watcher, 0)
	index := map[int64]int{}
	for i, e := range full {
		index[e.ID] = i
	}
	mismatches := 0
	for _, c := range oldCursors {
		got := replay(t, watcher, c)
		i := 0
		for i < len(full) && full[i].ID <= c {
			i++
		}
		want := full[i:]
		if len(got) != len(want) {
			mismatches++
			t.Errorf("replay from %d gave %d events, the log holds %d after it", c, len(got), len(want))
			continue
		}
		for j := range got {
			if got[j] != want[j] {
				mismatches++
				t.Errorf("replay from %d: event %d is\n%s\nwant\n%s", c, j, got[j].JSON, want[j].JSON)
				break
			}
		}
	}
	// The live client, which polled through every crash, catches up and has
	// seen exactly the log: no gap, no duplicate, the same bytes.
	last := full[len(full)-1].ID
	eventually(t, "the live client to catch up", 30*time.Second, func() bool {
		cursor, _, _ := live.snapshot()
		return cursor >= last
	})
	_, seen, errs := live.snapshot()
	for _, e := range errs {
		t.Errorf("the live client got %s", e)
	}
	from := 0
	for from < len(full) && full[from].ID <= liveStart {
		from++
	}
	if len(seen) != len(full)-from {
		t.Errorf("the live client saw %d events, the log holds %d after its first cursor", len(seen), len(full)-from)
	} else {
		for j := range seen {
			if seen[j] != full[from+j] {
				t.Errorf("live event %d is\n%s\nreplayed it is\n%s", j, seen[j].JSON, full[from+j].JSON)
				break
			}
		}
	}
	srv.Stop(t)
	integrityCheck(t, srv.DB)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("crash under load: %d rounds of kill -9; %d posts sent at a %d/s target (%.0f/s achieved), %d acknowledged, %d of them lost; "+
		"integrity_check ok %d times; %d old cursors replayed, %d mismatches; the live client saw %d events (identical to the replay: %v)",
		rounds, totalSent, rate, float64(totalSent)/roundTime.Seconds(), len(acked), totalLost, rounds+1, len(oldCursors), mismatches, len(seen), !t.Failed())
}
