package web

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// AdminBackend gathers what the admin page shows. The admin feature
// implements it; its form handlers (POST /admin/...) live there too, and
// come back here with a redirect to GET /admin.
type AdminBackend interface {
	// AdminView returns the page's contents for the admin making r.
	AdminView(r *http.Request) (AdminView, error)
}

// AdminView is everything the admin page shows.
type AdminView struct {
	// CSRF is the form token every form on the page carries.
	CSRF string
	// Notice and Error report how the last action went.
	Notice, Error string
	// NewToken is a bot token just made: the only time it is shown.
	NewToken *AdminToken
	// Search is the user search the page was asked for.
	Search   string
	Users    []AdminUser
	Rooms    []AdminRoom
	Messages []AdminMessage
	Bots     []AdminBot
	Clients  []AdminClients
	Audit    []AdminEntry
}

// AdminToken is a bot's new token.
type AdminToken struct{ Bot, Token string }

// AdminUser is an account in the users table.
type AdminUser struct {
	Name, Role, Status string
	Banned             bool
	Created, LastSeen  time.Time
}

// AdminRoom is a public or private room.
type AdminRoom struct {
	Name, Kind, Topic string
	Members           int
}

// AdminMessage is a recent message.
type AdminMessage struct {
	ID               int64
	Room, User, Text string
	TS               time.Time
}

// AdminBot is a bot and its token's state.
type AdminBot struct {
	Name                            string
	Banned                          bool
	Tokens                          int
	Created, TokenCreated, LastUsed time.Time
}

// AdminClients are the live clients of one user.
type AdminClients struct {
	User     string
	Pending  int
	LastPoll time.Time
	Clients  []AdminClient
}

// AdminClient is one live client: a browser or a bot token.
type AdminClient struct {
	Key, Kind, UserAgent string
	Pending              int
	LastPoll             time.Time
}

// AdminEntry is a line of the audit log.
type AdminEntry struct {
	TS                            time.Time
	Admin, Action, Target, Detail string
}

// adminPage is what the admin template sees: the layout's fields and the
// view.
type adminPage struct {
	Title     string
	Page      string
	Viewer    Viewer
	Version   string
	Forbidden bool
	AdminView
}

// RegisterAdmin parses the admin page's template and serves GET /admin:
// anonymous visitors are sent to sign in, and signed-in people who are not
// admins get 403.
func (h *Handler) RegisterAdmin(mux *http.ServeMux, backend AdminBackend) error {
	funcs := template.FuncMap{
		"static": h.staticURL,
		"when":   adminWhen,
		"iso":    adminISO,
		"ago":    adminAgo,
		"short":  adminShort,
	}
	t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/admin.html")
	if err != nil {
		return fmt.Errorf("web: parse admin page: %w", err)
	}
	mux.HandleFunc("GET /admin", func(w http.ResponseWriter, r *http.Request) {
		v, ok := h.auth.Viewer(r)
		if !ok {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		page := adminPage{Title: "Admin · chatd", Page: "admin", Viewer: v, Version: h.version}
		if v.Role != "admin" {
			page.Forbidden = true
			h.writePage(w, r, t, http.StatusForbidden, page)
			return
		}
		view, err := backend.AdminView(r)
		if err != nil {
			h.logger.Error("web: admin page", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		page.AdminView = view
		h.writePage(w, r, t, http.StatusOK, page)
	})
	return nil
}

// adminWhen formats a time for the page's tables ("" for the zero time).
func adminWhen(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

// adminISO formats a time for a <time datetime> attribute.
func adminISO(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// adminAgo says roughly how long ago t was ("never" for the zero time).
func adminAgo(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "just now"
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// adminShort cuts s to n characters, for table cells.
func adminShort(n int, s string) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
