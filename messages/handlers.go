package messages

import (
	"log/slog"
	"net/http"
	"strconv"

	"chatd/api"
	"chatd/auth"
)

// History page sizes.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// Routes adds the message endpoints to mux; require authenticates.
func (s *Service) Routes(mux *http.ServeMux, log *slog.Logger, require func(http.Handler) http.Handler) {
	h := func(fn func(w http.ResponseWriter, r *http.Request, id auth.Identity) error) http.Handler {
		return require(api.Handler(log, func(w http.ResponseWriter, r *http.Request) error {
			id, _ := auth.FromContext(r.Context())
			return fn(w, r, id)
		}))
	}
	mux.Handle("GET /api/rooms/{room}/messages", h(s.handleHistory))
	mux.Handle("POST /api/rooms/{room}/messages", h(s.handlePost))
	mux.Handle("POST /api/users/{username}/messages", h(s.handleDirect))
	mux.Handle("PATCH /api/messages/{id}", h(s.handleEdit))
	mux.Handle("DELETE /api/messages/{id}", h(s.handleDelete))
}

// ParseContent reads a message body: JSON {"text"} or {"html"} when the
// request says it is JSON, otherwise the raw body as text.
func ParseContent(w http.ResponseWriter, r *http.Request) (Content, error) {
	b, err := api.ReadBody(w, r, api.MaxBody)
	if err != nil {
		return Content{}, err
	}
	if !api.IsJSON(r) {
		return FromText(string(b))
	}
	return DecodeContent(b)
}

// DecodeContent decodes a JSON message body with exactly one of text and
// html.
func DecodeContent(b []byte) (Content, error) {
	var body struct {
		Text *string `json:"text"`
		HTML *string `json:"html"`
	}
	if err := api.Unmarshal(b, &body); err != nil {
		return Content{}, err
	}
	switch {
	case body.Text != nil && body.HTML != nil:
		return Content{}, api.Errorf(api.InvalidArgument, "give either text or html, not both")
	case body.Text != nil:
		return FromText(*body.Text)
	case body.HTML != nil:
		return FromHTML(*body.HTML)
	}
	return Content{}, api.Errorf(api.InvalidArgument, `give the message as {"text": "..."} or {"html": "..."}`)
}

func writeMessage(w http.ResponseWriter, status int, m Message) {
	w.Header().Set("Location", "/api/messages/"+strconv.FormatInt(m.ID, 10))
	v := m.View()
	b := append(make([]byte, 0, v.jsonSize()+16), `{"message":`...)
	b = v.appendJSON(b)
	api.WriteRaw(w, status, append(b, '}'))
}

func (s *Service) handlePost(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	c, err := ParseContent(w, r)
	if err != nil {
		return err
	}
	m, err := s.Post(r.Context(), id.User, r.PathValue("room"), c)
	if err != nil {
		return err
	}
	writeMessage(w, http.StatusCreated, m)
	return nil
}

func (s *Service) handleDirect(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	c, err := ParseContent(w, r)
	if err != nil {
		return err
	}
	m, err := s.PostDirect(r.Context(), id.User, r.PathValue("username"), c)
	if err != nil {
		return err
	}
	writeMessage(w, http.StatusCreated, m)
	return nil
}

// ParsePage reads the before and limit query parameters of a history page.
func ParsePage(r *http.Request) (before int64, limit int, err error) {
	q := r.URL.Query()
	limit = DefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, api.Errorf(api.InvalidArgument, "limit must be a positive integer")
		}
		limit = min(n, MaxLimit)
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return 0, 0, api.Errorf(api.InvalidArgument, "before must be a message id")
		}
		before = n
	}
	return before, limit, nil
}

func (s *Service) handleHistory(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	before, limit, err := ParsePage(r)
	if err != nil {
		return err
	}
	msgs, err := s.History(r.Context(), id.User, r.PathValue("room"), before, limit)
	if err != nil {
		return err
	}
	views := make([]JSON, len(msgs))
	for i, m := range msgs {
		views[i] = m.View()
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"messages": views})
	return nil
}

func (s *Service) handleEdit(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	mid, err := api.PathID(r, "id")
	if err != nil {
		return err
	}
	b, err := api.ReadBody(w, r, api.MaxBody)
	if err != nil {
		return err
	}
	c, err := DecodeContent(b)
	if err != nil {
		return err
	}
	m, err := s.Edit(r.Context(), id.User, mid, c)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"message": m.View()})
	return nil
}

func (s *Service) handleDelete(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	mid, err := api.PathID(r, "id")
	if err != nil {
		return err
	}
	if err := s.Delete(r.Context(), id.User, mid); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
