package auth

import (
	"net/http"

	"chatd/api"
)

// UserJSON is a user as the API shows it.
type UserJSON struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Status string `json:"status"`
}

// View returns the user as the API shows it, with their presence.
func (s *Service) View(u User) UserJSON {
	st := "offline"
	if s.presence != nil {
		st = s.presence.Status(u.ID)
	}
	return UserJSON{Name: u.Name, Role: u.Role, Status: st}
}

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Routes adds the account endpoints to mux.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.Handle("POST /api/register", api.Handler(s.log, s.handleRegister))
	mux.Handle("POST /api/login", api.Handler(s.log, s.handleLogin))
	mux.Handle("POST /api/logout", s.Require(api.Handler(s.log, s.handleLogout)))
	mux.Handle("GET /api/me", s.Require(api.Handler(s.log, s.handleMe)))
}

func (s *Service) handleRegister(w http.ResponseWriter, r *http.Request) error {
	var c credentials
	if err := api.DecodeJSON(w, r, &c); err != nil {
		return err
	}
	u, err := s.Register(w, r, c.Username, c.Password)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusCreated, map[string]any{"user": s.View(u)})
	return nil
}

func (s *Service) handleLogin(w http.ResponseWriter, r *http.Request) error {
	var c credentials
	if err := api.DecodeJSON(w, r, &c); err != nil {
		return err
	}
	u, err := s.Login(w, r, c.Username, c.Password)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"user": s.View(u)})
	return nil
}

func (s *Service) handleLogout(w http.ResponseWriter, r *http.Request) error {
	id, _ := FromContext(r.Context())
	if err := s.Logout(w, r, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) handleMe(w http.ResponseWriter, r *http.Request) error {
	id, _ := FromContext(r.Context())
	api.WriteJSON(w, http.StatusOK, map[string]any{"user": s.View(id.User)})
	return nil
}
