package tests

import (
	"database/sql"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
)

// sessionCookie returns the session cookie a response sets, failing the
// test when there is none.
func sessionCookie(t *testing.T, r *response) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == "chatd_session" {
			return c
		}
	}
	t.Fatalf("no chatd_session cookie set; headers %v", r.Header)
	return nil
}

// withCookie returns a client whose only credential is the session cookie
// value, as a thief or a planted cookie would have it.
func withCookie(t *testing.T, srv *server, value string) *client {
	t.Helper()
	c := newClient(t, srv)
	u, _ := url.Parse(srv.URL)
	c.http.Jar.SetCookies(u, []*http.Cookie{{Name: "chatd_session", Value: value, Path: "/"}})
	return c
}

func meName(t *testing.T, c *client) (int, string) {
	t.Helper()
	r := c.do("GET", "/api/me", nil)
	var me struct{ User struct{ Name string } }
	if r.Status == 200 {
		r.JSON(t, &me)
	}
	return r.Status, me.User.Name
}

// TestSessionCookieFlags: the session cookie that register and login set is
// HttpOnly, SameSite=Lax, for the whole site, lasts 30 days and carries no
// session id in the clear (the server stores only the id's hash, and the
// cookie is encrypted); logout clears it.
func TestSessionCookieFlags(t *testing.T) {
	srv := startServer(t)
	reg := newClient(t, srv).must(201, "POST", "/api/register", map[string]string{"username": "alice", "password": "password1"})
	log := newClient(t, srv).must(200, "POST", "/api/login", map[string]string{"username": "alice", "password": "password1"})
	for what, r := range map[string]*response{"register": reg, "login": log} {
		c := sessionCookie(t, r)
		raw := r.Header.Get("Set-Cookie")
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
			t.Errorf("%s: cookie %q: want HttpOnly, SameSite=Lax, Path=/", what, raw)
		}
		if c.Secure {
			t.Errorf("%s: cookie %q is Secure on plain HTTP, where browsers would drop it", what, raw)
		}
		if c.MaxAge < 29*24*3600 || c.MaxAge > 31*24*3600 {
			t.Errorf("%s: cookie lasts %d s, want 30 days", what, c.MaxAge)
		}
		if len(c.Value) < 100 {
			t.Errorf("%s: cookie value %q is too short to be a signed, encrypted session", what, c.Value)
		}
	}
	c := withCookie(t, srv, sessionCookie(t, log).Value)
	out := c.must(204, "POST", "/api/logout", nil)
	if k := sessionCookie(t, out); k.MaxAge >= 0 || k.Value != "" {
		t.Errorf("logout's cookie %q does not clear the session cookie", out.Header.Get("Set-Cookie"))
	}

	// Behind a TLS-terminating proxy the cookie is Secure, when chatd is
	// told to trust the proxy's X-Forwarded-Proto; without that, a client
	// cannot make it so.
	https := http.Header{"X-Forwarded-Proto": {"https"}}
	plain := newClient(t, srv)
	plain.Header = https
	if k := sessionCookie(t, plain.must(200, "POST", "/api/login", map[string]string{"username": "alice", "password": "password1"})); k.Secure {
		t.Errorf("X-Forwarded-Proto made the cookie Secure without -trust-proxy")
	}
	proxied := startServer(t, "CHATD_TRUST_PROXY=true")
	c = newClient(t, proxied)
	c.Header = https
	for _, r := range []*response{
		c.must(201, "POST", "/api/register", map[string]string{"username": "alice", "password": "password1"}),
		c.must(200, "POST", "/api/login", map[string]string{"username": "alice", "password": "password1"}),
	} {
		if k := sessionCookie(t, r); !k.Secure || !k.HttpOnly {
			t.Errorf("behind an HTTPS proxy the cookie is %q, want Secure and HttpOnly", r.Header.Get("Set-Cookie"))
		}
	}
}

