package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/sessions"

	"chatd/api"
	"chatd/store"
)

var errNoIdentity = errors.New("auth: no valid credentials")

// Identity is the caller of a request: a user and the client they call from.
type Identity struct {
	User User
	// Client identifies the calling client: one browser session ("s:...")
	// or one bot token ("t:ID"). A client has at most one pending poll.
	Client     string
	SessionKey string // the stored key of the browser session, if any
	TokenID    int64  // the bot token's id, if any
}

type ctxKey struct{}

// FromContext returns the identity the middleware attached to ctx.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// Welcomer sets up a new account inside the transaction that creates it
// (the rooms feature puts it in the lobby).
type Welcomer interface {
	Welcome(ctx context.Context, tx *store.Tx, user User) error
}

// Presence is what auth needs from the presence feature.
type Presence interface {
	// Status returns "online", "away" or "offline".
	Status(userID int64) string
	// ClientGone tells presence that the client logged out or disconnected.
	ClientGone(ctx context.Context, user User, client string)
}

// Config tunes the auth service.
type Config struct {
	// Hashes is how many password hashes may run at once.
	Hashes int
	// HashWait is how long a login waits for a hashing slot before 429.
	HashWait time.Duration
	// TrustProxy takes the client address from X-Forwarded-For, and whether
	// the browser used TLS from X-Forwarded-Proto.
	TrustProxy bool
}

// Service is the accounts feature.
type Service struct {
	db       *store.DB
	log      *slog.Logger
	cfg      Config
	hasher   *Hasher
	cookies  *sessions.CookieStore
	limits   *loginLimits
	welcome  Welcomer
	presence Presence

	cache *identityCache

	touchMu sync.Mutex
	touched map[int64]time.Time // token id: when its use was last written

	changesMu   sync.Mutex
	changesRead int64 // the last auth_changes row read
	changesKept int64 // rows read since the log was last pruned
}

// New opens the accounts feature on db, loading (or on first start,
// generating) the session cookie keys.
func New(ctx context.Context, db *store.DB, log *slog.Logger, cfg Config, welcome Welcomer) (*Service, error) {
	if cfg.Hashes <= 0 {
		cfg.Hashes = 2
	}
	if cfg.HashWait <= 0 {
		cfg.HashWait = 5 * time.Second
	}
	cs, err := loadCookieStore(ctx, db)
	if err != nil {
		return nil, err
	}
	s := &Service{
		db:      db,
		log:     log,
		cfg:     cfg,
		hasher:  NewHasher(cfg.Hashes, cfg.HashWait),
		cookies: cs,
		limits:  newLoginLimits(),
		welcome: welcome,
		touched: make(map[int64]time.Time),
		cache:   newIdentityCache(),
	}
	if err := s.db.Reader().QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM auth_changes").Scan(&s.changesRead); err != nil {
		return nil, fmt.Errorf("auth: reading the change log: %w", err)
	}
	s.cache.checked.Store(time.Now().UnixNano())
	return s, nil
}

// SetPresence connects the presence feature (wired after both exist).
func (s *Service) SetPresence(p Presence) { s.presence = p }

// Identify returns who makes the request, from a bearer token or the session
// cookie. It returns an Unauthenticated error when neither is valid.
func (s *Service) Identify(r *http.Request) (Identity, error) {
	id, _, err := s.identify(r)
	return id, err
}

// A Memo remembers who a connection's requests come from, for a caller
// that can tell that the next request carries the same credentials (the
// poll lane compares the bytes of the headers). It is good as long as the
// cache entry it came from: until that entry's time is up or any user's
// credentials change.
type Memo struct {
	id      Identity
	epoch   uint64
	expires time.Time
}

// IdentifyMemo is Identify that also fills m, or empties it on an error.
func (s *Service) IdentifyMemo(r *http.Request, m *Memo) (Identity, error) {
	epoch := s.cache.epoch() // before the lookup: a change during it spoils m
	id, expires, err := s.identify(r)
	if err != nil {
		*m = Memo{}
		return Identity{}, err
	}
	*m = Memo{id: id, epoch: epoch, expires: expires}
	return id, nil
}

// Recall returns the identity m remembers when it is still good at now.
func (s *Service) Recall(m *Memo, now time.Time) (Identity, bool) {
	if !now.Before(m.expires) || m.epoch != s.cache.epoch() || !s.cache.trusted(now) {
		return Identity{}, false
	}
	return m.id, true
}

