package admin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"chatd/api"
	"chatd/auth"
	"chatd/store"
	"chatd/web"
)

// The admin page's forms post to /admin/... and are answered with a
// redirect back to the page (post, redirect, get), which then shows how the
// action went. What it shows is kept in memory for the admin's session until
// the page is loaded, so a bot token never travels in a URL.
//
// Cross-site requests are refused twice over: the server's cross-origin
// protection refuses state-changing requests that a browser marks as coming
// from another origin, and every form carries a token derived from the
// admin's session, which another site can neither read nor guess. The
// session cookie is SameSite=Lax as well, so a cross-site POST arrives
// without it.

// maxForm bounds an admin form's body.
const maxForm = 64 << 10

// Page list sizes.
const (
	pageUsers    = 200
	pageRooms    = 200
	pageMessages = 50
	pageBots     = 200
	pageAudit    = 100
)

func (s *Service) pageRoutes(mux *http.ServeMux) {
	form := func(section string, fn func(r *http.Request, actor auth.User) (string, *web.AdminToken, error)) http.Handler {
		return s.formHandler(section, fn)
	}
	user := func(r *http.Request) string { return r.PathValue("username") }
	mux.Handle("POST /admin/users/{username}/ban", form("users", func(r *http.Request, actor auth.User) (string, *web.AdminToken, error) {
		return user(r) + " is banned: their sessions, tokens and polls have ended.", nil, s.Ban(r.Context(), actor, user(r))
	}))
	mux.Handle("POST /admin/users/{username}/unban", form("users", func(r *http.Request, actor auth.User) (string, *web.AdminToken, error) {
		return user(r) + " is no longer banned.", nil, s.Unban(r.Context(), actor, user(r))
	}))
	mux.Handle("POST /admin/users/{username}/role", form("users", func(r *http.Request, actor auth.User) (string, *web.AdminToken, error) {
		role := r.PostFormValue("role")
		return fmt.Sprintf("%s's role is now %s.", user(r), role), nil, s.SetRole(r.Context(), actor, user(r), role)
	}))
	mux.Handle("POST /admin/users/{username}/delete-messages", form("users", func(r *http.Request, actor auth.User) (string, *web.AdminToken, error) {
		since, err := ParseWithin(r.PostFormValue("within"), time.Now())
		if err != nil {
			return "", nil, err
		}
		n, err := s.DeleteRecent(r.Context(), actor, user(r), since)
		return fmt.Sprintf("Deleted %d messages of %s.", n, user(r)), nil, err
	}))
	mux.Handle("POST /admin/rooms", form("rooms", func(r *http.Request, actor auth.User) (string, *web.AdminToken, error) {
		room, err := s.CreateRoom(r.Context(), actor, r.PostFormValue("name"), r.PostFormValue("topic"), r.PostFormValue("private") != "")
		return fmt.Sprintf("Created the %s room %s.", room.Kind, room.Name), nil, err
	}))
	mux.Handle("POST /admin/rooms/{room}/topic", form("rooms", func(r *http.Request, actor auth.User) (string, *web.AdminToken, error) {
		room, err := s.SetTopic(r.Context(), actor, r.PathValue("room"), r.PostFormValue("topic"))
		return fmt.Sprintf("Set the topic of %s.", room.Name), nil, err
	}))
	mux.Handle("POST /admin/rooms/{room}/kick", form("rooms", func(r *http.Request, actor auth.User) (string, *web.AdminToken, error) {
		who := strings.TrimSpace(r.PostFormValue("user"))
		if who == "" {
			return "", nil, api.Errorf(api.InvalidArgument, "say whom to kick")
		}
		return fmt.Sprintf("%s was removed from %s.", who, r.PathValue("room")), nil, s.Kick(r.Context(), actor, r.PathValue("room"), who)
	}))
	mux.Handle("POST /admin/rooms/{room}/delete", form("rooms", func(r *http.Request, actor auth.User) (string, *web.AdminToken, error) {
		return fmt.Sprintf("Deleted the room %s.", r.PathValue("room")), nil, s.DeleteRoom(r.Context(), actor, r.PathValue("room"))
	}))
	mux.Handle("POST /admin/messages/{id}/delete", form("messages", func(r *http.Request, actor auth.User) (string, *web.AdminToken, error) {
		id, err := api.PathID(r, "id")
		if err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("Deleted message %d.", id), nil, s.DeleteMessage(r.Context(), actor, id)
	}))
	mux.Handle("POST /admin/bots", form("bots", func(r *http.Request, actor auth.User) (string, *web.AdminToken, error) {
		u, token, err := s.CreateBot(r.Context(), actor, strings.TrimSpace(r.PostFormValue("name")), true)
		if err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("Created the bot %s. It is in the lobby.", u.Name), &web.AdminToken{Bot: u.Name, Token: token}, nil
	}))
	mux.Handle("POST /admin/bots/{name}/token", form("bots", func(r *http.Request, actor auth.User) (string, *web.AdminToken, error) {
		u, token, err := s.NewBotToken(r.Context(), actor, r.PathValue("name"))
		if err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("%s has a new token; the old one stopped working.", u.Name), &web.AdminToken{Bot: u.Name, Token: token}, nil
	}))
	mux.Handle("POST /admin/bots/{name}/revoke", form("bots", func(r *http.Request, actor auth.User) (string, *web.AdminToken, error) {
		return fmt.Sprintf("Revoked the token of %s.", r.PathValue("name")), nil, s.RevokeBot(r.Context(), actor, r.PathValue("name"))
	}))
}

