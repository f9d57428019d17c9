package messages

import (
	"regexp"
	"strings"
	"testing"

	"chatd/api"
)

// xssVectors are hostile inputs: classic filter evasions, event handlers,
// dangerous URL schemes, encodings, SVG and MathML, style and frame tricks.
var xssVectors = []string{
	`<script>alert(1)</script>`,
	`<SCRIPT SRC=//evil.example/x.js></SCRIPT>`,
	`<img src=x onerror=alert(1)>`,
	`<img src="javascript:alert(1)">`,
	`<IMG SRC=JaVaScRiPt:alert('XSS')>`,
	`<img src=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)>`,
	`<img src=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A;alert(1)>`,
	`<a href="javascript:alert(1)">x</a>`,
	`<a href="JAVASCRIPT:alert(1)">x</a>`,
	`<a href=" javascript:alert(1)">x</a>`,
	`<a href="jav&#x09;ascript:alert(1)">x</a>`,
	`<a href="java&#0000115;cript:alert(1)">x</a>`,
	`<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>`,
	`<a href="vbscript:msgbox(1)">x</a>`,
	`<a href="https://ok.example" onclick="alert(1)">x</a>`,
	`<a href="https://ok.example" onmouseover=alert(1)>x</a>`,
	`<a href="https://ok.example" style="position:fixed;top:0">x</a>`,
	`<svg onload=alert(1)>`,
	`<svg><script>alert(1)</script></svg>`,
	`<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">x</text></a></svg>`,
	`<svg><animate onbegin=alert(1) attributeName=x dur=1s>`,
	`<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>`,
	`<math href="javascript:alert(1)">x</math>`,
	`<iframe src="javascript:alert(1)"></iframe>`,
	`<iframe srcdoc="<script>alert(1)</script>"></iframe>`,
	`<frameset onload=alert(1)>`,
	`<object data="javascript:alert(1)">`,
	`<embed src="javascript:alert(1)">`,
	`<form action="javascript:alert(1)"><input type=submit></form>`,
	`<button formaction="javascript:alert(1)">x</button>`,
	`<input onfocus=alert(1) autofocus>`,
	`<select onfocus=alert(1) autofocus>`,
	`<textarea onfocus=alert(1) autofocus>`,
	`<details open ontoggle=alert(1)>`,
	`<body onload=alert(1)>`,
	`<div style="background:url(javascript:alert(1))">x</div>`,
	`<div style="width: expression(alert(1))">x</div>`,
	`<style>@import 'javascript:alert(1)';</style>`,
	`<link rel=stylesheet href="javascript:alert(1)">`,
	`<meta http-equiv="refresh" content="0;url=javascript:alert(1)">`,
	`<base href="javascript:alert(1)//">`,
	`<video><source onerror="alert(1)"></video>`,
	`<audio src=x onerror=alert(1)>`,
	`<marquee onstart=alert(1)>`,
	`<isindex action=javascript:alert(1) type=image>`,
	`<scr<script>ipt>alert(1)</scr</script>ipt>`,
	`<<script>alert(1)//<</script>`,
	`<img """><script>alert(1)</script>">`,
	`<img src="x` + "`" + `onerror=alert(1)` + "`" + `">`,
	`"><script>alert(1)</script>`,
	`'><img src=x onerror=alert(1)>`,
	`<!--<img src="--><img src=x onerror=alert(1)//">`,
	`<noscript><p title="</noscript><img src=x onerror=alert(1)>">`,
	`<a href="https://ok.example/" target="_self" rel="opener">x</a>`,
	`<p onmouseenter=alert(1)>x</p>`,
	`<b onclick=alert(1)>x</b>`,
	`<code style="x:expression(alert(1))">x</code>`,
	`<table background="javascript:alert(1)">`,
	`<xss id=x tabindex=1 onfocus=alert(1)></xss>`,
	`<template><script>alert(1)</script></template>`,
	`<a href="&#1;javascript:alert(1)">x</a>`,
	`<a href="\x01javascript:alert(1)">x</a>`,
	`<a href="/relative/path">x</a>`,
	`<a href="//evil.example/">x</a>`,
	`<img src=x:alert(alt) onerror=eval(src) alt=1>`,
	`<svg><set attributeName="onmouseover" to="alert(1)"/>`,
	`<a href="javas
cript:alert(1)">x</a>`,
}

