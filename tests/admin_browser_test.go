package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestAdminBrowserBan: an admin bans a user from the admin page while the
// user's chat is open in another browser. The user's page leaves the chat
// for the sign-in page within seconds, and signing in there says the
// account is banned. Then the admin makes a bot on the page: its token is
// shown once, works, and is gone on reload.
func TestAdminBrowserBan(t *testing.T) {
	srv := startServer(t)
	const password = "correct horse battery"
	adaAPI := register(t, srv, "ada", password)
	register(t, srv, "bob", password)
	c := startChrome(t)
	ada := c.newProfile(t, "ada").newTab("admin")
	bob := c.newProfile(t, "bob").newTab("chat")

	ada.signIn(srv, "ada", password)
	ada.open(srv, "/admin")
	ada.waitJS("bob on the admin page", 5*time.Second, `document.querySelector('tr[data-user="bob"] button.ban') !== null`)
	bob.signIn(srv, "bob", password)
	eventually(t, "bob's chat to poll", 10*time.Second, func() bool { polls, _ := userPolls(t, adaAPI, "bob"); return polls == 1 })
	// The page was loaded before bob came: his client shows up when the
	// clients table refreshes itself.
	ada.waitJS("bob's live client listed", 10*time.Second,
		`[...document.querySelectorAll('#clients-table tr[data-user="bob"] td')].some((td) => td.textContent.trim() === '1')`)
	admSaveScreenshot(t, ada, "admin-page.png")

	start := time.Now()
	ada.do("ban bob", chromedp.Click(chromedp.CSS(`tr[data-user="bob"] button.ban`)))
	bob.waitJS("bob's page to go to the sign-in page and say why", 5*time.Second,
		`location.pathname === '/login' && /banned/.test(document.querySelector('.auth-card')?.textContent || '')`)
	t.Logf("bob's chat was on the sign-in page %v after the click (the click, the form's post and the redirect included)", time.Since(start).Round(time.Millisecond))
	ada.waitJS("the page to confirm the ban", 5*time.Second, `location.pathname === '/admin'
		&& document.querySelector('.admin-notice')?.textContent.includes('bob is banned')
		&& document.querySelector('tr[data-user="bob"]')?.classList.contains('is-banned')
		&& document.querySelector('tr[data-user="bob"] button.unban') !== null`)

	bob.waitJS("the sign-in form", 5*time.Second, `document.getElementById('auth-form') !== null`)
	bob.do("sign in again",
		chromedp.SendKeys(chromedp.ID("username"), "bob"),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS(`#auth-form button[type=submit]`)),
	)
	bob.waitJS("the form to say bob is banned", 5*time.Second,
		`location.pathname === '/login' && /banned/.test(document.getElementById('form-error')?.textContent || '')`)
	if r := adaAPI.do("GET", "/api/admin/audit?limit=1", nil); !strings.Contains(string(r.Body), `"action":"user.ban","target":"bob"`) {
		t.Errorf("the audit log's newest entry is not the ban: %s", r.Body)
	}

	t.Run("a bot's token is shown once", func(t *testing.T) {
		ada := ada.in(t)
		ada.do("create a bot",
			chromedp.SendKeys(chromedp.ID("bot-name"), "webbot"),
			chromedp.Click(chromedp.CSS(`#bots form.admin-create button[type=submit]`)),
		)
		ada.waitJS("the new token", 5*time.Second, `(document.getElementById('new-token')?.textContent || '').startsWith('chatd_')`)
		token := pageEval[string](ada, `document.getElementById('new-token').textContent`)
		bot := newClient(t, srv)
		bot.Token = token
		bot.must(201, "POST", "/api/rooms/lobby/messages", "made on the admin page")
		ada.open(srv, "/admin")
		ada.waitJS("the reloaded page", 5*time.Second, `document.querySelector('tr[data-bot="webbot"]') !== null`)
		if pageEval[bool](ada, `document.getElementById('new-token') !== null`) {
			t.Error("the token is shown again after a reload")
		}
	})
}

// admSaveScreenshot saves what the tab shows to $CHATD_SCREENSHOT_DIR, when
// set, for people to look at.
func admSaveScreenshot(t *testing.T, tb *browserTab, name string) {
	dir := os.Getenv("CHATD_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	png := pageRun(tb, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
