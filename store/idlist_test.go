package store

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
)

func TestIDListScan(t *testing.T) {
	for _, tc := range []struct {
		src  any
		want []int64
	}{
		{nil, []int64{}},
		{[]byte(""), []int64{}},
		{"7", []int64{7}},
		{[]byte("3,1,2"), []int64{3, 1, 2}},
		{"1000000,42", []int64{1000000, 42}},
		{int64(9), []int64{9}},
	} {
		for _, l := range []IDList{nil, {5}} {
			if err := l.Scan(tc.src); err != nil || l == nil || !slices.Equal(l, tc.want) {
				t.Errorf("Scan(%#v) = %#v, %v; want %v", tc.src, l, err, tc.want)
			}
		}
	}
	for _, bad := range []any{",", "1,", ",1", "1,,2", "1;2", "-1", "1234567890123456789", 1.5} {
		var l IDList
		if err := l.Scan(bad); err == nil {
			t.Errorf("Scan(%#v) = %v, want an error", bad, l)
		}
	}
}

// SQLite's group_concat of integer ids scans back into the same ids, and
// of no rows into none. Every list scanned is non-nil: callers tell "read,
// and empty" from "not read" by it (events.Event.Members).
func TestIDListFromSQLite(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "t.db"), []string{"CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER)"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Write(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO t (id, k) VALUES (1, 1), (20, 1), (300000000000, 1)")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[int][]int64{1: {1, 20, 300000000000}, 2: {}} {
		var l IDList
		if err := db.Reader().QueryRowContext(ctx, "SELECT group_concat(id) FROM (SELECT id FROM t WHERE k = ? ORDER BY id)", k).Scan(&l); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(l, want) {
			t.Errorf("k=%d: %v, want %v", k, l, want)
		}
	}
}
