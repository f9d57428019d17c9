// Package auth owns chatd's accounts: users and their roles, password
// hashing, browser sessions, bot tokens, the failed-login limits, and the
// middleware that tells every other handler who is calling.
package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"chatd/api"
	"chatd/store"
)

// Roles.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
	RoleBot   = "bot"
)

// User is an account.
type User struct {
	ID       int64
	Name     string
	Role     string
	Banned   bool
	Created  time.Time
	LastSeen time.Time // zero when never seen
}

// IsAdmin reports whether the user has the admin role.
func (u User) IsAdmin() bool { return u.Role == RoleAdmin }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

// ValidName checks a username against the contract's pattern.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return api.Errorf(api.InvalidArgument, "a username is 1 to 32 letters, digits, '_', '.' or '-'")
	}
	return nil
}

// ValidPassword checks a password's length (8 to 256 bytes).
func ValidPassword(pw string) error {
	if len(pw) < 8 || len(pw) > 256 {
		return api.Errorf(api.InvalidArgument, "a password is 8 to 256 bytes long")
	}
	return nil
}

// NameKey is the case-folded form under which names are unique.
func NameKey(name string) string { return strings.ToLower(name) }

const userCols = "id, name, role, banned, created_at, last_seen"

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var created int64
	var seen sql.NullInt64
	if err := row.Scan(&u.ID, &u.Name, &u.Role, &u.Banned, &created, &seen); err != nil {
		return User{}, err
	}
	u.Created = time.UnixMilli(created)
	if seen.Valid {
		u.LastSeen = time.UnixMilli(seen.Int64)
	}
	return u, nil
}

// Querier is what both *sql.DB and *sql.Tx offer for reading.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// UserByName returns the user with the name (case-insensitively). It
// returns a NotFound error when there is none.
func UserByName(ctx context.Context, q Querier, name string) (User, error) {
	u, err := scanUser(q.QueryRowContext(ctx, "SELECT "+userCols+" FROM users WHERE name_key = ?", NameKey(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, api.Errorf(api.NotFound, "no user called %q", name)
	}
	if err != nil {
		return User{}, fmt.Errorf("auth: user %q: %w", name, err)
	}
	return u, nil
}

// UserByID returns the user with the id, or a NotFound error.
func UserByID(ctx context.Context, q Querier, id int64) (User, error) {
	u, err := scanUser(q.QueryRowContext(ctx, "SELECT "+userCols+" FROM users WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, api.Errorf(api.NotFound, "no user with id %d", id)
	}
	if err != nil {
		return User{}, fmt.Errorf("auth: user %d: %w", id, err)
	}
	return u, nil
}

// ListUsers returns users whose name contains search (all when empty),
// ordered by name, at most limit.
func ListUsers(ctx context.Context, q Querier, search string, limit int) ([]User, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+userCols+" FROM users WHERE instr(name_key, ?) > 0 ORDER BY name_key LIMIT ?", NameKey(search), limit)
	if err != nil {
		return nil, fmt.Errorf("auth: list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("auth: list users: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// insertUser adds an account inside tx. The first account with a password
// becomes an admin unless role says otherwise. It returns Conflict when the
// name is taken.
func insertUser(ctx context.Context, tx *store.Tx, name, passwordHash, role string) (User, error) {
	if role == "" {
		var humans int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM users WHERE role != 'bot'").Scan(&humans); err != nil {
			return User{}, fmt.Errorf("auth: count users: %w", err)
		}
		role = RoleUser
		if humans == 0 {
			role = RoleAdmin
		}
	}
	var hash any
	if passwordHash != "" {
		hash = passwordHash
	}
	now := time.Now()
	var id int64
	err := tx.QueryRowContext(ctx,
		"INSERT INTO users (name, name_key, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name_key) DO NOTHING RETURNING id",
		name, NameKey(name), hash, role, now.UnixMilli()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, api.Errorf(api.Conflict, "the name %q is taken", name)
	}
	if err != nil {
		return User{}, fmt.Errorf("auth: create user %q: %w", name, err)
	}
	return User{ID: id, Name: name, Role: role, Created: now}, nil
}

// passwordHash returns the user's password hash ("" for none).
func passwordHash(ctx context.Context, q Querier, userID int64) (string, error) {
	var h sql.NullString
	if err := q.QueryRowContext(ctx, "SELECT password_hash FROM users WHERE id = ?", userID).Scan(&h); err != nil {
		return "", fmt.Errorf("auth: password of %d: %w", userID, err)
	}
	return h.String, nil
}

// Bot is a bot account with what the admin page shows of its tokens.
type Bot struct {
	User
	// Tokens is how many working tokens the bot has (0: revoked).
	Tokens int
	// TokenCreated is when its newest token was made; LastUsed when one of
	// its tokens was last used, to within a minute. Zero when none.
	TokenCreated time.Time
	LastUsed     time.Time
}

// ListBots returns the bots whose name contains search (all when empty),
// ordered by name, at most limit.
func ListBots(ctx context.Context, q Querier, search string, limit int) ([]Bot, error) {
	rows, err := q.QueryContext(ctx, `SELECT u.id, u.name, u.role, u.banned, u.created_at, u.last_seen,
			count(t.id), max(t.created_at), max(t.last_used)
		FROM users u LEFT JOIN tokens t ON t.user_id = u.id
		WHERE u.role = 'bot' AND instr(u.name_key, ?) > 0
		GROUP BY u.id ORDER BY u.name_key LIMIT ?`, NameKey(search), limit)
	if err != nil {
		return nil, fmt.Errorf("auth: list bots: %w", err)
	}
	defer rows.Close()
	var out []Bot
	for rows.Next() {
		var b Bot
		var created int64
		var seen, tokenCreated, lastUsed sql.NullInt64
		if err := rows.Scan(&b.ID, &b.Name, &b.Role, &b.Banned, &created, &seen, &b.Tokens, &tokenCreated, &lastUsed); err != nil {
			return nil, fmt.Errorf("auth: list bots: %w", err)
		}
		b.Created = time.UnixMilli(created)
		if seen.Valid {
			b.LastSeen = time.UnixMilli(seen.Int64)
		}
		if tokenCreated.Valid {
			b.TokenCreated = time.UnixMilli(tokenCreated.Int64)
		}
		if lastUsed.Valid {
			b.LastUsed = time.UnixMilli(lastUsed.Int64)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}
