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

// restartPoller is one bot that long-polls for as long as the test runs,
// through the restart, from its own source address.
type restartPoller struct {
	bot    botCred
	http   *http.Client
	url    string
	cursor int64

	mu       sync.Mutex
	messages []int64   // message ids in the order they arrived
	backAt   time.Time // first answer to a poll sent after the restart
	errs     []string
}

func (p *restartPoller) run(ctx context.Context, restarted func() time.Time) {
	for ctx.Err() == nil {
		sent := time.Now()
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/events?cursor=%d&timeout=20", p.url, p.cursor), nil)
		req.Header.Set("Authorization", "Bearer "+p.bot.Token)
		resp, err := p.http.Do(req)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			// The server is restarting: come back after a moment, as the
			// browser client does (with jitter, so that a thousand clients
			// do not knock at once).
			select {
			case <-ctx.Done():
			case <-time.After(100*time.Millisecond + rand.N(100*time.Millisecond)):
			}
			continue
		}
		if resp.StatusCode != 200 {
			p.mu.Lock()
			p.errs = append(p.errs, fmt.Sprintf("%d %s", resp.StatusCode, body))
			p.mu.Unlock()
			continue
		}
		var a pollAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			p.mu.Lock()
			p.errs = append(p.errs, err.Error())
			p.mu.Unlock()
			continue
		}
		p.mu.Lock()
		if r := restarted(); !r.IsZero() && sent.After(r) && p.backAt.IsZero() {
			p.backAt = time.Now()
		}
		for _, e := range a.Events {
			if e.Type == "message" {
				p.messages = append(p.messages, e.Message.ID)
			}
		}
		p.mu.Unlock()
		p.cursor = a.Cursor
	}
}

func (p *restartPoller) has(id int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.messages) > 0 && p.messages[len(p.messages)-1] >= id
}

// TestRestartUnderLoad has many bots long-polling, each over its own
// connection from one of 250 loopback addresses, while a user posts; the
// server gets SIGTERM and is started again. Every client comes back by
// itself and catches up: it has every acknowledged message exactly once,
// in order. The time from SIGTERM to all clients served again, and to all
// caught up, is reported.
//
// CI runs 100 clients; CHATD_LONG=1 runs 2,000.
func TestRestartUnderLoad(t *testing.T) {
	n := scale(100, 2000)
	limit := raiseNoFile(t)
	srv := startServer(t, "CHATD_POST_RATE=-1", "CHATD_LOG_LEVEL=info")
	alice := register(t, srv, "alice", "password1")
	bots := makeBots(t, srv, "poller", n, true)

	var restartMu sync.Mutex
	var restartedAt time.Time
	restarted := func() time.Time {
		restartMu.Lock()
		defer restartMu.Unlock()
		return restartedAt
	}
	pollers := make([]*restartPoller, n)
	for i, b := range bots {
		c := clientFrom(t, srv, loopbackIP(i))
		c.Token = b.Token
		pollers[i] = &restartPoller{bot: b, http: c.http, url: srv.URL, cursor: c.state()}
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range pollers {
		wg.Add(1)
		go func() { defer wg.Done(); p.run(ctx, restarted) }()
	}
	defer func() { stop(); wg.Wait() }()
	eventually(t, "every client to poll", 120*time.Second, func() bool {
		return metric(t, srv, "chatd_long_polls_pending") >= float64(n)
	})
	rssBefore := rssMiB(srv)

	// A steady stream of posts, 50 a second, through the restart.
	var ackMu sync.Mutex
	var acked []int64
	postCtx, stopPosting := context.WithCancel(context.Background())
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; postCtx.Err() == nil; i++ {
			if id := rawPost(postCtx, alice, "lobby", fmt.Sprintf("through the restart %d", i)); id != 0 {
				ackMu.Lock()
				acked = append(acked, id)
				ackMu.Unlock()
			}
			select {
			case <-postCtx.Done():
			case <-tick.C:
			}
		}
	}()
	eventually(t, "posts to flow", 30*time.Second, func() bool {
		ackMu.Lock()
		defer ackMu.Unlock()
		return len(acked) >= 50
	})

	sigterm := time.Now()
	srv.Stop(t)
	stopped := time.Since(sigterm)
	srv.Start(t)
	restartMu.Lock()
	restartedAt = time.Now()
	restartMu.Unlock()
	started := restartedAt.Sub(sigterm) - stopped

	allBack := eventually(t, "every client to be served again", 120*time.Second, func() bool {
		for _, p := range pollers {
			p.mu.Lock()
			back := !p.backAt.IsZero()
			p.mu.Unlock()
			if !back {
				return false
			}
		}
		return true
	}) + restartedAt.Sub(sigterm)
	stopPosting()
	<-posted
	last := alice.post("lobby", "the last word").ID
	ackMu.Lock()
	acked = append(acked, last)
	ackMu.Unlock()
	eventually(t, "every client to catch up", 120*time.Second, func() bool {
		for _, p := range pollers {
			if !p.has(last) {
				return false
			}
		}
		return true
	})
	caughtUpAt := time.Since(sigterm)
	stop()
	wg.Wait()

	lost, dups := 0, 0
	for _, p := range pollers {
		seen := map[int64]bool{}
		prev := int64(0)
		for _, id := range p.messages {
			if seen[id] || id <= prev {
				dups++
			}
			seen[id] = true
			prev = id
		}
		for _, id := range acked {
			if !seen[id] {
				lost++
			}
		}
		for _, e := range p.errs {
			t.Errorf("%s got %s", p.bot.Name, e)
		}
	}
	if lost > 0 || dups > 0 {
		t.Errorf("across %d clients: %d acknowledged deliveries missing, %d repeated or out of order", n, lost, dups)
	}
	t.Logf("restart under load: %d clients from %d loopback addresses (open-file limit %d), %d messages acknowledged around SIGTERM; "+
		"stopped in %v, started in %v, all clients served again %v after SIGTERM, all caught up %v after SIGTERM; "+
		"%d deliveries missing, %d repeated; server RSS %.0f MiB before, %.0f MiB after",
		n, min(n, 250), limit, len(acked), stopped.Round(time.Millisecond), started.Round(time.Millisecond), allBack.Round(time.Millisecond),
		caughtUpAt.Round(time.Millisecond), lost, dups, rssBefore, rssMiB(srv))
}
