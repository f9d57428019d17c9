package tests

import (
	"fmt"
	"testing"
	"time"
)

// TestBrowserServerRestart: the server goes away mid-conversation, first
// with SIGTERM and then with kill -9. The page shows that it is reconnecting,
// then shows every message it missed exactly once, and keeps the draft in
// the composer.
func TestBrowserServerRestart(t *testing.T) {
	srv := startServer(t)
	register(t, srv, "alice", browserPassword)
	bob := register(t, srv, "bob", browserPassword)
	c := startChrome(t)
	tb := c.newProfile(t, "alice").newTab("chat")
	tb.signIn(srv, "alice", browserPassword)
	bob.post("lobby", "before the restart")
	tb.waitMessage("before the restart", 2*time.Second)

	// Record every state the connection indicator goes through.
	tb.do("watch the indicator", jsAction(`(() => {
		const node = document.getElementById('conn-status');
		window.connStates = [];
		new MutationObserver(() => window.connStates.push(node.dataset.state))
			.observe(node, { attributes: true, attributeFilter: ['data-state'] });
	})()`))
	const draft = "a draft that must survive"
	tb.typeText(draft)

	phases := []struct {
		name string
		down func()
	}{
		{"SIGTERM", func() { srv.Restart(t) }},
		{"kill -9", func() { srv.Kill(t); srv.Start(t) }},
	}
	var all []string
	for _, ph := range phases {
		tb.do("reset the record", jsAction(`window.connStates.length = 0`))
		ph.down()
		missed := []string{
			fmt.Sprintf("missed during %s, one", ph.name),
			fmt.Sprintf("missed during %s, two", ph.name),
			fmt.Sprintf("missed during %s, three", ph.name),
		}
		for _, m := range missed {
			bob.post("lobby", m)
		}
		all = append(all, missed...)
		tb.waitJS("the page to show it is reconnecting ("+ph.name+")", 10*time.Second,
			`window.connStates.includes('reconnecting')`)
		tb.waitJS("the page to connect again", 20*time.Second,
			`document.getElementById('conn-status').dataset.state === 'connected'`)
		for _, m := range missed {
			tb.waitMessage(m, 5*time.Second)
		}
		t.Logf("%s: the page went through %v", ph.name, pageEval[[]string](tb, `window.connStates`))
	}
	for _, m := range append(all, "before the restart") {
		if n := shownMessageCount(tb, m); n != 1 {
			t.Errorf("%q is shown %d times, want once", m, n)
		}
	}
	if v := pageEval[string](tb, `document.getElementById('composer-input').value`); v != draft {
		t.Errorf("the composer holds %q after the reconnects, want %q", v, draft)
	}
	start := time.Now()
	bob.post("lobby", "after the restarts")
	tb.waitMessage("after the restarts", time.Second)
	t.Logf("a message after the restarts arrived in %v", time.Since(start).Round(time.Millisecond))
}
