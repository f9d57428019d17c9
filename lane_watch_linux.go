//go:build linux

package chatd

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
)

// watcher notices clients that close the connection of a parked poll.
//
// A parked poll has no goroutine reading its connection, so nothing in Go
// would see the client go away before the poll is answered. The watcher
// keeps the parked connections in an epoll set of its own, armed once per
// parked poll for the peer's hang-up only (EPOLLRDHUP, one-shot), and one
// goroutine waits on it: a client that closes its connection has its poll
// cancelled at once, as net/http cancels a request whose client left, and
// presence then counts from that moment.
type watcher struct {
	epfd   int
	closed atomic.Bool

	mu    sync.Mutex
	lanes map[uint64]*lane
	next  uint64
}

// newWatcher starts a watcher; it returns nil when the system refuses one
// (parked polls are then only noticed gone when answered).
func newWatcher() *watcher {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	w := &watcher{epfd: fd, lanes: make(map[uint64]*lane)}
	go w.run()
	return w
}

// watch arms the watch on the lane's connection while its poll is parked.
func (w *watcher) watch(l *lane) {
	if w == nil {
		return
	}
	if l.watchID == 0 {
		raw, err := l.rawConn()
		if err != nil {
			return
		}
		l.raw = raw
		w.mu.Lock()
		w.next++
		l.watchID = w.next
		w.lanes[l.watchID] = l
		w.mu.Unlock()
	}
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd:     int32(uint32(l.watchID)),
		Pad:    int32(uint32(l.watchID >> 32)),
	}
	l.raw.Control(func(fd uintptr) {
		op := syscall.EPOLL_CTL_MOD
		if !l.watched {
			op = syscall.EPOLL_CTL_ADD
		}
		// Re-arming (MOD) reports a hang-up that came meanwhile.
		if err := syscall.EpollCtl(w.epfd, op, int(fd), &ev); err == nil {
			l.watched = true
		}
	})
}

// forget stops watching the lane (its connection closes or goes back to the
// HTTP server).
func (w *watcher) forget(l *lane) {
	if w == nil || l.watchID == 0 {
		return
	}
	if l.watched {
		l.raw.Control(func(fd uintptr) {
			syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
		})
		l.watched = false
	}
	w.mu.Lock()
	delete(w.lanes, l.watchID)
	w.mu.Unlock()
	l.watchID = 0
}

// close stops the watcher within a second.
func (w *watcher) close() {
	if w != nil {
		w.closed.Store(true)
	}
}

func (w *watcher) run() {
	defer syscall.Close(w.epfd)
	events := make([]syscall.EpollEvent, 128)
	for !w.closed.Load() {
		n, err := syscall.EpollWait(w.epfd, events, 1000)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			w.mu.Lock()
			l := w.lanes[id]
			w.mu.Unlock()
			if l != nil {
				l.gone()
			}
		}
	}
}

// gone cancels the lane's parked poll: its client closed the connection.
// The answer then fails to be written and the lane closes.
func (l *lane) gone() {
	if p := l.parked.Load(); p != nil {
		l.s.hub.Cancel(p, context.Canceled)
	}
}
