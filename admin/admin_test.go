package admin_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"chatd"
	"chatd/admin"
	"chatd/api"
	"chatd/auth"
)

// newServer opens a chatd on a fresh database, with ada (admin) and bob.
func newServer(t *testing.T) (*chatd.Server, string, auth.User, auth.User) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "chatd.db")
	srv, err := chatd.New(ctx, chatd.Config{DB: path, Hashes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ada, err := srv.Auth().CreateUser(ctx, "ada", "password1", "admin")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := srv.Auth().CreateUser(ctx, "bob", "password1", "user")
	if err != nil {
		t.Fatal(err)
	}
	return srv, path, ada, bob
}

// auditLog reads "action target admin" of every audit entry, oldest first,
// and whether each names its admin's id.
func auditLog(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT action, target, admin, admin_id IS NOT NULL FROM audit ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var action, target, who string
		var hasID bool
		if err := rows.Scan(&action, &target, &who, &hasID); err != nil {
			t.Fatal(err)
		}
		if hasID {
			who += "#"
		}
		out = append(out, action+" "+target+" "+who)
	}
	return out
}

func wantCode(t *testing.T, what string, err error, code api.Code) {
	t.Helper()
	if !api.IsCode(err, code) {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

// TestFailedActionsLeaveNoTrace: an action that fails changes nothing and
// writes no audit entry; one that succeeds writes exactly one, in the same
// transaction.
func TestFailedActionsLeaveNoTrace(t *testing.T) {
	srv, path, ada, bob := newServer(t)
	a := srv.Admin()
	ctx := context.Background()

	wantCode(t, "banning nobody", a.Ban(ctx, ada, "nobody"), api.NotFound)
	wantCode(t, "banning oneself", a.Ban(ctx, ada, "ada"), api.InvalidArgument)
	wantCode(t, "the last admin stepping down", a.SetRole(ctx, ada, "ada", "user"), api.Conflict)
	wantCode(t, "an unknown role", a.SetRole(ctx, ada, "bob", "owner"), api.InvalidArgument)
	wantCode(t, "kicking a non-member", a.Kick(ctx, ada, "lobby", "nobody"), api.NotFound)
	wantCode(t, "deleting the lobby", a.DeleteRoom(ctx, ada, "lobby"), api.InvalidArgument)
	wantCode(t, "a bad room name", func() error { _, err := a.CreateRoom(ctx, ada, "No Spaces", "", false); return err }(), api.InvalidArgument)
	wantCode(t, "revoking a person", a.RevokeBot(ctx, ada, "bob"), api.InvalidArgument)
	wantCode(t, "a token for a person", func() error { _, _, err := a.NewBotToken(ctx, ada, "bob"); return err }(), api.InvalidArgument)
	wantCode(t, "a user acting as admin", a.Ban(ctx, bob, "ada"), api.Forbidden)
	wantCode(t, "deleting a missing message", a.DeleteMessage(ctx, ada, 12345), api.NotFound)
	if got := auditLog(t, path); len(got) != 0 {
		t.Fatalf("failed actions left audit entries: %q", got)
	}

	if err := a.Ban(ctx, ada, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := a.Ban(ctx, ada, "BOB"); err != nil { // names are case-insensitive; banning twice is harmless
		t.Fatal(err)
	}
	if _, _, err := a.CreateBot(ctx, ada, "helper", true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateUser(ctx, admin.Operator, "carol", "password1", "admin", true); err != nil {
		t.Fatal(err)
	}
	if err := a.SetRole(ctx, ada, "ada", "user"); err != nil {
		t.Fatalf("stepping down with another admin left: %v", err)
	}
	want := []string{
		"user.ban bob ada#",
		"user.ban bob ada#",
		"bot.create helper ada#",
		"user.create carol (command line)",
		"user.role ada ada#",
	}
	got := auditLog(t, path)
	if len(got) != len(want) {
		t.Fatalf("audit log %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("audit entry %d: %q, want %q", i, got[i], want[i])
		}
	}
	entries, err := a.Audit(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Action != "user.role" || entries[1].Admin != "(command line)" {
		t.Errorf("Audit(2) = %+v, want the two newest, newest first", entries)
	}
}

// TestBannedAdminDoesNotCount: a banned admin is no admin for the rule that
// one must always be left.
func TestBannedAdminDoesNotCount(t *testing.T) {
	srv, _, ada, _ := newServer(t)
	a := srv.Admin()
	ctx := context.Background()
	if err := a.SetRole(ctx, ada, "bob", "admin"); err != nil {
		t.Fatal(err)
	}
	if err := a.Ban(ctx, ada, "bob"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "the last unbanned admin stepping down", a.SetRole(ctx, ada, "ada", "user"), api.Conflict)
}

func TestParseWithin(t *testing.T) {
	now := time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"all", time.Time{}, true},
		{"1h", now.Add(-time.Hour), true},
		{"90m", now.Add(-90 * time.Minute), true},
		{"7d", now.AddDate(0, 0, -7), true},
		{" 24h ", now.Add(-24 * time.Hour), true},
		{"", time.Time{}, false},
		{"0", time.Time{}, false},
		{"-1h", time.Time{}, false},
		{"0d", time.Time{}, false},
		{"week", time.Time{}, false},
		{"99999999d", time.Time{}, false},
	} {
		got, err := admin.ParseWithin(c.in, now)
		if (err == nil) != c.ok || (c.ok && !got.Equal(c.want)) {
			t.Errorf("ParseWithin(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !api.IsCode(err, api.InvalidArgument) {
			t.Errorf("ParseWithin(%q): %v, want invalid_argument", c.in, err)
		}
	}
}
