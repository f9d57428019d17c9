package chatd

import (
	"context"
	"path/filepath"
	"testing"

	"chatd/store"
)

// A database made by an earlier chatd opens in this one: its schema is
// brought up to date, and the events it holds replay as before.
func TestUpgradeFromSchemaVersion2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "chatd.db")
	old, err := store.Open(ctx, path, migrations[:2])
	if err != nil {
		t.Fatal(err)
	}
	err = old.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO events (ts, audience, data) VALUES (1790000000000, 3, '{"type":"room_created","room":"old"}')`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	srv, err := New(ctx, Config{DB: path, Hashes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var version, dropped int
	if err := srv.db.Reader().QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := srv.db.Reader().QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE name IN ('events_room', 'events_target', 'messages_user')").Scan(&dropped); err != nil {
		t.Fatal(err)
	}
	if version != len(migrations) || dropped != 0 {
		t.Fatalf("schema version %d with %d dropped indexes left, want %d and none", version, dropped, len(migrations))
	}
	got, _, err := srv.events.After(ctx, 1, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"id":1,"ts":"2026-09-21T14:13:20.000Z","type":"room_created","room":"old"}`
	if len(got) != 1 || string(got[0].JSON) != want {
		t.Fatalf("replay after the upgrade: %d events (%v), want the one stored before: %s", len(got), got, want)
	}
}
