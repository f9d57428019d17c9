// Package rooms owns chat rooms: public, private and direct rooms, their
// membership intervals, topics, and the endpoints that list, create, show,
// join and leave them.
package rooms

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"chatd/api"
	"chatd/auth"
	"chatd/events"
	"chatd/store"
)

// Kinds of room.
const (
	Public  = "public"
	Private = "private"
	Direct  = "direct"
)

// Lobby is the room every account joins when it is made.
const Lobby = "lobby"

// MaxTopic is the longest topic, in characters.
const MaxTopic = 512

// Room is a chat room.
type Room struct {
	ID      int64
	Name    string
	Topic   string
	Kind    string
	Members int
	// Peers are the two users of a direct room.
	Peers []string
}

// JSON is a room as the API shows it.
type JSON struct {
	Name    string   `json:"name"`
	Topic   string   `json:"topic"`
	Kind    string   `json:"kind"`
	Members int      `json:"members"`
	Peers   []string `json:"peers,omitempty"`
}

// View returns the room as the API shows it.
func (r Room) View() JSON {
	return JSON{Name: r.Name, Topic: r.Topic, Kind: r.Kind, Members: r.Members, Peers: r.Peers}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidName checks a room name against the contract's pattern.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return api.Errorf(api.InvalidArgument, "a room name is 1 to 64 lower-case letters, digits, '_' or '-', starting with a letter or digit")
	}
	return nil
}

// ValidTopic checks a topic's length and characters.
func ValidTopic(topic string) error {
	if !utf8.ValidString(topic) || utf8.RuneCountInString(topic) > MaxTopic || strings.ContainsAny(topic, "\x00\r\n") {
		return api.Errorf(api.InvalidArgument, "a topic is one line of at most %d characters", MaxTopic)
	}
	return nil
}

// Querier reads from the database or a transaction.
type Querier = auth.Querier

const roomCols = `r.id, r.name, r.topic, r.kind,
	(SELECT count(*) FROM memberships m WHERE m.room_id = r.id AND m.until_event IS NULL)`

func scanRoom(row interface{ Scan(...any) error }) (Room, error) {
	var r Room
	err := row.Scan(&r.ID, &r.Name, &r.Topic, &r.Kind, &r.Members)
	return r, err
}

// ByName returns the live room with the name, or a NotFound error.
func ByName(ctx context.Context, q Querier, name string) (Room, error) {
	r, err := scanRoom(q.QueryRowContext(ctx, "SELECT "+roomCols+" FROM rooms r WHERE r.name = ? AND r.deleted_at IS NULL", name))
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, api.Errorf(api.NotFound, "no room called %q", name)
	}
	if err != nil {
		return Room{}, fmt.Errorf("rooms: room %q: %w", name, err)
	}
	if r.Kind == Direct {
		if r.Peers, err = memberNames(ctx, q, r.ID); err != nil {
			return Room{}, err
		}
	}
	return r, nil
}

// FindWithMembers returns the live room with the name and its members now,
// in one query: the posting path runs it in the writer, and the list both
// says whether the poster may post and who the message is for. It returns
// NotFound when there is no such room.
func FindWithMembers(ctx context.Context, q Querier, name string) (Room, store.IDList, error) {
	var r Room
	var members store.IDList
	err := q.QueryRowContext(ctx, `SELECT r.id, r.name, r.topic, r.kind, (
			SELECT group_concat(m.user_id) FROM memberships m WHERE m.room_id = r.id AND m.until_event IS NULL)
		FROM rooms r WHERE r.name = ? AND r.deleted_at IS NULL`, name).Scan(&r.ID, &r.Name, &r.Topic, &r.Kind, &members)
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, nil, api.Errorf(api.NotFound, "no room called %q", name)
	}
	if err != nil {
		return Room{}, nil, fmt.Errorf("rooms: room %q: %w", name, err)
	}
	return r, members, nil
}

// IsMember reports whether the user is a member of the room now.
func IsMember(ctx context.Context, q Querier, roomID, userID int64) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, "SELECT count(*) FROM memberships WHERE room_id = ? AND user_id = ? AND until_event IS NULL", roomID, userID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("rooms: membership: %w", err)
	}
	return n > 0, nil
}

