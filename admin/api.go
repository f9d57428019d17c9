package admin

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"chatd/api"
	"chatd/auth"
	"chatd/messages"
	"chatd/rooms"
)

// List sizes of the API and the page.
const (
	defaultList = 100
	maxList     = 1000
)

// Routes adds the JSON admin API (/api/admin/...) and the admin page's form
// handlers (POST /admin/...) to mux. The page itself is rendered by the web
// package from AdminView.
func (s *Service) Routes(mux *http.ServeMux) {
	a := s.deps.Accounts
	h := func(fn func(w http.ResponseWriter, r *http.Request, actor auth.User) error) http.Handler {
		return a.RequireAdmin(api.Handler(s.log, func(w http.ResponseWriter, r *http.Request) error {
			id, _ := auth.FromContext(r.Context())
			return fn(w, r, id.User)
		}))
	}
	mux.Handle("GET /api/admin/users", h(s.apiUsers))
	mux.Handle("POST /api/admin/users/{username}/ban", h(s.apiBan))
	mux.Handle("POST /api/admin/users/{username}/unban", h(s.apiUnban))
	mux.Handle("POST /api/admin/users/{username}/role", h(s.apiRole))
	mux.Handle("DELETE /api/admin/users/{username}/messages", h(s.apiDeleteRecent))
	mux.Handle("GET /api/admin/rooms", h(s.apiRooms))
	mux.Handle("POST /api/admin/rooms", h(s.apiCreateRoom))
	mux.Handle("PATCH /api/admin/rooms/{room}", h(s.apiSetTopic))
	mux.Handle("POST /api/admin/rooms/{room}/kick", h(s.apiKick))
	mux.Handle("DELETE /api/admin/rooms/{room}", h(s.apiDeleteRoom))
	mux.Handle("GET /api/admin/messages", h(s.apiMessages))
	mux.Handle("DELETE /api/admin/messages/{id}", h(s.apiDeleteMessage))
	mux.Handle("GET /api/admin/bots", h(s.apiBots))
	mux.Handle("POST /api/admin/bots", h(s.apiCreateBot))
	mux.Handle("POST /api/admin/bots/{name}/token", h(s.apiNewToken))
	mux.Handle("DELETE /api/admin/bots/{name}", h(s.apiRevokeBot))
	mux.Handle("GET /api/admin/clients", h(s.apiClients))
	mux.Handle("GET /api/admin/audit", h(s.apiAudit))
	s.pageRoutes(mux)
}

// limitParam reads ?limit=N (default defaultList, at most maxList).
func limitParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultList, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, api.Errorf(api.InvalidArgument, "limit must be a positive integer, not %q", v)
	}
	return min(n, maxList), nil
}

// optTime formats t for JSON, with nil for the zero time.
func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := api.Time(t)
	return &s
}

// userJSON is an account in the admin API.
type userJSON struct {
	Name     string  `json:"name"`
	Role     string  `json:"role"`
	Status   string  `json:"status"`
	Banned   bool    `json:"banned"`
	Created  string  `json:"created"`
	LastSeen *string `json:"last_seen"`
}

func (s *Service) apiUsers(w http.ResponseWriter, r *http.Request, _ auth.User) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	us, err := s.Users(r.Context(), r.URL.Query().Get("q"), limit)
	if err != nil {
		return err
	}
	out := make([]userJSON, len(us))
	for i, u := range us {
		out[i] = userJSON{Name: u.Name, Role: u.Role, Status: u.Status, Banned: u.Banned, Created: api.Time(u.Created), LastSeen: optTime(u.LastSeen)}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}

func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) apiBan(w http.ResponseWriter, r *http.Request, actor auth.User) error {
	if err := s.Ban(r.Context(), actor, r.PathValue("username")); err != nil {
		return err
	}
	return noContent(w)
}

func (s *Service) apiUnban(w http.ResponseWriter, r *http.Request, actor auth.User) error {
	if err := s.Unban(r.Context(), actor, r.PathValue("username")); err != nil {
		return err
	}
	return noContent(w)
}

