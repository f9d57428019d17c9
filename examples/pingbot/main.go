// Command pingbot is an example chatd bot that uses nothing but the HTTP
// API: it long-polls /api/events with its bearer token and answers "!ping"
// with "pong" and "!time" with the time, in the room (or direct
// conversation) the command came from.
//
// Make a bot on the admin page (or with "chatd bot create pingbot"), then:
//
//	CHATD_URL=http://127.0.0.1:8080 CHATD_TOKEN=chatd_... go run ./examples/pingbot
//
// The token is read from the environment so that it does not show in the
// process list. The bot follows the rules every client of /api/events
// follows: it keeps its cursor, waits 2 s when a newer poll of its token
// supersedes it (409), reloads /api/state when its cursor is too old (410),
// waits as told when rate limited (429), backs off after errors, and stops
// when its token is revoked (401).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	server := flag.String("server", os.Getenv("CHATD_URL"), "the chatd server's URL (or $CHATD_URL)")
	flag.Parse()
	token := os.Getenv("CHATD_TOKEN")
	if *server == "" || token == "" {
		fmt.Fprintln(os.Stderr, "usage: CHATD_TOKEN=<bot token> pingbot -server http://127.0.0.1:8080 (or set CHATD_URL)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bot{
		base:  strings.TrimRight(*server, "/"),
		token: token,
		http:  &http.Client{Timeout: 90 * time.Second},
		log:   log.New(os.Stderr, "pingbot: ", log.LstdFlags),
	}
	if err := b.run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		b.log.Fatal(err)
	}
}

// bot is one connection to chatd, as one client (its token).
type bot struct {
	base  string
	token string
	http  *http.Client
	log   *log.Logger
	me    string
}

// apiError is an error answer of the API.
type apiError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// errRevoked means the token no longer works: retrying cannot help.
var errRevoked = errors.New("the token was revoked or is wrong (401)")

// call sends a request with the bot's token and decodes a JSON answer into
// out (when out is not nil).
func (b *bot) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode}
		var wrapped struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &wrapped) == nil {
			e.Code, e.Message = wrapped.Error.Code, wrapped.Error.Message
		}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
		if resp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("%w: %s", errRevoked, e.Message)
		}
		return e
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// event is the part of an event the bot reads.
type event struct {
	ID      int64  `json:"id"`
	Type    string `json:"type"`
	Room    string `json:"room"`
	Message *struct {
		Room string `json:"room"`
		User string `json:"user"`
		Text string `json:"text"`
	} `json:"message"`
}

// run connects and answers commands until ctx ends or the token stops
// working.
func (b *bot) run(ctx context.Context) error {
	var me struct {
		User struct {
			Name string `json:"name"`
		} `json:"user"`
	}
	if err := b.retry(ctx, func() error { return b.call(ctx, "GET", "/api/me", nil, &me) }); err != nil {
		return err
	}
	b.me = me.User.Name
	cursor, err := b.cursor(ctx)
	if err != nil {
		return err
	}
	b.log.Printf("signed in as %s; listening from event %d", b.me, cursor)
	defer func() {
		// Tell the server this client is gone, so the bot shows offline at
		// once rather than after the presence timeout.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		b.call(dctx, "POST", "/api/disconnect", nil, nil)
	}()

	failures := 0
	for {
		var answer struct {
			Cursor int64   `json:"cursor"`
			Events []event `json:"events"`
		}
		err := b.call(ctx, "GET", "/api/events?"+url.Values{"cursor": {strconv.FormatInt(cursor, 10)}, "timeout": {"25"}}.Encode(), nil, &answer)
		if err == nil {
			failures = 0
			for _, ev := range answer.Events {
				b.handle(ctx, ev)
			}
			cursor = answer.Cursor
			continue
		}
		if ctx.Err() != nil || errors.Is(err, errRevoked) {
			return err
		}
		var e *apiError
		switch {
		case errors.As(err, &e) && e.Status == http.StatusConflict:
			// Superseded: another poll with this token took over. Wait at
			// least 2 s, as the contract asks, so two copies of the bot do
			// not fight.
			b.log.Printf("another poll with this token took over; waiting")
			err = sleep(ctx, 2*time.Second+jitter(time.Second))
		case errors.As(err, &e) && (e.Status == http.StatusGone || e.Status == http.StatusBadRequest):
			// The cursor is outside the replay window (410), or the server's
			// database is not the one it came from (400): start afresh from
			// the current state, skipping what was missed.
			b.log.Printf("resynchronising: %v", e)
			cursor, err = b.cursor(ctx)
		case errors.As(err, &e) && e.RetryAfter > 0:
			err = sleep(ctx, e.RetryAfter)
		default:
			failures++
			wait := backoff(failures)
			b.log.Printf("poll failed (%v); retrying in %v", err, wait.Round(time.Millisecond))
			err = sleep(ctx, wait)
		}
		if err != nil {
			return err
		}
	}
}

// cursor reads the current cursor from /api/state.
func (b *bot) cursor(ctx context.Context) (int64, error) {
	var state struct {
		Cursor int64 `json:"cursor"`
	}
	err := b.retry(ctx, func() error { return b.call(ctx, "GET", "/api/state", nil, &state) })
	return state.Cursor, err
}

// retry runs fn until it succeeds, backing off between failures; a revoked
// token or the end of ctx stops it.
func (b *bot) retry(ctx context.Context, fn func() error) error {
	for n := 1; ; n++ {
		err := fn()
		if err == nil || errors.Is(err, errRevoked) || ctx.Err() != nil {
			return err
		}
		wait := backoff(n)
		b.log.Printf("%v; retrying in %v", err, wait.Round(time.Millisecond))
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// handle answers a command in a message from someone else.
func (b *bot) handle(ctx context.Context, ev event) {
	if ev.Type != "message" || ev.Message == nil || strings.EqualFold(ev.Message.User, b.me) {
		return
	}
	words := strings.Fields(ev.Message.Text)
	if len(words) == 0 {
		return
	}
	var reply string
	switch strings.ToLower(words[0]) {
	case "!ping":
		reply = "pong"
	case "!time":
		reply = "It is " + time.Now().UTC().Format("Monday 2 January 2006, 15:04:05 UTC") + "."
	default:
		return
	}
	room := ev.Message.Room
	err := b.call(ctx, "POST", "/api/rooms/"+url.PathEscape(room)+"/messages", map[string]string{"text": reply}, nil)
	var e *apiError
	if errors.As(err, &e) && e.RetryAfter > 0 {
		// Posting too fast: wait as told and try once more.
		if sleep(ctx, e.RetryAfter) == nil {
			err = b.call(ctx, "POST", "/api/rooms/"+url.PathEscape(room)+"/messages", map[string]string{"text": reply}, nil)
		}
	}
	if err != nil {
		b.log.Printf("answering %s in %s: %v", words[0], room, err)
	}
}

// backoff is the wait after n failures in a row: exponential from half a
// second to 30 s, with jitter so that many bots do not retry in step.
func backoff(n int) time.Duration {
	d := 500 * time.Millisecond << min(n-1, 6)
	d = min(d, 30*time.Second)
	return d/2 + jitter(d/2)
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
