package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// system is a server under test, as chatbench drives it: how to provision
// rooms or channels with their clients, and how to speak its long-poll and
// publish requests.
type system interface {
	// name is "chatd" or "nchan".
	name() string
	// procs returns the pids whose CPU time and memory are the server's.
	procs() []int
	// provision creates the groups of a scenario and returns their clients,
	// each with its own account (chatd) and unconnected connection. Rooms
	// exist afterwards, but only their creators are members until join.
	provision(ctx context.Context, scenario string, specs []groupSpec, opts provisionOpts) (*fleet, error)
	// join makes every client a member of its group's room.
	join(ctx context.Context, f *fleet) error
	// prime makes a listener's first request: it connects, and in chatd
	// takes the listener's starting cursor.
	prime(ctx context.Context, l *listener) error
	// appendPoll appends the listener's next long-poll request to b.
	appendPoll(b []byte, l *listener, timeout time.Duration) []byte
	// onPoll handles a poll reply received at now: it delivers the payloads
	// found in it and advances the listener. It returns how long to wait
	// before polling again (0 normally, longer after an error).
	onPoll(l *listener, r *reply, now int64, ph *phase) time.Duration
	// appendPost appends a request that publishes body to p's group.
	appendPost(b []byte, p *poster, body []byte) []byte
	// postAccepted reports whether a publish reply status is success.
	postAccepted(status int) bool
	// held returns the number of long-polls the server reports it holds.
	held(ctx context.Context) (int, error)
	// storeTimes reads the server's histograms of commit and write
	// times, if it keeps them.
	storeTimes(ctx context.Context) (storeHists, bool)
	// dataDir is the directory of the server's database ("" for none).
	dataDir() string
	// stop stops the server if chatbench started it.
	stop() error
}

// groupSpec asks for one group: a room or channel with its listeners and
// posters.
type groupSpec struct {
	listeners int
	posters   int
}

// provisionOpts tunes provisioning for a scenario.
type provisionOpts struct {
	// noRoom provisions listeners that are in no room (chatd) or each on a
	// channel of its own (nchan): the idle scenario.
	noRoom bool
	// behind makes nchan listeners start at the oldest buffered message
	// instead of the next one: the reconnect storm.
	behind bool
}

// connIndex hands out connection numbers, so that consecutive connections
// use different loopback source addresses across the whole run.
var connIndex struct {
	sync.Mutex
	n int
}

// nextConnIndex returns a fresh connection number.
func nextConnIndex() int {
	connIndex.Lock()
	defer connIndex.Unlock()
	connIndex.n++
	return connIndex.n
}

// newFleet builds the clients for specs. name names group gi; newL and newP
// fill in the system-specific parts of each listener and poster.
func newFleet(addr string, specs []groupSpec, name func(gi int) string) *fleet {
	f := &fleet{}
	for gi, sp := range specs {
		g := &group{name: name(gi)}
		for range sp.posters {
			p := &poster{idx: len(f.posters), group: g, conn: newHTTPConn(addr, nextConnIndex())}
			g.posters = append(g.posters, p)
			f.posters = append(f.posters, p)
		}
		for range sp.listeners {
			l := &listener{id: len(f.listeners), group: g, cursor: -1, conn: newHTTPConn(addr, nextConnIndex())}
			g.listeners = append(g.listeners, l)
			f.listeners = append(f.listeners, l)
		}
		f.groups = append(f.groups, g)
	}
	return f
}

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// checkLoopback refuses any address that is not on the loopback network:
// chatbench sends load to this machine only.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("address %q is not loopback: chatbench only loads this machine", addr)
		}
	}
	return nil
}

// server is a process chatbench started and must stop.
type server struct {
	cmd  *exec.Cmd
	dir  string
	log  *os.File
	keep bool
	done chan struct{}
	err  error
}

// startServer starts cmd with its output going to a log file in dir.
func startServer(cmd *exec.Cmd, dir, logName string) (*server, error) {
	logf, err := os.Create(filepath.Join(dir, logName))
	if err != nil {
		return nil, fmt.Errorf("create server log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group keeps a terminal's ^C for the harness, which then
	// stops the server in order; Pdeathsig stops it if the harness dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	s := &server{cmd: cmd, dir: dir, log: logf, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// exited reports whether the process has ended.
func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop asks the process to stop with sig, waits up to grace, then kills it,
// always by its own pid.
func (s *server) stop(sig syscall.Signal, grace time.Duration) error {
	defer s.log.Close()
	if !s.exited() {
		_ = s.cmd.Process.Signal(sig)
		select {
		case <-s.done:
		case <-time.After(grace):
			_ = s.cmd.Process.Kill()
			<-s.done
			return fmt.Errorf("%s did not stop within %v of %v; killed", filepath.Base(s.cmd.Path), grace, sig)
		}
	}
	if !s.keep {
		os.RemoveAll(s.dir)
	}
	return nil
}

// logTail returns the end of the server's log, for error messages.
func (s *server) logTail() string {
	b, err := os.ReadFile(s.log.Name())
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// waitHealthy polls url on c until it answers 200, the process exits, or
// timeout passes.
func waitHealthy(ctx context.Context, c *httpConn, host, path string, s *server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	req := appendRequest(nil, "GET", path, host, nil, "", nil)
	for {
		if s != nil && s.exited() {
			return fmt.Errorf("server exited during start-up: %v\n%s", s.err, s.logTail())
		}
		r, err := c.roundTrip(req, 2*time.Second)
		if err == nil && r.status == 200 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("HTTP %d", r.status)
			}
			tail := ""
			if s != nil {
				tail = "\n" + s.logTail()
			}
			return fmt.Errorf("server not healthy after %v: %w%s", timeout, err, tail)
		}
		pause(ctx, 100*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// moduleRoot finds the directory of chatd's go.mod from the working
// directory upwards, to locate ./cmd/chatd and bench/ by default.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), "module chatd") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find module root: no chatd go.mod above the working directory")
		}
		dir = parent
	}
}
