package events

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"chatd/api"
	"chatd/store"
)

// A body encodes to JSON that decodes to the same body, with or without a
// message, whatever else is set, byte for byte as json.Marshal writes it
// with the message moved last.
func TestBodyEncode(t *testing.T) {
	topic, empty := "a \"topic\" <b>", ""
	for _, b := range []Body{
		{Type: "room_updated", Room: "r", Topic: &empty, By: "a&b", Status: "away"},
		{Type: "login", User: "\u2028 ☃ \x01"},
		{Type: "message", Room: "lobby", User: "ann", Message: json.RawMessage(`{"id":1,"text":"<hi> & \"bye\""}`)},
		{Type: "message_deleted", Room: "lobby", MessageID: 7, By: "root"},
		{Type: "room_updated", Room: "lobby", Kind: "public", Topic: &topic},
		{Type: "message_edited", Room: "r", User: "bo", Message: json.RawMessage(`{}`), MessageID: 3, Kicked: true},
		{Type: "logout"},
	} {
		data := b.encode()
		var got Body
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Errorf("%s decodes to %+v, want %+v", data, got, b)
		}
		rest := b
		rest.Message = nil
		want, err := json.Marshal(rest)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Message) > 0 {
			want = append(want[:len(want)-1], `,"message":`...)
			want = append(append(want, b.Message...), '}')
		}
		if string(data) != string(want) {
			t.Errorf("encoded\n %s\nwant\n %s", data, want)
		}
	}
}

// Pruning removes the events older than the replay window, and a cursor
// from before them must resynchronise. An event whose clock stepped back is
// kept along with the newer events around it.
func TestPruneMovesTheFloor(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "e.db"), []string{`
		CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, audience INTEGER NOT NULL,
			room_id INTEGER, subject_id INTEGER, target_id INTEGER, data TEXT NOT NULL);
		CREATE INDEX events_ts ON events (ts);
		CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);`})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	ages := []time.Duration{3 * time.Hour, 3 * time.Hour, 3 * time.Hour, 2 * time.Hour, 0, 0, 3 * time.Hour}
	err = db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		for _, age := range ages {
			if _, err := tx.ExecContext(ctx, "INSERT INTO events (ts, audience, data) VALUES (?, 3, '{}')", now.Add(-age).UnixMilli()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(ctx, db, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	var left []int64
	rows, err := db.Reader().QueryContext(ctx, "SELECT id FROM events ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		left = append(left, id)
	}
	rows.Close()
	if !reflect.DeepEqual(left, []int64{5, 6, 7}) {
		t.Errorf("events left after pruning: %v, want 5, 6 and 7 (7's clock stepped back)", left)
	}
	var apiErr *api.Error
	if err := l.Check(ctx, 3); !errors.As(err, &apiErr) || apiErr.Code != api.ResyncRequired {
		t.Errorf("cursor 3, before the pruned events: %v, want resync_required", err)
	}
	if err := l.Check(ctx, 4); err != nil {
		t.Errorf("cursor 4, the newest pruned event: %v, want it accepted", err)
	}
}
