package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// bot is a chatd bot account: the harness's fast path to thousands of
// users. Bots are made in bulk by `chatd bots`, which prints one
// "name<TAB>token" line per bot.
type bot struct {
	name, token string
}

// chatdSystem drives chatd through its public HTTP API, with one bot
// account per simulated client.
type chatdSystem struct {
	addr string
	srv  *server // nil when chatbench attached to a running server
	pid  int
	bots []bot
	next int    // first bot not yet given to a client
	tag  string // makes room names unique to this invocation

	noRooms bool // the current scenario's clients are in no room

	ctlMu      sync.Mutex
	ctl        *httpConn
	noMetrics  bool // /metrics lacks the pending-polls gauge
	metricsErr error
}

// startChatd builds chatd if no binary is given, starts it on a free
// loopback port with a fresh database and no per-user posting limit (-post-rate -1), and
// creates nBots bot accounts.
func startChatd(ctx context.Context, cfg *config, nBots int) (*chatdSystem, error) {
	dir, err := os.MkdirTemp("", "chatbench-chatd-")
	if err != nil {
		return nil, fmt.Errorf("chatd: temp dir: %w", err)
	}
	bin := cfg.chatdBin
	if bin == "" {
		root, err := moduleRoot()
		if err != nil {
			return nil, fmt.Errorf("chatd: %w", err)
		}
		bin = filepath.Join(dir, "chatd")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/chatd")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("chatd: go build ./cmd/chatd: %w\n%s", err, out)
		}
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, fmt.Errorf("chatd: %w", err)
	}
	db := filepath.Join(dir, "chatd.db")
	args := []string{"-addr", addr, "-db", db, "-post-rate", "-1"}
	args = append(args, strings.Fields(cfg.chatdArgs)...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), cfg.chatdEnv...)
	srv, err := startServer(cmd, dir, "chatd.log")
	if err != nil {
		return nil, fmt.Errorf("chatd: %w", err)
	}
	srv.keep = cfg.keep
	c := &chatdSystem{addr: addr, srv: srv, pid: cmd.Process.Pid, tag: randomTag(), ctl: newHTTPConn(addr, 0)}
	if err := waitHealthy(ctx, c.ctl, addr, "/healthz", srv, 60*time.Second); err != nil {
		c.stop()
		return nil, fmt.Errorf("chatd: %w", err)
	}
	if nBots > 0 {
		out, err := exec.CommandContext(ctx, bin, "bots", "-db", db, "-prefix", "bench", "-n", strconv.Itoa(nBots)).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%w: %s", err, ee.Stderr)
			}
			c.stop()
			return nil, fmt.Errorf("chatd: create %d bots: %w", nBots, err)
		}
		if c.bots, err = parseBots(bytes.NewReader(out)); err != nil {
			c.stop()
			return nil, fmt.Errorf("chatd: %w", err)
		}
	}
	return c, nil
}

// attachChatd uses a chatd that is already running at cfg.chatdAddr, with
// bot tokens read from cfg.tokens.
func attachChatd(ctx context.Context, cfg *config) (*chatdSystem, error) {
	if err := checkLoopback(cfg.chatdAddr); err != nil {
		return nil, fmt.Errorf("chatd: %w", err)
	}
	c := &chatdSystem{addr: cfg.chatdAddr, pid: cfg.chatdPID, tag: randomTag(), ctl: newHTTPConn(cfg.chatdAddr, 0)}
	if err := waitHealthy(ctx, c.ctl, c.addr, "/healthz", nil, 5*time.Second); err != nil {
		return nil, fmt.Errorf("chatd: %w", err)
	}
	if cfg.tokens != "" {
		f, err := os.Open(cfg.tokens)
		if err != nil {
			return nil, fmt.Errorf("chatd: bot tokens: %w", err)
		}
		defer f.Close()
		if c.bots, err = parseBots(f); err != nil {
			return nil, fmt.Errorf("chatd: %w", err)
		}
	}
	return c, nil
}