// formHandler runs one admin form: only for a signed-in admin whose form
// carries their session's token. It then redirects to the page's section.
func (s *Service) formHandler(section string, fn func(r *http.Request, actor auth.User) (string, *web.AdminToken, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.deps.Accounts.Identify(r)
		if err != nil {
			if api.IsCode(err, api.Unauthenticated) {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			api.WriteError(w, r, s.log, err)
			return
		}
		if !id.User.IsAdmin() {
			http.Error(w, "Only admins may do this.", http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "The form could not be read.", http.StatusBadRequest)
			return
		}
		if id.SessionKey == "" || !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.csrfToken(id.SessionKey))) {
			http.Error(w, "This form has expired or did not come from the admin page. Reload the admin page and try again.", http.StatusForbidden)
			return
		}
		notice, token, err := fn(r, id.User)
		f := flash{notice: notice, token: token}
		if err != nil {
			f = flash{err: s.describe(r, err)}
		}
		s.flashes.put(id.SessionKey, f)
		target := "/admin"
		if q := r.PostFormValue("q"); q != "" {
			target += "?" + url.Values{"q": {q}}.Encode()
		}
		http.Redirect(w, r, target+"#"+section, http.StatusSeeOther)
	})
}

// describe turns an action's error into a message for the page.
func (s *Service) describe(r *http.Request, err error) string {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Message
	}
	if errors.Is(err, store.ErrUnavailable) {
		return "The database cannot take writes right now; nothing was changed. Try again later."
	}
	s.log.Error("admin form", "path", r.URL.Path, "err", err)
	return "Something went wrong; nothing was changed."
}

// csrfToken is the form token of the session with the stored key: an HMAC
// under the server's key, so it is fixed for the session's life and
// worthless outside it.
func (s *Service) csrfToken(sessionKey string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte("chatd admin form\x00"))
	m.Write([]byte(sessionKey))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// AdminView gathers the admin page's contents for the admin making r. It
// implements web.AdminBackend.
func (s *Service) AdminView(r *http.Request) (web.AdminView, error) {
	ctx := r.Context()
	id, err := s.deps.Accounts.Identify(r)
	if err != nil {
		return web.AdminView{}, fmt.Errorf("admin: page: %w", err)
	}
	var v web.AdminView
	if id.SessionKey != "" {
		v.CSRF = s.csrfToken(id.SessionKey)
		f := s.flashes.take(id.SessionKey)
		v.Notice, v.Error, v.NewToken = f.notice, f.err, f.token
	}
	v.Search = r.URL.Query().Get("q")
	if err := s.fill(ctx, &v); err != nil {
		return web.AdminView{}, fmt.Errorf("admin: page: %w", err)
	}
	return v, nil
}

