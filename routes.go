package chatd

import (
	"net/http"
	"strings"
	"time"

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
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			return api.Errorf(api.MethodNotAllowed, "%s does not take %s; it takes %s", r.URL.Path, r.Method, strings.Join(allow, ", "))
		}
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
	return bodyDeadline(cop.Handler(mux)), nil
}

// bodyDeadline gives every request that has a body api.BodyTimeout to send
// it whole, whether its handler reads it or not: net/http reads the unread
// rest of a body after the handler (to reuse the connection), and the
// server sets no ReadTimeout (it would cut long-polls, which have no body),
// so without this a client refused at once (401, 403, 404) could trickle a
// body and hold its connection for ever.
func bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 { // -1: chunked, length unknown
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(api.BodyTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

// allowedMethods lists the methods that reach an endpoint other than the
// API's catch-all on r's path.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host}
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/api/" {
			allow = append(allow, m)
		}
	}
	return allow
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
