// Package messages owns chat messages: the content pipeline that makes
// text and HTML safe, posting to rooms and to users, history, edits and
// deletions, and the per-user posting rate limit.
package messages

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"chatd/api"
	"chatd/auth"
	"chatd/events"
	"chatd/rooms"
	"chatd/store"
)

// Message is a stored message.
type Message struct {
	ID      int64
	Room    string
	User    string
	UserID  int64
	Content Content
	TS      time.Time
	Edited  time.Time // zero when never edited
}

// JSON is a message as the API shows it.
type JSON struct {
	ID       int64  `json:"id"`
	Room     string `json:"room"`
	User     string `json:"user"`
	Text     string `json:"text"`
	HTML     string `json:"html"`
	TS       string `json:"ts"`
	EditedTS string `json:"edited_ts,omitempty"`
}

// View returns the message as the API shows it.
func (m Message) View() JSON {
	j := JSON{ID: m.ID, Room: m.Room, User: m.User, Text: m.Content.Text, HTML: m.Content.HTML, TS: api.Time(m.TS)}
	if !m.Edited.IsZero() {
		j.EditedTS = api.Time(m.Edited)
	}
	return j
}

// appendJSON appends the view as json.Marshal would encode it, without
// its reflection: every post encodes its message twice, for the event and
// for the reply.
func (j JSON) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, j.ID, 10)
	b = append(b, `,"room":`...)
	b = api.AppendString(b, j.Room)
	b = append(b, `,"user":`...)
	b = api.AppendString(b, j.User)
	b = append(b, `,"text":`...)
	b = api.AppendString(b, j.Text)
	b = append(b, `,"html":`...)
	b = api.AppendString(b, j.HTML)
	b = append(b, `,"ts":`...)
	b = api.AppendString(b, j.TS)
	if j.EditedTS != "" {
		b = append(b, `,"edited_ts":`...)
		b = api.AppendString(b, j.EditedTS)
	}
	return append(b, '}')
}

// jsonSize is room enough for the view's JSON, but for escapes.
func (j JSON) jsonSize() int {
	return 128 + len(j.Room) + len(j.User) + len(j.Text) + len(j.HTML)
}

// Auditor writes moderation to the audit log inside the transaction that
// does it (the admin feature).
type Auditor interface {
	Record(ctx context.Context, tx *store.Tx, admin auth.User, action, target, detail string) error
}

// Rooms is what messages needs from the rooms feature.
type Rooms interface {
	DirectRoom(ctx context.Context, tx *store.Tx, a, b auth.User) (rooms.Room, error)
}

// Config tunes the messages feature.
type Config struct {
	// Rate is how many messages a user may post per second on average
	// (0: no limit); Burst how many at once.
	Rate  float64
	Burst int
}

// Service is the messages feature.
type Service struct {
	db     *store.DB
	events *events.Log
	rooms  Rooms
	cfg    Config
	audit  Auditor

	mu       sync.Mutex
	limiters map[int64]*limiter
}

type limiter struct {
	lim  *rate.Limiter
	used time.Time
}

// New returns the messages feature.
func New(db *store.DB, log *events.Log, r Rooms, cfg Config) *Service {
	if cfg.Burst <= 0 {
		cfg.Burst = max(1, int(cfg.Rate*4))
	}
	return &Service{db: db, events: log, rooms: r, cfg: cfg, limiters: make(map[int64]*limiter)}
}

// SetAuditor connects the audit log (wired after both exist).
func (s *Service) SetAuditor(a Auditor) { s.audit = a }

// allow charges one message to the user's budget, returning RateLimited
// with the wait when it is spent.
func (s *Service) allow(userID int64) error {
	if s.cfg.Rate <= 0 {
		return nil
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.limiters[userID]
	if l == nil {
		if len(s.limiters) >= 100_000 {
			for k, v := range s.limiters {
				if now.Sub(v.used) > time.Minute {
					delete(s.limiters, k)
				}
			}
		}
		l = &limiter{lim: rate.NewLimiter(rate.Limit(s.cfg.Rate), s.cfg.Burst)}
		s.limiters[userID] = l
	}
	l.used = now
	r := l.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return &api.Error{Code: api.RateLimited, Message: "you are posting too fast; slow down", RetryAfter: d}
	}
	return nil
}

// Post adds a message to the room. It returns Forbidden when the user is
// not a member, and RateLimited when they post too fast.
func (s *Service) Post(ctx context.Context, u auth.User, roomName string, c Content) (Message, error) {
	if err := s.allow(u.ID); err != nil {
		return Message{}, err
	}
	var m Message
	err := s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		r, members, err := rooms.FindWithMembers(ctx, tx, roomName)
		if err != nil {
			return err
		}
		if !slices.Contains(members, u.ID) {
			return api.Errorf(api.Forbidden, "join %q before posting to it", roomName)
		}
		m, err = s.insert(ctx, tx, r, members, u, c)
		return err
	})
	return m, err
}

