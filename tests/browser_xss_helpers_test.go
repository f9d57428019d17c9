package tests

import (
	"sync"
	"testing"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Helpers of the XSS browser tests (browser_xss_test.go and
// browser_xss_campaign_test.go).

// watchPage records what a page must never do: open a dialog, and violate
// its Content Security Policy (which means markup got past both the
// server's sanitizer and the page's own scrubbing and tried to run or load
// something). It returns a function that lists the dialogs opened so far;
// checkInertPage reads the violations when its rules ask for them.
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

// xssRules is what a test lets the message bodies of the chat page hold
// once its XSS vectors are posted. Each test states its own rules.
type xssRules struct {
	// tags is a JavaScript regular expression literal that matches the tag
	// name of every element a message body may hold.
	tags string
	// badAttr is a JavaScript function that, given an attribute of an
	// element in a message body, returns true when it must not be there.
	badAttr string
	// csp fails the test on any violation of the Content Security Policy;
	// the tab must have been watched with watchPage before it loaded.
	csp bool
}

// checkInertPage inspects the chat page in tb once XSS vectors were posted
// and the page had its chance to run any handler. It fails the test, saying
// when, if a payload ran (window.chatdPwned is set, window.chatdCanary is
// no longer 'intact', a dialog opened), the message list was clobbered, an
// element or attribute outside rules or a link that is not a safe new-tab
// http(s)/mailto link reached a message body, a text of texts is not
// exactly the text of some message body, or (with rules.csp) the Content
// Security Policy had to stop something. dialogs lists the dialogs opened
// so far.
func checkInertPage(t *testing.T, tb *browserTab, when string, rules xssRules, texts []string, dialogs func() []string) {
	t.Helper()
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
	csp := `[]`
	if rules.csp {
		csp = `window.chatdCSPViolations || ['the CSP watcher is missing']`
	}
	v := pageEval[verdict](tb, `(() => {
		const list = document.getElementById('message-list');
		const bodies = [...list.querySelectorAll('.message-body')];
		const all = bodies.flatMap((b) => [...b.querySelectorAll('*')]);
		const allowedTag = `+rules.tags+`;
		const badAttr = `+rules.badAttr+`;
		const dangerous = all.filter((n) => !allowedTag.test(n.tagName)).map((n) => n.outerHTML);
		const badAttrs = all.flatMap((n) => [...n.attributes].filter(badAttr).map((a) => n.tagName + ' ' + a.name + '=' + a.value));
		const badLinks = [...list.querySelectorAll('.message-body a')].filter((a) => a.hasAttribute('href') && (!/^(https?:|mailto:)/i.test(a.getAttribute('href')) || a.target !== '_blank' || !/noopener/.test(a.rel))).map((a) => a.outerHTML);
		const texts = new Set(bodies.map((b) => b.textContent));
		const literalMissing = `+jsQuoteAll(texts)+`.filter((p) => !texts.has(p));
		return {
			pwned: window.chatdPwned ?? null, canary: window.chatdCanary ?? null,
			list: list.tagName === 'OL' && document.querySelectorAll('#message-list').length === 1,
			csp: `+csp+`,
			dangerous, badAttrs, badLinks, literalMissing, messages: bodies.length,
		};
	})()`)
	if v.Pwned != nil {
		t.Errorf("%s: a payload ran: window.chatdPwned = %v", when, v.Pwned)
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
		t.Errorf("%s: a forbidden attribute reached the page: %s", when, a)
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
	t.Logf("%s: %d messages on the page, none ran anything", when, v.Messages)
}

// openAfterHistory posts the first half of n attack vectors (post(i) posts
// vector i), so they are in the history the page loads, then opens alice's
// chat page in Chromium, watched by watchPage, signs in and sets the
// canary. It returns the tab, its dialog list and where the half that the
// test posts live begins.
func openAfterHistory(t *testing.T, srv *server, n int, post func(int)) (*browserTab, func() []string, int) {
	t.Helper()
	half := n / 2
	for i := range half {
		post(i)
	}
	c := startChrome(t)
	tb := c.newProfile(t, "alice").newTab("chat")
	dialogs := watchPage(t, tb)
	tb.signIn(srv, "alice", browserPassword)
	tb.do("set the canary", jsAction(`window.chatdCanary = 'intact'`))
	return tb, dialogs, half
}
