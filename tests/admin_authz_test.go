package tests

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestAdminAuthzMatrix calls every admin endpoint and the admin page as
// five kinds of caller: nobody, a user, a bot, a banned user (with the
// cookie they had before the ban) and an admin. Every answer must be the
// expected one. Non-admins go first, so that nothing they try can change
// what the admin's call then finds.
func TestAdminAuthzMatrix(t *testing.T) {
	srv := startServer(t)
	ada := register(t, srv, "ada", "password1") // the first account: an admin
	bob := register(t, srv, "bob", "password1")
	carol := register(t, srv, "carol", "password1")
	for _, name := range []string{"victim", "promoted", "chatty", "kickme", "formvictim", "formchatty", "formkick"} {
		register(t, srv, name, "password1")
	}
	bot := admCreateBot(t, ada, "matrixbot")
	admCreateBot(t, ada, "tokenbot")
	admCreateBot(t, ada, "revokebot")
	admCreateBot(t, ada, "formtokenbot")
	admCreateBot(t, ada, "formrevokebot")
	for _, room := range []string{"kickroom", "delroom", "topicroom", "formkickroom", "formdelroom"} {
		ada.must(201, "POST", "/api/rooms", map[string]any{"name": room})
	}
	for who, room := range map[string]string{"kickme": "kickroom", "formkick": "formkickroom"} {
		login(t, srv, who, "password1").must(200, "POST", "/api/rooms/"+room+"/join", nil)
	}
	msg1 := bob.post("lobby", "delete me through the API")
	msg2 := bob.post("lobby", "delete me through the form")
	ada.must(204, "POST", "/api/admin/users/carol/ban", nil)
	csrf := admCSRF(t, ada)

	const admin = 4 // the callers' index of the admin
	callers := []struct {
		name string
		c    *client
	}{
		{"anonymous", newClient(t, srv)},
		{"user", bob},
		{"bot", bot},
		{"banned user", carol},
		{"admin", ada},
	}
	type endpoint struct {
		method, path string
		body         any
		want         [5]int
	}
	api := func(method, path string, body any, adminStatus int) endpoint {
		return endpoint{method, path, body, [5]int{401, 403, 403, 401, adminStatus}}
	}
	endpoints := []endpoint{
		api("GET", "/api/admin/users", nil, 200),
		api("GET", "/api/admin/users?q=vic&limit=5", nil, 200),
		api("POST", "/api/admin/users/victim/ban", nil, 204),
		api("POST", "/api/admin/users/victim/unban", nil, 204),
		api("POST", "/api/admin/users/promoted/role", map[string]string{"role": "admin"}, 204),
		api("DELETE", "/api/admin/users/chatty/messages?within=24h", nil, 200),
		api("GET", "/api/admin/rooms", nil, 200),
		api("POST", "/api/admin/rooms", map[string]any{"name": "made-by-admin", "topic": "new"}, 201),
		api("PATCH", "/api/admin/rooms/topicroom", map[string]string{"topic": "set by an admin"}, 200),
		api("POST", "/api/admin/rooms/kickroom/kick", map[string]string{"user": "kickme"}, 204),
		api("DELETE", "/api/admin/rooms/delroom", nil, 204),
		api("GET", "/api/admin/messages?limit=10", nil, 200),
		api("DELETE", fmt.Sprintf("/api/admin/messages/%d", msg1.ID), nil, 204),
		api("GET", "/api/admin/bots", nil, 200),
		api("POST", "/api/admin/bots", map[string]string{"name": "newbot"}, 201),
		api("POST", "/api/admin/bots/tokenbot/token", nil, 201),
		api("DELETE", "/api/admin/bots/revokebot", nil, 204),
		api("GET", "/api/admin/clients", nil, 200),
		api("GET", "/api/admin/audit?limit=5", nil, 200),
		// The page: anonymous visitors and the banned (signed out) are sent
		// to sign in; signed-in non-admins are refused.
		{"GET", "/admin", nil, [5]int{303, 403, 403, 303, 200}},
	}
	form := func(path string, fields url.Values) endpoint {
		if fields == nil {
			fields = url.Values{}
		}
		return endpoint{"FORM", path, fields, [5]int{303, 403, 403, 303, 303}}
	}
	endpoints = append(endpoints,
		form("/admin/users/formvictim/ban", nil),
		form("/admin/users/formvictim/unban", nil),
		form("/admin/users/formvictim/role", url.Values{"role": {"admin"}}),
		form("/admin/users/formchatty/delete-messages", url.Values{"within": {"all"}}),
		form("/admin/rooms", url.Values{"name": {"made-by-form"}, "topic": {"t"}}),
		form("/admin/rooms/topicroom/topic", url.Values{"topic": {"set by a form"}}),
		form("/admin/rooms/formkickroom/kick", url.Values{"user": {"formkick"}}),
		form("/admin/rooms/formdelroom/delete", nil),
		form(fmt.Sprintf("/admin/messages/%d/delete", msg2.ID), nil),
		form("/admin/bots", url.Values{"name": {"formbot"}}),
		form("/admin/bots/formtokenbot/token", nil),
		form("/admin/bots/formrevokebot/revoke", nil),
	)

	total, ok := 0, 0
	var table strings.Builder
	fmt.Fprintf(&table, "%-52s %5s %5s %5s %7s %5s\n", "endpoint", "anon", "user", "bot", "banned", "admin")
	for _, ep := range endpoints {
		row := fmt.Sprintf("%-52s", ep.method+" "+ep.path)
		for i, caller := range callers {
			var r *response
			if ep.method == "FORM" {
				// Everyone sends the admin's form token: a token that leaked
				// must not help anyone else.
				fields := url.Values{"csrf": {csrf}}
				for k, v := range ep.body.(url.Values) {
					fields[k] = v
				}
				r = admPostForm(caller.c, ep.path, fields)
			} else {
				r = admNoRedirect(caller.c).do(ep.method, ep.path, ep.body)
			}
			total++
			mark := fmt.Sprint(r.Status)
			good := r.Status == ep.want[i]
			if good && r.Status == 303 {
				where := r.Header.Get("Location")
				if i == admin && !strings.HasPrefix(where, "/admin") || i != admin && where != "/login" {
					good = false
					mark += "→" + where
				}
			}
			if good {
				ok++
			} else {
				mark += "!"
				t.Errorf("%s %s as %s: %d, want %d: %s", ep.method, ep.path, caller.name, r.Status, ep.want[i], r.Body)
			}
			row += fmt.Sprintf(" %5s", mark)
		}
		table.WriteString(row + "\n")
	}
	t.Logf("authorization matrix, %d of %d as expected:\n%s", ok, total, table.String())
	if ok != total {
		t.Fatalf("%d of %d answers were not the expected ones", total-ok, total)
	}

	t.Run("the admin's actions took effect and are in the audit log", func(t *testing.T) {
		var audit struct {
			Entries []struct{ Admin, Action, Target string } `json:"entries"`
		}
		ada.must(200, "GET", "/api/admin/audit?limit=100", nil).JSON(t, &audit)
		seen := map[string]bool{}
		for _, e := range audit.Entries {
			if e.Admin != "ada" {
				t.Errorf("audit entry by %q, want ada: %+v", e.Admin, e)
			}
			seen[e.Action+" "+e.Target] = true
		}
		for _, want := range []string{
			"user.ban carol", "user.ban victim", "user.unban victim", "user.role promoted",
			"user.delete_messages chatty", "room.create made-by-admin", "room.topic topicroom",
			"room.kick kickme", "room.delete delroom", "message.delete bob", "bot.create newbot",
			"bot.token tokenbot", "bot.revoke revokebot", "user.ban formvictim", "user.unban formvictim",
			"user.role formvictim", "user.delete_messages formchatty", "room.create made-by-form",
			"room.kick formkick", "room.delete formdelroom", "bot.create formbot", "bot.token formtokenbot",
			"bot.revoke formrevokebot",
		} {
			if !seen[want] {
				t.Errorf("the audit log lacks %q; it has %v", want, seen)
			}
		}
		var me struct{ User struct{ Role string } }
		login(t, srv, "promoted", "password1").must(200, "GET", "/api/me", nil).JSON(t, &me)
		if me.User.Role != "admin" {
			t.Errorf("promoted's role is %q after the role change, want admin", me.User.Role)
		}
	})

	t.Run("forms are refused without the form token or from another origin", func(t *testing.T) {
		fields := url.Values{"name": {"sneaky"}}
		if r := admPostForm(ada, "/admin/bots", fields); r.Status != 403 {
			t.Errorf("a form without its token: %d, want 403", r.Status)
		}
		fields.Set("csrf", "x"+csrf)
		if r := admPostForm(ada, "/admin/bots", fields); r.Status != 403 {
			t.Errorf("a form with a wrong token: %d, want 403", r.Status)
		}
		// A token is bound to its session: another of ada's sessions has
		// another one.
		other := login(t, srv, "ada", "password1")
		fields.Set("csrf", csrf)
		if r := admPostForm(other, "/admin/bots", fields); r.Status != 403 {
			t.Errorf("a form with another session's token: %d, want 403", r.Status)
		}
		// A browser posting from another site is refused whatever it sends.
		evil := admNoRedirect(ada)
		evil.Header = map[string][]string{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}
		if r := admPostForm(evil, "/admin/bots", fields); r.Status != 403 {
			t.Errorf("a cross-site form: %d, want 403", r.Status)
		}
		if r := evil.do("POST", "/api/admin/users/bob/ban", nil); r.Status != 403 {
			t.Errorf("a cross-site API call: %d, want 403", r.Status)
		}
		var bots struct{ Bots []struct{ Name string } }
		ada.must(200, "GET", "/api/admin/bots?q=sneaky", nil).JSON(t, &bots)
		if len(bots.Bots) != 0 {
			t.Errorf("a refused form made a bot: %+v", bots.Bots)
		}
	})
}
