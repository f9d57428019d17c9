package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// xssCorpus is a set of classic and mutation XSS vectors. Each one tries to
// set window.chatdPwned or open a dialog.
var xssCorpus = []string{
	`<script>window.chatdPwned = 'script'</script>`,
	`<img src=x onerror="window.chatdPwned = 'img'">`,
	`<svg onload="window.chatdPwned = 'svg'"></svg>`,
	`<svg><animate onbegin="alert('animate')" attributeName=x dur=1s></svg>`,
	`<a href="javascript:window.chatdPwned = 'href'">click me</a>`,
	`<a href="  JaVaScRiPt:alert('case')">odd case</a>`,
	`<a href="java&#x09;script:alert('tab')">tab</a>`,
	`<a href="data:text/html,<script>alert('data')</script>">data url</a>`,
	`<a href="https://example.com/" onclick="alert('onclick')">a good link with a bad handler</a>`,
	`<iframe src="javascript:parent.chatdPwned = 'iframe'"></iframe>`,
	`<iframe srcdoc="<script>parent.chatdPwned = 'srcdoc'</script>"></iframe>`,
	`<object data="javascript:alert('object')"></object>`,
	`<embed src="javascript:alert('embed')">`,
	`<details open ontoggle="window.chatdPwned = 'details'">x</details>`,
	`<input autofocus onfocus="window.chatdPwned = 'input'">`,
	`<video><source onerror="alert('video')"></video>`,
	`<body onload="alert('body')">`,
	`<style>body { display: none }</style>`,
	`<p style="background: url(javascript:alert('style'))">styled</p>`,
	`<form action="javascript:alert('form')"><button>go</button></form>`,
	`<base href="javascript:/">`,
	`<meta http-equiv="refresh" content="0;url=javascript:alert('meta')">`,
	`"><script>alert('break out')</script>`,
	`<scr<script>ipt>alert('nested')</scr</script>ipt>`,
	`<noscript><p title="</noscript><img src=x onerror=alert('noscript')>"></noscript>`,
	`<svg></p><style><a id="</style><img src=1 onerror=alert('mxss')>">`,
	`<math><mtext><table><mglyph><style><img src=x onerror=alert('math')>`,
	`<select><template><style></template><img src=x onerror=alert('template')></select>`,
	`<img src="x" onerror="&#97;lert('entity')">`,
	`{{constructor.constructor('alert("template injection")')()}}`,
	`<b onmouseover="alert('hover')">bold with a handler</b>`,
	`<a id="chatdCanary" name="chatdCanary">clobber</a>`,
}

// TestBrowserXSSCorpusIsInert posts the corpus through the API as text, as
// html and as a raw body, before and while the page is open, and as an edit.
// Nothing runs, no dialog opens, the text forms read literally, and the
// html forms keep only harmless formatting and http(s) links.
func TestBrowserXSSCorpusIsInert(t *testing.T) {
	srv := startServer(t, "CHATD_POST_RATE=-1")
	register(t, srv, "alice", browserPassword)
	mallory := register(t, srv, "mallory", browserPassword)
	post := func(i int) {
		t.Helper()
		payload := xssCorpus[i]
		mallory.post("lobby", payload)
		if r := mallory.do("POST", "/api/rooms/lobby/messages", map[string]string{"html": payload}); r.Status != 201 && r.Status != 400 {
			t.Fatalf("posting html %q: %d %s", payload, r.Status, r.Body)
		}
		mallory.must(201, "POST", "/api/rooms/lobby/messages", "raw: "+payload)
	}
	tb, dialogs, half := openAfterHistory(t, srv, len(xssCorpus), post)
	for i := half; i < len(xssCorpus); i++ {
		post(i) // live, through the long poll
	}
	edited := mallory.post("lobby", "an innocent message")
	mallory.must(200, "PATCH", fmt.Sprintf("/api/messages/%d", edited.ID), map[string]string{"html": `<img src=x onerror="window.chatdPwned = 'edit'">edited`})
	mallory.post("lobby", "end of the corpus")
	tb.waitMessage("end of the corpus", 5*time.Second)
	tb.waitJS("the edit", 5*time.Second, fmt.Sprintf(
		`document.querySelector('#message-list li[data-id="%d"] .message-body')?.textContent.includes('edited')`, edited.ID))

	// A message body holds only harmless formatting, with no handler,
	// style, source or form action.
	rules := xssRules{
		tags:    `/^(A|B|STRONG|I|EM|U|S|DEL|INS|MARK|SMALL|SUB|SUP|CODE|PRE|KBD|SAMP|BLOCKQUOTE|P|BR|UL|OL|LI|SPAN)$/`,
		badAttr: `(a) => /^on|^style$|^src$|^srcdoc$|^action$|^formaction$/i.test(a.name)`,
	}
	check := func(when string) {
		t.Helper()
		// Let any handler that could fire (an image error, a focus, a
		// load) do so: two frames and a macrotask after the DOM settled.
		tb.waitJS("a settled page", 5*time.Second,
			`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => r(true), 50))))`)
		checkInertPage(t, tb, when, rules, xssCorpus, dialogs)
	}
	check("live")
	tb.do("reload", chromedp.Reload())
	tb.waitChat()
	tb.do("set the canary", jsAction(`window.chatdCanary = 'intact'`))
	tb.waitMessage("end of the corpus", 5*time.Second)
	// The history is paged: scroll up until the whole corpus is loaded.
	tb.waitJS("the whole history", 10*time.Second, `(() => {
		const s = document.getElementById('messages');
		s.scrollTop = 0;
		s.dispatchEvent(new Event('scroll'));
		return /beginning of/.test(document.getElementById('history-status').textContent);
	})()`)
	check("from history")
}
