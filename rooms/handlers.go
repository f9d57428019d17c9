package rooms

import (
	"log/slog"
	"net/http"

	"chatd/api"
	"chatd/auth"
)

// Routes adds the room endpoints to mux; require authenticates.
func (s *Service) Routes(mux *http.ServeMux, log *slog.Logger, require func(http.Handler) http.Handler) {
	h := func(fn func(w http.ResponseWriter, r *http.Request, id auth.Identity) error) http.Handler {
		return require(api.Handler(log, func(w http.ResponseWriter, r *http.Request) error {
			id, _ := auth.FromContext(r.Context())
			return fn(w, r, id)
		}))
	}
	mux.Handle("GET /api/rooms", h(s.handleList))
	mux.Handle("POST /api/rooms", h(s.handleCreate))
	mux.Handle("GET /api/rooms/{room}", h(s.handleShow))
	mux.Handle("PATCH /api/rooms/{room}", h(s.handleUpdate))
	mux.Handle("POST /api/rooms/{room}/join", h(s.handleJoin))
	mux.Handle("POST /api/rooms/{room}/leave", h(s.handleLeave))
	mux.Handle("POST /api/rooms/{room}/invite", h(s.handleInvite))
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	rooms, err := Visible(r.Context(), s.db.Reader(), id.User.ID)
	if err != nil {
		return err
	}
	joined, err := Joined(r.Context(), s.db.Reader(), id.User.ID)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"rooms": ListView(rooms, joined)})
	return nil
}

// ListJSON is a room in a list, with whether the caller is a member.
type ListJSON struct {
	JSON
	Joined bool `json:"joined"`
}

// ListView returns rooms as the API lists them.
func ListView(rooms []Room, joined map[string]bool) []ListJSON {
	out := make([]ListJSON, len(rooms))
	for i, r := range rooms {
		out[i] = ListJSON{JSON: r.View(), Joined: joined[r.Name]}
	}
	return out
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	var body struct {
		Name    string `json:"name"`
		Topic   string `json:"topic"`
		Private bool   `json:"private"`
	}
	if err := api.DecodeJSON(w, r, &body); err != nil {
		return err
	}
	room, err := s.Create(r.Context(), id.User, body.Name, body.Topic, body.Private)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/rooms/"+room.Name)
	api.WriteJSON(w, http.StatusCreated, map[string]any{"room": room.View()})
	return nil
}

func (s *Service) handleShow(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	ctx := r.Context()
	room, err := ByName(ctx, s.db.Reader(), r.PathValue("room"))
	if err != nil {
		return err
	}
	ok, err := CanSee(ctx, s.db.Reader(), room, id.User)
	if err != nil {
		return err
	}
	if !ok {
		return api.Errorf(api.Forbidden, "%q is a private room", room.Name)
	}
	members, err := Members(ctx, s.db.Reader(), room.ID)
	if err != nil {
		return err
	}
	views := make([]auth.UserJSON, len(members))
	for i, m := range members {
		views[i] = s.auth.View(m)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"room": room.View(), "members": views})
	return nil
}

func (s *Service) handleUpdate(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	var body struct {
		Topic *string `json:"topic"`
	}
	if err := api.DecodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Topic == nil {
		return api.Errorf(api.InvalidArgument, "nothing to change: give a topic")
	}
	room, err := s.SetTopic(r.Context(), id.User, r.PathValue("room"), *body.Topic)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"room": room.View()})
	return nil
}

func (s *Service) handleJoin(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	room, err := s.Join(r.Context(), id.User, r.PathValue("room"))
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"room": room.View()})
	return nil
}

func (s *Service) handleLeave(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	room, err := s.Leave(r.Context(), id.User, r.PathValue("room"))
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"room": room.View()})
	return nil
}

func (s *Service) handleInvite(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	var body struct {
		User string `json:"user"`
	}
	if err := api.DecodeJSON(w, r, &body); err != nil {
		return err
	}
	room, err := s.Invite(r.Context(), id.User, r.PathValue("room"), body.User)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"room": room.View()})
	return nil
}
