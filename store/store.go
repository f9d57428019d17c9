// Package store opens chatd's SQLite database and owns its one writer.
//
// Readers use a pool of connections. Every write goes through Write, which
// hands the work to a single writer goroutine. The writer runs the work of
// many concurrent callers in one transaction and commits them with a single
// fsync (synchronous=FULL). A caller's work that fails is taken back
// without disturbing the others: the transaction is run again with each
// caller inside its own savepoint.
// Callbacks registered with Tx.OnCommit run in commit order after the commit
// succeeded, and then the hooks registered with AfterCommit, once per
// transaction: that is where events are published, a whole commit at a
// time.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// ErrUnavailable reports that the database cannot take writes right now (the
// disk is full, the file is read-only, or the store is closed).
var ErrUnavailable = errors.New("store: database unavailable")

// ErrClosed is returned by Write after Close.
var ErrClosed = fmt.Errorf("%w: closed", ErrUnavailable)

// maxBatch bounds how many callers share one transaction.
const maxBatch = 512

// DB is an open chatd database.
type DB struct {
	read  *sql.DB
	write *sql.DB

	reqs    chan *request
	stop    chan struct{}
	done    chan struct{}
	mu      sync.RWMutex // held for reading while queueing, for writing to close
	closed  bool
	closing sync.Once

	afterCommit []func()              // set before the first write; run by the writer
	commitTime  func(d time.Duration) // set before the first write; run by the writer
	writeTime   func(d time.Duration) // set before the first write; run by each caller
	isolate     bool                  // owned by the writer: the last batch had a failure

	// The writer's connection, held for good, and its statements, prepared
	// once. The writer runs its transactions with plain statements on it
	// rather than through sql.Tx, which starts a goroutine (and a context)
	// for every query to watch for cancellation that never comes here.
	conn                                    *sql.Conn
	begin, commitStmt, rollback             *sql.Stmt
	savepoint, release, rollbackToSavepoint *sql.Stmt

	commits   atomic.Int64 // transactions committed
	batched   atomic.Int64 // callers committed
	lastErr   atomic.Value // string: the last commit failure, "" when healthy
	healthyAt atomic.Int64 // unix ms of the last successful commit
}

// Tx is one caller's share of a group-committed transaction.
type Tx struct {
	conn     *sql.Conn
	onCommit []func()
}

// ExecContext runs a statement in the transaction.
func (tx *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return tx.conn.ExecContext(ctx, query, args...)
}

// QueryContext runs a query in the transaction.
func (tx *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return tx.conn.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a query of at most one row in the transaction.
func (tx *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return tx.conn.QueryRowContext(ctx, query, args...)
}

// OnCommit registers fn to run after the transaction has committed, in
// commit order with every other caller's callbacks. fn must not block.
func (tx *Tx) OnCommit(fn func()) { tx.onCommit = append(tx.onCommit, fn) }

type request struct {
	fn       func(ctx context.Context, tx *Tx) error
	errc     chan error // written once by the writer
	answered bool       // owned by the writer
	tx       Tx
}

// answer sends the request's result, once.
func (r *request) answer(err error) {
	if !r.answered {
		r.answered = true
		r.errc <- err
	}
}

// Open opens (creating if needed) the database at path, applies the
// migrations that it has not seen yet, and starts the writer. migrations[i]
// brings the schema from version i to i+1.
func Open(ctx context.Context, path string, migrations []string) (*DB, error) {
	q := url.Values{}
	// database/sql hands a connection to one goroutine at a time, so
	// SQLite need not lock each connection on every call (multi-thread
	// mode): 6% of a post's CPU in BenchmarkPost.
	q.Set("_mutex", "no")
	q.Set("_busy_timeout", "5000")
	q.Set("_foreign_keys", "on")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_txlock", "immediate")
	// Reuse prepared statements: preparing is a fifth of a write's cost.
	q.Set("_stmt_cache_size", "64")
	write, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := migrate(ctx, write, migrations); err != nil {
		write.Close()
		return nil, err
	}

	rq := url.Values{}
	rq.Set("_mutex", "no")
	rq.Set("_busy_timeout", "5000")
	rq.Set("_foreign_keys", "on")
	rq.Set("_query_only", "true")
	rq.Set("_stmt_cache_size", "64")
	read, err := sql.Open("sqlite3", "file:"+path+"?"+rq.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("store: open readers %s: %w", path, err)
	}
	n := max(4, runtime.NumCPU()*2)
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)

	db := &DB{
		read:  read,
		write: write,
		reqs:  make(chan *request, maxBatch),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if err := db.prepareWriter(ctx); err != nil {
		read.Close()
		write.Close()
		return nil, err
	}
	db.lastErr.Store("")
	db.healthyAt.Store(time.Now().UnixMilli())
	go db.writer()
	return db, nil
}

// prepareWriter takes the writer's connection and prepares its statements.
func (db *DB) prepareWriter(ctx context.Context) error {
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: writer connection: %w", err)
	}
	db.conn = conn
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&db.begin, "BEGIN IMMEDIATE"},
		{&db.commitStmt, "COMMIT"},
		{&db.rollback, "ROLLBACK"},
		{&db.savepoint, "SAVEPOINT w"},
		{&db.release, "RELEASE w"},
		{&db.rollbackToSavepoint, "ROLLBACK TO w"},
	} {
		if *p.stmt, err = conn.PrepareContext(ctx, p.sql); err != nil {
			conn.Close()
			return fmt.Errorf("store: prepare %s: %w", p.sql, err)
		}
	}
	return nil
}

