package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFailedLoginsLimitedPerAddressAndAccount: one address guessing at many
// accounts is stopped after 20 failures (429 with Retry-After) while people
// elsewhere sign in as usual; and many addresses guessing at one account
// stop it after 5, whatever the address, locking out that account only.
func TestFailedLoginsLimitedPerAddressAndAccount(t *testing.T) {
	srv := startServer(t)
	register(t, srv, "alice", "password1")
	register(t, srv, "bob", "password1")

	guesser := clientFrom(t, srv, loopbackIP(10))
	var limited *response
	tries := 0
	for i := range 40 {
		r := guesser.do("POST", "/api/login", map[string]string{"username": fmt.Sprintf("user%d", i), "password": "wrong-password"})
		tries++
		if r.Status == 429 {
			limited = r
			break
		}
		if r.Status != 401 {
			t.Fatalf("guess %d: %d %s", i, r.Status, r.Body)
		}
	}
	if limited == nil || tries != 21 || limited.Header.Get("Retry-After") == "" {
		t.Fatalf("one address guessing at many accounts: limited after %d tries (%v), want 429 with Retry-After after 20", tries-1, limited != nil)
	}
	// The limited address cannot even try a right password; others can.
	if r := guesser.do("POST", "/api/login", map[string]string{"username": "bob", "password": "password1"}); r.Status != 429 {
		t.Errorf("the limited address with bob's right password: %d, want 429", r.Status)
	}
	clientFrom(t, srv, loopbackIP(11)).must(200, "POST", "/api/login", map[string]string{"username": "bob", "password": "password1"})

	// Many addresses at one account: 5 failures in all, then 429 from
	// anywhere, for that account only.
	status := 0
	for i := range 10 {
		status = clientFrom(t, srv, loopbackIP(20+i)).do("POST", "/api/login", map[string]string{"username": "alice", "password": fmt.Sprintf("guess-%d", i)}).Status
		if status == 429 {
			if i != 5 {
				t.Errorf("alice's account was limited after %d failures, want 5", i)
			}
			break
		}
	}
	if status != 429 {
		t.Fatal("10 addresses guessing alice's password were never limited")
	}
	if r := clientFrom(t, srv, loopbackIP(40)).do("POST", "/api/login", map[string]string{"username": "alice", "password": "password1"}); r.Status != 429 {
		t.Errorf("alice's right password from a new address while her account is limited: %d, want 429", r.Status)
	}
	clientFrom(t, srv, loopbackIP(41)).must(200, "POST", "/api/login", map[string]string{"username": "bob", "password": "password1"})
}

// TestLoginFloodDoesNotStopDelivery floods the server with wrong-password
// logins from 250 addresses against real and made-up accounts, while one
// user posts and another long-polls. Every message is still delivered; the
// flood gets only 401 and 429; memory stays bounded (password hashing
// runs at most -hashes at a time). Delivery latency before and during the
// flood is reported (the flood competes for the CPU: argon2id takes a core
// for about 25 ms per attempt until the address and account limits refuse
// attempts without hashing).
//
// CI floods for 5 s; CHATD_LONG=1 for 60 s.
func TestLoginFloodDoesNotStopDelivery(t *testing.T) {
	flood := time.Duration(scale(5, 60)) * time.Second
	raiseNoFile(t)
	srv := startServer(t, "CHATD_POST_RATE=-1", "CHATD_LOG_LEVEL=info")
	alice := register(t, srv, "alice", "password1")
	bob := register(t, srv, "bob", "password1")
	for i := range 20 {
		register(t, srv, fmt.Sprintf("target%d", i), "password1")
	}
	cursor := bob.online()
	before, _ := userLatency(t, alice, bob, &cursor, 30, "before the flood")
	rssBefore := rssMiB(srv)

	ctx, stop := context.WithTimeout(context.Background(), flood)
	defer stop()
	var sent atomic.Int64
	answers := &statusCount{}
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each worker moves through four addresses and the accounts.
			var clients [4]*client
			for k := range clients {
				clients[k] = clientFrom(t, srv, loopbackIP(w+64*k))
			}
			for i := 0; ctx.Err() == nil; i++ {
				c := clients[i%4]
				name := fmt.Sprintf("target%d", rand.IntN(20))
				if i%3 == 0 {
					name = fmt.Sprintf("nobody%d", rand.IntN(1000))
				}
				req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/api/login",
					strings.NewReader(fmt.Sprintf(`{"username":%q,"password":"guess-%d"}`, name, i)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := c.http.Do(req)
				if err != nil {
					continue // the flood's deadline cut the request off
				}
				resp.Body.Close()
				sent.Add(1)
				answers.add(resp.StatusCode)
			}
		}()
	}
	var peak float64
	var during []time.Duration
	for ctx.Err() == nil {
		d, _ := userLatency(t, alice, bob, &cursor, 5, fmt.Sprintf("during the flood %d", len(during)))
		during = append(during, d...)
		peak = max(peak, rssMiB(srv))
	}
	wg.Wait()
	after, _ := userLatency(t, alice, bob, &cursor, 10, "after the flood")

	answers.mu.Lock()
	for code, n := range answers.m {
		if code != 401 && code != 429 {
			t.Errorf("%d flood logins answered %d", n, code)
		}
	}
	limited := answers.m[429]
	answers.mu.Unlock()
	if peak > 1024 {
		t.Errorf("the server's memory peaked at %.0f MiB during the flood", peak)
	}
	b50, b99, _ := percentiles(before)
	d50, d99, dmax := percentiles(during)
	a50, _, _ := percentiles(after)
	t.Logf("login flood: %v, 64 workers from 250 addresses, %d wrong-password logins (%.0f/s): %s (%d refused without hashing or queued out); "+
		"%d messages delivered during it, none lost: delivery p50 %v p99 %v max %v (before: p50 %v p99 %v; after: p50 %v); RSS %.0f MiB before, %.0f MiB peak",
		flood, sent.Load(), float64(sent.Load())/flood.Seconds(), answers, limited, len(during),
		d50.Round(time.Microsecond), d99.Round(time.Microsecond), dmax.Round(time.Microsecond),
		b50.Round(time.Microsecond), b99.Round(time.Microsecond), a50.Round(time.Microsecond), rssBefore, peak)
}