// identify is Identify, and says until when the answer may be reused.
func (s *Service) identify(r *http.Request) (Identity, time.Time, error) {
	ctx := r.Context()
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return Identity{}, time.Time{}, api.Errorf(api.Unauthenticated, "the Authorization header must be 'Bearer <token>'")
		}
		token = strings.TrimSpace(token)
		now := time.Now()
		if e, ok := s.cache.get(credential{value: token}, now); ok {
			s.touchToken(ctx, e.id.TokenID, e.lastUsed)
			return e.id, e.expires, nil
		}
		epoch := s.cache.epoch()
		id, lastUsed, err := identityFromToken(ctx, s.db.Reader(), token)
		if errors.Is(err, errNoIdentity) {
			return Identity{}, time.Time{}, api.Errorf(api.Unauthenticated, "the token is not valid")
		}
		if err != nil {
			return Identity{}, time.Time{}, err
		}
		expires := now.Add(identityTTL)
		s.cache.put(credential{value: token}, cachedIdentity{id: id, lastUsed: lastUsed, expires: expires}, epoch)
		s.touchToken(ctx, id.TokenID, lastUsed)
		return id, expires, nil
	}
	cookie, err := r.Cookie(CookieName)
	if err != nil {
		return Identity{}, time.Time{}, api.Errorf(api.Unauthenticated, "sign in first")
	}
	now := time.Now()
	if e, ok := s.cache.get(credential{cookie: true, value: cookie.Value}, now); ok {
		return e.id, e.expires, nil
	}
	epoch := s.cache.epoch()
	sess, err := s.cookies.Get(r, CookieName)
	if err != nil || sess.IsNew {
		return Identity{}, time.Time{}, api.Errorf(api.Unauthenticated, "sign in first")
	}
	sid, _ := sess.Values["sid"].(string)
	if sid == "" {
		return Identity{}, time.Time{}, api.Errorf(api.Unauthenticated, "sign in first")
	}
	id, err := identityFromSession(ctx, s.db.Reader(), sid)
	if errors.Is(err, errNoIdentity) {
		return Identity{}, time.Time{}, api.Errorf(api.Unauthenticated, "your session has ended; sign in again")
	}
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	expires := now.Add(identityTTL)
	s.cache.put(credential{cookie: true, value: cookie.Value}, cachedIdentity{id: id, expires: expires}, epoch)
	return id, expires, nil
}

// Forget drops the cached credentials of the user once tx commits. Every
// change to a user's sessions, tokens, role or ban state must call it in
// the transaction that makes the change, so the change takes effect at
// once.
func (s *Service) Forget(tx *store.Tx, userID int64) {
	tx.OnCommit(func() { s.cache.forgetUser(userID) })
}