// dangerous matches what must never survive sanitizing: tags that run or
// embed content, event handler attributes, style, and non-http(s)/mailto
// URL schemes in attributes.
var dangerous = []*regexp.Regexp{
	regexp.MustCompile(`(?i)<\s*(script|iframe|frame|frameset|object|embed|form|input|button|select|textarea|style|link|meta|base|svg|math|img|video|audio|source|details|body|marquee|isindex|table|template|noscript|xss)\b`),
	regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`),
	regexp.MustCompile(`(?i)<[^>]*\sstyle\s*=`),
	regexp.MustCompile(`(?i)<[^>]*\s(href|src|action|formaction|data|background)\s*=\s*["']?\s*(?:[^"'\s>]*[^a-z"'\s>])?(javascript|vbscript|data):`),
	regexp.MustCompile(`(?i)<[^>]*\s(srcdoc|xlink:href)\s*=`),
}

func TestFromHTMLNeutralisesXSSVectors(t *testing.T) {
	if len(xssVectors) < 40 {
		t.Fatalf("only %d vectors", len(xssVectors))
	}
	for _, v := range xssVectors {
		c, err := FromHTML(v)
		if err != nil {
			// Refusing a message that is nothing but an attack is fine,
			// as long as it is a client error.
			var e *api.Error
			if !asAPIError(err, &e) || e.Code.Status() >= 500 {
				t.Errorf("FromHTML(%q) error %v, want a 4xx", v, err)
			}
			continue
		}
		for _, re := range dangerous {
			if m := re.FindString(c.HTML); m != "" {
				t.Errorf("FromHTML(%q) kept %q in %q", v, m, c.HTML)
			}
		}
		for _, a := range regexp.MustCompile(`(?i)<a\s[^>]*>`).FindAllString(c.HTML, -1) {
			if !strings.Contains(a, `rel="nofollow noopener"`) {
				t.Errorf("FromHTML(%q): link %q lacks rel=nofollow noopener", v, a)
			}
			if !regexp.MustCompile(`href="(https?:|mailto:)`).MatchString(a) {
				t.Errorf("FromHTML(%q): link %q is not http(s) or mailto", v, a)
			}
		}
	}
}

func TestFromTextEscapesEverything(t *testing.T) {
	for _, v := range xssVectors {
		c, err := FromText(v)
		if err != nil {
			t.Errorf("FromText(%q): %v", v, err)
			continue
		}
		if strings.ContainsAny(stripLinks(c.HTML), "<>") {
			t.Errorf("FromText(%q) html %q has markup besides links and <br>", v, c.HTML)
		}
		for _, re := range dangerous {
			if m := re.FindString(c.HTML); m != "" {
				t.Errorf("FromText(%q) html has %q: %q", v, m, c.HTML)
			}
		}
		if c.Text != strings.TrimSpace(strings.Map(func(r rune) rune {
			if r < 0x20 && r != '\n' && r != '\t' {
				return -1
			}
			return r
		}, v)) {
			t.Errorf("FromText(%q) text %q: plain text must be kept as typed", v, c.Text)
		}
	}
}

var linkOrBreak = regexp.MustCompile(`<a href="[^"]*" rel="nofollow noopener" target="_blank">|</a>|<br/?>`)

func stripLinks(s string) string { return linkOrBreak.ReplaceAllString(s, "") }

func asAPIError(err error, e **api.Error) bool {
	ae, ok := err.(*api.Error)
	if ok {
		*e = ae
	}
	return ok
}

