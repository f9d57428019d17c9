package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// fakeAuth signs in whoever sends the cookie "who".
type fakeAuth struct{}

func (fakeAuth) Viewer(r *http.Request) (Viewer, bool) {
	c, err := r.Cookie("who")
	if err != nil {
		return Viewer{}, false
	}
	return Viewer{Name: c.Value, Role: "user"}, true
}

func mustServer(t *testing.T) *httptest.Server {
	t.Helper()
	h, err := New(fakeAuth{}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url, who string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if who != "" {
		req.AddCookie(&http.Cookie{Name: "who", Value: who})
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return res, string(body)
}

func TestAnonymousChatRedirectsToLogin(t *testing.T) {
	srv := mustServer(t)
	res, _ := get(t, srv.URL+"/", "")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
		t.Fatalf("GET / anonymous: %d %q, want 303 to /login", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestSignedInLoginRedirectsToChat(t *testing.T) {
	srv := mustServer(t)
	for _, p := range []string{"/login", "/register"} {
		res, _ := get(t, srv.URL+p, "alice")
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
			t.Errorf("GET %s signed in: %d %q, want 303 to /", p, res.StatusCode, res.Header.Get("Location"))
		}
	}
}

func TestPagesCarrySecurityHeaders(t *testing.T) {
	srv := mustServer(t)
	cases := []struct{ path, who string }{{"/", "alice"}, {"/login", ""}, {"/register", ""}}
	for _, c := range cases {
		res, body := get(t, srv.URL+c.path, c.who)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", c.path, res.StatusCode)
		}
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'self'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", c.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP allows unsafe sources: %q", c.path, csp)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", c.path, got)
		}
		if res.Header.Get("Referrer-Policy") == "" {
			t.Errorf("GET %s: no Referrer-Policy", c.path)
		}
		// No inline script and no inline event handler in any page.
		if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(body) {
			t.Errorf("GET %s: inline script in page", c.path)
		}
		if regexp.MustCompile(`\son[a-z]+\s*=`).MatchString(body) {
			t.Errorf("GET %s: inline event handler in page", c.path)
		}
	}
}

func TestChatPageEscapesViewer(t *testing.T) {
	srv := mustServer(t)
	_, body := get(t, srv.URL+"/", `a<script>x</script>`)
	if strings.Contains(body, "<script>x") {
		t.Fatal("viewer name reached the page unescaped")
	}
}

func TestStaticFilesAreVersionedAndCachedForever(t *testing.T) {
	srv := mustServer(t)
	_, page := get(t, srv.URL+"/login", "")
	m := regexp.MustCompile(`/static/([0-9a-f]+)/css/app\.css`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("login page links no versioned stylesheet:\n%s", page)
	}
	res, _ := get(t, srv.URL+m[0], "")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", m[0], res.StatusCode)
	}
	if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("GET %s: Cache-Control %q, want immutable", m[0], cc)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("GET %s: Content-Type %q", m[0], ct)
	}
	js, _ := get(t, srv.URL+"/static/"+m[1]+"/js/poller-worker.js", "")
	if ct := js.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("worker Content-Type %q", ct)
	}
	if js.Header.Get("Content-Security-Policy") == "" {
		t.Error("worker script has no CSP (a worker takes its policy from its script)")
	}
	for _, bad := range []string{"/static/0000/css/app.css", "/static/" + m[1] + "/nope.js", "/static/" + m[1] + "/../web.go"} {
		if res, _ := get(t, srv.URL+bad, ""); res.StatusCode == http.StatusOK {
			t.Errorf("GET %s: 200, want it refused", bad)
		}
	}
}
