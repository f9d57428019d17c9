package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const browserPassword = "correct horse battery"

// TestBrowserTwoUsersChat: two people in two browsers chat in the lobby.
// Each message reaches the other browser within a second, and the member
// list follows the other's sign-out and sign-in.
func TestBrowserTwoUsersChat(t *testing.T) {
	srv := startServer(t)
	register(t, srv, "alice", browserPassword)
	register(t, srv, "bob", browserPassword)
	c := startChrome(t)
	alice := c.newProfile(t, "alice").newTab("chat")
	bobProfile := c.newProfile(t, "bob")
	bob := bobProfile.newTab("chat")

	alice.signIn(srv, "alice", browserPassword)
	bob.signIn(srv, "bob", browserPassword)
	alice.waitJS("bob online in alice's member list", 5*time.Second, memberStatusExpr("bob", "online"))

	t.Run("message reaches the other browser within a second", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		for i, pair := range []struct{ from, to *browserTab }{{alice, bob}, {bob, alice}, {alice, bob}} {
			text := fmt.Sprintf("hello number %d from %s", i, pair.from.name)
			pair.from.typeText(text)
			start := time.Now()
			pair.from.do("send", pressEnter())
			pair.to.waitMessage(text, time.Second)
			t.Logf("%q reached %s in %v", text, pair.to.name, time.Since(start).Round(time.Millisecond))
			pair.from.waitMessage(text, time.Second)
			if n := shownMessageCount(pair.to, text); n != 1 {
				t.Errorf("%s shows %q %d times", pair.to.name, text, n)
			}
		}
	})

	t.Run("presence follows sign-out and sign-in", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		bob.do("sign out", chromedp.Click(chromedp.ID("logout")))
		bob.waitJS("the login page", 5*time.Second, `location.pathname === '/login'`)
		alice.waitJS("bob offline", 5*time.Second, memberStatusExpr("bob", "offline"))
		bob.signIn(srv, "bob", browserPassword)
		alice.waitJS("bob online again", 5*time.Second, memberStatusExpr("bob", "online"))
		bob.say("/away")
		alice.waitJS("bob away", 5*time.Second, memberStatusExpr("bob", "away"))
		bob.say("/back")
		alice.waitJS("bob back", 5*time.Second, memberStatusExpr("bob", "online"))
	})

	t.Run("composer keys", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		alice.typeText("first line")
		alice.do("Shift+Enter", pressEnter(chromedp.ModifierShift))
		alice.typeText("second line")
		if v := pageEval[string](alice, `document.getElementById('composer-input').value`); v != "first line\nsecond line" {
			t.Fatalf("Shift+Enter: composer holds %q", v)
		}
		alice.do("send", pressEnter())
		bob.waitJS("the two-line message", 2*time.Second, `[...document.querySelectorAll('#message-list .message-body')]
			.some((n) => n.innerHTML.includes('first line<br>second line'))`)
	})
}
