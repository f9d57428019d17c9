package web

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// roleAuth signs in whoever sends the cookie "who"; "root" is an admin.
type roleAuth struct{}

func (roleAuth) Viewer(r *http.Request) (Viewer, bool) {
	c, err := r.Cookie("who")
	if err != nil {
		return Viewer{}, false
	}
	role := "user"
	if c.Value == "root" {
		role = "admin"
	}
	return Viewer{Name: c.Value, Role: role}, true
}

// hostileBackend fills every field of the page with markup.
type hostileBackend struct{}

func (hostileBackend) AdminView(r *http.Request) (AdminView, error) {
	const evil = `<script>alert(1)</script><img src=x onerror=alert(2)>`
	now := time.Now()
	return AdminView{
		CSRF:     `"><script>alert(3)</script>`,
		Notice:   evil,
		NewToken: &AdminToken{Bot: evil, Token: "chatd_" + evil},
		Search:   evil,
		Users:    []AdminUser{{Name: "mallory", Role: "user", Status: "online", Created: now, LastSeen: now}},
		Rooms:    []AdminRoom{{Name: "lobby", Kind: "public", Topic: evil, Members: 1}},
		Messages: []AdminMessage{{ID: 1, Room: "lobby", User: "mallory", Text: evil, TS: now}},
		Bots:     []AdminBot{{Name: "bot", Tokens: 1, Created: now, LastUsed: now}},
		Clients:  []AdminClients{{User: "mallory", Pending: 1, LastPoll: now, Clients: []AdminClient{{Key: "s:1", Kind: "browser", UserAgent: evil, Pending: 1, LastPoll: now}}}},
		Audit:    []AdminEntry{{TS: now, Admin: "root", Action: "user.ban", Target: "mallory", Detail: evil}},
	}, nil
}

func TestAdminPage(t *testing.T) {
	h, err := New(roleAuth{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	if err := h.RegisterAdmin(mux, hostileBackend{}); err != nil {
		t.Fatalf("RegisterAdmin: %v", err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	if res, _ := get(t, srv.URL+"/admin", ""); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
		t.Errorf("anonymous: %d %q, want 303 to /login", res.StatusCode, res.Header.Get("Location"))
	}
	res, body := get(t, srv.URL+"/admin", "alice")
	if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "Admins only") || strings.Contains(body, "mallory") {
		t.Errorf("a user: %d, want 403 and nothing of the page's data:\n%s", res.StatusCode, body)
	}

	res, body = get(t, srv.URL+"/admin", "root")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("an admin: %d\n%s", res.StatusCode, body)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store (the page may show a token)", cc)
	}
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
		t.Error("markup from the data reached the page unescaped")
	}
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(body) {
		t.Error("inline script in the admin page")
	}
	// An on* attribute of a tag, after any number of quoted attributes (text
	// that merely reads "onerror=" inside a quoted value is harmless).
	if regexp.MustCompile(`<[a-z]+(?:\s+[a-z-]+(?:="[^"]*")?)*\s+on[a-z]+\s*=`).MatchString(body) {
		t.Error("inline event handler in the admin page")
	}
	for _, want := range []string{`id="users"`, `id="rooms"`, `id="messages"`, `id="bots"`, `id="clients"`, `id="audit"`, `id="new-token"`, `/static/` + h.version + `/css/admin.css`} {
		if !strings.Contains(body, want) {
			t.Errorf("the admin page lacks %s", want)
		}
	}
	// Every form that changes something posts with the form token.
	forms := regexp.MustCompile(`(?s)<form method="post".*?</form>`).FindAllString(body, -1)
	if len(forms) == 0 {
		t.Fatal("no forms on the admin page")
	}
	for _, f := range forms {
		if !strings.Contains(f, `name="csrf"`) {
			t.Errorf("a form without the form token: %s", f)
		}
	}
}
