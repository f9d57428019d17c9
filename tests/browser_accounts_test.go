package tests

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// apiErrorMessage returns the message of the error the API gives for a request.
func apiErrorMessage(t *testing.T, srv *server, method, path string, body any, status int) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	newClient(t, srv).must(status, method, path, body).JSON(t, &e)
	if e.Error.Message == "" {
		t.Fatalf("%s %s: no error message", method, path)
	}
	return e.Error.Message
}

// TestBrowserAccountPages: sign-up, sign-in and sign-out through the pages,
// with the server's own error messages shown when it refuses.
func TestBrowserAccountPages(t *testing.T) {
	srv := startServer(t)
	register(t, srv, "taken", browserPassword)
	c := startChrome(t)
	tb := c.newProfile(t, "zed").newTab("accounts")
	formError := `document.getElementById('form-error')`
	submit := chromedp.Click(chromedp.CSS(`#auth-form button[type=submit]`))

	tb.open(srv, "/")
	tb.waitJS("the anonymous chat to send us to the login page", 5*time.Second, `location.pathname === '/login'`)

	shortPw := apiErrorMessage(t, srv, "POST", "/api/register", map[string]string{"username": "zed", "password": "short"}, 400)
	tb.open(srv, "/register")
	tb.do("sign up with a short password",
		chromedp.SendKeys(chromedp.ID("username"), "zed"),
		chromedp.SendKeys(chromedp.ID("password"), "short"),
		chromedp.SendKeys(chromedp.ID("password2"), "short"),
		submit,
	)
	tb.waitJS("the server's message", 5*time.Second, formError+`.textContent === `+jsQuote(shortPw)+` && !`+formError+`.hidden`)

	taken := apiErrorMessage(t, srv, "POST", "/api/register", map[string]string{"username": "TAKEN", "password": browserPassword}, 409)
	tb.do("sign up with a taken name",
		jsAction(`document.getElementById('auth-form').reset()`),
		chromedp.SendKeys(chromedp.ID("username"), "TAKEN"),
		chromedp.SendKeys(chromedp.ID("password"), browserPassword),
		chromedp.SendKeys(chromedp.ID("password2"), browserPassword),
		submit,
	)
	tb.waitJS("the conflict message", 5*time.Second, formError+`.textContent === `+jsQuote(taken))

	tb.do("sign up properly",
		jsAction(`document.getElementById('auth-form').reset()`),
		chromedp.SendKeys(chromedp.ID("username"), "zed"),
		chromedp.SendKeys(chromedp.ID("password"), browserPassword),
		chromedp.SendKeys(chromedp.ID("password2"), browserPassword),
		submit,
	)
	tb.waitChat()

	tb.do("sign out", chromedp.Click(chromedp.ID("logout")))
	tb.waitJS("the login page", 5*time.Second, `location.pathname === '/login'`)
	wrong := apiErrorMessage(t, srv, "POST", "/api/login", map[string]string{"username": "zed", "password": "not the password"}, 401)
	tb.do("sign in with a wrong password",
		chromedp.SendKeys(chromedp.ID("username"), "zed"),
		chromedp.SendKeys(chromedp.ID("password"), "not the password"),
		submit,
	)
	tb.waitJS("the refusal", 5*time.Second, formError+`.textContent === `+jsQuote(wrong))
	if dir := os.Getenv("CHATD_SCREENSHOT_DIR"); dir != "" {
		png := pageRun(tb, chromedp.CaptureScreenshot())
		if err := os.WriteFile(filepath.Join(dir, "login-error.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tb.do("sign in", jsAction(`document.getElementById('password').value = ''`),
		chromedp.SendKeys(chromedp.ID("password"), browserPassword), submit)
	tb.waitChat()
}
