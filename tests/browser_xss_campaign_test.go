package tests

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// beacon is an HTTP server that counts the requests a payload makes: an
// image, a stylesheet, a frame or a redirect that a vector points at it.
type beacon struct {
	*httptest.Server
	mu   sync.Mutex
	hits []string
}

func newBeacon(t *testing.T) *beacon {
	b := &beacon{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.hits = append(b.hits, r.Method+" "+r.URL.String())
		b.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *beacon) seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.hits...)
}

// TestBrowserXSSCampaign posts the campaign's corpus (xss_corpus_test.go)
// through the API in every form a message takes (JSON text, JSON html, a
// raw text body, an edit) and as room topics, before the page loads and
// while it is open, then looks at the chat page live, after a reload with
// the whole history paged in, and at the admin page. In every case: no
// payload runs (no dialog, top.chatdPwned unset, the canary intact), no
// beacon is fetched, the Content Security Policy is never even tested, no
// element or attribute outside harmless formatting reaches the page, and
// every text message reads literally.
func TestBrowserXSSCampaign(t *testing.T) {
	srv := startServer(t, "CHATD_POST_RATE=-1", "CHATD_LOG_LEVEL=info")
	b := newBeacon(t)
	register(t, srv, "alice", browserPassword) // the first account: an admin
	mallory := register(t, srv, "mallory", browserPassword)
	vectors := make([]string, len(campaignXSS))
	for i, v := range campaignXSS {
		v = strings.ReplaceAll(v, "$B", b.URL+"/b/"+strconv.Itoa(i))
		vectors[i] = strings.ReplaceAll(v, "$N", strconv.Itoa(1000+i))
	}

	var mu sync.Mutex
	// The text messages the page must show as they are stored (the server
	// drops control characters from text), all of them and those posted
	// while the page was open.
	var literal, liveLiteral []string
	counts := map[string]int{}
	pageOpen := false
	keep := func(r *response) {
		var body struct{ Message message }
		r.JSON(t, &body)
		mu.Lock()
		defer mu.Unlock()
		literal = append(literal, body.Message.Text)
		if pageOpen {
			liveLiteral = append(liveLiteral, body.Message.Text)
		}
	}
	post := func(i int) {
		t.Helper()
		v := vectors[i]
		if r := mallory.do("POST", "/api/rooms/lobby/messages", map[string]string{"text": v}); r.Status == 201 {
			keep(r)
			counts["text"]++
		} else if r.Status != 400 {
			t.Fatalf("posting text %q: %d %s", v, r.Status, r.Body)
		} else {
			counts["text refused"]++
		}
		switch r := mallory.do("POST", "/api/rooms/lobby/messages", map[string]string{"html": v}); r.Status {
		case 201:
			counts["html"]++
		case 400:
			counts["html refused (nothing left)"]++
		default:
			t.Fatalf("posting html %q: %d %s", v, r.Status, r.Body)
		}
		if r := mallory.do("POST", "/api/rooms/lobby/messages", "raw "+v); r.Status == 201 {
			counts["raw"]++
			keep(r)
		} else if r.Status != 400 {
			t.Fatalf("posting raw %q: %d %s", v, r.Status, r.Body)
		}
	}
	tb, dialogs, half := openAfterHistory(t, srv, len(vectors), post)
	mu.Lock()
	pageOpen = true
	mu.Unlock()
	for i := half; i < len(vectors); i++ {
		post(i) // live, through the long poll
	}
	// Topics are shown in the room's header: each must read literally.
	topics := 0
	for i := 0; i < len(vectors); i += 7 {
		if len(vectors[i]) > 512 {
			continue
		}
		mallory.must(200, "PATCH", "/api/rooms/lobby", map[string]string{"topic": vectors[i]})
		tb.waitJS("the topic", 5*time.Second, fmt.Sprintf(`document.getElementById('room-topic').textContent === %s`, jsQuote(vectors[i])))
		topics++
	}
	edits := 0
	for i := 0; i < len(vectors); i += 10 {
		m := mallory.post("lobby", "an innocent message")
		if r := mallory.do("PATCH", fmt.Sprintf("/api/messages/%d", m.ID), map[string]string{"html": vectors[i] + " edited"}); r.Status == 200 {
			edits++
		}
	}
	mallory.post("lobby", "end of the campaign")
	tb.waitMessage("end of the campaign", 10*time.Second)

	// A message body holds only formatting and tables, with no attribute
	// but these few.
	rules := xssRules{
		tags:    `/^(A|B|STRONG|I|EM|U|S|DEL|INS|MARK|SMALL|SUB|SUP|CODE|PRE|KBD|SAMP|BLOCKQUOTE|Q|P|BR|HR|UL|OL|LI|DL|DT|DD|SPAN|DIV|H[1-6]|TABLE|THEAD|TBODY|TFOOT|TR|TH|TD|CAPTION|ABBR|CITE|TIME)$/`,
		badAttr: `(a) => !/^(href|title|rel|target|datetime|lang|dir|colspan|rowspan|start|cite|class)$/i.test(a.name)`,
		csp:     true,
	}
	check := func(when string, literal []string) {
		t.Helper()
		// Give every handler that could fire its chance: hover and focus
		// everything in the messages, then two frames and a macrotask.
		tb.waitJS("a settled page", 10*time.Second, `(() => {
			for (const n of document.querySelectorAll('#message-list .message-body *')) {
				for (const type of ['mouseover', 'mouseenter', 'pointerover', 'focus', 'animationstart']) n.dispatchEvent(new Event(type));
			}
			return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => r(true), 100))));
		})()`)
		mu.Lock()
		shown := make([]string, len(literal))
		for i, p := range literal {
			shown[i] = asShown(p)
		}
		mu.Unlock()
		checkInertPage(t, tb, when, rules, shown, dialogs)
		for _, h := range b.seen() {
			t.Errorf("%s: a payload reached the beacon: %s", when, h)
		}
	}
	check("live", liveLiteral)
	tb.do("reload", chromedp.Reload())
	tb.waitChat()
	tb.do("set the canary", jsAction(`window.chatdCanary = 'intact'`))
	tb.waitMessage("end of the campaign", 10*time.Second)
	tb.waitJS("the whole history", 60*time.Second, `(() => {
		const s = document.getElementById('messages');
		s.scrollTop = 0;
		s.dispatchEvent(new Event('scroll'));
		return /beginning of/.test(document.getElementById('history-status').textContent);
	})()`)
	check("from history", literal)

	// The admin page lists recent messages, rooms and topics: server-side
	// rendering must be as inert.
	tb.open(srv, "/admin")
	tb.waitJS("the admin page", 10*time.Second, `document.readyState === 'complete' && location.pathname === '/admin'`)
	type adminVerdict struct {
		Pwned   any      `json:"pwned"`
		CSP     []string `json:"csp"`
		Handler []string `json:"handlers"`
		Scripts []string `json:"scripts"`
	}
	av := pageEval[adminVerdict](tb, `new Promise((r) => setTimeout(() => r({
		pwned: window.chatdPwned ?? null,
		csp: window.chatdCSPViolations || ['the CSP watcher is missing'],
		handlers: [...document.querySelectorAll('*')].flatMap((n) => [...n.attributes].filter((a) => /^on/i.test(a.name) || /^\s*javascript:/i.test(a.value)).map((a) => n.tagName + ' ' + a.name)),
		scripts: [...document.scripts].filter((s) => !s.src.startsWith(location.origin + '/static/')).map((s) => s.outerHTML.slice(0, 200)),
	}), 200))`)
	if av.Pwned != nil || len(av.CSP) > 0 || len(av.Handler) > 0 || len(av.Scripts) > 0 {
		t.Errorf("the admin page: pwned %v, CSP violations %q, handlers %q, foreign scripts %q", av.Pwned, av.CSP, av.Handler, av.Scripts)
	}
	for _, d := range dialogs() {
		t.Errorf("admin page: a dialog opened: %q", d)
	}
	for _, h := range b.seen() {
		t.Errorf("admin page: a payload reached the beacon: %s", h)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("XSS campaign: %d vectors; %d text, %d html (%d refused, nothing left), %d raw messages, %d topics, %d edits; "+
		"rendered live, from history and on the admin page: 0 executed, 0 dialogs, 0 beacon hits, 0 CSP violations",
		len(vectors), counts["text"], counts["html"], counts["html refused (nothing left)"], counts["raw"], topics, edits)
}

// asShown is the text the chat page shows for a text message mallory
// posted: an action ("/me waves") reads as "mallory waves".
func asShown(text string) string {
	if rest, ok := strings.CutPrefix(text, "/me "); ok {
		return "mallory " + rest
	}
	return text
}
