package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// The listeners' event loops.
//
// A goroutine per listener, blocked in a read, cost the harness nearly as
// much CPU per delivery as the server spent: every reply meant a read that
// found nothing, a park, a wake-up from the runtime's poller and the read
// again, and at thousands of replies a second the harness was measuring
// itself. So the listeners' long polls run on a few event loops, one per
// CPU, each with its own epoll instance (chatbench runs on Linux): a reply
// is one read of a socket epoll reported readable, the next poll one
// write, and nothing is scheduled in between. Each listener keeps its own
// connection, as before: one per simulated client.

// loopWait is how long an event loop waits for events before it checks
// its timers and whether the phase is stopping.
const loopWait = 20 * time.Millisecond

// startListeners starts every listener's poll loop on the phase's event
// loops, which run until the phase stops.
func (ph *phase) startListeners() error {
	n := min(runtime.GOMAXPROCS(0), len(ph.fleet.listeners))
	loops := make([]*eventLoop, 0, n)
	for range n {
		el, err := newEventLoop(ph)
		if err != nil {
			for _, el := range loops {
				el.closeAll()
			}
			return err
		}
		loops = append(loops, el)
	}
	for i, l := range ph.fleet.listeners {
		loops[i%n].add(l)
	}
	for _, el := range loops {
		ph.listenWG.Add(1)
		go func() {
			defer ph.listenWG.Done()
			el.run()
		}()
	}
	return nil
}

// eventLoop drives the long polls of its listeners over one epoll
// instance. Only its own goroutine touches its connections.
type eventLoop struct {
	ph     *phase
	epfd   int
	byFD   map[int32]*loopConn
	conns  []*loopConn
	events []syscall.EpollEvent
}

// loopConn states.
const (
	connIdle    = iota // nothing in flight: a pause, or about to poll
	connDialing        // the connect has not finished
	connPolling        // a poll was written; its reply has not come
)

// loopConn is one listener's connection on an event loop.
type loopConn struct {
	l      *listener
	fd     int // -1 when not connected
	state  int
	in     inbuf
	reply  reply
	out    []byte // the part of the request not written yet
	events uint32 // what epoll watches on fd
	served int    // replies on this connection
	retry  bool   // this poll was sent again on a new connection already

	limit time.Duration // how long the poll in flight may take
	due   int64         // mono: when the poll in flight times out, or the pause ends
	src   syscall.SockaddrInet4
	dst   syscall.SockaddrInet4
}

// newEventLoop returns an event loop of ph with no listeners yet.
func newEventLoop(ph *phase) (*eventLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	return &eventLoop{ph: ph, epfd: epfd, byFD: make(map[int32]*loopConn), events: make([]syscall.EpollEvent, 256)}, nil
}

// add takes listener l over, with its connection when one is open.
func (el *eventLoop) add(l *listener) {
	c := &loopConn{l: l, fd: -1}
	el.conns = append(el.conns, c)
	var err error
	if c.src.Addr, c.dst.Addr, c.dst.Port, err = l.conn.endpoints(); err != nil {
		el.ph.stats.pollError(err) // and every dial fails alike
	}
	fd, err := l.conn.detach()
	if err != nil {
		el.ph.stats.pollError(err)
	}
	if fd >= 0 {
		if err := el.watch(c, fd, syscall.EPOLLIN|syscall.EPOLLRDHUP); err != nil {
			syscall.Close(fd)
			el.ph.stats.pollError(err)
		}
	}
}

// watch registers the connection fd of c.
func (el *eventLoop) watch(c *loopConn, fd int, events uint32) error {
	ev := syscall.EpollEvent{Events: events, Fd: int32(fd)}
	if err := syscall.EpollCtl(el.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll add: %w", err)
	}
	c.fd, c.events = fd, events
	el.byFD[int32(fd)] = c
	return nil
}

// run polls until the phase stops or its context ends, then closes every
// connection.
func (el *eventLoop) run() {
	defer el.closeAll()
	ph := el.ph
	for _, c := range el.conns {
		if c.l.firstTimeout > 0 {
			el.poll(c, c.l.firstTimeout)
		} else {
			el.poll(c, ph.pollTimeout)
		}
	}
	nextCheck := mono()
	for !ph.stopping.Load() && ph.ctx.Err() == nil {
		n, err := syscall.EpollWait(el.epfd, el.events, int(loopWait/time.Millisecond))
		if err != nil && !errors.Is(err, syscall.EINTR) {
			ph.stats.noteError("epoll: " + err.Error())
			pause(ph.ctx, loopWait)
			continue
		}
		for _, ev := range el.events[:max(n, 0)] {
			if c := el.byFD[ev.Fd]; c != nil {
				el.ready(c, ev.Events)
			}
		}
		if now := mono(); now >= nextCheck {
			el.checkTimes(now)
			nextCheck = now + int64(loopWait)
		}
	}
}

