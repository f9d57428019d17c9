package messages

import (
	"html"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/microcosm-cc/bluemonday"

	"chatd/api"
)

// MaxText is the longest message text, in characters.
const MaxText = 4000

// Content is a message body as it is stored: plain text, and HTML that is
// safe to insert into a page.
type Content struct {
	Text string
	HTML string
}

// policy admits harmless formatting and http(s)/mailto links only. Links
// get rel="nofollow noopener" and open in a new tab; everything else
// (scripts, event handlers, styles, frames, forms, images, other URL
// schemes) is removed.
var policy = func() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowElements("b", "strong", "i", "em", "u", "s", "del", "ins", "mark", "sub", "sup", "small",
		"code", "pre", "kbd", "samp", "br", "p", "blockquote", "ul", "ol", "li")
	p.AllowAttrs("href").OnElements("a")
	p.AllowURLSchemes("http", "https", "mailto")
	p.RequireParseableURLs(true)
	p.AllowRelativeURLs(false)
	p.RequireNoFollowOnLinks(true)
	p.RequireNoFollowOnFullyQualifiedLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	return p
}()

// stripAll removes every tag, for deriving plain text from HTML.
var stripAll = bluemonday.StrictPolicy()

// FromText turns plain text into a message: the text is kept (minus control
// characters), and its HTML is the escaped text with URLs made into links
// and line breaks kept. The HTML goes through the policy whenever it has
// markup, that is, links or line breaks. Without a single '<' it is
// escaped text and nothing else, which bluemonday would return unchanged
// (TestPlainTextNeedsNoSanitizer); it is then spared the parse, which cost
// a third of all the memory a post allocated.
func FromText(text string) (Content, error) {
	text, err := cleanText(text)
	if err != nil {
		return Content{}, err
	}
	h := linkify(text)
	if strings.IndexByte(h, '<') >= 0 {
		h = policy.Sanitize(h)
	}
	return Content{Text: text, HTML: h}, nil
}

// FromHTML sanitizes HTML into a message; its text is the HTML's text.
func FromHTML(raw string) (Content, error) {
	if !utf8.ValidString(raw) {
		return Content{}, api.Errorf(api.InvalidArgument, "the message is not valid UTF-8")
	}
	safe := strings.TrimSpace(policy.Sanitize(raw))
	text, err := cleanText(htmlText(safe))
	if err != nil {
		return Content{}, err
	}
	return Content{Text: text, HTML: safe}, nil
}

// blockEnd matches the tags after which plain text has a line break.
var blockEnd = regexp.MustCompile(`(?i)<br\s*/?>|</p>|</li>|</blockquote>|</pre>`)

// htmlText returns the text of sanitized HTML, with line breaks where
// blocks and <br> were.
func htmlText(safe string) string {
	s := blockEnd.ReplaceAllString(safe, "$0\n")
	return html.UnescapeString(stripAll.Sanitize(s))
}

// cleanText validates and normalises message text: valid UTF-8, no control
// characters but newline and tab, not blank, at most MaxText characters.
func cleanText(text string) (string, error) {
	if !utf8.ValidString(text) {
		return "", api.Errorf(api.InvalidArgument, "the message is not valid UTF-8")
	}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return -1
		}
		return r
	}, text)
	text = strings.TrimSpace(text)
	if text == "" {
		return "", api.Errorf(api.InvalidArgument, "the message is empty")
	}
	if n := utf8.RuneCountInString(text); n > MaxText {
		return "", api.Errorf(api.TooLarge, "the message has %d characters; the most is %d", n, MaxText)
	}
	return text, nil
}

// urlRE finds links in plain text: http(s) URLs and www. addresses, not
// counting trailing punctuation.
var urlRE = regexp.MustCompile(`(?i)\b(?:https?://|www\.)[^\s<>"'` + "`" + `]*[^\s<>"'` + "`" + `.,;:!?)\]}]`)

// linkify escapes text for HTML, turns URLs into links and newlines into
// <br>.
func linkify(text string) string {
	if !mayLink(text) {
		return escapeLines(text)
	}
	return linkifyMatches(text)
}

// linkifyMatches is linkify with the expression run over all of text.
func linkifyMatches(text string) string {
	var b strings.Builder
	last := 0
	for _, m := range urlRE.FindAllStringIndex(text, -1) {
		b.WriteString(escapeLines(text[last:m[0]]))
		u := text[m[0]:m[1]]
		href := u
		if !strings.Contains(strings.ToLower(u[:min(len(u), 8)]), "://") {
			href = "http://" + u
		}
		b.WriteString(`<a href="`)
		b.WriteString(html.EscapeString(href))
		b.WriteString(`">`)
		b.WriteString(html.EscapeString(u))
		b.WriteString(`</a>`)
		last = m[1]
	}
	b.WriteString(escapeLines(text[last:]))
	return b.String()
}

func escapeLines(s string) string {
	return strings.ReplaceAll(html.EscapeString(s), "\n", "<br>")
}

// mayLink reports whether text could hold a link that urlRE finds: every
// one starts with "http" or "www." in some mix of cases. Most messages
// have none, and this scan costs a small part of what the expression does
// to find that out.
func mayLink(text string) bool {
	for i := 0; i+4 <= len(text); i++ {
		switch text[i] | 0x20 { // ASCII lower case
		case 'h':
			if strings.EqualFold(text[i:i+4], "http") {
				return true
			}
		case 'w':
			if strings.EqualFold(text[i:i+4], "www.") {
				return true
			}
		}
	}
	return false
}
