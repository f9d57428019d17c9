package tests

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAdminBanEndsPollAndSessions: bob is signed in twice and waiting in a
// long poll when ada bans him. The poll ends within a second, both of his
// sessions stop working at once, he cannot sign in again, and the people
// who share a room with him see the banned event.
func TestAdminBanEndsPollAndSessions(t *testing.T) {
	srv := startServer(t)
	ada := register(t, srv, "ada", "password1")
	bob := register(t, srv, "bob", "password1")
	bobPhone := login(t, srv, "bob", "password1")
	carol := register(t, srv, "carol", "password1")
	carolCursor := carol.online()

	cursor := bob.online()
	done := admPollAsync(bob, cursor, 30*time.Second)
	eventually(t, "bob's poll to be pending", 5*time.Second, func() bool { polls, _ := userPolls(t, ada, "bob"); return polls == 1 })

	start := time.Now()
	ada.must(204, "POST", "/api/admin/users/bob/ban", nil)
	select {
	case res := <-done:
		took := res.At.Sub(start)
		t.Logf("bob's pending poll ended %v after the ban was sent: status %d, events %+v", took.Round(time.Millisecond), res.Status, res.Events)
		switch {
		case res.Err != nil:
			t.Fatalf("bob's poll: %v", res.Err)
		case res.Status == http.StatusUnauthorized:
		case res.Status == http.StatusOK && slices.ContainsFunc(res.Events, func(e event) bool { return e.Type == "banned" && e.User == "bob" }):
			// The ban's event woke the poll before the poll was ended: the
			// client learns of the ban from the event itself.
		default:
			t.Fatalf("bob's poll ended with %d %+v; want 401, or the banned event", res.Status, res.Events)
		}
		if took > time.Second {
			t.Errorf("bob's poll ended %v after the ban, want within a second", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("bob's pending poll was still waiting 5 s after the ban")
	}

	for _, c := range []*client{bob, bobPhone} {
		if r := c.do("GET", "/api/me", nil); r.Status != 401 {
			t.Errorf("a session of bob after the ban: %d, want 401", r.Status)
		}
		if r := c.do("GET", "/api/events?wait=0", nil); r.Status != 401 {
			t.Errorf("a poll of bob after the ban: %d, want 401", r.Status)
		}
	}
	r := newClient(t, srv).do("POST", "/api/login", map[string]string{"username": "bob", "password": "password1"})
	if r.Status != 403 || !strings.Contains(string(r.Body), "banned") {
		t.Errorf("bob signing in after the ban: %d %s, want 403 saying banned", r.Status, r.Body)
	}
	carol.waitFor(&carolCursor, 5*time.Second, func(e event) bool { return e.Type == "banned" && e.User == "bob" })
	if n, _ := userPolls(t, ada, "bob"); n != 0 {
		t.Errorf("bob still has %d pending polls", n)
	}

	t.Run("an unbanned user signs in again; old sessions stay dead", func(t *testing.T) {
		ada.must(204, "POST", "/api/admin/users/bob/unban", nil)
		if r := bob.do("GET", "/api/me", nil); r.Status != 401 {
			t.Errorf("bob's old session after the unban: %d, want 401", r.Status)
		}
		login(t, srv, "bob", "password1").must(200, "GET", "/api/me", nil)
	})

	t.Run("admins cannot ban themselves or remove the last admin", func(t *testing.T) {
		if r := ada.do("POST", "/api/admin/users/ada/ban", nil); r.Status != 400 {
			t.Errorf("ada banning herself: %d, want 400", r.Status)
		}
		if r := ada.do("POST", "/api/admin/users/ada/role", map[string]string{"role": "user"}); r.Status != 409 {
			t.Errorf("the last admin stepping down: %d %s, want 409", r.Status, r.Body)
		}
		ada.must(204, "POST", "/api/admin/users/carol/role", map[string]string{"role": "admin"})
		ada.must(204, "POST", "/api/admin/users/ada/role", map[string]string{"role": "user"})
		if r := ada.do("GET", "/api/admin/users", nil); r.Status != 403 {
			t.Errorf("ada after stepping down: %d, want 403", r.Status)
		}
		if r := carol.do("POST", "/api/admin/users/carol/role", map[string]string{"role": "user"}); r.Status != 409 {
			t.Errorf("carol, now the last admin, stepping down: %d, want 409", r.Status)
		}
		if r := carol.do("POST", "/api/admin/bots", map[string]string{"name": "x"}); r.Status != 201 {
			t.Errorf("carol creating a bot: %d", r.Status)
		}
		if r := carol.do("POST", "/api/admin/users/x/role", map[string]string{"role": "admin"}); r.Status != 400 {
			t.Errorf("making a bot an admin: %d, want 400", r.Status)
		}
	})
}

// TestAdminRevokedBotTokenGets401: a bot's token stops working the moment
// an admin revokes it, and the bot's pending poll ends. A new token works;
// the old one stays dead.
func TestAdminRevokedBotTokenGets401(t *testing.T) {
	srv := startServer(t)
	ada := register(t, srv, "ada", "password1")
	bot := admCreateBot(t, ada, "helper")
	bot.must(201, "POST", "/api/rooms/lobby/messages", "hello from a bot")

	cursor := bot.online()
	done := admPollAsync(bot, cursor, 30*time.Second)
	eventually(t, "the bot's poll to be pending", 5*time.Second, func() bool { polls, _ := userPolls(t, ada, "helper"); return polls == 1 })
	start := time.Now()
	ada.must(204, "DELETE", "/api/admin/bots/helper", nil)
	if r := bot.do("GET", "/api/me", nil); r.Status != 401 {
		t.Errorf("the revoked token at once: %d, want 401", r.Status)
	}
	select {
	case res := <-done:
		t.Logf("the bot's poll ended %v after the revocation: %d", res.At.Sub(start).Round(time.Millisecond), res.Status)
		if res.Status != 401 {
			t.Errorf("the bot's pending poll ended with %d, want 401", res.Status)
		}
		if d := res.At.Sub(start); d > time.Second {
			t.Errorf("the bot's poll ended %v after the revocation, want within a second", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the bot's poll was still pending 5 s after the revocation")
	}
	if r := bot.do("POST", "/api/rooms/lobby/messages", "still here?"); r.Status != 401 {
		t.Errorf("posting with the revoked token: %d, want 401", r.Status)
	}

	var fresh struct{ Token string }
	ada.must(201, "POST", "/api/admin/bots/helper/token", nil).JSON(t, &fresh)
	if fresh.Token == "" || fresh.Token == bot.Token {
		t.Fatalf("the new token %q", fresh.Token)
	}
	if r := bot.do("GET", "/api/me", nil); r.Status != 401 {
		t.Errorf("the old token after a new one was made: %d, want 401", r.Status)
	}
	bot.Token = fresh.Token
	bot.must(201, "POST", "/api/rooms/lobby/messages", "back again")
	if r := ada.do("DELETE", "/api/admin/bots/ada", nil); r.Status != 400 {
		t.Errorf("revoking a person as a bot: %d, want 400", r.Status)
	}
}

// TestAdminBotsPostAndListen: a bot made by an admin is in the lobby, posts
// with a raw body as curl -d sends it, reads history, joins rooms, hears
// what it may see, is rate limited, and its last use shows.
func TestAdminBotsPostAndListen(t *testing.T) {
	srv := startServer(t, "CHATD_POST_RATE=1", "CHATD_POST_BURST=3")
	ada := register(t, srv, "ada", "password1")
	bot := admCreateBot(t, ada, "reporter")
	cursor := bot.state()

	// curl -H 'Authorization: Bearer …' -d 'hello' …/api/rooms/lobby/messages
	req, _ := http.NewRequest("POST", srv.URL+"/api/rooms/lobby/messages", strings.NewReader("hello"))
	req.Header.Set("Authorization", "Bearer "+bot.Token)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("curl -d 'hello' as the bot: %d", resp.StatusCode)
	}
	bot.waitFor(&cursor, 5*time.Second, func(e event) bool {
		return e.Type == "message" && e.Message.User == "reporter" && e.Message.Text == "hello"
	})
	ada.post("lobby", "hi bot")
	bot.waitFor(&cursor, 5*time.Second, func(e event) bool { return e.Type == "message" && e.Message.Text == "hi bot" })
	var history struct{ Messages []message }
	bot.must(200, "GET", "/api/rooms/lobby/messages?limit=10", nil).JSON(t, &history)
	if len(history.Messages) != 2 {
		t.Errorf("the bot read %d messages of history, want 2", len(history.Messages))
	}
	ada.must(201, "POST", "/api/rooms", map[string]any{"name": "news"})
	bot.must(200, "POST", "/api/rooms/news/join", nil)

	// Three posts of the burst are spent (hello, and two more); the next is
	// refused until the rate allows.
	bot.must(201, "POST", "/api/rooms/news/messages", "one")
	bot.must(201, "POST", "/api/rooms/news/messages", "two")
	r := bot.do("POST", "/api/rooms/news/messages", "three")
	if r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Errorf("a bot posting past its burst: %d (Retry-After %q), want 429 with Retry-After", r.Status, r.Header.Get("Retry-After"))
	}

	var bots struct {
		Bots []struct {
			Name     string  `json:"name"`
			Tokens   int     `json:"tokens"`
			LastUsed *string `json:"last_used"`
		} `json:"bots"`
	}
	ada.must(200, "GET", "/api/admin/bots", nil).JSON(t, &bots)
	if len(bots.Bots) != 1 || bots.Bots[0].Tokens != 1 || bots.Bots[0].LastUsed == nil {
		t.Errorf("the bot list: %+v, want reporter with one token and a last use", bots.Bots)
	}
}