func (s *Service) apiRole(w http.ResponseWriter, r *http.Request, actor auth.User) error {
	var body struct {
		Role string `json:"role"`
	}
	if err := api.DecodeJSON(w, r, &body); err != nil {
		return err
	}
	if err := s.SetRole(r.Context(), actor, r.PathValue("username"), body.Role); err != nil {
		return err
	}
	return noContent(w)
}

// ParseWithin reads how far back to delete a user's messages: a Go
// duration ("90m", "24h"), a number of days ("7d"), or "all". It returns
// the zero time for all.
func ParseWithin(v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	bad := api.Errorf(api.InvalidArgument, `within is a duration such as "1h", "24h" or "7d", or "all"; not %q`, v)
	switch {
	case v == "all":
		return time.Time{}, nil
	case strings.HasSuffix(v, "d"):
		n, err := strconv.Atoi(strings.TrimSuffix(v, "d"))
		if err != nil || n < 1 || n > 36500 {
			return time.Time{}, bad
		}
		return now.AddDate(0, 0, -n), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return time.Time{}, bad
	}
	return now.Add(-d), nil
}

func (s *Service) apiDeleteRecent(w http.ResponseWriter, r *http.Request, actor auth.User) error {
	within := r.URL.Query().Get("within")
	if within == "" {
		return api.Errorf(api.InvalidArgument, `say how far back to delete: ?within=1h, 24h, 7d or all`)
	}
	since, err := ParseWithin(within, time.Now())
	if err != nil {
		return err
	}
	n, err := s.DeleteRecent(r.Context(), actor, r.PathValue("username"), since)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"deleted": n})
	return nil
}

func (s *Service) apiRooms(w http.ResponseWriter, r *http.Request, _ auth.User) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	rs, err := s.Rooms(r.Context(), limit)
	if err != nil {
		return err
	}
	out := make([]rooms.JSON, len(rs))
	for i, room := range rs {
		out[i] = room.View()
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"rooms": out})
	return nil
}

func (s *Service) apiCreateRoom(w http.ResponseWriter, r *http.Request, actor auth.User) error {
	var body struct {
		Name    string `json:"name"`
		Topic   string `json:"topic"`
		Private bool   `json:"private"`
	}
	if err := api.DecodeJSON(w, r, &body); err != nil {
		return err
	}
	room, err := s.CreateRoom(r.Context(), actor, body.Name, body.Topic, body.Private)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/rooms/"+room.Name)
	api.WriteJSON(w, http.StatusCreated, map[string]any{"room": room.View()})
	return nil
}

func (s *Service) apiSetTopic(w http.ResponseWriter, r *http.Request, actor auth.User) error {
	var body struct {
		Topic *string `json:"topic"`
	}
	if err := api.DecodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Topic == nil {
		return api.Errorf(api.InvalidArgument, `give the new topic: {"topic": "..."}`)
	}
	room, err := s.SetTopic(r.Context(), actor, r.PathValue("room"), *body.Topic)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"room": room.View()})
	return nil
}

func (s *Service) apiKick(w http.ResponseWriter, r *http.Request, actor auth.User) error {
	var body struct {
		User string `json:"user"`
	}
	if err := api.DecodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.User == "" {
		return api.Errorf(api.InvalidArgument, `say whom to kick: {"user": "name"}`)
	}
	if err := s.Kick(r.Context(), actor, r.PathValue("room"), body.User); err != nil {
		return err
	}
	return noContent(w)
}

func (s *Service) apiDeleteRoom(w http.ResponseWriter, r *http.Request, actor auth.User) error {
	if err := s.DeleteRoom(r.Context(), actor, r.PathValue("room")); err != nil {
		return err
	}
	return noContent(w)
}

func (s *Service) apiMessages(w http.ResponseWriter, r *http.Request, _ auth.User) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	ms, err := s.Messages(r.Context(), limit)
	if err != nil {
		return err
	}
	out := make([]messages.JSON, len(ms))
	for i, m := range ms {
		out[i] = m.View()
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"messages": out})
	return nil
}

