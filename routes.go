package chatd

import (
	"net/http"

	"chatd/api"
	"chatd/web"
)

// routes builds the HTTP handler: the API, health and metrics, behind the
// cross-origin protection that refuses state-changing requests from other
// origins.
func (s *Server) routes() (http.Handler, error) {
	mux := http.NewServeMux()
	require := s.auth.Require

	s.auth.Routes(mux)
	s.rooms.Routes(mux, s.log, require)
	s.messages.Routes(mux, s.log, require)
	s.presence.Routes(mux, require)
	mux.Handle("GET /api/state", require(api.Handler(s.log, s.handleState)))
	mux.Handle("GET /api/events", require(api.Handler(s.log, s.handleEvents)))
	mux.Handle("POST /api/disconnect", require(api.Handler(s.log, s.handleDisconnect)))
	s.admin.Routes(mux)
	mux.Handle("/api/", api.Handler(s.log, func(w http.ResponseWriter, r *http.Request) error {
		return api.Errorf(api.NotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
	pages, err := web.New(pageAuth{s}, s.log)
	if err != nil {
		return nil, err
	}
	pages.Register(mux)
	if err := pages.RegisterAdmin(mux, s.admin); err != nil {
		return nil, err
	}
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.Handle("GET /metrics", s.metrics.handler())

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(api.Handler(s.log, func(w http.ResponseWriter, r *http.Request) error {
		return api.Errorf(api.Forbidden, "cross-origin requests may not change anything")
	}))
	return cop.Handler(mux), nil
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if err := s.Health(r.Context()); err != nil {
		api.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// pageAuth tells the pages who is signed in, from the session cookie.
type pageAuth struct{ s *Server }

func (a pageAuth) Viewer(r *http.Request) (web.Viewer, bool) {
	id, err := a.s.auth.Identify(r)
	if err != nil {
		return web.Viewer{}, false
	}
	return web.Viewer{Name: id.User.Name, Role: id.User.Role}, true
}
