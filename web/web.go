// Package web serves chatd's browser pages: the chat, sign-in and sign-up
// pages rendered from embedded templates, and the static scripts and styles
// they load. The pages only talk to the JSON API; this package holds no
// state of its own beyond what it reads from the embedded files at start-up.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Viewer is the signed-in user as the pages see them.
type Viewer struct{ Name, Role string }

// Auth tells the pages who is signed in (the server implements it with its
// session store).
type Auth interface {
	Viewer(r *http.Request) (Viewer, bool)
}

// Handler renders the pages and serves the static files.
type Handler struct {
	auth   Auth
	logger *slog.Logger
	pages  map[string]*template.Template
	// version is a hash of every static file. It is part of every static URL,
	// so a URL names one exact set of files and can be cached forever, and
	// ES modules can import their neighbours by relative path.
	version string
	files   map[string]staticFile
}

type staticFile struct {
	body        []byte
	contentType string
	etag        string
}

// contentSecurityPolicy is sent with every page and static file (a worker's
// policy comes from its script's response). No inline script or style, no
// eval, and HTML may only reach the DOM through the one Trusted Types
// policy that inserts the server's sanitized message html (the other policy
// names the shared worker's script, which must be one of ours).
const contentSecurityPolicy = "default-src 'self'; " +
	"script-src 'self'; " +
	"style-src 'self'; " +
	"img-src 'self' data:; " +
	"font-src 'self'; " +
	"connect-src 'self'; " +
	"worker-src 'self'; " +
	"frame-src 'self'; " +
	"frame-ancestors 'self'; " +
	"form-action 'self'; " +
	"base-uri 'none'; " +
	"object-src 'none'; " +
	"require-trusted-types-for 'script'; " +
	"trusted-types chatd-message-html chatd-worker-url"

// pageNames are the templates in templates/ that are whole pages; each is
// parsed together with layout.html.
var pageNames = []string{"chat", "login", "register"}

// New parses the embedded templates once and returns the page handler. It
// fails only if the embedded files are broken, which is a build mistake.
func New(auth Auth, logger *slog.Logger) (*Handler, error) {
	if auth == nil {
		return nil, fmt.Errorf("web: new: auth is nil")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{auth: auth, logger: logger, pages: make(map[string]*template.Template)}
	if err := h.loadStatic(); err != nil {
		return nil, fmt.Errorf("web: new: %w", err)
	}
	funcs := template.FuncMap{"static": h.staticURL}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: new: parse %s page: %w", name, err)
		}
		h.pages[name] = t
	}
	return h, nil
}

// loadStatic reads every static file once and computes the version hash.
func (h *Handler) loadStatic() error {
	h.files = make(map[string]staticFile)
	var names []string
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		sum := sha256.Sum256(body)
		h.files[name] = staticFile{
			body:        body,
			contentType: contentType(name),
			etag:        `"` + hex.EncodeToString(sum[:8]) + `"`,
		}
		names = append(names, name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read static files: %w", err)
	}
	sort.Strings(names)
	all := sha256.New()
	for _, name := range names {
		fmt.Fprintf(all, "%s\x00%s\x00", name, h.files[name].etag)
	}
	h.version = hex.EncodeToString(all.Sum(nil)[:6])
	return nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".webmanifest":
		return "application/manifest+json"
	}
	return "application/octet-stream"
}

// staticURL is the template function that names a static file by its
// versioned URL. An unknown name is an error, so a typo in a template fails
// the first render in any test rather than shipping a broken link.
func (h *Handler) staticURL(name string) (string, error) {
	if _, ok := h.files[name]; !ok {
		return "", fmt.Errorf("web: no static file %q", name)
	}
	return "/static/" + h.version + "/" + name, nil
}

// Register adds the page routes to mux: the chat page at /, the sign-in and
// sign-up pages, and the content-addressed static files.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", h.chat)
	mux.HandleFunc("GET /login", h.login)
	mux.HandleFunc("GET /register", h.register)
	mux.HandleFunc("GET /static/{version}/{file...}", h.static)
	mux.HandleFunc("GET /favicon.ico", h.favicon)
}

// pageData is what every page template sees.
type pageData struct {
	Title   string
	Page    string
	Viewer  Viewer
	Version string
	// Notice is a line for the person arriving at the page (why they were
	// signed out).
	Notice string
}

// loginNotices are the reasons a page may send someone to sign in, by the
// value of ?reason=.
var loginNotices = map[string]string{
	"banned": "Your account has been banned by an admin. You have been signed out.",
}

func (h *Handler) chat(w http.ResponseWriter, r *http.Request) {
	v, ok := h.auth.Viewer(r)
	if !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	h.render(w, r, "chat", pageData{Title: "chatd", Viewer: v})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.auth.Viewer(r); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	h.render(w, r, "login", pageData{Title: "Sign in · chatd", Notice: loginNotices[r.URL.Query().Get("reason")]})
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.auth.Viewer(r); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	h.render(w, r, "register", pageData{Title: "Create an account · chatd"})
}

// render executes the page into a buffer first, so a template error becomes a
// clean 500 instead of half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, page string, data pageData) {
	data.Page = page
	data.Version = h.version
	h.writePage(w, r, h.pages[page], http.StatusOK, data)
}

// writePage executes t with data and sends the result with status. Pages
// name the signed-in user, and the admin page may carry a bot token shown
// this once: every page is kept out of shared caches and out of the
// back/forward history of a signed-out browser.
func (h *Handler) writePage(w http.ResponseWriter, r *http.Request, t *template.Template, status int, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		h.logger.Error("web: render page", "template", t.Name(), "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	setSecurityHeaders(hdr)
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Vary", "Cookie")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}

func setSecurityHeaders(hdr http.Header) {
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("X-Frame-Options", "SAMEORIGIN")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")
	hdr.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}

// static serves one embedded file. Only the current version is served: an
// old version's URL would otherwise be cached forever with new content.
func (h *Handler) static(w http.ResponseWriter, r *http.Request) {
	f, ok := h.files[r.PathValue("file")]
	if !ok || r.PathValue("version") != h.version {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	setSecurityHeaders(hdr)
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	hdr.Set("ETag", f.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

func (h *Handler) favicon(w http.ResponseWriter, r *http.Request) {
	u, err := h.staticURL("img/icon.svg")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	// Not permanent: the versioned URL changes with every release.
	http.Redirect(w, r, u, http.StatusFound)
}
