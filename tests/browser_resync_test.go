package tests

import (
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
)

// pollInterceptor answers the page's next long poll with a status of its
// choice and records when each poll was made. It needs the poll to run in
// the page, so it is used with SharedWorker hidden (the leader tab polls).
type pollInterceptor struct {
	mu     sync.Mutex
	next   []int // statuses to answer, in order; empty: let polls through
	starts []time.Time
}

func interceptPolls(t *testing.T, tb *browserTab) *pollInterceptor {
	t.Helper()
	pi := &pollInterceptor{}
	paused := chromedp.Events(tb.ctx, fetch.RequestPaused)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			pi.mu.Lock()
			pi.starts = append(pi.starts, time.Now())
			status := 0
			if len(pi.next) > 0 {
				status, pi.next = pi.next[0], pi.next[1:]
			}
			pi.mu.Unlock()
			if status == 0 {
				chromedp.Call(tb.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
				continue
			}
			body := map[int]string{
				409: `{"error":{"code":"superseded","message":"a newer poll took over"}}`,
				410: `{"error":{"code":"resync_required","message":"the cursor is older than the replay window"}}`,
			}[status]
			chromedp.Call(tb.ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
				RequestID:       ev.RequestID,
				ResponseCode:    int64(status),
				ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "application/json"}},
				Body:            []byte(body),
			})
		}
	}()
	if _, err := chromedp.Call(tb.ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: "*/api/events?*"}},
	}); err != nil {
		t.Fatalf("intercepting polls: %v", err)
	}
	return pi
}

func (pi *pollInterceptor) answerNext(status int) int {
	pi.mu.Lock()
	defer pi.mu.Unlock()
	pi.next = append(pi.next, status)
	return len(pi.starts)
}

func (pi *pollInterceptor) pollsSince(n int) []time.Time {
	pi.mu.Lock()
	defer pi.mu.Unlock()
	return append([]time.Time(nil), pi.starts[n:]...)
}

// TestBrowserResyncAndSupersede: a 410 resync_required makes the page reload
// its state without losing the draft in the composer or any message, and a
// 409 superseded makes it wait at least 2 s before the next poll.
func TestBrowserResyncAndSupersede(t *testing.T) {
	srv := startServer(t)
	register(t, srv, "alice", browserPassword)
	bob := register(t, srv, "bob", browserPassword)
	c := startChrome(t)
	p := c.newProfile(t, "alice")
	p.noSharedWorker = true
	tb := p.newTab("chat")
	pi := interceptPolls(t, tb)
	tb.signIn(srv, "alice", browserPassword)
	bob.post("lobby", "before the resync")
	tb.waitMessage("before the resync", 2*time.Second)

	t.Run("410 reloads the state and keeps the draft", func(t *testing.T) {
		tb := tb.in(t)
		const draft = "half-written thought"
		tb.typeText(draft)
		pi.answerNext(410)
		bob.post("lobby", "ends the pending poll") // the next poll gets the 410
		tb.waitJS("the resync notice", 5*time.Second, `[...document.querySelectorAll('#message-list .notice')]
			.some((n) => n.textContent.includes('re-established'))`)
		bob.post("lobby", "after the resync")
		tb.waitMessage("after the resync", 2*time.Second)
		for _, m := range []string{"before the resync", "ends the pending poll", "after the resync"} {
			if n := shownMessageCount(tb, m); n != 1 {
				t.Errorf("%q shown %d times, want once", m, n)
			}
		}
		if v := pageEval[string](tb, `document.getElementById('composer-input').value`); v != draft {
			t.Errorf("composer holds %q after the resync, want %q", v, draft)
		}
	})

	t.Run("409 waits at least 2 s", func(t *testing.T) {
		tb := tb.in(t)
		n := pi.answerNext(409)
		bob.post("lobby", "ends the poll before the 409")
		tb.waitMessage("ends the poll before the 409", 2*time.Second)
		var polls []time.Time
		eventually(t, "a poll after the superseded one", 6*time.Second, func() bool {
			polls = pi.pollsSince(n)
			return len(polls) >= 2
		})
		if gap := polls[1].Sub(polls[0]); gap < 2*time.Second {
			t.Errorf("the page polled again %v after a 409 superseded, want at least 2 s", gap)
		} else {
			t.Logf("polled again %v after the 409", gap.Round(time.Millisecond))
		}
		bob.post("lobby", "after the 409")
		tb.waitMessage("after the 409", 2*time.Second)
	})
}
