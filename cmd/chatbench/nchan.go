package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// nchanSystem drives nginx with the nchan module, the reference that chatd
// is measured against: long-poll subscribers on channels, publishers that
// POST to a channel. Its configuration is bench/nchan.conf.
type nchanSystem struct {
	addr string
	srv  *server
	pids []int
	tag  string

	ctlMu sync.Mutex
	ctl   *httpConn
}

// startNchan writes the configuration into a temporary prefix directory
// and starts nginx there on a free loopback port.
func startNchan(ctx context.Context, cfg *config) (*nchanSystem, error) {
	confPath := cfg.nchanConf
	if confPath == "" {
		root, err := moduleRoot()
		if err != nil {
			return nil, fmt.Errorf("nchan: %w", err)
		}
		confPath = filepath.Join(root, "bench", "nchan.conf")
	}
	tmpl, err := os.ReadFile(confPath)
	if err != nil {
		return nil, fmt.Errorf("nchan: configuration: %w", err)
	}
	if _, err := os.Stat(cfg.nchanModule); err != nil {
		return nil, fmt.Errorf("nchan: module (install nginx and libnginx-mod-nchan): %w", err)
	}
	dir, err := os.MkdirTemp("", "chatbench-nchan-")
	if err != nil {
		return nil, fmt.Errorf("nchan: temp dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("nchan: temp dir: %w", err)
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, fmt.Errorf("nchan: %w", err)
	}
	conf := strings.NewReplacer(
		"@MODULE@", cfg.nchanModule,
		"@WORKERS@", strconv.Itoa(cfg.nchanWorkers),
		"@LISTEN@", addr,
	).Replace(string(tmpl))
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("nchan: write configuration: %w", err)
	}
	cmd := exec.Command(cfg.nginxBin, "-p", dir+"/", "-c", confFile, "-e", filepath.Join(dir, "error.log"))
	srv, err := startServer(cmd, dir, "nginx.out")
	if err != nil {
		return nil, fmt.Errorf("nchan: %w", err)
	}
	srv.keep = cfg.keep
	n := &nchanSystem{addr: addr, srv: srv, tag: randomTag(), ctl: newHTTPConn(addr, 0)}
	if err := waitHealthy(ctx, n.ctl, addr, "/healthz", srv, 30*time.Second); err != nil {
		n.stop()
		errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, fmt.Errorf("nchan: %w\n%s", err, truncate(errLog, 2000))
	}
	master := cmd.Process.Pid
	workers := childPIDs(master)
	for i := 0; len(workers) < cfg.nchanWorkers && i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		workers = childPIDs(master)
	}
	n.pids = append([]int{master}, workers...)
	return n, nil
}

func (n *nchanSystem) name() string { return "nchan" }

// procs returns the master and its workers. The list is taken once at
// start; nginx does not replace workers unless one crashes.
func (n *nchanSystem) procs() []int { return n.pids }

// stop stops nginx with SIGQUIT (graceful shutdown) by the master's pid.
func (n *nchanSystem) stop() error {
	if n.srv == nil {
		return nil
	}
	if err := n.srv.stop(syscall.SIGQUIT, 15*time.Second); err != nil {
		return fmt.Errorf("nchan: %w", err)
	}
	return nil
}

// provision names one fresh channel per group. Channels need no setup:
// nchan creates them on first use.
func (n *nchanSystem) provision(ctx context.Context, scenario string, specs []groupSpec, opts provisionOpts) (*fleet, error) {
	f := newFleet(n.addr, specs, func(gi int) string {
		return fmt.Sprintf("%s-%s-%d", scenario, n.tag, gi)
	})
	sub := "/sub/"
	if opts.behind {
		sub = "/old/"
	}
	for _, g := range f.groups {
		for _, p := range g.posters {
			p.path = "/pub/" + g.name
		}
		for _, l := range g.listeners {
			l.path = sub + g.name
		}
	}
	return f, nil
}

// join does nothing: nchan channels have no members.
func (n *nchanSystem) join(ctx context.Context, f *fleet) error { return nil }

// prime connects the listener; nchan needs no first request.
func (n *nchanSystem) prime(ctx context.Context, l *listener) error {
	if err := l.conn.dial(); err != nil {
		return fmt.Errorf("nchan: %w", err)
	}
	return nil
}

// appendPoll asks for the message after the last one received, named by
// the Last-Modified and Etag of the previous reply as nchan's long-poll
// protocol wants.
func (n *nchanSystem) appendPoll(b []byte, l *listener, timeout time.Duration) []byte {
	b = append(b, "GET "...)
	b = append(b, l.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, n.addr...)
	b = append(b, "\r\n"...)
	if len(l.lastMod) > 0 {
		b = append(b, "If-Modified-Since: "...)
		b = append(b, l.lastMod...)
		b = append(b, "\r\n"...)
	}
	if len(l.etag) > 0 {
		b = append(b, "If-None-Match: "...)
		b = append(b, l.etag...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// onPoll takes the one message of a 200 reply; 408 and 304 are nchan's
// heartbeats.
func (n *nchanSystem) onPoll(l *listener, r *reply, now int64, ph *phase) time.Duration {
	switch r.status {
	case 200:
		l.lastMod = append(l.lastMod[:0], r.lastModified...)
		l.etag = append(l.etag[:0], r.etag...)
		l.deliver(r.body, now, ph)
		return 0
	case 304, 408:
		ph.stats.empty.Add(1)
		return 0
	default:
		ph.stats.pollError(fmt.Errorf("HTTP %d %s", r.status, truncate(r.body, 120)))
		return 500 * time.Millisecond
	}
}

func (n *nchanSystem) appendPost(b []byte, p *poster, body []byte) []byte {
	b = append(b, "POST "...)
	b = append(b, p.path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, n.addr...)
	b = append(b, "\r\nContent-Type: text/plain\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// postAccepted: nchan answers 201 when the channel has subscribers and 202
// when the message was only stored.
func (n *nchanSystem) postAccepted(status int) bool { return status == 201 || status == 202 }

// held reads the subscriber count from nchan_stub_status.
func (n *nchanSystem) held(ctx context.Context) (int, error) {
	n.ctlMu.Lock()
	defer n.ctlMu.Unlock()
	req := appendRequest(nil, "GET", "/nchan_status", n.addr, nil, "", nil)
	r, err := n.ctl.roundTrip(req, 10*time.Second)
	if err != nil {
		return 0, fmt.Errorf("nchan: status: %w", err)
	}
	if r.status != 200 {
		return 0, fmt.Errorf("nchan: status: HTTP %d", r.status)
	}
	for _, line := range bytes.Split(r.body, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("subscribers:")); ok {
			s, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return 0, fmt.Errorf("nchan: status: %q", line)
			}
			return s, nil
		}
	}
	return 0, fmt.Errorf("nchan: status: no subscriber count in %q", truncate(r.body, 200))
}
