package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

const testSchema = `CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE);`

func mustOpen(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), []string{testSchema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConcurrentWritesAreGroupedAndIsolated(t *testing.T) {
	db := mustOpen(t)
	ctx := context.Background()
	const n = 400
	var wg sync.WaitGroup
	var mu sync.Mutex
	var order []int
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Write(ctx, func(ctx context.Context, tx *Tx) error {
				v := fmt.Sprint(i)
				if i%10 == 0 {
					v = "duplicate" // all but the first of these fail
				}
				if _, err := tx.ExecContext(ctx, "INSERT INTO items (v) VALUES (?)", v); err != nil {
					return err
				}
				tx.OnCommit(func() { mu.Lock(); order = append(order, i); mu.Unlock() })
				return nil
			})
		}()
	}
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed != n/10-1 {
		t.Fatalf("%d writes failed, want %d (the duplicates)", failed, n/10-1)
	}
	var rows int
	db.Reader().QueryRow("SELECT count(*) FROM items").Scan(&rows)
	if rows != n-failed || len(order) != rows {
		t.Fatalf("%d rows and %d commit callbacks, want %d", rows, len(order), n-failed)
	}
	commits, writes := db.Stats()
	t.Logf("%d writes in %d commits", writes, commits)
	if commits >= writes {
		t.Errorf("no grouping: %d commits for %d writes", commits, writes)
	}
}

func TestFailedWriteRollsBackOnlyItself(t *testing.T) {
	db := mustOpen(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := db.Write(ctx, func(ctx context.Context, tx *Tx) error {
		tx.ExecContext(ctx, "INSERT INTO items (v) VALUES ('half')")
		tx.OnCommit(func() { t.Error("callback of a failed write ran") })
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	var n int
	db.Reader().QueryRow("SELECT count(*) FROM items WHERE v = 'half'").Scan(&n)
	if n != 0 {
		t.Fatal("a failed write left a row behind")
	}
}

// TestFailureInABatchTakesBackOnlyItself queues writes behind a busy writer
// so that they share one transaction, one of them failing after it wrote: the
// others are committed once each, with their callbacks run once each.
func TestFailureInABatchTakesBackOnlyItself(t *testing.T) {
	db := mustOpen(t)
	ctx := context.Background()
	boom := errors.New("boom")
	const queued = 5 // the middle one fails
	var mu sync.Mutex
	callbacks := make(map[string]int)
	errs := make([]error, queued)
	var wg sync.WaitGroup
	hold := db.Write(ctx, func(ctx context.Context, tx *Tx) error {
		// Holding the writer, start the others and wait until they are queued.
		for i := range queued {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := fmt.Sprint("w", i)
				errs[i] = db.Write(ctx, func(ctx context.Context, tx *Tx) error {
					if _, err := tx.ExecContext(ctx, "INSERT INTO items (v) VALUES (?)", v); err != nil {
						return err
					}
					tx.OnCommit(func() { mu.Lock(); callbacks[v]++; mu.Unlock() })
					if i == queued/2 {
						return boom
					}
					return nil
				})
			}()
		}
		for len(db.reqs) < queued {
			runtime.Gosched()
		}
		return nil
	})
	if hold != nil {
		t.Fatal(hold)
	}
	wg.Wait()
	commits, _ := db.Stats()
	for i, err := range errs {
		v := fmt.Sprint("w", i)
		var rows int
		if err := db.Reader().QueryRow("SELECT count(*) FROM items WHERE v = ?", v).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		want, wantErr := 1, error(nil)
		if i == queued/2 {
			want, wantErr = 0, boom
		}
		if !errors.Is(err, wantErr) || rows != want || callbacks[v] != want {
			t.Errorf("write %s: err %v, %d rows, %d callbacks; want err %v, %d of each", v, err, rows, callbacks[v], wantErr, want)
		}
	}
	if commits != 2 {
		t.Errorf("%d commits, want 2: the writer's holder and the batch behind it", commits)
	}
}

func TestWriteAfterCloseFails(t *testing.T) {
	db := mustOpen(t)
	db.Close()
	err := db.Write(context.Background(), func(ctx context.Context, tx *Tx) error { return nil })
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestMigrationsApplyOnceInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	ctx := context.Background()
	db, err := Open(ctx, path, []string{testSchema})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A later release adds a migration: it runs on the existing database.
	db, err = Open(ctx, path, []string{testSchema, "ALTER TABLE items ADD COLUMN extra TEXT"})
	if err != nil {
		t.Fatal(err)
	}
	var v int
	db.Reader().QueryRow("PRAGMA user_version").Scan(&v)
	db.Close()
	if v != 2 {
		t.Fatalf("user_version = %d, want 2", v)
	}
	// An older binary refuses a newer database rather than corrupt it.
	if _, err := Open(ctx, path, []string{testSchema}); err == nil {
		t.Fatal("an older schema list opened a newer database")
	}
}

func TestSynchronousFull(t *testing.T) {
	db := mustOpen(t)
	var mode, sync int
	var jm string
	db.conn.QueryRowContext(context.Background(), "PRAGMA journal_mode").Scan(&jm)
	db.conn.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&sync)
	db.conn.QueryRowContext(context.Background(), "PRAGMA foreign_keys").Scan(&mode)
	if jm != "wal" || sync != 2 || mode != 1 {
		t.Fatalf("journal_mode=%s synchronous=%d foreign_keys=%d, want wal, 2 (FULL), 1", jm, sync, mode)
	}
}

func TestObserveCommitsTimesEachCommit(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), []string{testSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var times []time.Duration // only the writer appends, before Write returns
	db.ObserveCommits(func(d time.Duration) { times = append(times, d) })
	ctx := context.Background()
	for i := range 5 {
		err := db.Write(ctx, func(ctx context.Context, tx *Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO items (v) VALUES (?)", fmt.Sprint(i))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	commits, _ := db.Stats()
	if int64(len(times)) != commits || commits < 5 {
		t.Fatalf("%d commits observed, %d made (want one each, at least 5)", len(times), commits)
	}
	for _, d := range times {
		if d <= 0 {
			t.Fatalf("commit times %v: each must be positive", times)
		}
	}
}

func TestObserveWritesTimesTheCallersWait(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), []string{testSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mu sync.Mutex
	var waits []time.Duration
	db.ObserveWrites(func(d time.Duration) {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
	})
	ctx := context.Background()
	insert := func(v string) func(ctx context.Context, tx *Tx) error {
		return func(ctx context.Context, tx *Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO items (v) VALUES (?)", v)
			return err
		}
	}
	// The first write holds the writer until the second is queued behind
	// it, then works for 30 ms: the second caller's wait includes that.
	const work = 30 * time.Millisecond
	running := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.Write(ctx, func(ctx context.Context, tx *Tx) error {
			close(running)
			for len(db.reqs) == 0 {
				runtime.Gosched()
			}
			time.Sleep(work) // the slow work itself, not a wait for something
			return insert("first")(ctx, tx)
		})
	}()
	<-running
	if err := db.Write(ctx, insert("second")); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 2 {
		t.Fatalf("%d writes observed, want 2", len(waits))
	}
	for i, d := range waits {
		if d < work {
			t.Errorf("write %d waited %v by its observation, want at least the %v of work it waited behind", i, d, work)
		}
	}
}