// CanSee reports whether the user may look at the room: public rooms are
// open to all, private and direct rooms to their members (and admins).
func CanSee(ctx context.Context, q Querier, r Room, u auth.User) (bool, error) {
	if r.Kind == Public || (u.IsAdmin() && r.Kind == Private) {
		return true, nil
	}
	return IsMember(ctx, q, r.ID, u.ID)
}

func memberNames(ctx context.Context, q Querier, roomID int64) ([]string, error) {
	rows, err := q.QueryContext(ctx, "SELECT u.name FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.room_id = ? AND m.until_event IS NULL ORDER BY u.name_key", roomID)
	if err != nil {
		return nil, fmt.Errorf("rooms: members of %d: %w", roomID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("rooms: members of %d: %w", roomID, err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Members returns the users who are members of the room now, by name.
func Members(ctx context.Context, q Querier, roomID int64) ([]auth.User, error) {
	rows, err := q.QueryContext(ctx, `SELECT u.id, u.name, u.role, u.banned, u.created_at, u.last_seen
		FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.room_id = ? AND m.until_event IS NULL ORDER BY u.name_key`, roomID)
	if err != nil {
		return nil, fmt.Errorf("rooms: members of %d: %w", roomID, err)
	}
	return scanUsers(rows)
}

func scanUsers(rows *sql.Rows) ([]auth.User, error) {
	defer rows.Close()
	var out []auth.User
	for rows.Next() {
		var u auth.User
		var created int64
		var seen sql.NullInt64
		if err := rows.Scan(&u.ID, &u.Name, &u.Role, &u.Banned, &created, &seen); err != nil {
			return nil, fmt.Errorf("rooms: scan user: %w", err)
		}
		u.Created = time.UnixMilli(created)
		if seen.Valid {
			u.LastSeen = time.UnixMilli(seen.Int64)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// Peers returns the users who share a room with the user now (including
// the user).
func Peers(ctx context.Context, q Querier, userID int64) ([]auth.User, error) {
	rows, err := q.QueryContext(ctx, `SELECT u.id, u.name, u.role, u.banned, u.created_at, u.last_seen FROM users u
		WHERE u.id = ? OR u.id IN (
			SELECT b.user_id FROM memberships a JOIN memberships b ON a.room_id = b.room_id
			WHERE a.user_id = ? AND a.until_event IS NULL AND b.until_event IS NULL)
		ORDER BY u.name_key`, userID, userID)
	if err != nil {
		return nil, fmt.Errorf("rooms: peers of %d: %w", userID, err)
	}
	return scanUsers(rows)
}

// Visible returns the rooms the user may list: every public room and the
// user's private and direct rooms, by name.
func Visible(ctx context.Context, q Querier, userID int64) ([]Room, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+roomCols+` FROM rooms r
		WHERE r.deleted_at IS NULL AND (r.kind = 'public' OR EXISTS (
			SELECT 1 FROM memberships m WHERE m.room_id = r.id AND m.user_id = ? AND m.until_event IS NULL))
		ORDER BY r.name`, userID)
	out, err := scanRooms(rows, err)
	if err != nil {
		return nil, fmt.Errorf("rooms: list: %w", err)
	}
	for i := range out {
		if out[i].Kind == Direct {
			if out[i].Peers, err = memberNames(ctx, q, out[i].ID); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// All returns the live public and private rooms, by name, at most limit
// (for moderation; direct rooms stay between their two people).
func All(ctx context.Context, q Querier, limit int) ([]Room, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+roomCols+" FROM rooms r WHERE r.deleted_at IS NULL AND r.kind != 'direct' ORDER BY r.name LIMIT ?", limit)
	out, err := scanRooms(rows, err)
	if err != nil {
		return nil, fmt.Errorf("rooms: list all: %w", err)
	}
	return out, nil
}

// scanRooms reads the rooms of a query (and passes on its error).
func scanRooms(rows *sql.Rows, err error) ([]Room, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Room
	for rows.Next() {
		r, err := scanRoom(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Joined returns the names of the rooms the user is a member of now.
func Joined(ctx context.Context, q Querier, userID int64) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, "SELECT r.name FROM memberships m JOIN rooms r ON r.id = m.room_id WHERE m.user_id = ? AND m.until_event IS NULL AND r.deleted_at IS NULL", userID)
	if err != nil {
		return nil, fmt.Errorf("rooms: joined: %w", err)
	}
	defer rows.Close()
	out := make(map[string]bool)
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("rooms: joined: %w", err)
		}
		out[n] = true
	}
	return out, rows.Err()
}

// Service is the rooms feature.
type Service struct {
	db     *store.DB
	events *events.Log
	auth   *auth.Service
}

// New returns the rooms feature.
func New(db *store.DB, log *events.Log, a *auth.Service) *Service {
	return &Service{db: db, events: log, auth: a}
}

// SetAuth connects the accounts feature (wired after both exist).
func (s *Service) SetAuth(a *auth.Service) { s.auth = a }

// Welcome puts a new account in the lobby, inside the transaction that
// creates it. It implements auth.Welcomer.
func (s *Service) Welcome(ctx context.Context, tx *store.Tx, u auth.User) error {
	r, err := ByName(ctx, tx, Lobby)
	if api.IsCode(err, api.NotFound) {
		return nil // an operator deleted the lobby
	}
	if err != nil {
		return err
	}
	return s.join(ctx, tx, r, u)
}

// join adds u to r and announces it. The membership starts at the join
// event, so the new member sees their own join.
func (s *Service) join(ctx context.Context, tx *store.Tx, r Room, u auth.User) error {
	next, err := events.NextID(ctx, tx)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO memberships (room_id, user_id, since_event) VALUES (?, ?, ?)", r.ID, u.ID, next)
	if err != nil {
		return fmt.Errorf("rooms: %s joins %s: %w", u.Name, r.Name, err)
	}
	_, err = s.events.Append(ctx, tx, events.Event{
		Body:     events.Body{Type: "join", Room: r.Name, User: u.Name},
		Audience: events.RoomMembers,
		RoomID:   r.ID,
	})
	return err
}

// leave removes u from r and announces it; kickedBy names the admin for a
// kick. The leaving member sees the leave event.
func (s *Service) leave(ctx context.Context, tx *store.Tx, r Room, u auth.User, kickedBy string) error {
	id, err := s.events.Append(ctx, tx, events.Event{
		Body:     events.Body{Type: "leave", Room: r.Name, User: u.Name, Kicked: kickedBy != "", By: kickedBy},
		Audience: events.RoomMembers,
		RoomID:   r.ID,
		Target:   u.ID,
	})
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "UPDATE memberships SET until_event = ? WHERE room_id = ? AND user_id = ? AND until_event IS NULL", id, r.ID, u.ID)
	if err != nil {
		return fmt.Errorf("rooms: %s leaves %s: %w", u.Name, r.Name, err)
	}
	return nil
}

// roomEvent is an event about a room itself (made, changed, deleted):
// public rooms are listed to everyone, so everyone hears of them; private
// and direct rooms only their members.
func roomEvent(kind string, roomID int64, body events.Body) events.Event {
	ev := events.Event{Body: body, Audience: events.RoomMembers, RoomID: roomID}
	if kind == Public {
		ev.Audience = events.Everyone
	}
	return ev
}

// Create makes a room with the creator as its first member. It returns
// Conflict when the name is taken.
func (s *Service) Create(ctx context.Context, creator auth.User, name, topic string, private bool) (Room, error) {
	var room Room
	err := s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		var err error
		room, err = s.CreateTx(ctx, tx, creator, name, topic, private)
		return err
	})
	return room, err
}

// CreateTx is Create inside tx (for the admin feature, which writes its
// audit record in the same transaction).
func (s *Service) CreateTx(ctx context.Context, tx *store.Tx, creator auth.User, name, topic string, private bool) (Room, error) {
	if err := ValidName(name); err != nil {
		return Room{}, err
	}
	if err := ValidTopic(topic); err != nil {
		return Room{}, err
	}
	kind := Public
	if private {
		kind = Private
	}
	return s.create(ctx, tx, creator, name, topic, kind)
}

func (s *Service) create(ctx context.Context, tx *store.Tx, creator auth.User, name, topic, kind string) (Room, error) {
	var id int64
	err := tx.QueryRowContext(ctx,
		"INSERT INTO rooms (name, topic, kind, created_by, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
		name, topic, kind, creator.ID, time.Now().UnixMilli()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, api.Errorf(api.Conflict, "a room called %q exists", name)
	}
	if err != nil {
		return Room{}, fmt.Errorf("rooms: create %q: %w", name, err)
	}
	next, err := events.NextID(ctx, tx)
	if err != nil {
		return Room{}, err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO memberships (room_id, user_id, since_event) VALUES (?, ?, ?)", id, creator.ID, next); err != nil {
		return Room{}, fmt.Errorf("rooms: create %q: %w", name, err)
	}
	ev := roomEvent(kind, id, events.Body{Type: "room_created", Room: name, User: creator.Name, Kind: kind, Topic: &topic})
	if _, err := s.events.Append(ctx, tx, ev); err != nil {
		return Room{}, err
	}
	return Room{ID: id, Name: name, Topic: topic, Kind: kind, Members: 1}, nil
}

// Join adds the user to the room. Private rooms admit only admins (members
// invite others); direct rooms admit no one. Joining a room one is in
// already changes nothing.
func (s *Service) Join(ctx context.Context, u auth.User, name string) (Room, error) {
	var room Room
	err := s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		r, err := ByName(ctx, tx, name)
		if err != nil {
			return err
		}
		in, err := IsMember(ctx, tx, r.ID, u.ID)
		if err != nil {
			return err
		}
		if !in {
			if r.Kind == Direct || (r.Kind == Private && !u.IsAdmin()) {
				return api.Errorf(api.Forbidden, "%q is a private room: a member must invite you", name)
			}
			if err := s.join(ctx, tx, r, u); err != nil {
				return err
			}
			r.Members++
		}
		room = r
		return nil
	})
	return room, err
}

// Invite adds another user to a private or public room the inviter is in.
func (s *Service) Invite(ctx context.Context, inviter auth.User, roomName, userName string) (Room, error) {
	var room Room
	err := s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		r, err := ByName(ctx, tx, roomName)
		if err != nil {
			return err
		}
		if r.Kind == Direct {
			return api.Errorf(api.InvalidArgument, "direct rooms are for two; start a room to talk with more people")
		}
		in, err := IsMember(ctx, tx, r.ID, inviter.ID)
		if err != nil {
			return err
		}
		if !in && !inviter.IsAdmin() {
			return api.Errorf(api.Forbidden, "only members of %q can invite to it", roomName)
		}
		guest, err := auth.UserByName(ctx, tx, userName)
		if err != nil {
			return err
		}
		if in, err = IsMember(ctx, tx, r.ID, guest.ID); err != nil {
			return err
		}
		if !in {
			if err := s.join(ctx, tx, r, guest); err != nil {
				return err
			}
			r.Members++
		}
		room = r
		return nil
	})
	return room, err
}

