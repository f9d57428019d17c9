//go:build linux

package chatd

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
)

// watcher notices clients that close the connection of a waiting poll.
//
// A parked poll has no goroutine reading its connection, so nothing in Go
// would see the client go away before the poll is answered. (A held poll's
// goroutine reads on while the poll waits, and sees the end itself; the
// watcher serves for both, and is the only one on a parked poll.) The watcher
// keeps the lanes' connections in an epoll set of its own, registered once
// per connection for the peer's hang-up only (EPOLLRDHUP, edge-triggered:
// no system call per poll), and one goroutine waits on it: a client that
// closes its connection has its waiting poll cancelled at once, as net/http
// cancels a request whose client left, and presence then counts from that
// moment. A hang-up while no poll waits is remembered, for the next poll.
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

// epollET is EPOLLET as an event mask bit (package syscall declares it
// negative).
const epollET = 1 << 31

// watch starts watching a new lane's connection (through l.raw).
func (w *watcher) watch(l *lane) {
	if w == nil || l.raw == nil {
		return
	}
	w.mu.Lock()
	w.next++
	l.watchID = w.next
	w.lanes[l.watchID] = l
	w.mu.Unlock()
	ev := syscall.EpollEvent{
		Events: syscall.EPOLLRDHUP | epollET,
		Fd:     int32(uint32(l.watchID)),
		Pad:    int32(uint32(l.watchID >> 32)),
	}
	l.raw.Control(func(fd uintptr) {
		// A hang-up that came before is reported at once.
		if err := syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev); err == nil {
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

// gone cancels the lane's waiting poll, or the next one: its client closed
// the connection. The answer then fails to be written, or the next read
// finds the end, and the lane closes.
func (l *lane) gone() {
	l.hungUp.Store(true)
	if p := l.pending.Load(); p != nil {
		l.s.hub.Cancel(p, context.Canceled)
	}
}
