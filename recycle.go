package chatd

import (
	"bytes"
	"errors"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"chatd/api"
	"chatd/comet"
	"chatd/presence"
)

// Connections handed back.
//
// The poll lane (lane.go) takes kept-alive connections over from the HTTP
// server; the recycler is the listener through which it gives a connection
// back when the client's next request is not a poll.

// Listen wraps ln so that connections the poll lane took over can go back
// to the HTTP server: serve on the returned listener. Without it (tests
// that serve the handler some other way), polls are served by net/http
// alone, each holding its request while it waits.
func (s *Server) Listen(ln net.Listener) net.Listener {
	l := &recycler{
		Listener: ln,
		fresh:    make(map[net.Conn]bool),
		lanes:    make(map[*lane]struct{}),
		back:     make(chan net.Conn, 1024),
		accepted: make(chan accepted),
		done:     make(chan struct{}),
	}
	l.watch = newWatcher()
	go l.acceptLoop()
	s.recycle = l
	return l
}

// recycler is a listener that also returns connections handed back to it.
type recycler struct {
	net.Listener
	// draining is set when the server shuts down: answered connections
	// are closed instead of given back, so the HTTP server's Shutdown
	// does not wait for them to send a request.
	draining  atomic.Bool
	back      chan net.Conn
	mu        sync.Mutex
	fresh     map[net.Conn]bool // given back, and no request read on them since
	lanes     map[*lane]struct{}
	watch     *watcher // notices clients leaving waiting polls
	writers   answerWriters
	accepted  chan accepted
	done      chan struct{}
	closeOnce sync.Once
}

type accepted struct {
	c   net.Conn
	err error
}

func (l *recycler) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- accepted{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
		}
	}
}

// Accept returns the next returned or new connection.
func (l *recycler) Accept() (net.Conn, error) {
	select {
	case c := <-l.back:
		return c, nil
	default:
	}
	select {
	case c := <-l.back:
		return c, nil
	case a := <-l.accepted:
		return a.c, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; connections handed back afterwards are closed.
func (l *recycler) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

// giveBack returns an idle kept-alive connection to the HTTP server.
func (l *recycler) giveBack(c net.Conn) {
	l.mu.Lock()
	l.fresh[c] = true
	l.mu.Unlock()
	select {
	case l.back <- c:
	case <-l.done:
		c.Close()
	}
}

// bufferedConn is a connection some of whose bytes were read already (a
// client that sent its next request early): Read returns them first.
type bufferedConn struct {
	net.Conn
	early []byte
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if len(c.early) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.early)
	c.early = c.early[n:]
	return n, nil
}

// withEarly returns c with a copy of early in front of what is still to be
// read from it. The wrappers never nest: a connection that goes back and
// forth between the HTTP server and the poll lane stays one wrapper over
// the accepted connection, which the hang-up watcher needs to reach.
func withEarly(c net.Conn, early []byte) net.Conn {
	var rest []byte
	if bc, ok := c.(*bufferedConn); ok {
		c, rest = bc.Conn, bc.early
	}
	if len(early)+len(rest) == 0 {
		return c
	}
	return &bufferedConn{Conn: c, early: append(bytes.Clone(early), rest...)}
}

// unbuffered returns the connection under c.
func unbuffered(c net.Conn) net.Conn {
	if bc, ok := c.(*bufferedConn); ok {
		return bc.Conn
	}
	return c
}

// bufferedResponse is an http.ResponseWriter that keeps the response, so
// it can be written to a connection the lane serves.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newBufferedResponse() *bufferedResponse {
	return &bufferedResponse{header: make(http.Header)}
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// appendTo appends the response as HTTP/1.1 to b; with closing set it asks
// the client to close the connection.
func (b *bufferedResponse) appendTo(out []byte, closing bool) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(b.status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(b.status)...)
	out = append(out, "\r\n"...)
	b.header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	b.header.Set("Content-Length", strconv.Itoa(b.body.Len()))
	if closing {
		b.header.Set("Connection", "close")
	}
	for _, k := range slices.Sorted(maps.Keys(b.header)) {
		for _, v := range b.header[k] {
			out = append(out, k...)
			out = append(out, ": "...)
			out = append(out, v...)
			out = append(out, "\r\n"...)
		}
	}
	out = append(out, "\r\n"...)
	return append(out, b.body.Bytes()...)
}