func (s *Service) apiDeleteMessage(w http.ResponseWriter, r *http.Request, actor auth.User) error {
	id, err := api.PathID(r, "id")
	if err != nil {
		return err
	}
	if err := s.DeleteMessage(r.Context(), actor, id); err != nil {
		return err
	}
	return noContent(w)
}

// botJSON is a bot in the admin API.
type botJSON struct {
	Name         string  `json:"name"`
	Banned       bool    `json:"banned"`
	Created      string  `json:"created"`
	Tokens       int     `json:"tokens"`
	TokenCreated *string `json:"token_created"`
	LastUsed     *string `json:"last_used"`
}

func (s *Service) apiBots(w http.ResponseWriter, r *http.Request, _ auth.User) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	bs, err := s.Bots(r.Context(), r.URL.Query().Get("q"), limit)
	if err != nil {
		return err
	}
	out := make([]botJSON, len(bs))
	for i, b := range bs {
		out[i] = botJSON{Name: b.Name, Banned: b.Banned, Created: api.Time(b.Created), Tokens: b.Tokens,
			TokenCreated: optTime(b.TokenCreated), LastUsed: optTime(b.LastUsed)}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"bots": out})
	return nil
}

// writeToken answers a new token: 201, and never cached anywhere.
func writeToken(w http.ResponseWriter, u auth.User, token string) {
	api.WriteJSON(w, http.StatusCreated, map[string]any{
		"user":  auth.UserJSON{Name: u.Name, Role: u.Role, Status: "offline"},
		"token": token,
	})
}

func (s *Service) apiCreateBot(w http.ResponseWriter, r *http.Request, actor auth.User) error {
	var body struct {
		Name string `json:"name"`
	}
	if err := api.DecodeJSON(w, r, &body); err != nil {
		return err
	}
	u, token, err := s.CreateBot(r.Context(), actor, body.Name, true)
	if err != nil {
		return err
	}
	writeToken(w, u, token)
	return nil
}

func (s *Service) apiNewToken(w http.ResponseWriter, r *http.Request, actor auth.User) error {
	u, token, err := s.NewBotToken(r.Context(), actor, r.PathValue("name"))
	if err != nil {
		return err
	}
	writeToken(w, u, token)
	return nil
}

func (s *Service) apiRevokeBot(w http.ResponseWriter, r *http.Request, actor auth.User) error {
	if err := s.RevokeBot(r.Context(), actor, r.PathValue("name")); err != nil {
		return err
	}
	return noContent(w)
}

// clientJSON is a live client in the admin API.
type clientJSON struct {
	User         string  `json:"user"`
	Client       string  `json:"client"`
	Kind         string  `json:"kind"`
	PendingPolls int     `json:"pending_polls"`
	LastPoll     *string `json:"last_poll"`
	UserAgent    string  `json:"user_agent"`
}

func (s *Service) apiClients(w http.ResponseWriter, r *http.Request, _ auth.User) error {
	cs := s.Clients()
	out := make([]clientJSON, len(cs))
	for i, c := range cs {
		out[i] = clientJSON{User: c.User, Client: c.Client, Kind: c.Kind, PendingPolls: c.PendingPolls, LastPoll: optTime(c.LastPoll), UserAgent: c.UserAgent}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"clients": out})
	return nil
}

// entryJSON is an audit log entry in the admin API.
type entryJSON struct {
	TS     string `json:"ts"`
	Admin  string `json:"admin"`
	Action string `json:"action"`
	Target string `json:"target"`
	Detail string `json:"detail,omitempty"`
}

func (s *Service) apiAudit(w http.ResponseWriter, r *http.Request, _ auth.User) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	es, err := s.Audit(r.Context(), limit)
	if err != nil {
		return err
	}
	out := make([]entryJSON, len(es))
	for i, e := range es {
		out[i] = entryJSON{TS: api.Time(e.TS), Admin: e.Admin, Action: e.Action, Target: e.Target, Detail: e.Detail}
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"entries": out})
	return nil
}