// Leave removes the user from the room. Leaving a direct room is refused;
// leaving a room one is not in changes nothing.
func (s *Service) Leave(ctx context.Context, u auth.User, name string) (Room, error) {
	var room Room
	err := s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		r, err := ByName(ctx, tx, name)
		if err != nil {
			return err
		}
		if r.Kind == Direct {
			return api.Errorf(api.InvalidArgument, "a direct conversation cannot be left")
		}
		in, err := IsMember(ctx, tx, r.ID, u.ID)
		if err != nil {
			return err
		}
		if in {
			if err := s.leave(ctx, tx, r, u, ""); err != nil {
				return err
			}
			r.Members--
		} else if ok, err := CanSee(ctx, tx, r, u); err != nil {
			return err
		} else if !ok {
			return api.Errorf(api.Forbidden, "%q is a private room", name)
		}
		room = r
		return nil
	})
	return room, err
}

// SetTopic changes the room's topic; members (and admins) may.
func (s *Service) SetTopic(ctx context.Context, u auth.User, name, topic string) (Room, error) {
	var room Room
	err := s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		var err error
		room, err = s.SetTopicTx(ctx, tx, u, name, topic)
		return err
	})
	return room, err
}

// SetTopicTx is SetTopic inside tx.
func (s *Service) SetTopicTx(ctx context.Context, tx *store.Tx, u auth.User, name, topic string) (Room, error) {
	if err := ValidTopic(topic); err != nil {
		return Room{}, err
	}
	r, err := ByName(ctx, tx, name)
	if err != nil {
		return Room{}, err
	}
	in, err := IsMember(ctx, tx, r.ID, u.ID)
	if err != nil {
		return Room{}, err
	}
	if !in && !u.IsAdmin() {
		return Room{}, api.Errorf(api.Forbidden, "only members of %q can set its topic", name)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE rooms SET topic = ? WHERE id = ?", topic, r.ID); err != nil {
		return Room{}, fmt.Errorf("rooms: topic of %s: %w", name, err)
	}
	r.Topic = topic
	ev := roomEvent(r.Kind, r.ID, events.Body{Type: "room_updated", Room: r.Name, User: u.Name, Kind: r.Kind, Topic: &topic})
	if _, err := s.events.Append(ctx, tx, ev); err != nil {
		return Room{}, err
	}
	return r, nil
}