// copyTo sends a buffered response through a live ResponseWriter.
func (b *bufferedResponse) copyTo(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range b.header {
		h[k] = v
	}
	w.WriteHeader(b.status)
	w.Write(b.body.Bytes())
}

// pollResponse renders a poll's outcome as its HTTP response.
func (s *Server) pollResponse(r *http.Request, res comet.Result, err error) *bufferedResponse {
	b := newBufferedResponse()
	switch {
	case errors.Is(err, comet.ErrSuperseded):
		api.WriteError(b, r, s.log, &api.Error{Code: api.Superseded, Message: "a newer poll from this client took over; wait at least 2 s before polling again", RetryAfter: 2 * time.Second})
	case errors.Is(err, comet.ErrRevoked):
		api.WriteError(b, r, s.log, api.Errorf(api.Unauthenticated, "your session has ended"))
	case err != nil:
		api.WriteError(b, r, s.log, err)
	default:
		api.WriteRaw(b, http.StatusOK, encodePoll(res))
	}
	return b
}

// errorResponse renders an error as its HTTP response.
func (s *Server) errorResponse(r *http.Request, err error) *bufferedResponse {
	b := newBufferedResponse()
	api.WriteError(b, r, s.log, err)
	return b
}

// poll runs one long-poll for the handler: on the poll lane when the
// connection can be taken over, or else holding the request until the
// answer.
func (s *Server) poll(w http.ResponseWriter, r *http.Request, req comet.Request, pres *presence.Client) {
	if s.startLane(w, r, req, pres) {
		return
	}
	ctx := r.Context()
	answer := make(chan *bufferedResponse, 1)
	pending := s.hub.Start(ctx, req, func(res comet.Result, err error) {
		answer <- s.pollResponse(r, res, err)
	})
	var resp *bufferedResponse
	select {
	case resp = <-answer:
	case <-ctx.Done():
		s.hub.Cancel(pending, ctx.Err())
		resp = <-answer
	}
	gone := ctx.Err() != nil // the client hung up
	s.presence.PollEnded(pres, gone, time.Now())
	if gone {
		return // nobody reads an answer
	}
	resp.copyTo(w)
}

// waitAnswers waits for the answers the poll lane is writing, for at most
// the given time.
func (s *Server) waitAnswers(d time.Duration) {
	idle := s.answers.idle()
	if idle == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
}

// inflight counts the answers being written. Unlike a sync.WaitGroup, it
// may go up from zero while someone waits for zero: a client's hang-up
// cancels its poll, and so starts an answer, at any moment, a shutdown
// included.
type inflight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n comes back to 0; nil if nobody waits
}

func (f *inflight) add() {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
}

func (f *inflight) done() {
	f.mu.Lock()
	if f.n--; f.n == 0 && f.zero != nil {
		close(f.zero)
		f.zero = nil
	}
	f.mu.Unlock()
}

// idle returns a channel closed when no answer is being written, or nil
// when none is now.
func (f *inflight) idle() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		return nil
	}
	if f.zero == nil {
		f.zero = make(chan struct{})
	}
	return f.zero
}

// ConnState follows the HTTP server's connections (set it as the
// http.Server's ConnState): a connection given back stops being fresh once
// a request is read on it.
func (s *Server) ConnState(c net.Conn, st http.ConnState) {
	if s.recycle == nil || st == http.StateNew {
		return
	}
	s.recycle.mu.Lock()
	delete(s.recycle.fresh, c)
	s.recycle.mu.Unlock()
}

// drain makes answers close their connections from now on, and closes the
// connections given back on which the client has sent nothing yet (the
// HTTP server's Shutdown would wait seconds for them) and the lanes waiting
// for a next request.
func (l *recycler) drain() {
	l.draining.Store(true)
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.fresh {
		c.Close()
		delete(l.fresh, c)
	}
	l.drainLanes()
}