// parseBots reads "name<TAB>token" lines.
func parseBots(r io.Reader) ([]bot, error) {
	var bots []bot
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, token, ok := strings.Cut(line, "\t")
		if !ok || name == "" || token == "" {
			return nil, fmt.Errorf("bot tokens: malformed line %q (want name<TAB>token)", truncate([]byte(line), 40))
		}
		bots = append(bots, bot{name: name, token: token})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bot tokens: %w", err)
	}
	return bots, nil
}

// randomTag returns four random base-36 characters.
func randomTag() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 4)
	for i := range b {
		b[i] = digits[rand.IntN(len(digits))]
	}
	return string(b)
}

func (c *chatdSystem) name() string { return "chatd" }

func (c *chatdSystem) procs() []int {
	if c.pid == 0 {
		return nil
	}
	return []int{c.pid}
}

// stop stops chatd with SIGTERM, which answers pending polls and closes
// the database, if chatbench started it.
func (c *chatdSystem) stop() error {
	if c.srv == nil {
		return nil
	}
	if err := c.srv.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		return fmt.Errorf("chatd: %w", err)
	}
	return nil
}

// provision gives every client of the scenario a bot of its own and
// creates one public room per group, made by its first client.
func (c *chatdSystem) provision(ctx context.Context, scenario string, specs []groupSpec, opts provisionOpts) (*fleet, error) {
	f := newFleet(c.addr, specs, func(gi int) string {
		return fmt.Sprintf("%s-%s-%d", scenario, c.tag, gi)
	})
	need := len(f.listeners) + len(f.posters)
	if c.next+need > len(c.bots) {
		return nil, fmt.Errorf("chatd: %s needs %d more bots; %d of %d are left", scenario, need, len(c.bots)-c.next, len(c.bots))
	}
	take := func() bot {
		b := c.bots[c.next]
		c.next++
		return b
	}
	for _, g := range f.groups {
		for _, p := range g.posters {
			p.token = take().token
			p.path = "/api/rooms/" + g.name + "/messages"
		}
		for _, l := range g.listeners {
			l.token = take().token
		}
	}
	if opts.noRoom {
		c.noRooms = true
		return f, nil
	}
	c.noRooms = false
	pool := newConnPool(ctx, c.addr, 16)
	defer pool.close()
	return f, forEach(ctx, len(f.groups), 16, func(gi int) error {
		g := f.groups[gi]
		body, _ := json.Marshal(map[string]any{"name": g.name, "topic": "chatbench " + scenario, "private": false})
		st, rb, err := pool.do("POST", "/api/rooms", memberTokens(g)[0], "application/json", body)
		if err != nil {
			return fmt.Errorf("chatd: create room %s: %w", g.name, err)
		}
		if st != 201 && st != 409 {
			return fmt.Errorf("chatd: create room %s: HTTP %d %s", g.name, st, truncate(rb, 200))
		}
		return nil
	})
}

// memberTokens lists the tokens of a group's clients, the room's creator
// first.
func memberTokens(g *group) []string {
	var toks []string
	for _, p := range g.posters {
		toks = append(toks, p.token)
	}
	for _, l := range g.listeners {
		toks = append(toks, l.token)
	}
	return toks
}

// join makes every client but the creator a member of its group's room.
//
// Scenarios call it after the listeners' first poll: a client that comes
// online announces it to everyone who shares a room with it, so N clients
// already in one room coming online at once would first have to deliver
// N² login events. Coming online before joining keeps the measurement on
// messages; the reconnect storm and the join events are skipped by taking
// fresh cursors afterwards.
func (c *chatdSystem) join(ctx context.Context, f *fleet) error {
	if c.noRooms {
		return nil
	}
	type join struct{ room, token string }
	var joins []join
	for _, g := range f.groups {
		for _, t := range memberTokens(g)[1:] {
			joins = append(joins, join{g.name, t})
		}
	}
	pool := newConnPool(ctx, c.addr, 32)
	defer pool.close()
	return forEach(ctx, len(joins), 32, func(i int) error {
		j := joins[i]
		st, rb, err := pool.do("POST", "/api/rooms/"+j.room+"/join", j.token, "", nil)
		if err != nil {
			return fmt.Errorf("chatd: join %s: %w", j.room, err)
		}
		if st != 200 {
			return fmt.Errorf("chatd: join %s: HTTP %d %s", j.room, st, truncate(rb, 200))
		}
		return nil
	})
}

