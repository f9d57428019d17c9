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

	"github.com/chromedp/cdproto/page"
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

// watchPage records what a page must never do: open a dialog, and violate
// its Content Security Policy (which means markup got past both the
// server's sanitizer and the page's own scrubbing and tried to run or load
// something). It returns a function that lists what happened.
func watchPage(t *testing.T, tb *browserTab) func() []string {
	t.Helper()
	_, err := chromedp.Call(tb.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.chatdCSPViolations = [];
			document.addEventListener('securitypolicyviolation', (e) =>
				window.chatdCSPViolations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || '')));`,
	})
	if err != nil {
		t.Fatalf("installing the CSP watcher: %v", err)
	}
	var mu sync.Mutex
	var dialogs []string
	opening := chromedp.Events(tb.ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range opening {
			if err != nil {
				return
			}
			mu.Lock()
			dialogs = append(dialogs, string(ev.Type)+": "+ev.Message)
			mu.Unlock()
			chromedp.Call(tb.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), dialogs...)
	}
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
	half := len(vectors) / 2
	for i := range half {
		post(i) // in the history the page loads
	}

	c := startChrome(t)
	tb := c.newProfile(t, "alice").newTab("chat")
	dialogs := watchPage(t, tb)
	tb.signIn(srv, "alice", browserPassword)
	tb.do("set the canary", jsAction(`window.chatdCanary = 'intact'`))
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
		type verdict struct {
			Pwned     any      `json:"pwned"`
			Canary    any      `json:"canary"`
			List      bool     `json:"list"`
			CSP       []string `json:"csp"`
			Dangerous []string `json:"dangerous"`
			BadAttrs  []string `json:"badAttrs"`
			BadLinks  []string `json:"badLinks"`
			Literal   []string `json:"literalMissing"`
			Messages  int      `json:"messages"`
		}
		mu.Lock()
		want := jsQuoteAll(literal)
		mu.Unlock()
		v := pageEval[verdict](tb, `(() => {
			const list = document.getElementById('message-list');
			const bodies = [...list.querySelectorAll('.message-body')];
			const all = bodies.flatMap((b) => [...b.querySelectorAll('*')]);
			const dangerous = all.filter((n) => !/^(A|B|STRONG|I|EM|U|S|DEL|INS|MARK|SMALL|SUB|SUP|CODE|PRE|KBD|SAMP|BLOCKQUOTE|Q|P|BR|HR|UL|OL|LI|DL|DT|DD|SPAN|DIV|H[1-6]|TABLE|THEAD|TBODY|TFOOT|TR|TH|TD|CAPTION|ABBR|CITE|TIME)$/.test(n.tagName)).map((n) => n.outerHTML);
			const badAttrs = all.flatMap((n) => [...n.attributes].filter((a) => !/^(href|title|rel|target|datetime|lang|dir|colspan|rowspan|start|cite|class)$/i.test(a.name)).map((a) => n.tagName + ' ' + a.name + '=' + a.value));
			const badLinks = [...list.querySelectorAll('.message-body a')].filter((a) => a.hasAttribute('href') && (!/^(https?:|mailto:)/i.test(a.getAttribute('href')) || a.target !== '_blank' || !/noopener/.test(a.rel))).map((a) => a.outerHTML);
			const texts = new Set(bodies.map((b) => b.textContent));
			const expect = (p) => p.startsWith('/me ') ? 'mallory ' + p.slice(4) : p;
			const literalMissing = `+want+`.filter((p) => !texts.has(expect(p)));
			return {
				pwned: window.chatdPwned ?? null, canary: window.chatdCanary ?? null,
				list: list.tagName === 'OL' && document.querySelectorAll('#message-list').length === 1,
				csp: window.chatdCSPViolations || ['the CSP watcher is missing'],
				dangerous, badAttrs, badLinks, literalMissing, messages: bodies.length,
			};
		})()`)
		if v.Pwned != nil {
			t.Errorf("%s: a payload ran: top.chatdPwned = %v", when, v.Pwned)
		}
		if v.Canary != "intact" {
			t.Errorf("%s: the canary changed: %v", when, v.Canary)
		}
		if !v.List {
			t.Errorf("%s: the message list was clobbered", when)
		}
		for _, s := range v.CSP {
			t.Errorf("%s: the Content Security Policy had to stop something: %s", when, s)
		}
		for _, d := range v.Dangerous {
			t.Errorf("%s: an element outside harmless formatting reached the page: %s", when, d)
		}
		for _, a := range v.BadAttrs {
			t.Errorf("%s: an unexpected attribute reached the page: %s", when, a)
		}
		for _, l := range v.BadLinks {
			t.Errorf("%s: a link that is not a safe new-tab http(s)/mailto link: %s", when, l)
		}
		for _, p := range v.Literal {
			t.Errorf("%s: the text message %q does not read literally", when, p)
		}
		for _, d := range dialogs() {
			t.Errorf("%s: a dialog opened: %q", when, d)
		}
		for _, h := range b.seen() {
			t.Errorf("%s: a payload reached the beacon: %s", when, h)
		}
		t.Logf("%s: %d messages on the page, none ran anything", when, v.Messages)
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
