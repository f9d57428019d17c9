// Package events is chatd's durable event log: every change a user may see
// is appended here inside the transaction that makes the change, gets a
// strictly increasing id, and is handed to the delivery engine once that
// transaction has committed.
//
// Who may see an event is decided the same way live and on replay. Room
// memberships are stored as intervals of event ids, so the question "was
// this user in that room when event N happened" has one answer whether it is
// asked at commit time (to fan the event out to the queues in memory) or a
// week later (to replay it from SQLite after a restart).
package events

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"chatd/api"
	"chatd/comet"
	"chatd/store"
)

// Audience says who may see an event.
type Audience int

// The audiences. The values are stored in the events table.
const (
	// RoomMembers: the room's members at the time of the event.
	RoomMembers Audience = 1
	// Peers: the subject and everyone sharing a room with them at the time.
	Peers Audience = 2
	// Everyone: every user.
	Everyone Audience = 3
	// TargetOnly: the target user alone.
	TargetOnly Audience = 4
)

// Body is the JSON of an event without its id and ts. Fields that an event
// type does not use are left out.
type Body struct {
	Type      string          `json:"type"`
	Room      string          `json:"room,omitempty"`
	User      string          `json:"user,omitempty"`
	Status    string          `json:"status,omitempty"`
	Message   json.RawMessage `json:"message,omitempty"`
	MessageID int64           `json:"message_id,omitempty"`
	Kicked    bool            `json:"kicked,omitempty"`
	By        string          `json:"by,omitempty"`
	// Kind and Topic describe the room in room_created and room_updated.
	Kind  string  `json:"kind,omitempty"`
	Topic *string `json:"topic,omitempty"`
}

// encode returns the body as JSON, written by hand as json.Marshal would
// write it, with the message last: Message is JSON already, and goes in as
// it is (encoding/json would check and compact it once more, and its
// reflection was most of the cost of encoding an event).
func (b Body) encode() []byte {
	out := make([]byte, 0, 64+len(b.Room)+len(b.User)+len(b.Message))
	out = append(out, `{"type":`...)
	out = api.AppendString(out, b.Type)
	field := func(name, v string) {
		if v != "" {
			out = append(out, ',', '"')
			out = append(out, name...)
			out = append(out, '"', ':')
			out = api.AppendString(out, v)
		}
	}
	field("room", b.Room)
	field("user", b.User)
	field("status", b.Status)
	if b.MessageID != 0 {
		out = append(out, `,"message_id":`...)
		out = strconv.AppendInt(out, b.MessageID, 10)
	}
	if b.Kicked {
		out = append(out, `,"kicked":true`...)
	}
	field("by", b.By)
	field("kind", b.Kind)
	if b.Topic != nil {
		out = append(out, `,"topic":`...)
		out = api.AppendString(out, *b.Topic)
	}
	if len(b.Message) > 0 {
		out = append(out, `,"message":`...)
		out = append(out, b.Message...)
	}
	return append(out, '}')
}

// Event is a change to append to the log.
type Event struct {
	Body     Body
	Audience Audience
	RoomID   int64 // RoomMembers: the room
	// Members, when not nil, are the room's members now, as the caller
	// read them in this transaction (store.IDList); Append reads them
	// itself otherwise.
	Members []int64
	Subject int64 // Peers: whose peers see it
	Target  int64 // a user who sees it whatever the audience (may be 0)
}

// Publisher delivers committed events to the users who may see them. The
// comet hub implements it.
type Publisher interface {
	PublishBatch(batch []comet.Delivery)
}

// Log appends events and reads them back for replay.
type Log struct {
	db     *store.DB
	pub    Publisher
	window time.Duration

	floor atomic.Int64 // cursors below this are outside the replay window
	last  atomic.Int64 // the newest committed event id

	// committed collects the events of the transaction being committed;
	// only the writer goroutine touches it (in OnCommit and AfterCommit).
	committed []comet.Delivery
}

