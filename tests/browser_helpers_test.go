package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's Chromium, which CI installs.
const chromiumPath = "/usr/bin/chromium"

// chromium is one headless Chromium process for one test.
type chromium struct {
	ctx context.Context
}

// startChrome starts Chromium with a fresh profile. Without Chromium the test
// is skipped, unless CHATD_BROWSER=required (as in CI), where it fails.
func startChrome(t *testing.T) *chromium {
	t.Helper()
	path := chromiumPath
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("CHATD_BROWSER") == "required" {
			t.Fatalf("Chromium is required (CHATD_BROWSER=required) but %s is missing: %v", path, err)
		}
		t.Skipf("no Chromium at %s; install it (apt-get install chromium) to run the browser tests", path)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Tabs that are not in front must keep their timers running: the
		// tests watch several tabs of one browser at once.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("starting Chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return &chromium{ctx: ctx}
}

// browserProfile is one isolated browser context: its own cookies, storage and
// shared workers. To the server it is one browser.
type browserProfile struct {
	t    *testing.T
	name string
	ctx  context.Context
	// noSharedWorker makes every page of the profile run without
	// SharedWorker, as in browsers that lack it.
	noSharedWorker bool
}

// newProfile makes an isolated browser context. Its own first target stays
// on about:blank so that any tab of the profile can be closed alone.
func (c *chromium) newProfile(t *testing.T, name string) *browserProfile {
	t.Helper()
	ctx, cancel := chromedp.NewContext(c.ctx, chromedp.WithNewBrowserContext())
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("profile %s: %v", name, err)
	}
	t.Cleanup(cancel)
	return &browserProfile{t: t, name: name, ctx: ctx}
}

// browserTab is one page of a profile. Its helpers fail the test they are bound
// to; in a subtest, bind the tab to the subtest with in.
type browserTab struct {
	t      *testing.T
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	errs   *pageErrors
}

// pageErrors collects the uncaught exceptions of a tab's pages.
type pageErrors struct {
	mu   sync.Mutex
	list []string
}

// in returns the tab bound to t (a subtest).
func (tb *browserTab) in(t *testing.T) *browserTab {
	c := *tb
	c.t = t
	return &c
}

// newTab opens a tab in the profile. Uncaught exceptions of its pages fail
// the test: they are bugs of the client.
func (p *browserProfile) newTab(name string) *browserTab {
	t := p.t
	t.Helper()
	ctx, cancel := chromedp.NewContext(p.ctx)
	tb := &browserTab{t: t, name: p.name + "/" + name, ctx: ctx, cancel: cancel, errs: &pageErrors{}}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	console := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			msg := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
			tb.errs.mu.Lock()
			tb.errs.list = append(tb.errs.list, msg)
			tb.errs.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range console {
			if err != nil {
				return
			}
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var parts []string
				for _, a := range ev.Args {
					if a.Description != "" {
						parts = append(parts, a.Description)
					} else {
						parts = append(parts, string(a.Value))
					}
				}
				t.Logf("%s console.%s: %s", tb.name, ev.Type, strings.Join(parts, " "))
			}
		}
	}()
	if p.noSharedWorker {
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: "delete window.SharedWorker;",
		})
		if err != nil {
			t.Fatalf("%s: hiding SharedWorker: %v", tb.name, err)
		}
	}
	t.Cleanup(func() {
		tb.close()
		tb.errs.mu.Lock()
		defer tb.errs.mu.Unlock()
		for _, e := range tb.errs.list {
			t.Errorf("%s: uncaught exception in the page: %s", tb.name, e)
		}
	})
	return tb
}

// close closes the tab as a user would.
func (tb *browserTab) close() {
	tb.cancel()
}

// do runs actions in the tab, failing the test on error.
func (tb *browserTab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
}

// pageEval evaluates a JavaScript expression in the tab and decodes its value.
func pageEval[T any](tb *browserTab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, func(p *runtime.EvaluateParams) { p.AwaitPromise = new(true) }))
	if err != nil {
		tb.t.Fatalf("%s: evaluating %s: %v", tb.name, expr, err)
	}
	return v
}

// waitJS waits until the expression is truthy in the tab, polling every
// 20 ms, and fails the test after within.
func (tb *browserTab) waitJS(what string, within time.Duration, expr string) {
	tb.t.Helper()
	if err := tb.tryWaitJS(within, expr); err != nil {
		tb.t.Fatalf("%s: waiting %v for %s: %v\n%s", tb.name, within, what, err, tb.describe())
	}
}

func (tb *browserTab) tryWaitJS(within time.Duration, expr string) error {
	deadline := time.Now().Add(within)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return chromedp.ErrPollingTimeout
		}
		ctx, cancel := context.WithTimeout(tb.ctx, left+5*time.Second)
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(left)))
		cancel()
		if err == nil || !navigating(err) {
			return err
		}
		// The page navigated under the poll: poll the new page, after a
		// moment for it to have a document.
		timer := time.NewTimer(20 * time.Millisecond)
		select {
		case <-tb.ctx.Done():
			timer.Stop()
			return tb.ctx.Err()
		case <-timer.C:
		}
	}
}

