package tests

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricPendingPolls reads chatd_long_polls_pending from /metrics.
func metricPendingPolls(t *testing.T, c *client) float64 {
	t.Helper()
	r := c.must(200, "GET", "/metrics", nil)
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "chatd_long_polls_pending "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("/metrics has no chatd_long_polls_pending:\n%s", r.Body)
	return 0
}

// assertOnePoll checks that the browser of user holds exactly one pending
// poll, watching for a while so that a second poll would be seen.
func assertOnePoll(t *testing.T, admin *client, user string, during time.Duration) {
	t.Helper()
	eventually(t, "one pending poll", 5*time.Second, func() bool {
		p, _ := userPolls(t, admin, user)
		return p == 1 && metricPendingPolls(t, admin) == 1
	})
	end := time.Now().Add(during)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	samples := 0
	for time.Now().Before(end) {
		<-tick.C
		if m := metricPendingPolls(t, admin); m > 1 {
			t.Fatalf("chatd_long_polls_pending = %v, want at most 1 for one browser", m)
		}
		p, clients := userPolls(t, admin, user)
		if p > 1 || clients > 1 {
			t.Fatalf("%s has %d pending polls over %d clients, want one browser with one poll", user, p, clients)
		}
		samples++
	}
	t.Logf("one pending poll for %s over %d samples in %v", user, samples, during)
}

// apiMemberStatus asks the API for a member's presence in a room.
func apiMemberStatus(t *testing.T, c *client, room, user string) string {
	t.Helper()
	var body struct {
		Members []struct{ Name, Status string } `json:"members"`
	}
	c.must(200, "GET", "/api/rooms/"+room, nil).JSON(t, &body)
	for _, m := range body.Members {
		if strings.EqualFold(m.Name, user) {
			return m.Status
		}
	}
	return ""
}

const iframeExpr = `document.getElementById('embedded')?.contentDocument`

// TestBrowserOneConnectionPerBrowser: three tabs and a same-origin iframe of
// one browser share one long poll through the SharedWorker. Closing the tab
// that started it changes nothing for the others, and closing the last tab
// tells the server at once.
func TestBrowserOneConnectionPerBrowser(t *testing.T) {
	srv := startServer(t)
	admin := register(t, srv, "ada", browserPassword)
	register(t, srv, "erin", browserPassword)
	poster := register(t, srv, "poster", browserPassword)
	c := startChrome(t)
	p := c.newProfile(t, "erin")
	tabs := []*browserTab{p.newTab("tab1"), p.newTab("tab2"), p.newTab("tab3")}
	tabs[0].signIn(srv, "erin", browserPassword)
	for _, tb := range tabs[1:] {
		tb.open(srv, "/")
		tb.waitChat()
	}
	tabs[0].do("embed the chat in an iframe", jsAction(`(() => {
		const f = document.createElement('iframe');
		f.id = 'embedded';
		f.title = 'embedded chat';
		f.src = '/#lobby';
		f.width = 600;
		f.height = 400;
		document.body.append(f);
	})()`))
	tabs[0].waitJS("the iframe's chat to connect", 10*time.Second,
		iframeExpr+`?.querySelector('#conn-status')?.dataset.state === 'connected'`)
	for _, tb := range tabs {
		if mode := pageEval[string](tb, `document.getElementById('conn-status').dataset.mode`); mode != "shared-worker" {
			t.Fatalf("%s connects by %q, want shared-worker", tb.name, mode)
		}
	}

	everyone := func(text string, views []*browserTab, iframe bool) {
		t.Helper()
		poster.post("lobby", text)
		for _, tb := range views {
			tb.waitMessage(text, 2*time.Second)
		}
		if iframe {
			tabs[0].waitJS("the message in the iframe", 2*time.Second, fmt.Sprintf(
				`[...(%s?.querySelectorAll('#message-list .message-body') || [])].some((n) => n.textContent.includes(%s))`,
				iframeExpr, jsQuote(text)))
		}
	}
	everyone("first for all four", tabs, true)
	assertOnePoll(t, admin, "erin", 1500*time.Millisecond)
	everyone("second for all four", tabs, true)
	assertOnePoll(t, admin, "erin", 500*time.Millisecond)

	// The first tab started the worker and holds the iframe: close it.
	tabs[0].close()
	everyone("after the first tab closed", tabs[1:], false)
	assertOnePoll(t, admin, "erin", 500*time.Millisecond)
	if s := apiMemberStatus(t, admin, "lobby", "erin"); s != "online" {
		t.Fatalf("erin is %q after closing one tab of three, want online", s)
	}

	// Closing the last tabs sends the disconnect beacon: erin is gone
	// long before the 60 s presence timeout.
	tabs[1].close()
	tabs[2].close()
	eventually(t, "erin offline after her last tab closed", 5*time.Second, func() bool {
		return apiMemberStatus(t, admin, "lobby", "erin") == "offline"
	})
	eventually(t, "no pending poll", 5*time.Second, func() bool { return metricPendingPolls(t, admin) == 0 })
}

// TestBrowserLeaderElection: without SharedWorker, tabs elect a leader with
// Web Locks; it polls for all. When the leader's tab closes another takes
// over within seconds and nothing is lost.
func TestBrowserLeaderElection(t *testing.T) {
	srv := startServer(t)
	admin := register(t, srv, "ada", browserPassword)
	register(t, srv, "frank", browserPassword)
	poster := register(t, srv, "poster", browserPassword)
	c := startChrome(t)
	p := c.newProfile(t, "frank")
	p.noSharedWorker = true
	tabs := []*browserTab{p.newTab("tab1"), p.newTab("tab2"), p.newTab("tab3")}
	tabs[0].signIn(srv, "frank", browserPassword)
	for _, tb := range tabs[1:] {
		tb.open(srv, "/")
		tb.waitChat()
	}
	leader := func(open []*browserTab) *browserTab {
		t.Helper()
		var found *browserTab
		eventually(t, "exactly one leader", 5*time.Second, func() bool {
			found = nil
			n := 0
			for _, tb := range open {
				if pageEval[string](tb, `document.getElementById('conn-status').dataset.mode`) == "leader" {
					found = tb
					n++
				}
			}
			return n == 1
		})
		return found
	}
	first := leader(tabs)
	t.Logf("leader: %s", first.name)
	for i, text := range []string{"leader relays this", "and this"} {
		poster.post("lobby", text)
		for _, tb := range tabs {
			tb.waitMessage(text, 2*time.Second)
		}
		if i == 0 {
			assertOnePoll(t, admin, "frank", time.Second)
		}
	}

	var rest []*browserTab
	for _, tb := range tabs {
		if tb != first {
			rest = append(rest, tb)
		}
	}
	first.close()
	closed := time.Now()
	// Posted before a new leader polls: it must still arrive, once.
	text := "posted while the leader was gone"
	poster.post("lobby", text)
	next := leader(rest)
	t.Logf("%s took over in %v", next.name, time.Since(closed).Round(time.Millisecond))
	for _, tb := range rest {
		tb.waitMessage(text, 5*time.Second)
		if n := shownMessageCount(tb, text); n != 1 {
			t.Errorf("%s shows %q %d times", tb.name, text, n)
		}
	}
	poster.post("lobby", "after the handover")
	for _, tb := range rest {
		tb.waitMessage("after the handover", 2*time.Second)
	}
	assertOnePoll(t, admin, "frank", 500*time.Millisecond)

	for _, tb := range rest {
		tb.close()
	}
	eventually(t, "frank offline after his last tab closed", 5*time.Second, func() bool {
		return apiMemberStatus(t, admin, "lobby", "frank") == "offline"
	})
}
