package tests

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The callers of the full authorization matrix, in the order they call.
const (
	azAnon = iota
	azUser
	azOther
	azBot
	azBanned
	azAdmin
	azCallers
)

var azNames = [azCallers]string{"anonymous", "user", "another user", "bot", "banned", "admin"}

// azCase is one row of the matrix: a request that may differ by caller
// (each caller its own message to delete, its own room to create), and the
// status each caller must get.
type azCase struct {
	method string
	path   func(i int) string
	body   func(i int) any
	want   [azCallers]int
	form   bool // an admin page form, posted with the admin's form token
	fresh  bool // call from a fresh session of the same person (logout)
}

// azClone returns a new client with c's cookies and token.
func azClone(t *testing.T, c *client) *client {
	t.Helper()
	cp := newClient(t, c.srv)
	cp.Name, cp.Token = c.Name, c.Token
	u, err := url.Parse(c.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	cp.http.Jar.SetCookies(u, c.http.Jar.Cookies(u))
	return cp
}

func azSame(p string) func(int) string { return func(int) string { return p } }
func azBody(b any) func(int) any       { return func(int) any { return b } }

// TestAuthorizationMatrixAllEndpoints calls every endpoint chatd serves (the
// API, the admin API, the admin page's forms, the pages, health and
// metrics) as six callers: nobody, a user, another user, a bot, a banned
// user (with the cookie they had before the ban) and an admin. "The user"
// owns the resources in question: a private room, a direct conversation,
// messages; "another user" is a member of nothing of hers but the lobby.
// Every answer must be the expected one. Callers go in the order above and
// the admin last, so that a refused call cannot change what a later one
// finds.
func TestAuthorizationMatrixAllEndpoints(t *testing.T) {
	srv := startServer(t, "CHATD_POST_RATE=-1", "CHATD_LOG_LEVEL=info")
	root := register(t, srv, "root", "password1") // the first account: an admin
	alice := register(t, srv, "alice", "password1")
	bob := register(t, srv, "bob", "password1")
	carol := register(t, srv, "carol", "password1")
	register(t, srv, "dave", "password1")
	for _, name := range []string{"victim", "promoted", "chatty", "kickme", "formvictim", "formchatty", "formkick"} {
		register(t, srv, name, "password1")
	}
	bot := admCreateBot(t, root, "botty")
	for _, name := range []string{"tokenbot", "revokebot", "formtokenbot", "formrevokebot"} {
		admCreateBot(t, root, name)
	}
	alice.must(201, "POST", "/api/rooms", map[string]any{"name": "alice-private", "private": true})
	alice.must(201, "POST", "/api/rooms", map[string]any{"name": "alice-leave", "private": true})
	root.must(201, "POST", "/api/rooms", map[string]any{"name": "pubroom"})
	for _, room := range []string{"kickroom", "delroom", "topicroom", "formkickroom", "formdelroom"} {
		root.must(201, "POST", "/api/rooms", map[string]any{"name": room})
	}
	for who, room := range map[string]string{"kickme": "kickroom", "formkick": "formkickroom"} {
		login(t, srv, who, "password1").must(200, "POST", "/api/rooms/"+room+"/join", nil)
	}
	var dm struct{ Message message }
	alice.must(201, "POST", "/api/users/dave/messages", "a direct message").JSON(t, &dm)
	dmRoom := dm.Message.Room
	dmMsg := dm.Message.ID
	edit := alice.post("lobby", "alice's message to edit")
	var del [azCallers]int64
	for i := range del {
		del[i] = alice.post("lobby", fmt.Sprintf("alice's message %d to delete", i)).ID
	}
	apiDel1 := bob.post("lobby", "deleted through the admin API").ID
	formDel := bob.post("lobby", "deleted through the admin form").ID
	root.must(204, "POST", "/api/admin/users/carol/ban", nil)
	csrf := admCSRF(t, root)
	static := regexp.MustCompile(`/static/[^/"]+/[^"]+\.js`).FindString(string(newClient(t, srv).must(200, "GET", "/login", nil).Body))
	if static == "" {
		t.Fatal("the login page links no script")
	}

	callers := [azCallers]*client{newClient(t, srv), alice, bob, bot, carol, root}
	// Calls that sign in or out (register, login, logout) are made from a
	// fresh session of the same person, or a copy of the bot's and the
	// banned user's credentials, so that the callers' own sessions stay as
	// they are.
	fresh := [azCallers]func() *client{
		func() *client { return newClient(t, srv) },
		func() *client { return login(t, srv, "alice", "password1") },
		func() *client { return login(t, srv, "bob", "password1") },
		func() *client { return azClone(t, bot) },
		func() *client { return azClone(t, carol) },
		func() *client { return login(t, srv, "root", "password1") },
	}

	// Expected answers by kind of endpoint.
	signedIn := func(ok int) [azCallers]int { return [azCallers]int{401, ok, ok, ok, 401, ok} }
	owner := func(ok, other, admin int) [azCallers]int { return [azCallers]int{401, ok, other, other, 401, admin} }
	adminOnly := func(ok int) [azCallers]int { return [azCallers]int{401, 403, 403, 403, 401, ok} }
	everyone := func(s int) [azCallers]int { return [azCallers]int{s, s, s, s, s, s} }
	credentials := []map[string]string{
		{"username": "dave", "password": "password1"},
		{"username": "alice", "password": "password1"},
		{"username": "bob", "password": "password1"},
		{"username": "botty", "password": "password1"}, // bots have no password
		{"username": "carol", "password": "password1"},
		{"username": "root", "password": "password1"},
	}
	msgPath := func(id int64) func(int) string { return azSame(fmt.Sprintf("/api/messages/%d", id)) }

	cases := []azCase{
		// Accounts.
		{method: "POST", path: azSame("/api/register"), body: func(i int) any {
			return map[string]string{"username": fmt.Sprintf("newcomer%d", i), "password": "password1"}
		}, want: everyone(201), fresh: true},
		{method: "POST", path: azSame("/api/login"), body: func(i int) any { return credentials[i] }, want: [azCallers]int{200, 200, 200, 401, 403, 200}, fresh: true},
		{method: "GET", path: azSame("/api/me"), want: signedIn(200)},
		{method: "POST", path: azSame("/api/logout"), want: signedIn(204), fresh: true},

		// Events and presence.
		{method: "GET", path: azSame("/api/state"), want: signedIn(200)},
		{method: "GET", path: azSame("/api/events?wait=0"), want: signedIn(200)},
		{method: "POST", path: azSame("/api/presence"), body: azBody(map[string]string{"status": "away"}), want: signedIn(204)},
		{method: "POST", path: azSame("/api/disconnect"), want: signedIn(204)},

		// Rooms.
		{method: "GET", path: azSame("/api/rooms"), want: signedIn(200)},
		{method: "POST", path: azSame("/api/rooms"), body: func(i int) any { return map[string]any{"name": fmt.Sprintf("made-by-%d", i)} }, want: signedIn(201)},
		{method: "GET", path: azSame("/api/rooms/lobby"), want: signedIn(200)},
		{method: "GET", path: azSame("/api/rooms/alice-private"), want: owner(200, 403, 200)},
		{method: "GET", path: azSame("/api/rooms/" + dmRoom), want: owner(200, 403, 403)},
		{method: "GET", path: azSame("/api/rooms/no-such-room"), want: signedIn(404)},
		{method: "PATCH", path: azSame("/api/rooms/lobby"), body: azBody(map[string]string{"topic": "everyone's"}), want: signedIn(200)},
		{method: "PATCH", path: azSame("/api/rooms/alice-private"), body: azBody(map[string]string{"topic": "members only"}), want: owner(200, 403, 200)},
		{method: "POST", path: azSame("/api/rooms/alice-private/invite"), body: azBody(map[string]string{"user": "dave"}), want: owner(200, 403, 200)},
		{method: "POST", path: azSame("/api/rooms/" + dmRoom + "/invite"), body: azBody(map[string]string{"user": "bob"}), want: owner(400, 400, 400)},

		// Messages.
		{method: "GET", path: azSame("/api/rooms/lobby/messages"), want: signedIn(200)},
		{method: "GET", path: azSame("/api/rooms/alice-private/messages"), want: owner(200, 403, 200)},
		{method: "GET", path: azSame("/api/rooms/" + dmRoom + "/messages"), want: owner(200, 403, 403)},
		{method: "POST", path: azSame("/api/rooms/lobby/messages"), body: azBody("hello"), want: signedIn(201)},
		{method: "POST", path: azSame("/api/rooms/alice-private/messages"), body: azBody("members only"), want: owner(201, 403, 403)},
		{method: "POST", path: azSame("/api/rooms/" + dmRoom + "/messages"), body: azBody("into their conversation"), want: owner(201, 403, 403)},
		{method: "POST", path: azSame("/api/users/dave/messages"), body: azBody("hi dave"), want: signedIn(201)},
		{method: "POST", path: azSame("/api/users/carol/messages"), body: azBody("hi carol"), want: signedIn(403)},
		{method: "PATCH", path: msgPath(edit.ID), body: azBody(map[string]string{"text": "edited"}), want: owner(200, 403, 403)},
		{method: "PATCH", path: msgPath(dmMsg), body: azBody(map[string]string{"text": "edited"}), want: owner(200, 403, 403)},
		{method: "DELETE", path: func(i int) string { return fmt.Sprintf("/api/messages/%d", del[i]) }, want: owner(204, 403, 204)},

		// Membership last: joining and leaving change what the rows above
		// would find.
		{method: "POST", path: azSame("/api/rooms/pubroom/join"), want: signedIn(200)},
		{method: "POST", path: azSame("/api/rooms/pubroom/leave"), want: signedIn(200)},
		{method: "POST", path: azSame("/api/rooms/alice-private/join"), want: owner(200, 403, 200)},
		{method: "POST", path: azSame("/api/rooms/alice-leave/leave"), want: owner(200, 403, 200)},
		{method: "POST", path: azSame("/api/rooms/" + dmRoom + "/join"), want: owner(200, 403, 403)},
		{method: "POST", path: azSame("/api/rooms/" + dmRoom + "/leave"), want: owner(400, 400, 400)},

		// The admin API.
		{method: "GET", path: azSame("/api/admin/users"), want: adminOnly(200)},
		{method: "POST", path: azSame("/api/admin/users/victim/ban"), want: adminOnly(204)},
		{method: "POST", path: azSame("/api/admin/users/victim/unban"), want: adminOnly(204)},
		{method: "POST", path: azSame("/api/admin/users/promoted/role"), body: azBody(map[string]string{"role": "admin"}), want: adminOnly(204)},
		{method: "DELETE", path: azSame("/api/admin/users/chatty/messages?within=24h"), want: adminOnly(200)},
		{method: "GET", path: azSame("/api/admin/rooms"), want: adminOnly(200)},
		{method: "POST", path: azSame("/api/admin/rooms"), body: azBody(map[string]any{"name": "made-by-admin"}), want: adminOnly(201)},
		{method: "PATCH", path: azSame("/api/admin/rooms/topicroom"), body: azBody(map[string]string{"topic": "set by an admin"}), want: adminOnly(200)},
		{method: "POST", path: azSame("/api/admin/rooms/kickroom/kick"), body: azBody(map[string]string{"user": "kickme"}), want: adminOnly(204)},
		{method: "DELETE", path: azSame("/api/admin/rooms/delroom"), want: adminOnly(204)},
		{method: "GET", path: azSame("/api/admin/messages?limit=10"), want: adminOnly(200)},
		{method: "DELETE", path: azSame(fmt.Sprintf("/api/admin/messages/%d", apiDel1)), want: adminOnly(204)},
		{method: "GET", path: azSame("/api/admin/bots"), want: adminOnly(200)},
		{method: "POST", path: azSame("/api/admin/bots"), body: azBody(map[string]string{"name": "newbot"}), want: adminOnly(201)},
		{method: "POST", path: azSame("/api/admin/bots/tokenbot/token"), want: adminOnly(201)},
		{method: "DELETE", path: azSame("/api/admin/bots/revokebot"), want: adminOnly(204)},
		{method: "GET", path: azSame("/api/admin/clients"), want: adminOnly(200)},
		{method: "GET", path: azSame("/api/admin/audit?limit=5"), want: adminOnly(200)},

		// The admin page's forms (303 back to the page, or to sign in).
		{method: "POST", path: azSame("/admin/users/formvictim/ban"), form: true, want: [azCallers]int{303, 403, 403, 403, 303, 303}},
		{method: "POST", path: azSame("/admin/users/formvictim/unban"), form: true, want: [azCallers]int{303, 403, 403, 403, 303, 303}},
		{method: "POST", path: azSame("/admin/users/formvictim/role"), body: azBody(url.Values{"role": {"admin"}}), form: true, want: [azCallers]int{303, 403, 403, 403, 303, 303}},
		{method: "POST", path: azSame("/admin/users/formchatty/delete-messages"), body: azBody(url.Values{"within": {"all"}}), form: true, want: [azCallers]int{303, 403, 403, 403, 303, 303}},
		{method: "POST", path: azSame("/admin/rooms"), body: azBody(url.Values{"name": {"made-by-form"}}), form: true, want: [azCallers]int{303, 403, 403, 403, 303, 303}},
		{method: "POST", path: azSame("/admin/rooms/topicroom/topic"), body: azBody(url.Values{"topic": {"set by a form"}}), form: true, want: [azCallers]int{303, 403, 403, 403, 303, 303}},
		{method: "POST", path: azSame("/admin/rooms/formkickroom/kick"), body: azBody(url.Values{"user": {"formkick"}}), form: true, want: [azCallers]int{303, 403, 403, 403, 303, 303}},
		{method: "POST", path: azSame("/admin/rooms/formdelroom/delete"), form: true, want: [azCallers]int{303, 403, 403, 403, 303, 303}},
		{method: "POST", path: azSame(fmt.Sprintf("/admin/messages/%d/delete", formDel)), form: true, want: [azCallers]int{303, 403, 403, 403, 303, 303}},
		{method: "POST", path: azSame("/admin/bots"), body: azBody(url.Values{"name": {"formbot"}}), form: true, want: [azCallers]int{303, 403, 403, 403, 303, 303}},
		{method: "POST", path: azSame("/admin/bots/formtokenbot/token"), form: true, want: [azCallers]int{303, 403, 403, 403, 303, 303}},
		{method: "POST", path: azSame("/admin/bots/formrevokebot/revoke"), form: true, want: [azCallers]int{303, 403, 403, 403, 303, 303}},

		// Pages, health, metrics, static files, unknown API paths.
		{method: "GET", path: azSame("/"), want: [azCallers]int{303, 200, 200, 200, 303, 200}},
		{method: "GET", path: azSame("/login"), want: [azCallers]int{200, 303, 303, 303, 200, 303}},
		{method: "GET", path: azSame("/register"), want: [azCallers]int{200, 303, 303, 303, 200, 303}},
		{method: "GET", path: azSame("/admin"), want: [azCallers]int{303, 403, 403, 403, 303, 200}},
		{method: "GET", path: azSame(static), want: everyone(200)},
		{method: "GET", path: azSame("/static/old-version/js/chat.js"), want: everyone(404)},
		{method: "GET", path: azSame("/favicon.ico"), want: everyone(302)},
		{method: "GET", path: azSame("/healthz"), want: everyone(200)},
		{method: "GET", path: azSame("/metrics"), want: everyone(200)},
		{method: "GET", path: azSame("/api/no-such-endpoint"), want: everyone(404)},
		// A method the path does not take: 405 with Allow.
		{method: "PUT", path: azSame("/api/rooms/lobby"), body: azBody(map[string]string{"topic": "x"}), want: everyone(405)},
		{method: "DELETE", path: azSame("/api/state"), want: everyone(405)},
	}

	total, ok := 0, 0
	var table strings.Builder
	fmt.Fprintf(&table, "%-46s", "endpoint")
	for _, n := range azNames {
		fmt.Fprintf(&table, " %8s", strings.Split(n, " ")[0])
	}
	table.WriteString("\n")
	for _, cs := range cases {
		fmt.Fprintf(&table, "%-46s", cs.method+" "+cs.path(azUser))
		for i := range azCallers {
			c := callers[i]
			if cs.fresh {
				c = fresh[i]()
			}
			var body any
			if cs.body != nil {
				body = cs.body(i)
			}
			var r *response
			if cs.form {
				// Everyone sends the admin's form token: a token that
				// leaked must not help anyone else.
				fields := url.Values{"csrf": {csrf}}
				if v, okv := body.(url.Values); okv {
					for k, vs := range v {
						fields[k] = vs
					}
				}
				r = admPostForm(c, cs.path(i), fields)
			} else {
				r = admNoRedirect(c).do(cs.method, cs.path(i), body)
			}
			total++
			mark := fmt.Sprint(r.Status)
			if r.Status == cs.want[i] {
				ok++
			} else {
				mark += "!"
				t.Errorf("%s %s as %s: %d, want %d: %.200s", cs.method, cs.path(i), azNames[i], r.Status, cs.want[i], r.Body)
			}
			fmt.Fprintf(&table, " %8s", mark)
		}
		table.WriteString("\n")
	}
	t.Logf("authorization matrix: %d endpoints × %d callers, %d of %d answers as expected\n%s", len(cases), azCallers, ok, total, table.String())

	// What the refused calls tried did not happen; what the allowed ones
	// did, did.
	var page struct{ Messages []message }
	alice.must(200, "GET", "/api/rooms/alice-private/messages", nil).JSON(t, &page)
	for _, m := range page.Messages {
		if m.User != "alice" && m.User != "root" {
			t.Errorf("a refused caller's message is in alice's private room: %+v", m)
		}
	}
	var room struct {
		Room struct{ Topic string }
	}
	alice.must(200, "GET", "/api/rooms/alice-private", nil).JSON(t, &room)
	if room.Room.Topic != "members only" {
		t.Errorf("alice-private's topic is %q", room.Room.Topic)
	}
	// A bot's logout ends nothing but its poll: the token still works.
	bot.must(200, "GET", "/api/me", nil)
}