func (s *Service) fill(ctx context.Context, v *web.AdminView) error {
	users, err := s.Users(ctx, v.Search, pageUsers)
	if err != nil {
		return err
	}
	for _, u := range users {
		v.Users = append(v.Users, web.AdminUser{Name: u.Name, Role: u.Role, Status: u.Status, Banned: u.Banned, Created: u.Created, LastSeen: u.LastSeen})
	}
	rs, err := s.Rooms(ctx, pageRooms)
	if err != nil {
		return err
	}
	for _, r := range rs {
		v.Rooms = append(v.Rooms, web.AdminRoom{Name: r.Name, Kind: r.Kind, Topic: r.Topic, Members: r.Members})
	}
	ms, err := s.Messages(ctx, pageMessages)
	if err != nil {
		return err
	}
	for _, m := range ms {
		v.Messages = append(v.Messages, web.AdminMessage{ID: m.ID, Room: m.Room, User: m.User, Text: m.Content.Text, TS: m.TS})
	}
	bs, err := s.Bots(ctx, "", pageBots)
	if err != nil {
		return err
	}
	for _, b := range bs {
		v.Bots = append(v.Bots, web.AdminBot{Name: b.Name, Banned: b.Banned, Tokens: b.Tokens, Created: b.Created, TokenCreated: b.TokenCreated, LastUsed: b.LastUsed})
	}
	for _, c := range s.Clients() {
		if n := len(v.Clients); n == 0 || v.Clients[n-1].User != c.User {
			v.Clients = append(v.Clients, web.AdminClients{User: c.User})
		}
		g := &v.Clients[len(v.Clients)-1]
		g.Pending += c.PendingPolls
		if c.LastPoll.After(g.LastPoll) {
			g.LastPoll = c.LastPoll
		}
		g.Clients = append(g.Clients, web.AdminClient{Key: c.Client, Kind: c.Kind, UserAgent: c.UserAgent, Pending: c.PendingPolls, LastPoll: c.LastPoll})
	}
	es, err := s.Audit(ctx, pageAudit)
	if err != nil {
		return err
	}
	for _, e := range es {
		v.Audit = append(v.Audit, web.AdminEntry{TS: e.TS, Admin: e.Admin, Action: e.Action, Target: e.Target, Detail: e.Detail})
	}
	return nil
}

// flash is how an admin's last action went, kept until their next page
// load.
type flash struct {
	notice string
	err    string
	token  *web.AdminToken
	at     time.Time
}

// flashTTL is how long an unread flash is kept. A bot token not seen in that
// time is lost (its bot can be given a new one).
const flashTTL = 5 * time.Minute

// flashes holds one flash per admin session.
type flashes struct {
	mu sync.Mutex
	m  map[string]flash
}

func newFlashes() *flashes { return &flashes{m: make(map[string]flash)} }

func (f *flashes) put(session string, v flash) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for k, old := range f.m {
		if now.Sub(old.at) > flashTTL {
			delete(f.m, k)
		}
	}
	v.at = now
	f.m[session] = v
}

func (f *flashes) take(session string) flash {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[session]
	if !ok || time.Since(v.at) > flashTTL {
		return flash{}
	}
	delete(f.m, session)
	return v
}

// loadKey returns the server secret called name, making it on first use.
func loadKey(ctx context.Context, db *store.DB, name string) ([]byte, error) {
	read := func() ([]byte, error) {
		var v []byte
		err := db.Reader().QueryRowContext(ctx, "SELECT value FROM secrets WHERE name = ?", name).Scan(&v)
		return v, err
	}
	v, err := read()
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("admin: read key %s: %w", name, err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("admin: make key %s: %w", name, err)
	}
	err = db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING", name, key, time.Now().UnixMilli())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("admin: store key %s: %w", name, err)
	}
	if v, err = read(); err != nil {
		return nil, fmt.Errorf("admin: read key %s: %w", name, err)
	}
	return v, nil
}
