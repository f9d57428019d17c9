package chatd

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"chatd/auth"
	"chatd/messages"
	"chatd/store"
)

// An admin's "delete this user's messages" finds them with a scan outside
// the writer, then removes them in a transaction. What changes in between
// is still right: a message the user posts after the scan is removed too,
// one deleted after the scan is not counted twice, and no one else's
// message is touched.
func TestDeleteRecentCoversChangesAfterItsScan(t *testing.T) {
	ctx := context.Background()
	srv, err := New(ctx, Config{DB: filepath.Join(t.TempDir(), "chatd.db"), Hashes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ada := mustUser(t, srv, "ada", "admin")
	bob := mustUser(t, srv, "bob", "user")
	carol := mustUser(t, srv, "carol", "user")
	post := func(u auth.User, text string) messages.Message {
		t.Helper()
		c, err := messages.FromText(text)
		if err != nil {
			t.Fatal(err)
		}
		m, err := srv.messages.Post(ctx, u, "lobby", c)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	first := post(bob, "bob one")
	post(bob, "bob two")
	post(carol, "carol's")

	sel, err := srv.messages.SelectRecent(ctx, bob.ID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	post(bob, "bob three, after the scan")
	if err := srv.admin.DeleteMessage(ctx, ada, first.ID); err != nil {
		t.Fatal(err)
	}
	var n int
	err = srv.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		n, err = srv.messages.DeleteRecent(ctx, tx, ada, sel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	history, err := srv.messages.History(ctx, carol, "lobby", 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, m := range history {
		left = append(left, m.User+": "+m.Content.Text)
	}
	if n != 2 || !slices.Equal(left, []string{"carol: carol's"}) {
		t.Fatalf("removed %d, the lobby shows %q; want 2 removed (bob two and three) and only carol's message left", n, left)
	}

	// Through the admin feature, with nothing left to remove.
	if n, err := srv.admin.DeleteRecent(ctx, ada, "bob", time.Time{}); err != nil || n != 0 {
		t.Fatalf("deleting again: %d, %v; want 0 and no error", n, err)
	}
}

func mustUser(t *testing.T, srv *Server, name, role string) auth.User {
	t.Helper()
	u, err := srv.auth.CreateUser(context.Background(), name, "password1", role)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