// Kick removes a member from a room on an admin's word; the leave event
// says kicked. It returns NotFound when the user is not a member.
func (s *Service) Kick(ctx context.Context, tx *store.Tx, admin auth.User, roomName, userName string) error {
	r, err := ByName(ctx, tx, roomName)
	if err != nil {
		return err
	}
	u, err := auth.UserByName(ctx, tx, userName)
	if err != nil {
		return err
	}
	in, err := IsMember(ctx, tx, r.ID, u.ID)
	if err != nil {
		return err
	}
	if !in {
		return api.Errorf(api.NotFound, "%s is not in %s", u.Name, r.Name)
	}
	return s.leave(ctx, tx, r, u, admin.Name)
}

// Delete removes a room on an admin's word: its members are told, then
// their memberships end. The lobby cannot be deleted.
func (s *Service) Delete(ctx context.Context, tx *store.Tx, admin auth.User, name string) error {
	r, err := ByName(ctx, tx, name)
	if err != nil {
		return err
	}
	if r.Name == Lobby {
		return api.Errorf(api.InvalidArgument, "the lobby cannot be deleted")
	}
	ev := roomEvent(r.Kind, r.ID, events.Body{Type: "room_deleted", Room: r.Name, By: admin.Name})
	id, err := s.events.Append(ctx, tx, ev)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE memberships SET until_event = ? WHERE room_id = ? AND until_event IS NULL", id, r.ID); err != nil {
		return fmt.Errorf("rooms: delete %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE rooms SET deleted_at = ? WHERE id = ?", time.Now().UnixMilli(), r.ID); err != nil {
		return fmt.Errorf("rooms: delete %s: %w", name, err)
	}
	return nil
}