// Open returns the log of db. Cursors older than window must
// resynchronise. Call PublishTo before appending.
func Open(ctx context.Context, db *store.DB, window time.Duration) (*Log, error) {
	l := &Log{db: db, window: window}
	db.AfterCommit(l.flush)
	last, err := Newest(ctx, db.Reader())
	if err != nil {
		return nil, err
	}
	l.last.Store(last)
	if err := l.refreshFloor(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// PublishTo sets where committed events go. It must be called before the
// first Append.
func (l *Log) PublishTo(p Publisher) { l.pub = p }

// Querier is what a database or a transaction offers for reading one row.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Newest returns the id of the newest event committed as q sees it (0 for
// none). Read in a snapshot with other data, it is the cursor that goes
// with that data.
func Newest(ctx context.Context, q Querier) (int64, error) {
	var id int64
	if err := q.QueryRowContext(ctx, "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)").Scan(&id); err != nil {
		return 0, fmt.Errorf("events: newest id: %w", err)
	}
	return id, nil
}

// NextID returns the id the next event appended in tx will get. Memberships
// that start "from now" use it, so the event that announces a join is the
// first one the new member sees.
func NextID(ctx context.Context, tx *store.Tx) (int64, error) {
	seq, err := Newest(ctx, tx)
	if err != nil {
		return 0, err
	}
	return seq + 1, nil
}

// Append adds e to the log inside tx and arranges for it to be published
// once tx commits. It returns the event's id.
func (l *Log) Append(ctx context.Context, tx *store.Tx, e Event) (int64, error) {
	data := e.Body.encode()
	ts := time.Now().UnixMilli()
	res, err := tx.ExecContext(ctx,
		`INSERT INTO events (ts, audience, room_id, subject_id, target_id, data) VALUES (?, ?, ?, ?, ?, ?)`,
		ts, int(e.Audience), nullID(e.RoomID), nullID(e.Subject), nullID(e.Target), data)
	if err != nil {
		return 0, fmt.Errorf("events: append %s: %w", e.Body.Type, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("events: append %s: %w", e.Body.Type, err)
	}
	to, everyone, err := recipients(ctx, tx, e)
	if err != nil {
		return 0, err
	}
	d := comet.Delivery{Event: comet.Event{ID: id, JSON: Encode(id, ts, data)}, To: to, Everyone: everyone}
	tx.OnCommit(func() { l.committed = append(l.committed, d) })
	return id, nil
}

// flush publishes the events of the transaction that just committed, all
// together. It runs in the writer after each commit.
func (l *Log) flush() {
	if len(l.committed) == 0 {
		return
	}
	l.last.Store(l.committed[len(l.committed)-1].Event.ID)
	l.pub.PublishBatch(l.committed)
	clear(l.committed)
	l.committed = l.committed[:0]
}

// recipients lists who sees e now, by the same rule as the replay query.
//
// The ids come back from SQLite as one row (store.IDList): a room of
// thousands would otherwise cost a row fetch across cgo per member, per
// event, inside the writer's transaction.
func recipients(ctx context.Context, tx *store.Tx, e Event) ([]int64, bool, error) {
	var q string
	var args []any
	switch e.Audience {
	case Everyone:
		return nil, true, nil
	case TargetOnly:
		return []int64{e.Target}, false, nil
	case RoomMembers:
		q = "SELECT group_concat(user_id) FROM memberships WHERE room_id = ? AND until_event IS NULL"
		args = []any{e.RoomID}
	case Peers:
		q = `SELECT group_concat(DISTINCT b.user_id) FROM memberships a JOIN memberships b ON a.room_id = b.room_id
		     WHERE a.user_id = ? AND a.until_event IS NULL AND b.until_event IS NULL`
		args = []any{e.Subject}
	default:
		return nil, false, fmt.Errorf("events: unknown audience %d", e.Audience)
	}
	var to store.IDList
	if e.Members != nil {
		to = slices.Clone(e.Members)
	} else if err := tx.QueryRowContext(ctx, q, args...).Scan(&to); err != nil {
		return nil, false, fmt.Errorf("events: recipients of %s: %w", e.Body.Type, err)
	}
	extra := []int64{e.Target}
	if e.Audience == Peers {
		extra = append(extra, e.Subject)
	}
	for _, x := range extra {
		if x != 0 && !contains(to, x) {
			to = append(to, x)
		}
	}
	return to, false, nil
}

func contains(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Encode splices the id and timestamp into the stored JSON body of an
// event, giving the JSON a client receives.
func Encode(id, ts int64, data []byte) []byte {
	b := make([]byte, 0, len(data)+48)
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"ts":"`...)
	b = append(b, api.TimeMillis(ts)...)
	b = append(b, '"')
	if len(data) > 2 {
		b = append(b, ',')
	}
	b = append(b, data[1:]...)
	return b
}

// scanLimit bounds how many log rows one replay read examines, so a user
// far behind in a busy log costs a bounded query per poll.
const scanLimit = 20000

// After returns up to limit events after cursor that user may see, oldest
// first, read from SQLite, and the cursor to continue from: the id of the
// last event returned, or further on when the events in between are not
// for this user.
func (l *Log) After(ctx context.Context, user, cursor int64, limit int) ([]comet.Event, int64, error) {
	upto := cursor + scanLimit
	// Read the committed bound before the query: the query's snapshot then
	// holds every event up to it.
	last := l.last.Load()
	rows, err := l.db.Reader().QueryContext(ctx, replayQuery, cursor, upto, user, user, user, user, limit)
	if err != nil {
		return nil, cursor, fmt.Errorf("events: replay for user %d after %d: %w", user, cursor, err)
	}
	defer rows.Close()
	var out []comet.Event
	for rows.Next() {
		var id, ts int64
		var data []byte
		if err := rows.Scan(&id, &ts, &data); err != nil {
			return nil, cursor, fmt.Errorf("events: replay: %w", err)
		}
		out = append(out, comet.Event{ID: id, JSON: Encode(id, ts, data)})
	}
	if err := rows.Err(); err != nil {
		return nil, cursor, fmt.Errorf("events: replay: %w", err)
	}
	next := cursor
	if len(out) > 0 {
		next = out[len(out)-1].ID
	}
	if len(out) < limit {
		// Nothing else visible up to the scanned bound: skip past it, but
		// not past what is committed.
		next = max(next, min(upto, last))
	}
	return out, next, nil
}

const replayQuery = `
SELECT e.id, e.ts, e.data FROM events e
WHERE e.id > ? AND e.id <= ? AND (
    e.audience = 3
    OR e.target_id = ?
    OR (e.audience = 1 AND EXISTS (
        SELECT 1 FROM memberships m
        WHERE m.room_id = e.room_id AND m.user_id = ?
          AND m.since_event <= e.id AND (m.until_event IS NULL OR m.until_event >= e.id)))
    OR (e.audience = 2 AND (e.subject_id = ? OR EXISTS (
        SELECT 1 FROM memberships a JOIN memberships b ON a.room_id = b.room_id
        WHERE a.user_id = e.subject_id AND b.user_id = ?
          AND a.since_event <= e.id AND (a.until_event IS NULL OR a.until_event >= e.id)
          AND b.since_event <= e.id AND (b.until_event IS NULL OR b.until_event >= e.id))))
)
ORDER BY e.id LIMIT ?`

// Last returns the id of the newest committed event.
func (l *Log) Last() int64 { return l.last.Load() }

// refreshFloor recomputes the replay floor from the window: the newest
// event older than the window, found through events_ts. (SQLite answers
// "max(id) ... WHERE ts < ?" by walking back over every id in the window
// instead: 206 ms for a window of two million events.) Should the clock
// have stepped back, the event with the latest old timestamp may not be the
// one with the highest id; the floor is then lower, and pruning keeps more.
func (l *Log) refreshFloor(ctx context.Context) error {
	cut := time.Now().Add(-l.window).UnixMilli()
	var floor sql.NullInt64
	err := l.db.Reader().QueryRowContext(ctx,
		`SELECT max(COALESCE((SELECT id FROM events WHERE ts < ? ORDER BY ts DESC, id DESC LIMIT 1), 0),
		            COALESCE((SELECT value FROM meta WHERE key = 'pruned'), 0))`, cut).Scan(&floor)
	if err != nil {
		return fmt.Errorf("events: replay floor: %w", err)
	}
	l.floor.Store(floor.Int64)
	return nil
}

// Prune deletes events older than the replay window (in bounded steps) and
// moves the replay floor. It is run periodically.
func (l *Log) Prune(ctx context.Context) error {
	if err := l.refreshFloor(ctx); err != nil {
		return err
	}
	floor := l.floor.Load()
	for {
		var n int64
		err := l.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
			res, err := tx.ExecContext(ctx, "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id <= ? ORDER BY id LIMIT 5000)", floor)
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
			if n > 0 {
				_, err = tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES ('pruned', ?) ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)", floor)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("events: prune: %w", err)
		}
		if n < 5000 {
			return nil
		}
	}
}

// Check validates a cursor given by a client: below the floor it returns
// ResyncRequired, beyond the newest committed event InvalidArgument.
func (l *Log) Check(ctx context.Context, cursor int64) error {
	if cursor < 0 {
		return api.Errorf(api.InvalidArgument, "cursor must not be negative")
	}
	if cursor < l.floor.Load() {
		return &api.Error{Code: api.ResyncRequired, Message: "the cursor is older than the replay window; reload /api/state"}
	}
	if cursor > l.last.Load() {
		// The commit may be a moment ahead of the publication; ask the
		// database before refusing.
		last, err := Newest(ctx, l.db.Reader())
		if err != nil {
			return err
		}
		if cursor > last {
			return api.Errorf(api.InvalidArgument, "cursor %d is from the future (the newest event is %d)", cursor, last)
		}
	}
	return nil
}
