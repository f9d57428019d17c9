package tests

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// TestBrowserScreenshots saves the chat page in light and dark, at laptop and
// phone size. They go to $CHATD_SCREENSHOT_DIR, or the test's artifact
// directory (kept with go test -artifacts). With CHATD_SCREENSHOTS=docs the
// light laptop one also replaces docs/screenshot-chat.png.
func TestBrowserScreenshots(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv, "alice", browserPassword)
	bob := register(t, srv, "bob", browserPassword)
	carol := register(t, srv, "carol", browserPassword)
	register(t, srv, "dave", browserPassword)
	alice.must(200, "PATCH", "/api/rooms/lobby", map[string]string{"topic": "Everyone is here · be kind, stay curious"})
	alice.must(201, "POST", "/api/rooms", map[string]any{"name": "release-2-0", "topic": "Shipping on Friday", "private": false})
	alice.must(201, "POST", "/api/rooms", map[string]any{"name": "design", "topic": "", "private": false})
	bob.must(200, "POST", "/api/rooms/release-2-0/join", nil)
	bob.poll(-1, 0) // bob comes online
	carol.poll(-1, 0)
	carol.must(204, "POST", "/api/presence", map[string]string{"status": "away"})

	bob.post("lobby", "Morning all! The new build is up at https://example.com/builds/2.0-rc1")
	carol.post("lobby", "Nice. Release notes draft is in the usual place.")
	bob.post("lobby", "@alice could you look at the migration step before we tag it?")
	alice.post("lobby", "On it, give me ten minutes.")
	alice.post("lobby", "/me pours another coffee")
	carol.must(201, "POST", "/api/rooms/lobby/messages", map[string]string{
		"html": "Checklist:<ul><li><b>schema</b> migrated</li><li>backups <code>verified</code></li><li><i>announce</i> on Friday</li></ul>",
	})
	bob.must(201, "POST", "/api/users/alice/messages", map[string]string{"text": "Lunch after the release?"})

	dir := os.Getenv("CHATD_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.ArtifactDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	c := startChrome(t)
	tb := c.newProfile(t, "alice").newTab("chat")
	tb.signIn(srv, "alice", browserPassword)
	tb.waitMessage("pours another coffee", 5*time.Second)
	tb.waitJS("bob online", 5*time.Second, memberStatusExpr("bob", "online"))
	// News elsewhere, so the sidebar shows unread counts.
	bob.post("release-2-0", "Tagging at 16:00 unless someone shouts.")
	bob.post("release-2-0", "@alice the changelog needs your sign-off")
	bob.must(201, "POST", "/api/users/alice/messages", map[string]string{"text": "Pizza?"})
	tb.waitJS("the unread counts", 5*time.Second, `document.querySelector('#room-list button[data-room="release-2-0"]')?.dataset.unread === '2'
		&& document.querySelector('#dm-list button[data-unread="1"]') !== null`)
	tb.typeText("Looks good to me, @bob")

	shots := []struct {
		name          string
		scheme        string
		width, height int64
		phone         bool
	}{
		{"chat-light-desktop.png", "light", 1280, 800, false},
		{"chat-dark-desktop.png", "dark", 1280, 800, false},
		{"chat-light-phone.png", "light", 390, 844, true},
		{"chat-dark-phone.png", "dark", 390, 844, true},
	}
	save := func(name string, png []byte) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved %s (%d bytes)", path, len(png))
	}
	for _, s := range shots {
		var opts []chromedp.EmulateViewportOption
		if s.phone {
			opts = append(opts, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
		}
		tb.do("emulate "+s.name,
			chromedp.EmulateViewport(s.width, s.height, opts...),
			chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
					Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: s.scheme}},
				})
				return err
			}),
		)
		// Two animation frames: the new layout and colours are painted.
		tb.waitJS("a repaint", 5*time.Second, `new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`)
		dark := pageEval[bool](tb, `matchMedia('(prefers-color-scheme: dark)').matches`)
		if dark != (s.scheme == "dark") {
			t.Fatalf("%s: the page does not see the emulated colour scheme", s.name)
		}
		png := pageRun(tb, chromedp.CaptureScreenshot())
		save(s.name, png)
		if s.name == "chat-light-desktop.png" && os.Getenv("CHATD_SCREENSHOTS") == "docs" {
			doc := filepath.Join("..", "docs", "screenshot-chat.png")
			if err := os.MkdirAll(filepath.Dir(doc), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(doc, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("updated %s", doc)
		}
	}

	// On a phone the room list is a drawer behind the menu button.
	tb.do("open the rooms drawer", chromedp.Click(chromedp.ID("toggle-sidebar")))
	tb.waitJS("the drawer open", 5*time.Second, `document.getElementById('toggle-sidebar').getAttribute('aria-expanded') === 'true'
		&& getComputedStyle(document.getElementById('sidebar')).visibility === 'visible'
		&& document.getElementById('sidebar').getBoundingClientRect().left >= 0`)
	save("chat-dark-phone-rooms.png", pageRun(tb, chromedp.CaptureScreenshot()))
	tb.do("pick a room", chromedp.Click(chromedp.CSS(`#room-list button[data-room="release-2-0"]`)))
	tb.waitJS("the drawer closed on the new room", 5*time.Second, `document.getElementById('room-title').textContent === '#release-2-0'
		&& document.getElementById('toggle-sidebar').getAttribute('aria-expanded') === 'false'`)
}