// PostDirect sends a direct message to the user called to, in the direct
// room the two share (made on first use).
func (s *Service) PostDirect(ctx context.Context, u auth.User, to string, c Content) (Message, error) {
	if err := s.allow(u.ID); err != nil {
		return Message{}, err
	}
	var m Message
	err := s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		peer, err := auth.UserByName(ctx, tx, to)
		if err != nil {
			return err
		}
		if peer.Banned {
			return api.Errorf(api.Forbidden, "%s is banned", peer.Name)
		}
		r, err := s.rooms.DirectRoom(ctx, tx, u, peer)
		if err != nil {
			return err
		}
		m, err = s.insert(ctx, tx, r, nil, u, c)
		return err
	})
	return m, err
}

// insert stores the message and its event. members are the room's members
// when the caller has read them in tx, or nil.
func (s *Service) insert(ctx context.Context, tx *store.Tx, r rooms.Room, members []int64, u auth.User, c Content) (Message, error) {
	now := time.Now()
	res, err := tx.ExecContext(ctx, "INSERT INTO messages (room_id, user_id, text, html, created_at) VALUES (?, ?, ?, ?, ?)",
		r.ID, u.ID, c.Text, c.HTML, now.UnixMilli())
	if err != nil {
		return Message{}, fmt.Errorf("messages: post to %s: %w", r.Name, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return Message{}, fmt.Errorf("messages: post to %s: %w", r.Name, err)
	}
	m := Message{ID: id, Room: r.Name, User: u.Name, UserID: u.ID, Content: c, TS: time.UnixMilli(now.UnixMilli())}
	return m, s.announce(ctx, tx, "message", r.ID, members, m)
}

func (s *Service) announce(ctx context.Context, tx *store.Tx, typ string, roomID int64, members []int64, m Message) error {
	v := m.View()
	body := v.appendJSON(make([]byte, 0, v.jsonSize()))
	_, err := s.events.Append(ctx, tx, events.Event{
		Body:     events.Body{Type: typ, Room: m.Room, User: m.User, Message: body},
		Audience: events.RoomMembers,
		RoomID:   roomID,
		Members:  members,
	})
	return err
}

const msgCols = "m.id, r.name, u.name, m.user_id, m.text, m.html, m.created_at, m.edited_at"

func scanMessage(row interface{ Scan(...any) error }) (Message, error) {
	var m Message
	var ts int64
	var edited sql.NullInt64
	if err := row.Scan(&m.ID, &m.Room, &m.User, &m.UserID, &m.Content.Text, &m.Content.HTML, &ts, &edited); err != nil {
		return Message{}, err
	}
	m.TS = time.UnixMilli(ts)
	if edited.Valid {
		m.Edited = time.UnixMilli(edited.Int64)
	}
	return m, nil
}

// byID returns a live message and its room id, or NotFound.
func byID(ctx context.Context, q auth.Querier, id int64) (Message, int64, error) {
	var roomID int64
	row := q.QueryRowContext(ctx, "SELECT "+msgCols+", m.room_id FROM messages m JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.user_id WHERE m.id = ? AND m.deleted_at IS NULL", id)
	var m Message
	var ts int64
	var edited sql.NullInt64
	err := row.Scan(&m.ID, &m.Room, &m.User, &m.UserID, &m.Content.Text, &m.Content.HTML, &ts, &edited, &roomID)
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, 0, api.Errorf(api.NotFound, "no message %d", id)
	}
	if err != nil {
		return Message{}, 0, fmt.Errorf("messages: message %d: %w", id, err)
	}
	m.TS = time.UnixMilli(ts)
	if edited.Valid {
		m.Edited = time.UnixMilli(edited.Int64)
	}
	return m, roomID, nil
}

// History returns up to limit messages of the room older than before (all
// when before is 0), oldest first. Members, and anyone for public rooms,
// may read it.
func (s *Service) History(ctx context.Context, u auth.User, roomName string, before int64, limit int) ([]Message, error) {
	q := s.db.Reader()
	r, err := rooms.ByName(ctx, q, roomName)
	if err != nil {
		return nil, err
	}
	ok, err := rooms.CanSee(ctx, q, r, u)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, api.Errorf(api.Forbidden, "%q is a private room", roomName)
	}
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := q.QueryContext(ctx, "SELECT "+msgCols+` FROM messages m JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.user_id
		WHERE m.room_id = ? AND m.id < ? AND m.deleted_at IS NULL ORDER BY m.id DESC LIMIT ?`, r.ID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("messages: history of %s: %w", roomName, err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("messages: history of %s: %w", roomName, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("messages: history of %s: %w", roomName, err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Edit replaces a message's content; only its author may.
func (s *Service) Edit(ctx context.Context, u auth.User, id int64, c Content) (Message, error) {
	var m Message
	err := s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		old, roomID, err := byID(ctx, tx, id)
		if err != nil {
			return err
		}
		if old.UserID != u.ID {
			return api.Errorf(api.Forbidden, "only its author may edit a message")
		}
		now := time.UnixMilli(time.Now().UnixMilli())
		if _, err := tx.ExecContext(ctx, "UPDATE messages SET text = ?, html = ?, edited_at = ? WHERE id = ?", c.Text, c.HTML, now.UnixMilli(), id); err != nil {
			return fmt.Errorf("messages: edit %d: %w", id, err)
		}
		m = old
		m.Content = c
		m.Edited = now
		return s.announce(ctx, tx, "message_edited", roomID, nil, m)
	})
	return m, err
}

// Delete removes a message; its author or an admin may. The content is
// erased from the database, not just hidden.
//
// An admin deleting someone else's message is moderation: it is written to
// the audit log in the same transaction.
func (s *Service) Delete(ctx context.Context, u auth.User, id int64) error {
	return s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		m, err := s.DeleteTx(ctx, tx, u, id)
		if err != nil {
			return err
		}
		if m.UserID != u.ID && s.audit != nil {
			return s.audit.Record(ctx, tx, u, "message.delete", m.User, fmt.Sprintf("message %d in %s", m.ID, m.Room))
		}
		return nil
	})
}