// checkTimes ends the pauses that are over and fails the polls that took
// too long.
func (el *eventLoop) checkTimes(now int64) {
	for _, c := range el.conns {
		if now < c.due {
			continue
		}
		switch c.state {
		case connIdle:
			el.poll(c, el.ph.pollTimeout)
		case connDialing, connPolling:
			el.fail(c, fmt.Errorf("no reply within %v", c.limit))
		}
	}
}

// ready handles what epoll reported for c.
func (el *eventLoop) ready(c *loopConn, events uint32) {
	switch c.state {
	case connDialing:
		if events&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) == 0 {
			return
		}
		errno, err := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
		if err == nil && errno != 0 {
			err = syscall.Errno(errno)
		}
		if err != nil {
			el.fail(c, fmt.Errorf("dial: %w", err))
			return
		}
		c.state = connPolling
		el.write(c)
	case connPolling:
		if events&syscall.EPOLLOUT != 0 && len(c.out) > 0 {
			el.write(c)
		}
		if c.state == connPolling && events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
			el.read(c)
		}
	default:
		// Bytes or an end while no poll is in flight: the server closed
		// the idle connection, or broke the protocol.
		if events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
			el.disconnect(c)
		}
	}
}

// poll sends the listener's next poll, connecting first when needed.
func (el *eventLoop) poll(c *loopConn, timeout time.Duration) {
	ph := el.ph
	c.l.req = ph.sys.appendPoll(c.l.req[:0], c.l, timeout)
	// The server may hold a poll for the phase's timeout whatever a
	// first poll asked (nchan holds every poll for its own), and the
	// reply may take a while to come under load.
	c.limit = max(timeout, ph.pollTimeout) + 15*time.Second
	c.due = mono() + int64(c.limit)
	c.out = c.l.req
	ph.stats.pending.Add(1)
	if c.fd < 0 {
		el.dial(c)
		return
	}
	c.state = connPolling
	el.write(c)
}

// dial starts connecting c; the poll is written when the connection is up.
func (el *eventLoop) dial(c *loopConn) {
	c.state = connDialing
	c.served = 0
	c.in.start, c.in.end = 0, 0
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		el.fail(c, fmt.Errorf("socket: %w", err))
		return
	}
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if err := syscall.Bind(fd, &c.src); err != nil {
		syscall.Close(fd)
		el.fail(c, fmt.Errorf("bind: %w", err))
		return
	}
	if err := syscall.Connect(fd, &c.dst); err != nil && !errors.Is(err, syscall.EINPROGRESS) {
		syscall.Close(fd)
		el.fail(c, fmt.Errorf("dial: %w", err))
		return
	}
	if err := el.watch(c, fd, syscall.EPOLLIN|syscall.EPOLLOUT|syscall.EPOLLRDHUP); err != nil {
		syscall.Close(fd)
		el.fail(c, err)
	}
}

// write sends what is left of the request. A request that does not fit the
// socket's buffer waits for EPOLLOUT (polls are small: this does not
// happen in practice).
func (el *eventLoop) write(c *loopConn) {
	for len(c.out) > 0 {
		n, err := syscall.Write(c.fd, c.out)
		switch {
		case errors.Is(err, syscall.EAGAIN):
			el.modify(c, syscall.EPOLLIN|syscall.EPOLLOUT|syscall.EPOLLRDHUP)
			return
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			el.fail(c, staleError{fmt.Errorf("write: %w", err)})
			return
		}
		c.out = c.out[n:]
	}
	el.modify(c, syscall.EPOLLIN|syscall.EPOLLRDHUP)
}