// navigating reports whether err says the page went away under an action.
func navigating(err error) bool {
	s := err.Error()
	return strings.Contains(s, "navigated or closed") || strings.Contains(s, "Cannot find context") ||
		strings.Contains(s, "Execution context was destroyed")
}

// describe tells what the tab shows, for failure messages.
func (tb *browserTab) describe() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const q = (s) => document.querySelector(s);
		const texts = (s) => [...document.querySelectorAll(s)].map((n) => n.innerText.trim().replace(/\s+/g, ' '));
		return JSON.stringify({
			url: location.href,
			title: document.title,
			conn: q('#conn-status') && (q('#conn-status').dataset.state + ' ' + q('#conn-status').dataset.mode),
			room: q('#room-title') && q('#room-title').textContent,
			rooms: texts('#sidebar button[data-room]'),
			messages: texts('#message-list > li').slice(-12),
			members: [...document.querySelectorAll('#member-list li')].map((li) => li.dataset.user + ':' + li.dataset.status),
			error: q('#form-error') && q('#form-error').textContent,
		}, null, 1);
	})()`))
	if err != nil {
		return "(page state unavailable: " + err.Error() + ")"
	}
	return s
}

// jsQuote quotes a Go string as a JavaScript string literal.
func jsQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// open navigates the tab to a path of the server.
func (tb *browserTab) open(srv *server, path string) {
	tb.t.Helper()
	tb.do("open "+path, chromedp.Navigate(srv.URL+path))
}

// signIn signs in through the login page and waits for the chat to connect.
func (tb *browserTab) signIn(srv *server, name, password string) {
	tb.t.Helper()
	tb.open(srv, "/login")
	tb.do("fill the login form",
		chromedp.SendKeys(chromedp.ID("username"), name),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS(`#auth-form button[type=submit]`)),
	)
	tb.waitChat()
}

// waitChat waits until the chat page is connected and shows a room.
func (tb *browserTab) waitChat() {
	tb.t.Helper()
	tb.waitJS("the chat to connect", 15*time.Second,
		`location.pathname === '/' && document.querySelector('#conn-status')?.dataset.state === 'connected'
		 && document.querySelector('#sidebar button[aria-current=page]') !== null`)
}

// pressEnter presses Enter in the focused element as a keyboard does: a keydown
// that carries the text, so that a handler's preventDefault stops the line
// break. (kb.Enter sends a separate char event, which no handler can stop.)
func pressEnter(modifiers ...chromedp.Modifier) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		var mods int64
		for _, m := range modifiers {
			mods |= int64(m)
		}
		down := input.DispatchKeyEventParams{
			Type: input.DispatchKeyEventTypeKeyDown, Key: "Enter", Code: "Enter", Text: "\r", UnmodifiedText: "\r",
			WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13, Modifiers: mods,
		}
		if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, down); err != nil {
			return err
		}
		up := down
		up.Type, up.Text, up.UnmodifiedText = input.DispatchKeyEventTypeKeyUp, "", ""
		_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, up)
		return err
	})
}

// typeText puts text in the composer as typing would (input events).
func (tb *browserTab) typeText(text string) {
	tb.t.Helper()
	tb.do("type "+text,
		chromedp.Evaluate[chromedp.Void](`document.getElementById('composer-input').focus()`),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
			return err
		}),
	)
}

// say types text into the composer and presses Enter.
func (tb *browserTab) say(text string) {
	tb.t.Helper()
	tb.typeText(text)
	tb.do("press Enter", pressEnter())
}

// shownMessageCount counts the shown messages whose text contains s.
func shownMessageCount(tb *browserTab, s string) int {
	tb.t.Helper()
	return pageEval[int](tb, fmt.Sprintf(`[...document.querySelectorAll('#message-list li.message .message-body')]
		.filter((n) => n.textContent.includes(%s)).length`, jsQuote(s)))
}

// waitMessage waits until a message containing s is shown.
func (tb *browserTab) waitMessage(s string, within time.Duration) {
	tb.t.Helper()
	tb.waitJS("a message with "+s, within, fmt.Sprintf(`[...document.querySelectorAll('#message-list li.message .message-body')]
		.some((n) => n.textContent.includes(%s))`, jsQuote(s)))
}

// memberStatusExpr is an expression: the member list marks user with status.
func memberStatusExpr(user, status string) string {
	return fmt.Sprintf(`document.querySelector('#member-list li[data-user=%s]')?.dataset.status === %s`, jsQuote(user), jsQuote(status))
}

// pageRun runs one action that returns a value in the tab.
func pageRun[T any](tb *browserTab, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("%s: %v", tb.name, err)
	}
	return v
}

// jsAction is an action that evaluates JavaScript for its effect.
func jsAction(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](expr)
}

// jsQuoteAll quotes Go strings as a JavaScript array literal.
func jsQuoteAll(ss []string) string {
	b, _ := json.Marshal(ss)
	return string(b)
}
