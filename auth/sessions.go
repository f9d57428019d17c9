package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/sessions"
	"golang.org/x/crypto/blake2b"

	"chatd/store"
)

// CookieName is the name of the session cookie.
const CookieName = "chatd_session"

// sessionMaxAge is how long a browser session lasts without a new login.
const sessionMaxAge = 30 * 24 * time.Hour

// loadCookieStore returns a gorilla cookie store whose signing and
// encryption keys live in the database: generated on first start, so a
// restart logs nobody out. Keys are kept newest first; rotating adds a new
// pair in front, and cookies signed with an older pair still decode.
func loadCookieStore(ctx context.Context, db *store.DB) (*sessions.CookieStore, error) {
	keys, err := cookieKeys(ctx, db.Reader())
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		if err := RotateKeys(ctx, db); err != nil {
			return nil, err
		}
		if keys, err = cookieKeys(ctx, db.Reader()); err != nil {
			return nil, err
		}
	}
	cs := sessions.NewCookieStore(keys...)
	cs.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(sessionMaxAge / time.Second),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	cs.MaxAge(cs.Options.MaxAge)
	return cs, nil
}

// cookieKeys returns the hash and block key pairs, newest first.
func cookieKeys(ctx context.Context, q Querier) ([][]byte, error) {
	rows, err := q.QueryContext(ctx, "SELECT value FROM secrets WHERE name LIKE 'cookie-%' ORDER BY created_at DESC, name DESC")
	if err != nil {
		return nil, fmt.Errorf("auth: read cookie keys: %w", err)
	}
	defer rows.Close()
	var keys [][]byte
	for rows.Next() {
		var v []byte
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("auth: read cookie keys: %w", err)
		}
		if len(v) != 64+32 {
			return nil, fmt.Errorf("auth: a cookie key pair has %d bytes, want 96", len(v))
		}
		keys = append(keys, v[:64], v[64:])
	}
	return keys, rows.Err()
}

// RotateKeys adds a new cookie signing and encryption key pair, used for new
// cookies from the next start on; cookies made with older pairs keep
// working. Sessions stay valid: they are records in the database.
func RotateKeys(ctx context.Context, db *store.DB) error {
	v := make([]byte, 64+32)
	if _, err := rand.Read(v); err != nil {
		return fmt.Errorf("auth: generate cookie keys: %w", err)
	}
	now := time.Now().UnixMilli()
	name := fmt.Sprintf("cookie-%020d", now)
	return db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?)", name, v, now)
		if err != nil {
			return fmt.Errorf("auth: store cookie keys: %w", err)
		}
		return nil
	})
}

// RetireOldKeys deletes every cookie key pair but the newest, and every
// browser session: cookies made with a retired pair stop working, and
// everyone signs in again. Bot tokens are not affected. It is the answer to
// a key that may have leaked; the running server drops the retired keys
// from memory at its next start. It returns how many sessions ended.
func RetireOldKeys(ctx context.Context, db *store.DB) (int64, error) {
	var ended int64
	err := db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		var newest string
		err := tx.QueryRowContext(ctx, "SELECT name FROM secrets WHERE name LIKE 'cookie-%' ORDER BY created_at DESC, name DESC LIMIT 1").Scan(&newest)
		if err != nil {
			return fmt.Errorf("auth: find the newest cookie keys: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM secrets WHERE name LIKE 'cookie-%' AND name != ?", newest); err != nil {
			return fmt.Errorf("auth: retire cookie keys: %w", err)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM sessions")
		if err != nil {
			return fmt.Errorf("auth: end sessions: %w", err)
		}
		ended, err = res.RowsAffected()
		return err
	})
	return ended, err
}

// newSecret returns a random URL-safe secret of n bytes.
func newSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// sessionKey is what the sessions table stores for a session id: its hash.
func sessionKey(sid string) string {
	h := sha256.Sum256([]byte(sid))
	return hex.EncodeToString(h[:])
}