// DeleteTx is Delete inside tx, without the audit record (the admin
// feature writes its own); it returns the message as it was.
func (s *Service) DeleteTx(ctx context.Context, tx *store.Tx, u auth.User, id int64) (Message, error) {
	m, roomID, err := byID(ctx, tx, id)
	if err != nil {
		return Message{}, err
	}
	if m.UserID != u.ID && !u.IsAdmin() {
		return Message{}, api.Errorf(api.Forbidden, "only its author or an admin may delete a message")
	}
	if err := s.remove(ctx, tx, u, m, roomID); err != nil {
		return Message{}, err
	}
	return m, nil
}

func (s *Service) remove(ctx context.Context, tx *store.Tx, by auth.User, m Message, roomID int64) error {
	if _, err := tx.ExecContext(ctx, "UPDATE messages SET text = '', html = '', deleted_at = ? WHERE id = ?", time.Now().UnixMilli(), m.ID); err != nil {
		return fmt.Errorf("messages: delete %d: %w", m.ID, err)
	}
	_, err := s.events.Append(ctx, tx, events.Event{
		Body:     events.Body{Type: "message_deleted", Room: m.Room, User: m.User, MessageID: m.ID, By: by.Name},
		Audience: events.RoomMembers,
		RoomID:   roomID,
	})
	return err
}

// Selection is a user's messages chosen for removal by SelectRecent, to be
// removed by DeleteRecent.
type Selection struct {
	UserID int64
	since  int64   // unix ms
	ids    []int64 // the user's live messages since then, up to upto
	upto   int64   // the newest message when they were read
}

// SelectRecent finds the user's live messages posted since the given time
// (the zero time: all of them). No index leads from a user to their
// messages (it would cost every post a page written), so it scans the
// table; it does so from a reader, without holding up the writer.
func (s *Service) SelectRecent(ctx context.Context, userID int64, since time.Time) (Selection, error) {
	sel := Selection{UserID: userID, since: since.UnixMilli()}
	// Every message up to the newest one now is in what the scan reads.
	if err := s.db.Reader().QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM messages").Scan(&sel.upto); err != nil {
		return Selection{}, fmt.Errorf("messages: newest message: %w", err)
	}
	ids, err := collectIDs(ctx, s.db.Reader(), "SELECT id FROM messages WHERE user_id = ? AND created_at >= ? AND deleted_at IS NULL AND id <= ? ORDER BY id", userID, sel.since, sel.upto)
	if err != nil {
		return Selection{}, fmt.Errorf("messages: recent of %d: %w", userID, err)
	}
	sel.ids = ids
	return sel, nil
}

// DeleteRecent removes the selected messages, on an admin's word, inside
// tx, with those the user posted since they were selected. It returns how
// many were removed: those deleted in the meantime are not counted.
func (s *Service) DeleteRecent(ctx context.Context, tx *store.Tx, admin auth.User, sel Selection) (int, error) {
	later, err := collectIDs(ctx, tx, "SELECT id FROM messages WHERE id > ? AND user_id = ? AND created_at >= ? AND deleted_at IS NULL ORDER BY id", sel.upto, sel.UserID, sel.since)
	if err != nil {
		return 0, fmt.Errorf("messages: recent of %d: %w", sel.UserID, err)
	}
	n := 0
	for _, id := range slices.Concat(sel.ids, later) {
		m, roomID, err := byID(ctx, tx, id)
		if api.IsCode(err, api.NotFound) {
			continue // deleted since the selection
		}
		if err != nil {
			return 0, err
		}
		if err := s.remove(ctx, tx, admin, m, roomID); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// collectIDs runs a query of one id column and returns the ids.
func collectIDs(ctx context.Context, q auth.Querier, query string, args ...any) ([]int64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Recent returns the newest messages across public and private rooms,
// newest first (for moderation; direct messages stay between their two
// people).
func (s *Service) Recent(ctx context.Context, limit int) ([]Message, error) {
	rows, err := s.db.Reader().QueryContext(ctx, "SELECT "+msgCols+` FROM messages m JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.user_id
		WHERE m.deleted_at IS NULL AND r.kind != 'direct' ORDER BY m.id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("messages: recent: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("messages: recent: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
