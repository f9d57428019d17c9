package tests

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
)

// admOperator runs "chatd ARGS..." against the server's database, with
// stdin as standard input, and returns its standard output. It fails the
// test when the command fails, unless wantFail is set.
func admOperator(t *testing.T, srv *server, stdin string, wantFail bool, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "CHATD_DB="+srv.DB)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if wantFail != (err != nil) {
		t.Fatalf("chatd %s: err %v, want failure %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, wantFail, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// TestAdminOperatorCommands: the operator manages accounts from the shell
// while the server runs. Changes made by another process take effect
// within a second or two: the server reads the credential change log
// every second.
func TestAdminOperatorCommands(t *testing.T) {
	srv := startServer(t)
	ada := register(t, srv, "ada", "password1")
	// soon waits until c's request answers want.
	soon := func(what string, c *client, want int, method, path string) {
		t.Helper()
		took := eventually(t, what, 3*time.Second, func() bool { return c.do(method, path, nil).Status == want })
		t.Logf("%s: %v", what, took.Round(time.Millisecond))
	}

	admOperator(t, srv, "dave-password-1\n", false, "user", "create", "dave", "-password-stdin")
	dave := login(t, srv, "dave", "dave-password-1")

	out, _ := admOperator(t, srv, "", false, "user", "create", "erin", "-admin")
	m := regexp.MustCompile(`Password \(shown this once\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("user create without a password printed no password: %q", out)
	}
	erin := login(t, srv, "erin", m[1])
	var me struct{ User struct{ Name, Role string } }
	erin.must(200, "GET", "/api/me", nil).JSON(t, &me)
	if me.User.Role != "admin" {
		t.Errorf("erin made with -admin has role %q", me.User.Role)
	}
	admOperator(t, srv, "", true, "user", "create", "dave", "-password-stdin") // taken, and no password

	// A lost password: the operator sets a new one, and the old sessions end.
	admOperator(t, srv, "dave-password-2\n", false, "user", "passwd", "dave")
	soon("dave's session to end after a password reset", dave, 401, "GET", "/api/me")
	if r := newClient(t, srv).do("POST", "/api/login", map[string]string{"username": "dave", "password": "dave-password-1"}); r.Status != 401 {
		t.Errorf("the old password after a reset: %d, want 401", r.Status)
	}
	dave = login(t, srv, "dave", "dave-password-2")

	admOperator(t, srv, "", false, "user", "role", "dave", "admin")
	soon("dave to be an admin", dave, 200, "GET", "/api/admin/users")
	admOperator(t, srv, "", false, "user", "role", "dave", "user")
	soon("dave to be no admin", dave, 403, "GET", "/api/admin/users")
	admOperator(t, srv, "", false, "user", "role", "erin", "user")
	_, stderr := admOperator(t, srv, "", true, "user", "role", "ada", "user")
	if !strings.Contains(stderr, "last admin") {
		t.Errorf("demoting the last admin: %q, want it to say last admin", stderr)
	}
	admOperator(t, srv, "", true, "user", "role", "nobody", "admin")
	admOperator(t, srv, "", true, "user", "role", "dave", "owner")

	out, _ = admOperator(t, srv, "", false, "bot", "create", "clibot")
	bot := newClient(t, srv)
	bot.Name, bot.Token = "clibot", strings.TrimSpace(out)
	bot.must(201, "POST", "/api/rooms/lobby/messages", "made on the command line")
	out, _ = admOperator(t, srv, "", false, "bot", "token", "clibot")
	soon("the bot's old token to stop working", bot, 401, "GET", "/api/me")
	bot.Token = strings.TrimSpace(out)
	bot.must(200, "GET", "/api/me", nil)

	var audit struct {
		Entries []struct{ Admin, Action, Target string } `json:"entries"`
	}
	ada.must(200, "GET", "/api/admin/audit", nil).JSON(t, &audit)
	var got []string
	for _, e := range audit.Entries {
		if e.Admin == "(command line)" {
			got = append(got, e.Action+" "+e.Target)
		}
	}
	want := []string{"bot.token clibot", "bot.create clibot", "user.role erin", "user.role dave", "user.role dave",
		"user.password dave", "user.create erin", "user.create dave"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("the operator's audit entries, newest first:\n%q\nwant\n%q", got, want)
	}
}

// TestCredentialChangesByHandTakeEffect: a change written to the database
// by hand (the sqlite3 shell, another program) that ends or alters what a
// credential stands for reaches the running server within a second or
// two, though it had just checked the credential and cached the answer; a
// poll that was waiting ends, and the next one is refused.
func TestCredentialChangesByHandTakeEffect(t *testing.T) {
	srv := startServer(t)
	register(t, srv, "ada", "password1")
	bob := register(t, srv, "bob", "password1")
	carol := register(t, srv, "carol", "password1")
	db, err := sql.Open("sqlite3", "file:"+srv.DB+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		what   string
		who    *client
		change string
		want   int
	}{
		{"bob banned", bob, "UPDATE users SET banned = 1 WHERE name_key = 'bob'", 401},
		{"carol's sessions deleted", carol, "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name_key = 'carol')", 401},
	} {
		cursor := c.who.online() // checked and cached now
		waiting := c.who.pollAsync(cursor, 50*time.Second)
		waitPending(t, srv, 1)
		if _, err := db.Exec(c.change); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		start := time.Now()
		select {
		case r := <-waiting:
			if r.Status != 200 {
				t.Errorf("%s: the waiting poll ended with %d %s", c.what, r.Status, r.Body)
			}
			t.Logf("%s: the waiting poll ended in %v", c.what, time.Since(start).Round(time.Millisecond))
		case <-time.After(3 * time.Second):
			t.Fatalf("%s: the waiting poll still waits 3 s later", c.what)
		}
		if r := c.who.do("GET", "/api/me", nil); r.Status != c.want {
			t.Fatalf("%s: GET /api/me after the waiting poll ended: %d, want %d", c.what, r.Status, c.want)
		}
	}
}

// TestAdminDatabaseDumpHasNoSecrets: after accounts, sign-ins, password
// resets and bot tokens made every way there is, neither the bytes of the
// database files nor any value of any column holds a password, a token or
// a session cookie in the clear.
func TestAdminDatabaseDumpHasNoSecrets(t *testing.T) {
	srv := startServer(t)
	secrets := map[string]string{}
	ada := register(t, srv, "ada", "ada-Secret-Passw0rd")
	secrets["ada's password"] = "ada-Secret-Passw0rd"
	register(t, srv, "bob", "bob-Secret-Passw0rd")
	secrets["bob's password"] = "bob-Secret-Passw0rd"
	login(t, srv, "bob", "bob-Secret-Passw0rd")
	newClient(t, srv).do("POST", "/api/login", map[string]string{"username": "bob", "password": "bob-Wrong-Guess-9"})
	secrets["a wrong guess"] = "bob-Wrong-Guess-9"

	admOperator(t, srv, "carol-Cli-Passw0rd\n", false, "user", "create", "carol", "-password-stdin")
	secrets["carol's password"] = "carol-Cli-Passw0rd"
	admOperator(t, srv, "bob-Reset-Passw0rd\n", false, "user", "passwd", "bob")
	secrets["bob's new password"] = "bob-Reset-Passw0rd"
	carol := login(t, srv, "carol", "carol-Cli-Passw0rd")

	bot := admCreateBot(t, ada, "apibot")
	secrets["apibot's first token"] = bot.Token
	bot.must(201, "POST", "/api/rooms/lobby/messages", "a message")
	var fresh struct{ Token string }
	ada.must(201, "POST", "/api/admin/bots/apibot/token", nil).JSON(t, &fresh)
	secrets["apibot's second token"] = fresh.Token
	out, _ := admOperator(t, srv, "", false, "bot", "create", "clibot")
	secrets["clibot's token"] = strings.TrimSpace(out)
	for name, c := range map[string]*client{"ada": ada, "carol": carol} {
		u, _ := url.Parse(srv.URL)
		for _, ck := range c.http.Jar.Cookies(u) {
			secrets[name+"'s cookie "+ck.Name] = ck.Value
		}
	}
	// Each token's random part, and its raw bytes, are secrets too.
	for name, v := range secrets {
		if rest, ok := strings.CutPrefix(v, "chatd_"); ok {
			secrets[name+" without its prefix"] = rest
			if raw, err := base64.RawURLEncoding.DecodeString(rest); err == nil {
				secrets[name+" as raw bytes"] = string(raw)
			}
		}
	}
	// The files: the database, and while the server runs its write-ahead
	// log, where recent writes live until a checkpoint.
	checkFiles := func(when string) int {
		files, _ := filepath.Glob(srv.DB + "*")
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for name, v := range secrets {
				if bytes.Contains(b, []byte(v)) {
					t.Errorf("%s, %s, holds %s in the clear", filepath.Base(f), when, name)
				}
			}
		}
		return len(files)
	}
	files := checkFiles("while the server runs")
	srv.Stop(t) // checkpoint the WAL into the file
	files += checkFiles("after the server stopped")

	db, err := sql.Open("sqlite3", "file:"+srv.DB+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables, err := db.Query("SELECT name FROM sqlite_master WHERE type = 'table'")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for tables.Next() {
		var n string
		tables.Scan(&n)
		names = append(names, n)
	}
	tables.Close()
	values := 0
	for _, table := range names {
		rows, err := db.Query(fmt.Sprintf("SELECT * FROM %q", table))
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("dump %s: %v", table, err)
			}
			for i, v := range vals {
				var text string
				switch v := v.(type) {
				case string:
					text = v
				case []byte:
					text = string(v)
				default:
					continue
				}
				values++
				for name, secret := range secrets {
					if strings.Contains(text, secret) {
						t.Errorf("%s.%s holds %s", table, cols[i], name)
					}
				}
			}
		}
		rows.Close()
	}
	t.Logf("checked %d secrets against %d database files and %d text values of %d tables", len(secrets), files, values, len(names))

	// The hashes still do their job after a restart.
	srv.Start(t)
	bot.Token = fresh.Token
	bot.must(200, "GET", "/api/me", nil)
	login(t, srv, "bob", "bob-Reset-Passw0rd")
}

// TestAdminPingBotExample builds examples/pingbot, runs it against a real
// server with a token made on the admin API, and talks to it.
func TestAdminPingBotExample(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "pingbot")
	build := exec.Command("go", "build", "-o", exe, "chatd/examples/pingbot")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the example bot: %v\n%s", err, out)
	}
	srv := startServer(t)
	ada := register(t, srv, "ada", "password1")
	bob := register(t, srv, "bob", "password1")
	bot := admCreateBot(t, ada, "pingbot")
	cursor := bob.online()

	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "CHATD_URL="+srv.URL, "CHATD_TOKEN="+bot.Token)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("pingbot's log:\n%s", logs.String())
		}
	})
	eventually(t, "pingbot to be listening", 10*time.Second, func() bool { polls, _ := userPolls(t, ada, "pingbot"); return polls == 1 })

	reply := func(room string) func(e event) bool {
		return func(e event) bool {
			return e.Type == "message" && e.Message.User == "pingbot" && e.Message.Room == room
		}
	}
	start := time.Now()
	bob.post("lobby", "!ping")
	seen := bob.waitFor(&cursor, 5*time.Second, reply("lobby"))
	if got := seen[len(seen)-1].Message.Text; got != "pong" {
		t.Errorf("pingbot answered !ping with %q, want pong", got)
	}
	t.Logf("pong in %v", time.Since(start).Round(time.Millisecond))

	bob.post("lobby", "  !time please")
	seen = bob.waitFor(&cursor, 5*time.Second, reply("lobby"))
	if got := seen[len(seen)-1].Message.Text; !strings.HasPrefix(got, "It is ") || !strings.Contains(got, "UTC") {
		t.Errorf("pingbot answered !time with %q", got)
	}
	bob.post("lobby", "no command here")

	// In a direct conversation it answers there.
	bob.must(201, "POST", "/api/users/pingbot/messages", "!ping")
	seen = bob.waitFor(&cursor, 5*time.Second, func(e event) bool { return e.Type == "message" && e.Message.User == "pingbot" })
	if last := seen[len(seen)-1].Message; last.Room == "lobby" || last.Text != "pong" {
		t.Errorf("pingbot answered a direct !ping with %+v, want pong in the direct room", last)
	}

	var history struct{ Messages []message }
	bob.must(200, "GET", "/api/rooms/lobby/messages", nil).JSON(t, &history)
	var fromBot []string
	for _, m := range history.Messages {
		if m.User == "pingbot" {
			fromBot = append(fromBot, m.Text)
		}
	}
	if len(fromBot) != 2 {
		t.Errorf("pingbot posted %d messages in the lobby (%q), want 2: one per command, none to itself", len(fromBot), fromBot)
	}

	// Revoked, the bot stops: retrying cannot bring a token back.
	ada.must(204, "DELETE", "/api/admin/bots/pingbot", nil)
	select {
	case err := <-exited:
		exited <- err
		if err == nil {
			t.Errorf("pingbot exited with status 0 after its token was revoked, want a failure")
		}
		if !strings.Contains(logs.String(), "revoked") {
			t.Errorf("pingbot's log does not say its token was revoked:\n%s", logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("pingbot still runs 10 s after its token was revoked")
	}
}

// TestAdminPingBotStopsCleanly: on SIGTERM the example bot disconnects
// (its user goes offline at once) and exits 0.
func TestAdminPingBotStopsCleanly(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "pingbot")
	if out, err := exec.Command("go", "build", "-o", exe, "chatd/examples/pingbot").CombinedOutput(); err != nil {
		t.Fatalf("building the example bot: %v\n%s", err, out)
	}
	srv := startServer(t)
	ada := register(t, srv, "ada", "password1")
	bot := admCreateBot(t, ada, "pingbot")
	cmd := exec.Command(exe, "-server", srv.URL)
	cmd.Env = append(os.Environ(), "CHATD_TOKEN="+bot.Token)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pingbot to be listening", 10*time.Second, func() bool { polls, _ := userPolls(t, ada, "pingbot"); return polls == 1 })
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("pingbot after SIGTERM: %v, want exit 0", err)
	}
	var users struct {
		Users []struct{ Name, Status string } `json:"users"`
	}
	ada.must(200, "GET", "/api/admin/users?q=pingbot", nil).JSON(t, &users)
	if len(users.Users) != 1 || users.Users[0].Status != "offline" {
		t.Errorf("pingbot after it stopped: %+v, want offline", users.Users)
	}
}