// TestLoginIssuesANewSession: a cookie planted in a browser before its user
// signs in (an attacker's own session, or any value at all) is never the
// one in use afterwards: login sets a new session, and the planted one
// stays what it was.
func TestLoginIssuesANewSession(t *testing.T) {
	srv := startServer(t)
	register(t, srv, "alice", "password1")
	mallory := register(t, srv, "mallory", "password1")
	u, _ := url.Parse(srv.URL)
	planted := mallory.http.Jar.Cookies(u)[0].Value

	for _, seed := range []string{planted, "forged-value", strings.Repeat("A", 300)} {
		victim := withCookie(t, srv, seed)
		r := victim.must(200, "POST", "/api/login", map[string]string{"username": "alice", "password": "password1"})
		issued := sessionCookie(t, r).Value
		if issued == seed {
			t.Fatalf("login kept the planted cookie %.20q…", seed)
		}
		if s, who := meName(t, victim); s != 200 || who != "alice" {
			t.Errorf("after login the victim's browser is %d %q, want alice", s, who)
		}
		if s, who := meName(t, withCookie(t, srv, seed)); seed == planted && (s != 200 || who != "mallory") || seed != planted && s != 401 {
			t.Errorf("the planted cookie %.20q… after the victim's login is %d %q: it must not have become alice's", seed, s, who)
		}
	}
	// Two logins are two sessions: ending one leaves the other.
	a1 := login(t, srv, "alice", "password1")
	a2 := login(t, srv, "alice", "password1")
	if a1.http.Jar.Cookies(u)[0].Value == a2.http.Jar.Cookies(u)[0].Value {
		t.Fatal("two logins got the same cookie")
	}
	a1.must(204, "POST", "/api/logout", nil)
	a2.must(200, "GET", "/api/me", nil)
}

// TestLogoutRevokesAtOnce: after logout, a copy of the session's cookie
// (what a thief would hold) is refused on the very next request, and the
// session's pending long-poll ends at once.
func TestLogoutRevokesAtOnce(t *testing.T) {
	srv := startServer(t)
	alice := register(t, srv, "alice", "password1")
	u, _ := url.Parse(srv.URL)
	stolen := withCookie(t, srv, alice.http.Jar.Cookies(u)[0].Value)
	other := login(t, srv, "alice", "password1")
	cursor := alice.online()
	// Warm every cache the server may keep of the session.
	for range 3 {
		stolen.must(200, "GET", "/api/me", nil)
	}
	done := admPollAsync(stolen, cursor, 30*time.Second)
	waitPendingAtLeast(t, srv, 1)

	start := time.Now()
	alice.must(204, "POST", "/api/logout", nil)
	if s, _ := meName(t, stolen); s != 401 {
		t.Errorf("the session's cookie right after logout: %d, want 401", s)
	}
	if r := stolen.do("GET", "/api/events?wait=0", nil); r.Status != 401 {
		t.Errorf("a poll with the session's cookie after logout: %d, want 401", r.Status)
	}
	if r := stolen.do("POST", "/api/rooms/lobby/messages", "still here?"); r.Status != 401 {
		t.Errorf("a post with the session's cookie after logout: %d, want 401", r.Status)
	}
	select {
	case res := <-done:
		if res.Status != 200 && res.Status != 401 {
			t.Errorf("the pending poll ended with %d", res.Status)
		}
		t.Logf("the pending poll ended %v after logout with %d", res.At.Sub(start).Round(time.Millisecond), res.Status)
	case <-time.After(5 * time.Second):
		t.Fatal("the session's pending poll still waits 5 s after logout")
	}
	other.must(200, "GET", "/api/me", nil)
}