// Require wraps next so that it runs only for an authenticated caller,
// whose Identity is then in the request's context.
func (s *Service) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.Identify(r)
		if err != nil {
			api.WriteError(w, r, s.log, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}

// RequireAdmin is Require for admins only: others get 403.
func (s *Service) RequireAdmin(next http.Handler) http.Handler {
	return s.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := FromContext(r.Context())
		if !id.User.IsAdmin() {
			api.WriteError(w, r, s.log, api.Errorf(api.Forbidden, "only admins may do this"))
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// ClientAddr returns the address that login limits are kept for.
func (s *Service) ClientAddr(r *http.Request) string {
	if s.cfg.TrustProxy {
		if f := r.Header.Get("X-Forwarded-For"); f != "" {
			first, _, _ := strings.Cut(f, ",")
			return strings.TrimSpace(first)
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Register creates an account with a password and signs it in on w. It
// returns Conflict when the name is taken.
func (s *Service) Register(w http.ResponseWriter, r *http.Request, name, password string) (User, error) {
	if err := ValidName(name); err != nil {
		return User{}, err
	}
	if err := ValidPassword(password); err != nil {
		return User{}, err
	}
	ctx := r.Context()
	// A cheap check first, so a taken name does not cost a hash.
	if _, err := UserByName(ctx, s.db.Reader(), name); err == nil {
		return User{}, api.Errorf(api.Conflict, "the name %q is taken", name)
	}
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return User{}, err
	}
	var u User
	var sid string
	err = s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		var err error
		if u, err = insertUser(ctx, tx, name, hash, ""); err != nil {
			return err
		}
		if s.welcome != nil {
			if err := s.welcome.Welcome(ctx, tx, u); err != nil {
				return err
			}
		}
		sid, err = createSession(ctx, tx, u.ID, r.UserAgent())
		return err
	})
	if err != nil {
		return User{}, err
	}
	s.log.Info("account registered", "user", u.Name, "role", u.Role)
	return u, s.setCookie(w, r, sid)
}

// HashPassword checks a password's length and returns its argon2id hash.
// Hashing takes tens of milliseconds of a core, so callers hash before they
// start a write transaction, and pass the hash to CreateUserTx or
// SetPasswordTx.
func (s *Service) HashPassword(ctx context.Context, password string) (string, error) {
	if err := ValidPassword(password); err != nil {
		return "", err
	}
	return s.hasher.Hash(ctx, password)
}

// CreateUser creates an account from the operator's command line; role may
// be "" (first account admin), "user" or "admin". The account joins the
// lobby.
func (s *Service) CreateUser(ctx context.Context, name, password, role string) (User, error) {
	if err := ValidName(name); err != nil {
		return User{}, err
	}
	hash, err := s.HashPassword(ctx, password)
	if err != nil {
		return User{}, err
	}
	var u User
	err = s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		var err error
		u, err = s.CreateUserTx(ctx, tx, name, hash, role, true)
		return err
	})
	return u, err
}

// CreateUserTx creates an account with a password hash made by HashPassword
// inside tx; role may be "" (first account admin), "user" or "admin". With
// lobby set the account joins the lobby. It returns Conflict when the name
// is taken and InvalidArgument for a bad name or role.
func (s *Service) CreateUserTx(ctx context.Context, tx *store.Tx, name, hash, role string, lobby bool) (User, error) {
	if err := ValidName(name); err != nil {
		return User{}, err
	}
	if role != "" && role != RoleUser && role != RoleAdmin {
		return User{}, api.Errorf(api.InvalidArgument, "a person's role is %q or %q, not %q", RoleUser, RoleAdmin, role)
	}
	if hash == "" {
		return User{}, api.Errorf(api.InvalidArgument, "a person's account needs a password")
	}
	u, err := insertUser(ctx, tx, name, hash, role)
	if err != nil {
		return User{}, err
	}
	if lobby && s.welcome != nil {
		if err := s.welcome.Welcome(ctx, tx, u); err != nil {
			return User{}, err
		}
	}
	return u, nil
}

// CreateBot creates a bot account and its first token, which is returned and
// never stored in the clear. With lobby set the bot joins the lobby.
func (s *Service) CreateBot(ctx context.Context, name string, lobby bool) (User, string, error) {
	var u User
	var token string
	err := s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		var err error
		u, token, err = s.CreateBotTx(ctx, tx, name, lobby)
		return err
	})
	return u, token, err
}

// CreateBotTx is CreateBot inside tx. It returns Conflict when the name is
// taken.
func (s *Service) CreateBotTx(ctx context.Context, tx *store.Tx, name string, lobby bool) (User, string, error) {
	if err := ValidName(name); err != nil {
		return User{}, "", err
	}
	u, err := insertUser(ctx, tx, name, "", RoleBot)
	if err != nil {
		return User{}, "", err
	}
	if lobby && s.welcome != nil {
		if err := s.welcome.Welcome(ctx, tx, u); err != nil {
			return User{}, "", err
		}
	}
	token, err := createToken(ctx, tx, u.ID)
	if err != nil {
		return User{}, "", err
	}
	return u, token, nil
}

// ReplaceToken revokes every token of the bot and makes a new one inside
// tx, returning it (it is stored only as a hash). A bot has one token at a
// time, so its per-account limits are per-token limits. It returns
// InvalidArgument when the user is not a bot.
func ReplaceToken(ctx context.Context, tx *store.Tx, bot User) (string, error) {
	if bot.Role != RoleBot {
		return "", api.Errorf(api.InvalidArgument, "%s is not a bot: only bots have tokens", bot.Name)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM tokens WHERE user_id = ?", bot.ID); err != nil {
		return "", fmt.Errorf("auth: replace token of %s: %w", bot.Name, err)
	}
	return createToken(ctx, tx, bot.ID)
}

// SetPassword replaces a user's password (the operator's reset) and ends
// their sessions.
func (s *Service) SetPassword(ctx context.Context, name, password string) error {
	hash, err := s.HashPassword(ctx, password)
	if err != nil {
		return err
	}
	return s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		_, err := SetPasswordTx(ctx, tx, name, hash)
		return err
	})
}

