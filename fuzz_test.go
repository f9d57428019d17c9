package chatd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"chatd/api"
)

// fuzzEnv is one real server for a fuzzing process: a database on a
// memory-backed file system when there is one (fuzzing writes a lot, and
// synchronous=FULL makes every commit an fsync), an admin signed in by
// cookie, a bot with a token, a room, a member and a message.
type fuzzEnv struct {
	srv    *Server
	cookie string // the admin's Cookie header value
	token  string // the bot's bearer token
	msgID  int64
}

func newFuzzEnv(tb testing.TB) *fuzzEnv {
	tb.Helper()
	dir := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		dir = "/dev/shm"
	}
	tmp, err := os.MkdirTemp(dir, "chatd-fuzz-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(tmp) })
	ctx := context.Background()
	srv, err := New(ctx, Config{DB: tmp + "/chatd.db", PostRate: -1, Hashes: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	e := &fuzzEnv{srv: srv}

	w := e.serve(tb, httptest.NewRequest("POST", "/api/register", strings.NewReader(`{"username":"root","password":"password1"}`)), "")
	if w.Code != 201 {
		tb.Fatalf("register: %d %s", w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		e.cookie = c.Name + "=" + c.Value
	}
	if _, err := srv.Auth().CreateUser(ctx, "target", "password1", "user"); err != nil {
		tb.Fatal(err)
	}
	if _, e.token, err = srv.Auth().CreateBot(ctx, "fuzzbot", true); err != nil {
		tb.Fatal(err)
	}
	for _, step := range []struct{ method, path, body string }{
		{"POST", "/api/rooms", `{"name":"fuzzroom","topic":"t"}`},
		{"POST", "/api/rooms/fuzzroom/invite", `{"user":"target"}`},
		{"POST", "/api/rooms/fuzzroom/messages", `{"text":"hello"}`},
	} {
		r := httptest.NewRequest(step.method, step.path, strings.NewReader(step.body))
		r.Header.Set("Content-Type", "application/json")
		w := e.serve(tb, r, e.cookie)
		if w.Code >= 300 {
			tb.Fatalf("%s %s: %d %s", step.method, step.path, w.Code, w.Body)
		}
		var m struct{ Message struct{ ID int64 } }
		json.Unmarshal(w.Body.Bytes(), &m)
		if m.Message.ID != 0 {
			e.msgID = m.Message.ID
		}
	}
	return e
}

// serve runs one request through the server's handler with the cookie
// (when not empty) and fails if it is not answered within 10 s: bad input
// must never hang a request.
func (e *fuzzEnv) serve(tb testing.TB, r *http.Request, cookie string) *httptest.ResponseRecorder {
	tb.Helper()
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	r = r.WithContext(ctx)
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.srv.ServeHTTP(w, r)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		tb.Fatalf("%s %s was not answered within 10 s", r.Method, r.URL)
	}
	return w
}

// fuzzEndpoint is an endpoint that decodes something from its request: a
// body, a query, a path value. {x} in the path is the fuzzed path value.
type fuzzEndpoint struct {
	method, path string
	form         bool // an admin page form (HTML answers, not JSON)
}

// fuzzEndpoints are the endpoints whose requests carry input to decode.
// Logout and disconnect are left out: they would end the fuzzer's own
// session, and they read nothing but the caller's credentials.
var fuzzEndpoints = []fuzzEndpoint{
	{"POST", "/api/register", false},
	{"POST", "/api/login", false},
	{"GET", "/api/me", false},
	{"GET", "/api/state", false},
	{"GET", "/api/events", false},
	{"GET", "/api/rooms", false},
	{"POST", "/api/rooms", false},
	{"GET", "/api/rooms/{x}", false},
	{"PATCH", "/api/rooms/{x}", false},
	{"POST", "/api/rooms/{x}/join", false},
	{"POST", "/api/rooms/{x}/leave", false},
	{"POST", "/api/rooms/{x}/invite", false},
	{"GET", "/api/rooms/{x}/messages", false},
	{"POST", "/api/rooms/{x}/messages", false},
	{"POST", "/api/users/{x}/messages", false},
	{"PATCH", "/api/messages/{x}", false},
	{"DELETE", "/api/messages/{x}", false},
	{"POST", "/api/presence", false},
	{"GET", "/api/admin/users", false},
	{"POST", "/api/admin/users/{x}/role", false},
	{"DELETE", "/api/admin/users/{x}/messages", false},
	{"GET", "/api/admin/rooms", false},
	{"POST", "/api/admin/rooms", false},
	{"PATCH", "/api/admin/rooms/{x}", false},
	{"POST", "/api/admin/rooms/{x}/kick", false},
	{"GET", "/api/admin/messages", false},
	{"GET", "/api/admin/bots", false},
	{"POST", "/api/admin/bots", false},
	{"GET", "/api/admin/clients", false},
	{"GET", "/api/admin/audit", false},
	{"POST", "/admin/rooms", true},
	{"POST", "/admin/users/{x}/role", true},
	{"POST", "/admin/users/{x}/delete-messages", true},
	{"GET", "/admin", true},
}

// fuzzDefaults are the path values used when the fuzzer gives none: the
// ones that exist, so that decoding goes past the lookup.
func (e *fuzzEnv) pathValue(ep fuzzEndpoint) string {
	switch {
	case strings.Contains(ep.path, "/messages/{x}"):
		return fmt.Sprint(e.msgID)
	case strings.Contains(ep.path, "/users/{x}"):
		return "target"
	}
	return "fuzzroom"
}

// FuzzRequests sends fuzzed path values, queries and bodies to every
// endpoint that decodes input, through the real handler and a real
// database, signed in as an admin (so that authorization lets the request
// reach its decoding). However malformed the request, the answer is never a
// 5xx nor a hang, and an API error has the contract's shape with the code
// that matches its status.
func FuzzRequests(f *testing.F) {
	e := newFuzzEnv(f)
	for i, ep := range fuzzEndpoints {
		n := uint8(i)
		switch {
		case ep.form:
			f.Add(n, "", "", []byte("csrf=x&name=formroom&role=admin&within=1h"), uint8(2))
		case ep.method == "GET":
			f.Add(n, "", "limit=5&before=3&q=t&cursor=0", []byte(nil), uint8(0))
			f.Add(n, "%00", "limit=-1&before=x&cursor=-1", []byte(nil), uint8(0))
		default:
			f.Add(n, "", "within=1h", []byte(`{"username":"u1","password":"password1","name":"r1","topic":"t","private":true,"text":"hi","user":"target","status":"away","role":"user"}`), uint8(1))
			f.Add(n, "", "", []byte(`{"text":"<b>x</b>"}`), uint8(1))
			f.Add(n, "", "", []byte(`{"html":"<img src=x onerror=alert(1)>"}`), uint8(1))
			f.Add(n, "..", "", []byte(`{"name":7}`), uint8(1))
			f.Add(n, "", "", []byte(`{"topic":null}{}`), uint8(1))
			f.Add(n, "", "", []byte("plain text body"), uint8(0))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, seg, query string, body []byte, kind uint8) {
		ep := fuzzEndpoints[int(which)%len(fuzzEndpoints)]
		if seg == "" {
			seg = e.pathValue(ep)
		}
		u := &url.URL{Path: strings.ReplaceAll(ep.path, "{x}", seg), RawQuery: query}
		if ep.path == "/api/events" {
			// A long poll would wait for its timeout: answer at once (the
			// first wait wins). FuzzParsePoll covers the timeout itself.
			u.RawQuery = "wait=0&" + query
		}
		r := httptest.NewRequest("GET", "/", bytes.NewReader(body))
		r.Method, r.URL, r.RequestURI = ep.method, u, u.RequestURI()
		switch kind % 4 {
		case 1:
			r.Header.Set("Content-Type", "application/json")
		case 2:
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		case 3:
			r.Header.Set("Content-Type", "text/plain; charset=utf-8")
		}
		cookie := e.cookie
		if kind&4 != 0 && !ep.form {
			r.Header.Set("Authorization", "Bearer "+e.token)
			cookie = ""
		}
		w := e.serve(t, r, cookie)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", ep.method, u, body, w.Code, w.Body)
		}
		if ep.form || w.Code < 400 {
			return
		}
		var shape struct {
			Error *struct {
				Code    api.Code `json:"code"`
				Message string   `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &shape); err != nil || shape.Error == nil || shape.Error.Message == "" {
			t.Fatalf("%s %s %q: %d with a body not in the error shape: %s", ep.method, u, body, w.Code, w.Body)
		}
		if shape.Error.Code.Status() != w.Code {
			t.Fatalf("%s %s %q: status %d with code %s", ep.method, u, body, w.Code, shape.Error.Code)
		}
		if w.Code == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
			t.Fatalf("%s %s: 429 without Retry-After", ep.method, u)
		}
	})
}

// FuzzIdentify sends fuzzed credentials: an Authorization header and a
// session cookie, made from real ones and mangled. A forged or mangled
// credential is refused with 401, never a panic, a 5xx or someone's
// identity.
func FuzzIdentify(f *testing.F) {
	e := newFuzzEnv(f)
	_, value, _ := strings.Cut(e.cookie, "=")
	f.Add("", value)
	f.Add("Bearer "+e.token, "")
	f.Add("Bearer "+e.token[:len(e.token)-1]+"A", "")
	f.Add("bearer\t"+e.token, "")
	f.Add("Basic dXNlcjpwYXNz", "")
	f.Add("Bearer ", value)
	f.Add("", value[:len(value)/2])
	f.Add("", value+"|")
	f.Add("", "MTcwMDAwMDAwMHxkR1Z6ZEE9PXx4eHg=")
	f.Fuzz(func(t *testing.T, authz, cookie string) {
		r := httptest.NewRequest("GET", "/api/me", nil)
		if authz != "" {
			r.Header["Authorization"] = []string{authz}
		}
		if cookie != "" {
			r.Header["Cookie"] = []string{"chatd_session=" + cookie}
		}
		id, err := e.srv.Auth().Identify(r)
		if err == nil {
			// Only the real credentials identify anyone, and as who they
			// belong to.
			scheme, token, _ := strings.Cut(authz, " ")
			realToken := strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(token) == e.token
			switch {
			case id.User.Name == "fuzzbot" && realToken:
			case id.User.Name == "root" && authz == "":
			default:
				t.Fatalf("Authorization %q, cookie %q identified %+v", authz, cookie, id.User)
			}
			return
		}
		if !api.IsCode(err, api.Unauthenticated) {
			t.Fatalf("Authorization %q, cookie %q: %v, want unauthenticated", authz, cookie, err)
		}
		w := e.serve(t, r, "")
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("Authorization %q, cookie %q: GET /api/me answered %d", authz, cookie, w.Code)
		}
	})
}