func migrate(ctx context.Context, db *sql.DB, migrations []string) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("store: database schema version %d is newer than this chatd (%d)", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: migrate to %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migrate to %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migrate to %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: migrate to %d: %w", v+1, err)
		}
	}
	return nil
}

// AfterCommit registers fn to run in the writer after each committed
// transaction, once its OnCommit callbacks have run. It must be called
// before the first Write.
func (db *DB) AfterCommit(fn func()) { db.afterCommit = append(db.afterCommit, fn) }

// ObserveCommits registers fn to be told, after each successful commit, how
// long the COMMIT itself took: appending the transaction to the WAL and
// waiting for its fsync (and, now and then, a checkpoint). Those are the
// disk's share of every write's latency. It must be called before the first
// Write; fn runs in the writer and must be quick.
func (db *DB) ObserveCommits(fn func(d time.Duration)) { db.commitTime = fn }

// ObserveWrites registers fn to be told, after each Write whose work was
// queued, how long its caller waited: for the writer to take the work up,
// for the work, and for the commit it shares. A commit that stalls shows
// in every write that waited behind it. It must be called before the first
// Write; fn runs in the caller's goroutine.
func (db *DB) ObserveWrites(fn func(d time.Duration)) { db.writeTime = fn }

// Reader returns the pool of read-only connections.
func (db *DB) Reader() *sql.DB { return db.read }

// Write runs fn in the writer's transaction and returns once the transaction
// committed to disk (or failed). fn must do only database work: it shares a
// transaction with other callers, and it may run more than once: when
// another caller's work in the same transaction fails, the transaction is
// rolled back and run again. So fn's only effects outside the database are
// the values it assigns and the callbacks it registers with OnCommit, and
// only those of its last run count. When fn returns an error its changes
// are rolled back and the error is returned; when the commit fails every
// caller gets an error wrapping ErrUnavailable. If ctx ends while the work
// is still queued, the work is dropped and ctx's error returned; once it has
// started it runs to completion.
func (db *DB) Write(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) error {
	errc := make(chan error, 1)
	req := &request{fn: fn, errc: errc}
	var start time.Time
	if db.writeTime != nil {
		start = time.Now()
	}
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return ErrClosed
	}
	select {
	case db.reqs <- req:
		db.mu.RUnlock()
	case <-ctx.Done():
		db.mu.RUnlock()
		return ctx.Err()
	}
	// Once queued, the work will run: wait for its result even if ctx ends,
	// so that a caller never reports failure for a committed write.
	err := <-errc
	if db.writeTime != nil {
		db.writeTime(time.Since(start))
	}
	return err
}

