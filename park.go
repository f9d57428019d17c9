package chatd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"chatd/api"
	"chatd/comet"
)

// Parking idle long-polls.
//
// A long-poll spends nearly all its life waiting. Held by net/http, a
// waiting poll costs a goroutine stack and the connection's read and write
// buffers: some 20 KiB. When a poll has waited parkAfter without an
// answer, chatd instead takes the connection over (hijacks it), lets the
// handler return, and keeps only the connection and a small record on the
// user's queue. Polls answered sooner (busy rooms) stay on the fast path. When the answer is
// ready, it writes the HTTP response itself and hands the connection back
// to the HTTP server through the Listener, which serves the client's next
// request on it as on any kept-alive connection.

// Listen wraps ln so that connections of answered long-polls go back to the
// HTTP server: serve on the returned listener. Without it (tests that
// serve the handler some other way), waiting polls hold their request.
func (s *Server) Listen(ln net.Listener) net.Listener {
	l := &recycler{
		Listener: ln,
		fresh:    make(map[net.Conn]bool),
		back:     make(chan net.Conn, 1024),
		accepted: make(chan accepted),
		done:     make(chan struct{}),
	}
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

// bufferedConn is a connection whose first bytes were already read into a
// buffer (a client that sent its next request early).
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// parkedPoll follows one long-poll from its handler to its answer, which
// may come while the handler still holds the request or after the
// connection was parked.
type parkedPoll struct {
	mu      sync.Mutex
	resp    *bufferedResponse // the answer, when it came before parking
	ready   chan struct{}     // closed when resp is set
	conn    net.Conn          // the parked connection
	closing bool              // the client wants the connection closed after (set before Start)
}

// bufferedResponse is an http.ResponseWriter that keeps the response, so
// it can be written to a parked connection.
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

// writeTo writes the response as HTTP/1.1; with closing set it asks the
// client to close the connection.
func (b *bufferedResponse) writeTo(w *bufio.Writer, closing bool) error {
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\n", b.status, http.StatusText(b.status))
	b.header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	b.header.Set("Content-Length", strconv.Itoa(b.body.Len()))
	if closing {
		b.header.Set("Connection", "close")
	}
	keys := make([]string, 0, len(b.header))
	for k := range b.header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range b.header[k] {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	w.WriteString("\r\n")
	w.Write(b.body.Bytes())
	return w.Flush()
}

// parkAfter is how long a poll waits holding its request before its
// connection is parked.
const parkAfter = 2 * time.Second

// parkedWriteTimeout bounds how long writing an answer to a parked
// connection may take before the client is given up.
const parkedWriteTimeout = 10 * time.Second

// answerParked writes resp to a parked connection and hands the connection
// back to the HTTP server (or closes it).
func (s *Server) answerParked(c net.Conn, resp *bufferedResponse, closing bool) {
	defer s.parkedWG.Done()
	c.SetWriteDeadline(time.Now().Add(parkedWriteTimeout))
	w := bufio.NewWriterSize(c, 512+resp.body.Len())
	closing = closing || s.recycle == nil || s.recycle.draining.Load()
	err := resp.writeTo(w, closing)
	if err != nil || closing {
		c.Close()
		return
	}
	c.SetWriteDeadline(time.Time{})
	s.recycle.giveBack(c)
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

// poll runs one long-poll for the handler: it answers at once when it can,
// parks the connection when the poll has to wait (and the server listens
// through Listen), or else waits holding the request.
func (s *Server) poll(w http.ResponseWriter, r *http.Request, req comet.Request) {
	ctx := r.Context()
	pp := &parkedPoll{ready: make(chan struct{}), closing: r.Close || !r.ProtoAtLeast(1, 1)}
	deliver := func(res comet.Result, err error) {
		resp := s.pollResponse(r, res, err)
		pp.mu.Lock()
		if c := pp.conn; c != nil {
			pp.conn = nil
			pp.mu.Unlock()
			s.presence.PollEnded(req.Client)
			s.parkedWG.Add(1)
			go s.answerParked(c, resp, pp.closing)
			return
		}
		pp.resp = resp
		close(pp.ready)
		pp.mu.Unlock()
	}
	pending := s.hub.Start(ctx, req, deliver)

	pp.mu.Lock()
	resp := pp.resp
	pp.mu.Unlock()
	if resp == nil && s.recycle != nil {
		// A poll that is answered soon is cheapest answered here; only a
		// poll that has waited parkAfter is parked. Busy clients never pay
		// for taking the connection over and handing it back.
		t := time.NewTimer(parkAfter)
		select {
		case <-pp.ready:
			resp = pp.resp
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	if resp == nil && ctx.Err() == nil {
		if conn, ok := s.hijack(w); ok {
			pp.mu.Lock()
			if pp.resp == nil {
				// Parked: the answer will be written by deliver.
				pp.conn = conn
				pp.mu.Unlock()
				return
			}
			// The answer came while the connection was being taken over.
			resp = pp.resp
			pp.mu.Unlock()
			s.presence.PollEnded(req.Client)
			s.parkedWG.Add(1)
			s.answerParked(conn, resp, pp.closing)
			return
		}
	}
	if resp == nil {
		select {
		case <-pp.ready:
		case <-ctx.Done():
			s.hub.Cancel(pending, ctx.Err())
			<-pp.ready
		}
		resp = pp.resp
	}
	s.presence.PollEnded(req.Client)
	if ctx.Err() != nil {
		return // the client went away; nobody reads an answer
	}
	resp.copyTo(w)
}

// hijack takes the connection over from net/http, when the server listens
// through Listen and the connection can be taken (HTTP/1.x).
func (s *Server) hijack(w http.ResponseWriter) (net.Conn, bool) {
	if s.recycle == nil {
		return nil, false
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, false
	}
	if n := brw.Reader.Buffered(); n > 0 {
		// The client already sent more: keep those bytes in front.
		early, _ := brw.Reader.Peek(n)
		conn = &bufferedConn{Conn: conn, r: io.MultiReader(bytes.NewReader(slices.Clone(early)), conn)}
	}
	return conn, true
}

// waitParked waits for the answers being written to parked connections,
// for at most the given time.
func (s *Server) waitParked(d time.Duration) {
	done := make(chan struct{})
	go func() { s.parkedWG.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
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
// connections given back on which the client has sent nothing yet: the
// HTTP server's Shutdown would wait seconds for them.
func (l *recycler) drain() {
	l.draining.Store(true)
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.fresh {
		c.Close()
		delete(l.fresh, c)
	}
}