func TestContent(t *testing.T) {
	tests := []struct {
		name, in       string
		html           bool
		wantText       string
		wantHTML       string
		wantErrCode    api.Code
		wantHTMLSubstr string
	}{
		{name: "plain", in: "hello", wantText: "hello", wantHTML: "hello"},
		{name: "escaped", in: "a < b & c", wantText: "a < b & c", wantHTML: "a &lt; b &amp; c"},
		{name: "link", in: "see https://example.com/a?b=1&c=2.", wantText: "see https://example.com/a?b=1&c=2.",
			wantHTML: `see <a href="https://example.com/a?b=1&amp;c=2" rel="nofollow noopener" target="_blank">https://example.com/a?b=1&amp;c=2</a>.`},
		{name: "www link", in: "www.example.org", wantHTMLSubstr: `href="http://www.example.org"`, wantText: "www.example.org"},
		{name: "newlines", in: "one\ntwo", wantText: "one\ntwo", wantHTML: "one<br>two"},
		{name: "blank", in: "  \n ", wantErrCode: api.InvalidArgument},
		{name: "control chars dropped", in: "a\x00b\x07c", wantText: "abc", wantHTML: "abc"},
		{name: "invalid utf8", in: "a\xffb", wantErrCode: api.InvalidArgument},
		{name: "too long", in: strings.Repeat("é", MaxText+1), wantErrCode: api.TooLarge},
		{name: "longest", in: strings.Repeat("é", MaxText), wantText: strings.Repeat("é", MaxText)},
		{name: "html formatting kept", html: true, in: "<b>bold</b> <i>it</i>", wantText: "bold it", wantHTML: "<b>bold</b> <i>it</i>"},
		{name: "html link", html: true, in: `<a href="https://x.example">x</a>`, wantText: "x",
			wantHTML: `<a href="https://x.example" rel="nofollow noopener" target="_blank">x</a>`},
		{name: "html mailto", html: true, in: `<a href="mailto:a@b.example">mail</a>`, wantText: "mail", wantHTMLSubstr: `href="mailto:a@b.example"`},
		{name: "html only script", html: true, in: "<script>alert(1)</script>", wantErrCode: api.InvalidArgument},
		{name: "html text of entities", html: true, in: "a &amp; b &lt;c&gt;", wantText: "a & b <c>", wantHTML: "a &amp; b &lt;c&gt;"},
		{name: "html paragraphs to lines", html: true, in: "<p>one</p><p>two</p>", wantText: "one\ntwo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Content
			var err error
			if tt.html {
				c, err = FromHTML(tt.in)
			} else {
				c, err = FromText(tt.in)
			}
			if tt.wantErrCode != "" {
				if !api.IsCode(err, tt.wantErrCode) {
					t.Fatalf("err = %v, want %s", err, tt.wantErrCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Text != tt.wantText {
				t.Errorf("text = %q, want %q", c.Text, tt.wantText)
			}
			if tt.wantHTML != "" && c.HTML != tt.wantHTML {
				t.Errorf("html = %q, want %q", c.HTML, tt.wantHTML)
			}
			if tt.wantHTMLSubstr != "" && !strings.Contains(c.HTML, tt.wantHTMLSubstr) {
				t.Errorf("html = %q, want it to contain %q", c.HTML, tt.wantHTMLSubstr)
			}
		})
	}
}

// FuzzContent checks the content pipeline on any input: it never panics,
// answers with a 4xx error or a message whose HTML has no dangerous markup
// and whose text fits the limit.
func FuzzContent(f *testing.F) {
	for _, v := range xssVectors {
		f.Add(v, true)
		f.Add(v, false)
	}
	f.Add("see https://example.com", false)
	f.Fuzz(func(t *testing.T, in string, asHTML bool) {
		var c Content
		var err error
		if asHTML {
			c, err = FromHTML(in)
		} else {
			c, err = FromText(in)
		}
		if err != nil {
			var e *api.Error
			if !asAPIError(err, &e) || e.Code.Status() >= 500 {
				t.Fatalf("error %v is not a client error", err)
			}
			return
		}
		if len([]rune(c.Text)) > MaxText || strings.TrimSpace(c.Text) == "" {
			t.Fatalf("text %q out of bounds", c.Text)
		}
		for _, re := range dangerous[1:] {
			if m := re.FindString(c.HTML); m != "" {
				t.Fatalf("html %q kept %q", c.HTML, m)
			}
		}
		if re := regexp.MustCompile(`(?i)<\s*(script|iframe|object|embed|form|style|svg|math|img)\b`); re.MatchString(c.HTML) {
			t.Fatalf("html %q kept a dangerous element", c.HTML)
		}
		// Sanitizing is idempotent: stored HTML re-sanitized is unchanged.
		if again := policy.Sanitize(c.HTML); again != c.HTML {
			t.Fatalf("sanitizing twice changes %q to %q", c.HTML, again)
		}
		// Text's shortcuts (no link expression without "http" or "www.",
		// no policy without markup) change nothing: the HTML is what the
		// expression and the policy make of the text.
		if !asHTML {
			clean, _ := cleanText(in)
			if want := policy.Sanitize(linkifyMatches(clean)); c.HTML != want {
				t.Fatalf("FromText(%q).HTML = %q, the expression and the policy give %q", in, c.HTML, want)
			}
		}
	})
}

// FuzzDecodeContent checks the JSON message body decoder.
func FuzzDecodeContent(f *testing.F) {
	f.Add([]byte(`{"text":"hi"}`))
	f.Add([]byte(`{"html":"<b>hi</b>"}`))
	f.Add([]byte(`{"text":"a","html":"b"}`))
	f.Add([]byte(`{"text":1}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"text":"x"} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := DecodeContent(b)
		if err != nil {
			var e *api.Error
			if !asAPIError(err, &e) || e.Code.Status() >= 500 {
				t.Fatalf("DecodeContent(%q): %v is not a client error", b, err)
			}
		}
	})
}

// linkTexts hold links in the forms urlRE finds, and near misses.
var linkTexts = []string{
	"see https://example.org/a.",
	"HTTP://EXAMPLE.ORG and Www.Example.Org/x?y=1",
	"httpx://nope and wwwx.nope and www-nope",
	"ends with http",
	"ends with www.",
	"no links at all, just words: whatever, httpd, www",
	"h",
	"",
}

// Messages without a link skip the regular expression; the HTML must be
// what the expression alone makes of them.
func TestLinkifyShortcutAgreesWithTheExpression(t *testing.T) {
	for _, text := range append(append([]string{}, linkTexts...), xssVectors...) {
		if urlRE.MatchString(text) && !mayLink(text) {
			t.Errorf("mayLink(%q) is false, but urlRE finds a link", text)
		}
		if got, want := linkify(text), linkifyMatches(text); got != want {
			t.Errorf("linkify(%q) = %q, want %q", text, got, want)
		}
	}
}

func BenchmarkFromText(b *testing.B) {
	for _, bc := range []struct{ name, text string }{
		{"plain", "lunch at noon? the usual place, the one by the river, and bring the notes from yesterday's meeting please"},
		{"link", "the notes from yesterday's meeting are at https://example.org/notes/2026-11-21 if you missed it"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := FromText(bc.text); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FromText's HTML is what the policy makes of the escaped text, whether or
// not the policy was run on it.
func TestPlainTextNeedsNoSanitizer(t *testing.T) {
	texts := append([]string{
		"plain words",
		`quotes ' and " and & and < and >`,
		"&amp;lt; &#x3C;script&#x3E; &lt;b&gt; &#0; &nbsp; &unknown;",
		"unicode: é ✓ 😀 \u00a0 \ufeff zero\u200bwidth",
		"tabs\tinside",
		"two\nlines",
		"a link https://example.org/?a=1&b=<2>",
	}, xssVectors...)
	for _, text := range texts {
		c, err := FromText(text)
		if err != nil {
			t.Fatalf("FromText(%q): %v", text, err)
		}
		clean, _ := cleanText(text)
		if want := policy.Sanitize(linkify(clean)); c.HTML != want {
			t.Errorf("FromText(%q).HTML = %q, the policy gives %q", text, c.HTML, want)
		}
	}
}
