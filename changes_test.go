package chatd

import (
	"context"
	"net/http/httptest"
	"testing"

	"chatd/store"
)

// The credential change log is pruned once enough of it has been read, and
// changes logged after the pruning still take effect.
func TestCredentialChangeLogPruned(t *testing.T) {
	e := newFuzzEnv(t)
	ctx := context.Background()
	me := func() int {
		return e.serve(t, httptest.NewRequest("GET", "/api/me", nil), e.cookie).Code
	}
	if code := me(); code != 200 {
		t.Fatalf("GET /api/me: %d", code)
	}
	// exec runs q n times in one write, as another process might.
	exec := func(n int, q string) {
		t.Helper()
		err := e.srv.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
			for range n {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// touch logs a change of a user nobody is signed in as.
	const touch = "UPDATE users SET role = role WHERE name_key = 'other'"
	exec(1, "INSERT INTO users (name, name_key, role, created_at) VALUES ('other', 'other', 'user', 0)")
	exec(601, touch)
	rows := func() (n int) {
		if err := e.srv.db.Reader().QueryRow("SELECT COUNT(*) FROM auth_changes").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := rows(); n != 601 {
		t.Fatalf("%d rows logged for 601 role updates", n)
	}
	if _, err := e.srv.auth.ReadChanges(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rows(); n != 601 {
		t.Fatalf("%d rows left after reading 601, fewer than the pruning point", n)
	}
	exec(400, touch)
	if _, err := e.srv.auth.ReadChanges(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rows(); n != 0 {
		t.Fatalf("%d rows left after reading 1,001", n)
	}

	// A ban written by hand after the pruning ends the session.
	if code := me(); code != 200 {
		t.Fatalf("GET /api/me: %d", code)
	}
	exec(1, "UPDATE users SET banned = 1 WHERE name_key = 'root'")
	if _, err := e.srv.auth.ReadChanges(ctx); err != nil {
		t.Fatal(err)
	}
	if code := me(); code != 401 {
		t.Fatalf("GET /api/me after a ban by hand: %d, want 401", code)
	}
}