// SetPasswordTx replaces the password of the user called name with a hash
// made by HashPassword inside tx, and ends their sessions: a browser signed
// in with the old password is signed out at its next request. It returns
// NotFound for an unknown name and InvalidArgument for a bot.
func SetPasswordTx(ctx context.Context, tx *store.Tx, name, hash string) (User, error) {
	u, err := UserByName(ctx, tx, name)
	if err != nil {
		return User{}, err
	}
	if u.Role == RoleBot {
		return User{}, api.Errorf(api.InvalidArgument, "%s is a bot: bots use tokens, not passwords", u.Name)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE users SET password_hash = ? WHERE id = ?", hash, u.ID); err != nil {
		return User{}, fmt.Errorf("auth: set password of %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE user_id = ?", u.ID); err != nil {
		return User{}, fmt.Errorf("auth: end sessions of %s: %w", name, err)
	}
	return u, nil
}

// Login checks a name and password and signs the user in on w with a fresh
// session id. Wrong name and wrong password give the same Unauthenticated
// error; too many failures give RateLimited.
func (s *Service) Login(w http.ResponseWriter, r *http.Request, name, password string) (User, error) {
	ctx := r.Context()
	addr := s.ClientAddr(r)
	if wait := s.limits.blocked(NameKey(name), addr); wait > 0 {
		return User{}, &api.Error{Code: api.RateLimited, Message: "too many failed sign-ins; wait before trying again", RetryAfter: wait}
	}
	wrong := api.Errorf(api.Unauthenticated, "wrong username or password")
	if len(name) > 64 || len(password) > 256 {
		s.limits.failed(NameKey(name), addr)
		return User{}, wrong
	}
	u, err := UserByName(ctx, s.db.Reader(), name)
	var hash string
	switch {
	case err == nil:
		if hash, err = passwordHash(ctx, s.db.Reader(), u.ID); err != nil {
			return User{}, err
		}
	case api.IsCode(err, api.NotFound):
	default:
		return User{}, err
	}
	ok, err := s.hasher.Verify(ctx, hash, password)
	if err != nil {
		return User{}, err
	}
	if !ok {
		s.limits.failed(NameKey(name), addr)
		return User{}, wrong
	}
	if u.Banned {
		return User{}, api.Errorf(api.Forbidden, "this account is banned")
	}
	var sid string
	err = s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		var err error
		sid, err = createSession(ctx, tx, u.ID, r.UserAgent())
		return err
	})
	if err != nil {
		return User{}, err
	}
	// A new session id at every login: whatever session the browser had
	// before is replaced, so a planted cookie gains nothing.
	return u, s.setCookie(w, r, sid)
}

func (s *Service) setCookie(w http.ResponseWriter, r *http.Request, sid string) error {
	sess := sessions.NewSession(s.cookies, CookieName)
	opts := *s.cookies.Options
	opts.Secure = s.secure(r)
	sess.Options = &opts
	sess.Values["sid"] = sid
	if err := s.cookies.Save(r, w, sess); err != nil {
		return fmt.Errorf("auth: set session cookie: %w", err)
	}
	return nil
}

// secure reports whether the browser reached chatd over TLS: directly, or
// through a reverse proxy that says so in X-Forwarded-Proto (trusted only
// with TrustProxy). Cookies set over TLS are Secure, so a browser never
// sends them over plain HTTP.
func (s *Service) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return s.cfg.TrustProxy && strings.EqualFold(strings.TrimSpace(proto), "https")
}

func (s *Service) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secure(r)})
}

// Logout revokes the caller's session on the server at once and ends its
// client's poll.
func (s *Service) Logout(w http.ResponseWriter, r *http.Request, id Identity) error {
	ctx := r.Context()
	if id.SessionKey != "" {
		err := s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
			s.Forget(tx, id.User.ID)
			_, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE id = ?", id.SessionKey)
			return err
		})
		if err != nil {
			return fmt.Errorf("auth: logout: %w", err)
		}
	}
	s.clearCookie(w, r)
	if s.presence != nil {
		s.presence.ClientGone(ctx, id.User, id.Client)
	}
	return nil
}

// Revoke deletes every session and token of the user inside tx (a ban).
func Revoke(ctx context.Context, tx *store.Tx, userID int64) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE user_id = ?", userID); err != nil {
		return fmt.Errorf("auth: revoke sessions of %d: %w", userID, err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM tokens WHERE user_id = ?", userID); err != nil {
		return fmt.Errorf("auth: revoke tokens of %d: %w", userID, err)
	}
	return nil
}