// TestBanAndDemotionTakeEffectAtOnce: a banned bot's token is refused on
// the next request and its pending poll ends; unbanning does not bring
// revoked credentials back. A demoted admin loses the admin API on their
// next request. (A banned person's sessions: TestAdminBanEndsPollAndSessions.)
func TestBanAndDemotionTakeEffectAtOnce(t *testing.T) {
	srv := startServer(t)
	root := register(t, srv, "root", "password1")
	ada := register(t, srv, "ada", "password1")
	root.must(204, "POST", "/api/admin/users/ada/role", map[string]string{"role": "admin"})
	ada.must(200, "GET", "/api/admin/users", nil)
	bot := admCreateBot(t, root, "helper")
	cursor := bot.online()
	for range 3 {
		bot.must(200, "GET", "/api/me", nil)
	}
	done := admPollAsync(bot, cursor, 30*time.Second)
	waitPendingAtLeast(t, srv, 1)
	root.must(204, "POST", "/api/admin/users/helper/ban", nil)
	if r := bot.do("GET", "/api/me", nil); r.Status != 401 {
		t.Errorf("a banned bot's token: %d, want 401", r.Status)
	}
	select {
	case res := <-done:
		if res.Status == 200 && len(res.Events) == 0 {
			t.Errorf("the banned bot's poll ended as if nothing happened")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the banned bot's poll still waits 5 s after the ban")
	}
	root.must(204, "POST", "/api/admin/users/helper/unban", nil)
	if r := bot.do("GET", "/api/me", nil); r.Status != 401 {
		t.Errorf("the bot's old token after unban: %d, want 401 (a ban revokes tokens for good)", r.Status)
	}

	root.must(204, "POST", "/api/admin/users/ada/role", map[string]string{"role": "user"})
	if r := ada.do("GET", "/api/admin/users", nil); r.Status != 403 {
		t.Errorf("a demoted admin's next admin call: %d, want 403", r.Status)
	}
	if s, _ := meName(t, ada); s != 200 {
		t.Errorf("a demoted admin is still signed in: %d", s)
	}
}

// TestSessionsAndTokensSurviveRestarts: a browser session and a bot token
// keep working after a clean restart and after kill -9, because the
// sessions, token hashes and cookie keys are in the database.
func TestSessionsAndTokensSurviveRestarts(t *testing.T) {
	srv := startServer(t)
	root := register(t, srv, "root", "password1")
	bot := admCreateBot(t, root, "helper")
	for _, restart := range []struct {
		name string
		do   func()
	}{
		{"SIGTERM", func() { srv.Restart(t) }},
		{"kill -9", func() { srv.Kill(t); srv.Start(t) }},
	} {
		restart.do()
		if s, who := meName(t, root); s != 200 || who != "root" {
			t.Errorf("the session after %s: %d %q", restart.name, s, who)
		}
		if s, who := meName(t, bot); s != 200 || who != "helper" {
			t.Errorf("the bot token after %s: %d %q", restart.name, s, who)
		}
	}
}

// cookieKeyPairs reads the session cookie key pairs from the database,
// newest first, as codecs that decode cookies.
func cookieKeyPairs(t *testing.T, path string) []securecookie.Codec {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT value FROM secrets WHERE name LIKE 'cookie-%' ORDER BY created_at DESC, name DESC")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var codecs []securecookie.Codec
	for rows.Next() {
		var v []byte
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		codecs = append(codecs, securecookie.CodecsFromPairs(v[:64], v[64:])...)
	}
	return codecs
}

// decodesWith reports whether the cookie value decodes with the codec.
func decodesWith(value string, c securecookie.Codec) bool {
	var vals map[any]any
	return c.Decode("chatd_session", value, &vals) == nil
}

func keysRotate(t *testing.T, srv *server, args ...string) string {
	t.Helper()
	out, err := exec.Command(binary, append([]string{"keys", "rotate", "-db", srv.DB}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("chatd keys rotate %v: %v: %s", args, err, out)
	}
	return string(out)
}

// TestCookieKeyRotation follows the documented rotation (docs/SECURITY.md):
// "chatd keys rotate" while the server runs, then a restart. Cookies made
// before keep working; new ones are made with the new pair only. "chatd
// keys rotate -retire" and a restart end every browser session: cookies
// made with any older pair are refused; bot tokens carry on.
func TestCookieKeyRotation(t *testing.T) {
	srv := startServer(t)
	root := register(t, srv, "root", "password1")
	bot := admCreateBot(t, root, "helper")
	u, _ := url.Parse(srv.URL)
	before := root.http.Jar.Cookies(u)[0].Value

	t.Log(strings.TrimSpace(keysRotate(t, srv)))
	srv.Restart(t)
	if s, _ := meName(t, root); s != 200 {
		t.Fatalf("a cookie from before the rotation: %d, want 200", s)
	}
	after := login(t, srv, "root", "password1").http.Jar.Cookies(u)[0].Value
	keys := cookieKeyPairs(t, srv.DB)
	if len(keys) != 2 {
		t.Fatalf("%d cookie key pairs after one rotation, want 2", len(keys))
	}
	if !decodesWith(after, keys[0]) || decodesWith(after, keys[1]) {
		t.Errorf("a new cookie does not use the new key pair (only)")
	}
	if decodesWith(before, keys[0]) || !decodesWith(before, keys[1]) {
		t.Errorf("the old cookie is not made with the old key pair (only)")
	}

	out := keysRotate(t, srv, "-retire")
	t.Log(strings.TrimSpace(out))
	if !strings.Contains(out, "2 browser sessions ended") {
		t.Errorf("retiring keys said %q, want 2 sessions ended", out)
	}
	srv.Restart(t)
	for name, value := range map[string]string{"from before the first rotation": before, "from after it": after} {
		if s, _ := meName(t, withCookie(t, srv, value)); s != 401 {
			t.Errorf("a cookie %s, after -retire: %d, want 401", name, s)
		}
	}
	if keys := cookieKeyPairs(t, srv.DB); len(keys) != 1 {
		t.Errorf("%d key pairs after -retire, want 1", len(keys))
	}
	login(t, srv, "root", "password1").must(200, "GET", "/api/me", nil)
	bot.must(200, "GET", "/api/me", nil)
}