// prime asks for the newest cursor without waiting (wait=0, no cursor), so
// the listener starts exactly there.
func (c *chatdSystem) prime(ctx context.Context, l *listener) error {
	l.req = appendRequest(l.req[:0], "GET", "/api/events?wait=0", c.addr, authHeader(l.token), "", nil)
	r, err := l.conn.roundTrip(l.req, 30*time.Second)
	if err != nil {
		return fmt.Errorf("chatd: first poll: %w", err)
	}
	if r.status != 200 {
		return fmt.Errorf("chatd: first poll: HTTP %d %s", r.status, truncate(r.body, 200))
	}
	cur, ok := scanCursor(r.body)
	if !ok {
		return fmt.Errorf("chatd: first poll: no cursor in %s", truncate(r.body, 200))
	}
	l.cursor = cur
	return nil
}

// authHeader returns the bearer token header line.
func authHeader(token string) []byte {
	return []byte("Authorization: Bearer " + token + "\r\n")
}

func (c *chatdSystem) appendPoll(b []byte, l *listener, timeout time.Duration) []byte {
	b = append(b, "GET /api/events?"...)
	if l.cursor >= 0 {
		b = append(b, "cursor="...)
		b = strconv.AppendInt(b, l.cursor, 10)
		b = append(b, '&')
	}
	b = append(b, "timeout="...)
	b = strconv.AppendInt(b, int64(timeout/time.Second), 10)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.addr...)
	b = append(b, "\r\nAuthorization: Bearer "...)
	b = append(b, l.token...)
	return append(b, "\r\n\r\n"...)
}

// onPoll scans the reply for what chatbench needs (the cursor, the number
// of events and the text of each message) without decoding the JSON.
func (c *chatdSystem) onPoll(l *listener, r *reply, now int64, ph *phase) time.Duration {
	switch r.status {
	case 200:
	case 409: // superseded: the contract asks for a 2 s pause
		ph.stats.pollError(fmt.Errorf("HTTP 409 %s", truncate(r.body, 120)))
		return 2 * time.Second
	case 429:
		ph.stats.pollError(fmt.Errorf("HTTP 429 %s", truncate(r.body, 120)))
		return max(r.retryAfter, time.Second)
	default:
		ph.stats.pollError(fmt.Errorf("HTTP %d %s", r.status, truncate(r.body, 120)))
		return 500 * time.Millisecond
	}
	cur, ok := scanCursor(r.body)
	if !ok {
		ph.stats.pollError(fmt.Errorf("no cursor in reply %s", truncate(r.body, 120)))
		return 500 * time.Millisecond
	}
	l.cursor = cur
	events := countEvents(r.body)
	if events == 0 {
		ph.stats.empty.Add(1)
		return 0
	}
	msgs := 0
	for off := 0; ; {
		text, next, ok := nextText(r.body, off)
		if !ok {
			break
		}
		off = next
		msgs++
		l.deliver(text, now, ph)
	}
	if events > msgs {
		ph.stats.other.Add(int64(events - msgs))
	}
	return 0
}