// createSession records a new session for the user inside tx and returns
// its id (the secret the cookie carries).
func createSession(ctx context.Context, tx *store.Tx, userID int64, userAgent string) (string, error) {
	sid, err := newSecret(32)
	if err != nil {
		return "", err
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO sessions (id, user_id, created_at, user_agent) VALUES (?, ?, ?, ?)",
		sessionKey(sid), userID, time.Now().UnixMilli(), truncate(userAgent, 256))
	if err != nil {
		return "", fmt.Errorf("auth: create session: %w", err)
	}
	return sid, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// The token format: a prefix that makes leaked tokens easy to recognise,
// then 32 random bytes.
const tokenPrefix = "chatd_"

// tokenHash is how a bot token is stored: its BLAKE2b-256 hash. Tokens are
// random 256-bit values, so a fast hash is as strong as a slow one here.
func tokenHash(token string) []byte {
	h := blake2b.Sum256([]byte(token))
	return h[:]
}

// createToken makes a new token for the user inside tx and returns it; only
// its hash is stored.
func createToken(ctx context.Context, tx *store.Tx, userID int64) (string, error) {
	s, err := newSecret(32)
	if err != nil {
		return "", err
	}
	token := tokenPrefix + s
	_, err = tx.ExecContext(ctx, "INSERT INTO tokens (user_id, hash, created_at) VALUES (?, ?, ?)", userID, tokenHash(token), time.Now().UnixMilli())
	if err != nil {
		return "", fmt.Errorf("auth: create token: %w", err)
	}
	return token, nil
}

// identityFromToken resolves a bearer token and says when it was last
// recorded as used (unix ms, 0 for never). It returns errNoIdentity when
// the token is unknown or its user banned.
func identityFromToken(ctx context.Context, q Querier, token string) (Identity, int64, error) {
	want := tokenHash(token)
	var id int64
	var stored []byte
	var lastUsed sql.NullInt64
	u, err := scanUserWith(q.QueryRowContext(ctx,
		"SELECT t.id, t.hash, t.last_used, u."+strings.ReplaceAll(userCols, ", ", ", u.")+" FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ?", want), &id, &stored, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return Identity{}, 0, errNoIdentity
	}
	if err != nil {
		return Identity{}, 0, fmt.Errorf("auth: token: %w", err)
	}
	if subtle.ConstantTimeCompare(stored, want) != 1 || u.Banned {
		return Identity{}, 0, errNoIdentity
	}
	return Identity{User: u, Client: fmt.Sprintf("t:%d", id), TokenID: id}, lastUsed.Int64, nil
}

// touchEvery is how stale tokens.last_used may grow: recording every use
// would cost a write per request, so a token's use is written at most once
// per interval.
const touchEvery = time.Minute

// touchToken records that the token is in use when its stored last use is
// older than touchEvery. The write happens within the request (no goroutine
// outlives it), and only one request per token and interval makes it.
func (s *Service) touchToken(ctx context.Context, tokenID, lastUsed int64) {
	now := time.Now()
	if now.UnixMilli()-lastUsed < touchEvery.Milliseconds() {
		return
	}
	s.touchMu.Lock()
	if at, ok := s.touched[tokenID]; ok && now.Sub(at) < touchEvery {
		s.touchMu.Unlock()
		return
	}
	if len(s.touched) >= 100_000 {
		// Entries older than the interval say nothing the database does
		// not: drop them.
		for k, at := range s.touched {
			if now.Sub(at) >= touchEvery {
				delete(s.touched, k)
			}
		}
	}
	s.touched[tokenID] = now
	s.touchMu.Unlock()
	err := s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE tokens SET last_used = ? WHERE id = ?", now.UnixMilli(), tokenID)
		return err
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("auth: record token use", "token", tokenID, "err", err)
	}
}

// identityFromSession resolves a session id from a cookie.
func identityFromSession(ctx context.Context, q Querier, sid string) (Identity, error) {
	key := sessionKey(sid)
	var stored string
	u, err := scanUserWith(q.QueryRowContext(ctx,
		"SELECT s.id, u."+strings.ReplaceAll(userCols, ", ", ", u.")+" FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?", key), &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return Identity{}, errNoIdentity
	}
	if err != nil {
		return Identity{}, fmt.Errorf("auth: session: %w", err)
	}
	if u.Banned {
		return Identity{}, errNoIdentity
	}
	return Identity{User: u, Client: "s:" + key[:24], SessionKey: key}, nil
}

// scanUserWith scans leading extra columns, then a user.
func scanUserWith(row *sql.Row, extra ...any) (User, error) {
	var u User
	var created int64
	var seen sql.NullInt64
	dest := append(extra, &u.ID, &u.Name, &u.Role, &u.Banned, &created, &seen)
	if err := row.Scan(dest...); err != nil {
		return User{}, err
	}
	u.Created = time.UnixMilli(created)
	if seen.Valid {
		u.LastSeen = time.UnixMilli(seen.Int64)
	}
	return u, nil
}