// DirectRoom returns the direct room of two users inside tx, creating it
// (with both as members and a room_created event) the first time.
func (s *Service) DirectRoom(ctx context.Context, tx *store.Tx, a, b auth.User) (Room, error) {
	lo, hi := a, b
	if hi.ID < lo.ID {
		lo, hi = hi, lo
	}
	name := fmt.Sprintf("dm-%d-%d", lo.ID, hi.ID)
	r, err := ByName(ctx, tx, name)
	if err == nil {
		return r, nil
	}
	if !api.IsCode(err, api.NotFound) {
		return Room{}, err
	}
	var id int64
	err = tx.QueryRowContext(ctx, "INSERT INTO rooms (name, topic, kind, created_by, created_at) VALUES (?, '', 'direct', ?, ?) RETURNING id",
		name, a.ID, time.Now().UnixMilli()).Scan(&id)
	if err != nil {
		return Room{}, fmt.Errorf("rooms: direct room %s: %w", name, err)
	}
	next, err := events.NextID(ctx, tx)
	if err != nil {
		return Room{}, err
	}
	members := []auth.User{lo}
	if hi.ID != lo.ID {
		members = append(members, hi)
	}
	for _, m := range members {
		if _, err := tx.ExecContext(ctx, "INSERT INTO memberships (room_id, user_id, since_event) VALUES (?, ?, ?)", id, m.ID, next); err != nil {
			return Room{}, fmt.Errorf("rooms: direct room %s: %w", name, err)
		}
	}
	empty := ""
	_, err = s.events.Append(ctx, tx, events.Event{
		Body:     events.Body{Type: "room_created", Room: name, User: a.Name, Kind: Direct, Topic: &empty},
		Audience: events.RoomMembers,
		RoomID:   id,
	})
	if err != nil {
		return Room{}, err
	}
	peers := []string{lo.Name}
	if hi.ID != lo.ID {
		peers = append(peers, hi.Name)
	}
	return Room{ID: id, Name: name, Kind: Direct, Members: len(members), Peers: peers}, nil
}