func (db *DB) writer() {
	defer close(db.done)
	batch := make([]*request, 0, maxBatch)
	for {
		var first *request
		select {
		case first = <-db.reqs:
		case <-db.stop:
			// Drain what was queued before Close.
			for {
				select {
				case r := <-db.reqs:
					db.commit([]*request{r})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-db.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		db.commit(batch)
	}
}

// commit runs one group transaction. It first runs every caller's work
// straight through, which costs nothing beyond the work itself. Should one
// caller fail, that transaction is rolled back and the batch is run again
// with each caller in its own savepoint, so that the failure takes back
// only its own changes. While failures keep coming, batches go straight to
// savepoints, so that no batch is run twice in a row.
func (db *DB) commit(batch []*request) {
	if !db.isolate && db.commitPlain(batch) {
		return
	}
	db.isolate = db.commitIsolated(batch)
}

// commitPlain runs the batch without savepoints and commits it. It returns
// false, having rolled everything back and answered no one, when a caller's
// work failed and the batch must be run again one savepoint at a time.
// A batch of one needs no second run: its caller's failure is the
// transaction's.
func (db *DB) commitPlain(batch []*request) bool {
	ctx := context.Background()
	if _, err := db.begin.ExecContext(ctx); err != nil {
		db.failAll(batch, err)
		return true
	}
	for _, r := range batch {
		r.tx = Tx{conn: db.conn}
		if err := runSafely(ctx, r); err != nil {
			db.rollback.ExecContext(ctx)
			if len(batch) > 1 {
				return false
			}
			if isStorageErr(err) {
				err = db.unavailable(err)
			}
			r.answer(err)
			return true
		}
	}
	db.finish(batch, len(batch))
	return true
}

// commitIsolated runs the batch with each caller in its own savepoint: a
// caller whose work fails is rolled back to it and answered with its error,
// and the others commit. It reports whether a caller's work failed.
func (db *DB) commitIsolated(batch []*request) (failed bool) {
	ctx := context.Background()
	if _, err := db.begin.ExecContext(ctx); err != nil {
		db.failAll(batch, err)
		return true
	}
	ok := 0
	for _, r := range batch {
		r.tx = Tx{conn: db.conn}
		if _, err := db.savepoint.ExecContext(ctx); err != nil {
			failed = true
			r.answer(db.unavailable(err))
			continue
		}
		if err := runSafely(ctx, r); err != nil {
			failed = true
			if _, rerr := db.rollbackToSavepoint.ExecContext(ctx); rerr != nil {
				db.rollback.ExecContext(ctx)
				r.answer(err)
				db.failAll(batch, rerr)
				return true
			}
			db.release.ExecContext(ctx)
			if isStorageErr(err) {
				err = db.unavailable(err)
			}
			r.answer(err)
			continue
		}
		if _, err := db.release.ExecContext(ctx); err != nil {
			db.rollback.ExecContext(ctx)
			db.failAll(batch, err)
			return true
		}
		ok++
	}
	db.finish(batch, ok)
	return failed
}

// finish commits the transaction, in which ok of the batch's callers
// succeeded, then runs their commit callbacks and the commit hooks and
// answers them.
func (db *DB) finish(batch []*request, ok int) {
	ctx := context.Background()
	committing := time.Now()
	if _, err := db.commitStmt.ExecContext(ctx); err != nil {
		// A failed COMMIT can leave the transaction open.
		db.rollback.ExecContext(ctx)
		db.failAll(batch, err)
		return
	}
	if db.commitTime != nil {
		db.commitTime(time.Since(committing))
	}
	db.commits.Add(1)
	db.batched.Add(int64(ok))
	db.lastErr.Store("")
	db.healthyAt.Store(time.Now().UnixMilli())
	for _, r := range batch {
		if r.answered {
			continue
		}
		for _, fn := range r.tx.onCommit {
			fn()
		}
	}
	for _, fn := range db.afterCommit {
		fn()
	}
	for _, r := range batch {
		r.answer(nil)
	}
}

func runSafely(ctx context.Context, r *request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: write panicked: %v", p)
		}
	}()
	return r.fn(ctx, &r.tx)
}

func (db *DB) failAll(batch []*request, err error) {
	err = db.unavailable(err)
	for _, r := range batch {
		r.answer(err)
	}
}

func (db *DB) unavailable(err error) error {
	db.lastErr.Store(err.Error())
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// isStorageErr reports whether err comes from the storage rather than from
// the caller's logic: a full disk, a read-only file, an I/O error.
func isStorageErr(err error) bool {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case sqlite3.ErrFull, sqlite3.ErrReadonly, sqlite3.ErrIoErr, sqlite3.ErrCorrupt, sqlite3.ErrCantOpen, sqlite3.ErrNotADB:
		return true
	}
	return false
}

// Health checks that the database can be read and written: it reads a row
// and runs an empty write through the writer. It returns an error wrapping
// ErrUnavailable when it cannot.
func (db *DB) Health(ctx context.Context) error {
	var n int
	if err := db.read.QueryRowContext(ctx, "SELECT count(*) FROM meta").Scan(&n); err != nil {
		return fmt.Errorf("%w: read: %v", ErrUnavailable, err)
	}
	err := db.Write(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES ('health', 0) ON CONFLICT (key) DO UPDATE SET value = value + 1")
		return err
	})
	if err != nil && !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// Stats reports how many transactions and writes were committed.
func (db *DB) Stats() (commits, writes int64) { return db.commits.Load(), db.batched.Load() }

// Close stops the writer after the queued writes are done and closes the
// database.
func (db *DB) Close() error {
	var err error
	db.closing.Do(func() {
		db.mu.Lock()
		db.closed = true
		db.mu.Unlock()
		close(db.stop)
		<-db.done
		db.conn.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)")
		err = errors.Join(db.read.Close(), db.conn.Close(), db.write.Close())
	})
	return err
}
