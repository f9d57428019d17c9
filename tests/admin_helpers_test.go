package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Helpers of the admin tests. Their names start with adm so that they never
// clash with the helpers of other test files in this package.

// admNoRedirect returns a client sharing c's cookies and token that does not
// follow redirects, so a test sees the 303 itself.
func admNoRedirect(c *client) *client {
	cp := *c
	hc := *c.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cp.http = &hc
	return &cp
}

// admPostForm posts an HTML form as a browser would, without following the
// redirect that answers it.
func admPostForm(c *client, path string, form url.Values) *response {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	resp, err := admNoRedirect(c).http.Do(req)
	if err != nil {
		c.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

var admCSRFRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// admCSRF loads the admin page as c and returns the form token its forms
// carry.
func admCSRF(t *testing.T, c *client) string {
	t.Helper()
	page := c.must(200, "GET", "/admin", nil)
	m := admCSRFRE.FindSubmatch(page.Body)
	if m == nil {
		t.Fatalf("the admin page has no form token:\n%s", page.Body)
	}
	return string(m[1])
}

// admCreateBot makes a bot through the admin API and returns its client.
func admCreateBot(t *testing.T, admin *client, name string) *client {
	t.Helper()
	var created struct {
		User  struct{ Name, Role string }
		Token string
	}
	admin.must(201, "POST", "/api/admin/bots", map[string]string{"name": name}).JSON(t, &created)
	if created.User.Role != "bot" || !strings.HasPrefix(created.Token, "chatd_") {
		t.Fatalf("POST /api/admin/bots answered %+v", created)
	}
	bot := newClient(t, admin.srv)
	bot.Name, bot.Token = name, created.Token
	return bot
}

// admPollResult is the end of a poll made in the background.
type admPollResult struct {
	Status int
	Events []event
	Err    error
	At     time.Time
}

// admPollAsync starts a long poll as c from cursor and delivers its end on
// the returned channel. It makes no test calls, so it may run on its own
// goroutine.
func admPollAsync(c *client, cursor int64, timeout time.Duration) <-chan admPollResult {
	out := make(chan admPollResult, 1)
	go func() {
		req, err := http.NewRequest("GET", fmt.Sprintf("%s/api/events?cursor=%d&timeout=%g", c.srv.URL, cursor, timeout.Seconds()), nil)
		if err != nil {
			out <- admPollResult{Err: err}
			return
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			out <- admPollResult{Err: err, At: time.Now()}
			return
		}
		defer resp.Body.Close()
		res := admPollResult{Status: resp.StatusCode, At: time.Now()}
		var a pollAnswer
		if b, err := io.ReadAll(resp.Body); err == nil && resp.StatusCode == 200 {
			res.Err = json.Unmarshal(b, &a)
			res.Events = a.Events
		}
		out <- res
	}()
	return out
}