// modify changes the events watched on c's connection, when they change.
func (el *eventLoop) modify(c *loopConn, events uint32) {
	if c.events == events {
		return
	}
	ev := syscall.EpollEvent{Events: events, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(el.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
		el.fail(c, fmt.Errorf("epoll mod: %w", err))
		return
	}
	c.events = events
}

// read takes what has arrived for c's poll, and handles the reply when it
// is whole. The socket is watched level-triggered: bytes left unread are
// reported again, so one read per readiness is enough.
func (el *eventLoop) read(c *loopConn) {
	n, err := syscall.Read(c.fd, c.in.space())
	now := mono() // when the bytes came: the latency's end
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
		return
	}
	if err != nil {
		el.fail(c, readFailed(err, len(c.in.unread())))
		return
	}
	c.in.end += n
	m, err := parseReply(c.in.unread(), n == 0, &c.reply)
	switch {
	case err != nil:
		el.fail(c, err)
		return
	case m == 0:
		return // more to come
	}
	c.in.consume(m)
	c.served++
	c.retry = false
	ph := el.ph
	ph.stats.pending.Add(-1)
	ph.stats.polls.Add(1)
	wait := ph.sys.onPoll(c.l, &c.reply, now, ph)
	if c.reply.close || len(c.in.unread()) > 0 {
		el.disconnect(c) // bytes past the reply: nothing was asked for them
	}
	if wait > 0 {
		c.state = connIdle
		c.due = mono() + int64(wait)
		return
	}
	el.poll(c, ph.pollTimeout)
}

// fail ends the poll in flight with err. A poll that failed before any
// byte of its reply on a connection that had served before (the server
// closed it while idle) is sent again on a new connection once, as any
// HTTP client does; any other failure counts as a poll error, and the
// listener polls again after a pause.
func (el *eventLoop) fail(c *loopConn, err error) {
	reused := c.served > 0
	el.disconnect(c)
	if el.ph.stopping.Load() {
		return
	}
	el.ph.stats.pending.Add(-1)
	var se staleError
	if reused && !c.retry && errors.As(err, &se) {
		c.retry = true
		el.ph.stats.pending.Add(1)
		c.out = c.l.req
		el.dial(c)
		return
	}
	c.retry = false
	el.ph.stats.pollError(err)
	c.state = connIdle
	c.due = mono() + int64(200*time.Millisecond)
}

// disconnect closes c's connection.
func (el *eventLoop) disconnect(c *loopConn) {
	if c.fd < 0 {
		return
	}
	delete(el.byFD, int32(c.fd))
	syscall.Close(c.fd) // which also takes it out of the epoll set
	c.fd = -1
	c.state = connIdle
	c.in.start, c.in.end = 0, 0
}

// closeAll closes every connection and the epoll instance.
func (el *eventLoop) closeAll() {
	for _, c := range el.conns {
		el.disconnect(c)
	}
	syscall.Close(el.epfd)
}

// detach hands the open connection's descriptor over to the caller, who
// must close it, and forgets the connection; -1 when none is open. The
// descriptor is non-blocking and closed on exec.
func (c *httpConn) detach() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc == nil {
		return -1, nil
	}
	defer func() { c.nc.Close(); c.nc = nil }()
	if len(c.in.unread()) > 0 {
		return -1, nil // bytes nobody asked for: start afresh
	}
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return -1, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("detach: %w", err)
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) {
		var r uintptr
		var e syscall.Errno
		r, _, e = syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = e
			return
		}
		fd = int(r)
	}); err != nil {
		return -1, fmt.Errorf("detach: %w", err)
	}
	if derr != nil {
		return -1, fmt.Errorf("detach: dup: %w", derr)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("detach: %w", err)
	}
	return fd, nil
}

// endpoints returns the source and destination addresses of c's
// connections, for dialling them without the runtime's poller.
func (c *httpConn) endpoints() (src, dst [4]byte, port int, err error) {
	if a, ok := c.dialer.LocalAddr.(*net.TCPAddr); ok && a.IP.To4() != nil {
		copy(src[:], a.IP.To4())
	}
	addr, err := resolveOnce(c.addr)
	if err != nil {
		return src, dst, 0, fmt.Errorf("dial %s: %w", c.addr, err)
	}
	copy(dst[:], addr.IP.To4())
	return src, dst, addr.Port, nil
}

var resolved sync.Map // address → *net.TCPAddr

// resolveOnce resolves a loopback address of the form ip:port once.
func resolveOnce(addr string) (*net.TCPAddr, error) {
	if a, ok := resolved.Load(addr); ok {
		return a.(*net.TCPAddr), nil
	}
	a, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return nil, err
	}
	if a.IP.To4() == nil || bytes.Equal(a.IP.To4(), net.IPv4zero.To4()) {
		return nil, fmt.Errorf("%s: not an IPv4 address", addr)
	}
	resolved.Store(addr, a)
	return a, nil
}
