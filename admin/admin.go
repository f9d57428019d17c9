// Package admin is chatd's moderation and operation feature: banning and
// unbanning, roles, room and message moderation, bot accounts and their
// tokens, the live client list and the audit log.
//
// Every action is one method of Service, and each runs its change and its
// audit record in one transaction, so nothing happens without a trace and
// no trace is left of what did not happen. The JSON API (/api/admin/...),
// the admin page's forms (/admin/...) and the operator's command line all
// call these methods.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"chatd/api"
	"chatd/auth"
	"chatd/events"
	"chatd/messages"
	"chatd/presence"
	"chatd/rooms"
	"chatd/store"
)

// Operator is the actor of the operator's command-line actions. Its name
// cannot be a username (they have no parentheses), so the audit log tells
// it apart from every admin.
var Operator = auth.User{Name: "(command line)", Role: auth.RoleAdmin}

// Accounts is what admin needs from the accounts feature.
type Accounts interface {
	// RequireAdmin answers 401 to anonymous callers and 403 to non-admins.
	RequireAdmin(next http.Handler) http.Handler
	// Identify returns the caller of r, or an Unauthenticated error.
	Identify(r *http.Request) (auth.Identity, error)
	// Forget drops the user's cached credentials once tx commits; every
	// change to a user's sessions, tokens, role or ban calls it.
	Forget(tx *store.Tx, userID int64)
	HashPassword(ctx context.Context, password string) (string, error)
	CreateUserTx(ctx context.Context, tx *store.Tx, name, hash, role string, lobby bool) (auth.User, error)
	CreateBotTx(ctx context.Context, tx *store.Tx, name string, lobby bool) (auth.User, string, error)
}

// Rooms is what admin needs from the rooms feature.
type Rooms interface {
	CreateTx(ctx context.Context, tx *store.Tx, creator auth.User, name, topic string, private bool) (rooms.Room, error)
	SetTopicTx(ctx context.Context, tx *store.Tx, u auth.User, name, topic string) (rooms.Room, error)
	Kick(ctx context.Context, tx *store.Tx, admin auth.User, roomName, userName string) error
	Delete(ctx context.Context, tx *store.Tx, admin auth.User, name string) error
}

// Messages is what admin needs from the messages feature.
type Messages interface {
	DeleteTx(ctx context.Context, tx *store.Tx, u auth.User, id int64) (messages.Message, error)
	SelectRecent(ctx context.Context, userID int64, since time.Time) (messages.Selection, error)
	DeleteRecent(ctx context.Context, tx *store.Tx, admin auth.User, sel messages.Selection) (int, error)
	Recent(ctx context.Context, limit int) ([]messages.Message, error)
}

// Log appends events (the event log).
type Log interface {
	Append(ctx context.Context, tx *store.Tx, e events.Event) (int64, error)
}

// Hub ends polls and counts them (the comet hub).
type Hub interface {
	EndUser(user int64, why error)
	PendingByClient() map[string]int
}

// Presence is what admin needs from the presence feature.
type Presence interface {
	UserGone(ctx context.Context, userID int64)
	Clients() []presence.Client
	Status(userID int64) string
}

// Deps are the features admin works through; the server wires them.
type Deps struct {
	Accounts Accounts
	Rooms    Rooms
	Messages Messages
	Events   Log
	Hub      Hub
	Presence Presence
}

// Service is the admin feature.
type Service struct {
	db   *store.DB
	log  *slog.Logger
	deps Deps

	csrfKey []byte
	flashes *flashes
}

// New returns the admin feature. It loads (or on first start, makes) the
// key that the admin page's form tokens are derived from.
func New(ctx context.Context, db *store.DB, log *slog.Logger, deps Deps) (*Service, error) {
	key, err := loadKey(ctx, db, "admin-csrf")
	if err != nil {
		return nil, err
	}
	return &Service{db: db, log: log, deps: deps, csrfKey: key, flashes: newFlashes()}, nil
}

// record is what an action tells the audit log about itself.
type record struct {
	target string
	detail string
}

// mustBeAdmin returns Forbidden unless actor is an admin.
func mustBeAdmin(actor auth.User) error {
	if !actor.IsAdmin() {
		return api.Errorf(api.Forbidden, "only admins may do this")
	}
	return nil
}

// do runs one admin action: fn's changes and the audit record share one
// transaction. It returns Forbidden when the actor is not an admin.
func (s *Service) do(ctx context.Context, actor auth.User, action string, fn func(ctx context.Context, tx *store.Tx, rec *record) error) error {
	if err := mustBeAdmin(actor); err != nil {
		return err
	}
	var rec record
	err := s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		rec = record{}
		if err := fn(ctx, tx, &rec); err != nil {
			return err
		}
		return s.Record(ctx, tx, actor, action, rec.target, rec.detail)
	})
	if err != nil {
		var e *api.Error
		if errors.As(err, &e) {
			return err
		}
		return fmt.Errorf("admin: %s: %w", action, err)
	}
	s.log.Info("admin action", "admin", actor.Name, "action", action, "target", rec.target, "detail", rec.detail)
	return nil
}

// Record writes an audit entry inside tx: the admin did action to target.
// It implements messages.Auditor, so that moderation done from the chat
// lands in the same log.
func (s *Service) Record(ctx context.Context, tx *store.Tx, actor auth.User, action, target, detail string) error {
	var adminID any
	if actor.ID != 0 {
		adminID = actor.ID
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO audit (ts, admin_id, admin, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
		time.Now().UnixMilli(), adminID, actor.Name, action, target, detail)
	if err != nil {
		return fmt.Errorf("admin: audit %s of %s: %w", action, target, err)
	}
	return nil
}

// Entry is one line of the audit log.
type Entry struct {
	TS     time.Time
	Admin  string
	Action string
	Target string
	Detail string
}

// Audit returns the newest limit entries of the audit log, newest first.
func (s *Service) Audit(ctx context.Context, limit int) ([]Entry, error) {
	rows, err := s.db.Reader().QueryContext(ctx, "SELECT ts, admin, action, target, detail FROM audit ORDER BY id DESC LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("admin: read audit log: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var ts int64
		if err := rows.Scan(&ts, &e.Admin, &e.Action, &e.Target, &e.Detail); err != nil {
			return nil, fmt.Errorf("admin: read audit log: %w", err)
		}
		e.TS = time.UnixMilli(ts)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("admin: read audit log: %w", err)
	}
	return out, nil
}