func (c *chatdSystem) appendPost(b []byte, p *poster, body []byte) []byte {
	b = append(b, "POST "...)
	b = append(b, p.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.addr...)
	b = append(b, "\r\nAuthorization: Bearer "...)
	b = append(b, p.token...)
	b = append(b, "\r\nContent-Type: text/plain\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

func (c *chatdSystem) postAccepted(status int) bool { return status == 201 }

// held reads chatd_long_polls_pending from /metrics. If the server does not
// export it, held returns -1 and the caller relies on its own count.
func (c *chatdSystem) held(ctx context.Context) (int, error) {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	if c.noMetrics {
		return -1, nil
	}
	req := appendRequest(nil, "GET", "/metrics", c.addr, nil, "", nil)
	r, err := c.ctl.roundTrip(req, 10*time.Second)
	if err != nil {
		return 0, fmt.Errorf("chatd: metrics: %w", err)
	}
	if r.status == 200 {
		if v, ok := metricValue(r.body, "chatd_long_polls_pending"); ok {
			return int(v), nil
		}
	}
	c.noMetrics = true
	c.metricsErr = fmt.Errorf("chatd: /metrics (HTTP %d) has no chatd_long_polls_pending", r.status)
	return -1, nil
}

// metricValue finds an unlabelled sample of name in Prometheus text.
func metricValue(text []byte, name string) (float64, bool) {
	for line := range bytes.Lines(text) {
		line = bytes.TrimRight(line, "\n")
		if !bytes.HasPrefix(line, []byte(name)) || len(line) <= len(name) || line[len(name)] != ' ' {
			continue
		}
		f := bytes.Fields(line[len(name):])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(string(f[0]), 64)
		return v, err == nil
	}
	return 0, false
}

var (
	keyCursor = []byte(`"cursor":`)
	keyType   = []byte(`"type":"`)
	keyText   = []byte(`"text":"`)
)

// scanCursor returns the value of the "cursor" key. In JSON text a quote
// inside a string is always escaped, so `"cursor":` can only be a key.
func scanCursor(body []byte) (int64, bool) {
	i := bytes.Index(body, keyCursor)
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(body[i+len(keyCursor):], " \t\r\n")
	n, _, ok := leadingInt(rest)
	return n, ok
}

// countEvents counts the events in a reply: each has exactly one "type"
// key, and no other object in a reply has one.
func countEvents(body []byte) int {
	return bytes.Count(body, keyType)
}

// nextText returns the value of the first "text" key at or after off and
// the offset after it. chatbench's own messages contain no escapes, so the
// value ends at the next quote; other texts are cut short there, which is
// harmless since only chatbench messages are parsed.
func nextText(body []byte, off int) ([]byte, int, bool) {
	i := bytes.Index(body[off:], keyText)
	if i < 0 {
		return nil, len(body), false
	}
	start := off + i + len(keyText)
	j := bytes.IndexByte(body[start:], '"')
	if j < 0 {
		return nil, len(body), false
	}
	return body[start : start+j], start + j + 1, true
}

// connPool hands connections to setup workers, one at a time each.
type connPool struct {
	addr  string
	all   []*httpConn
	conns chan *httpConn
	stop  func() bool
}

// newConnPool returns a pool of n connections to addr. Cancelling ctx
// closes them, which ends any request in flight.
func newConnPool(ctx context.Context, addr string, n int) *connPool {
	p := &connPool{addr: addr, conns: make(chan *httpConn, n)}
	for range n {
		c := newHTTPConn(addr, nextConnIndex())
		p.all = append(p.all, c)
		p.conns <- c
	}
	p.stop = context.AfterFunc(ctx, func() {
		for _, c := range p.all {
			c.close()
		}
	})
	return p
}

// do makes one request with a bearer token and returns the status and a
// copy of the body.
func (p *connPool) do(method, path, token, ctype string, body []byte) (int, []byte, error) {
	c := <-p.conns
	defer func() { p.conns <- c }()
	var hdr []byte
	if token != "" {
		hdr = authHeader(token)
	}
	req := appendRequest(nil, method, path, p.addr, hdr, ctype, body)
	r, err := c.roundTrip(req, 60*time.Second)
	if err != nil {
		return 0, nil, err
	}
	return r.status, bytes.Clone(r.body), nil
}

// close closes every pooled connection. Its users must have returned.
func (p *connPool) close() {
	p.stop()
	for _, c := range p.all {
		c.close()
	}
}
