package chatd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"chatd/auth"
	"chatd/comet"
	"chatd/presence"
)

// The poll lane.
//
// A browser's long-poll connection carries one poll after another, and a
// busy room answers each within milliseconds. Served by net/http, every
// one of those polls costs a background read that watches for the client
// going away, deadline resets, a header map, and a goroutine held for the
// wait; together several times what answering the poll itself costs.
//
// So after the first poll on a kept-alive HTTP/1.1 connection, chatd takes
// the connection over (hijacks it) and serves the polls that follow on it
// itself. On a quiet connection a waiting poll is only the connection and
// a record on the user's queue: no goroutine, no buffer; when the answer
// comes, a new goroutine writes it in one write and reads the client's
// next request. On a busy connection (its last poll that waited was
// answered within holdAfter) the goroutine goes on reading instead, for the
// request that will follow the answer, and the answer is written by the
// lanes' answer writers (answerWriters): the hub's publishing goroutine
// only queues it, and no goroutine is woken per answer. The first request
// that is not a poll goes back to the HTTP server through the Listener,
// with its bytes untouched, and is served like any other.
//
// A client that closes the connection of a waiting poll, held or parked,
// is noticed at once by the watcher (lane_watch_linux.go), and the poll
// cancelled. A poll of the same client on a new connection takes over at
// once in any case.

// IdleTimeout is how long a kept-alive connection may wait for its next
// request; ReadHeaderTimeout is how long a request's head may take to
// arrive. The HTTP server should be given the same.
const (
	IdleTimeout       = 120 * time.Second
	ReadHeaderTimeout = 10 * time.Second
)

// lanePrefix starts every request line the lane serves.
const lanePrefix = "GET /api/events"

// laneWriteTimeout bounds how long writing one answer may take before the
// client is given up.
const laneWriteTimeout = 10 * time.Second

// lane states, for a graceful shutdown.
const (
	laneBusy    int32 = iota // answering or handling a request
	laneReading              // waiting for the client's next request
	laneWaiting              // a poll waits on the hub
)

// poll states: how the current poll's answer arrives.
const (
	pollStarting int32 = iota // the hub's Start has not returned
	pollParked                // Start returned; resume will answer
	pollHeld                  // Start returned; an answer writer will answer
	pollAwaited               // held, and the lane's goroutine waits for the answer to be written
	pollWritten               // a held poll's answer was written
	pollAnswered              // answered before Start returned
)

// lane is one connection whose polls chatd serves itself.
type lane struct {
	s      *Server
	conn   net.Conn
	src    net.Conn      // conn, or conn behind bytes read from it already
	br     *bufio.Reader // nil while a poll waits with nothing buffered
	remote string

	hdr http.Header // the current request's, reused

	// A busy connection's last poll: a client's polls repeat the same
	// header lines and change only the request line, so a repeat is not
	// parsed, nor its caller looked up, again.
	req      *http.Request // the last poll, parsed by parseHead
	lastHdrs string        // its header lines, as received
	memo     auth.Memo     // who sent it

	// Watching for the client's hang-up while a poll waits.
	pending atomic.Pointer[comet.Pending] // the waiting poll, if any
	hungUp  atomic.Bool                   // the client hung up
	raw     syscall.RawConn               // the descriptor, for the watcher and held answers' writes
	watchID uint64
	watched bool // registered with the watcher

	wdl time.Time // the connection's write deadline
	// rdl is its read deadline in Unix nanoseconds: the answer writer of
	// a held poll extends it too, while the goroutine reads.
	rdl atomic.Int64
	// now is the time of the lane's last step: when the request being
	// served came, or when the answer being written was ready. (One
	// clock reading serves the step's deadlines, presence, the memo
	// and the Date header.)
	now time.Time

	state     atomic.Int32 // lane state
	pstate    atomic.Int32 // poll state
	deliverFn func(comet.Result, error)

	// The poll being served.
	pres    *presence.Client // its client's presence record
	held    bool             // a held poll's answer is not known to be written yet
	wake    chan struct{}    // a held poll's answer was written
	busy    bool             // the last poll was answered within holdAfter
	started time.Time
	client  string
	closing bool // close the connection after the answer
	res     comet.Result
	err     error
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// laneRequest stands for a lane's request in error answers that outlive it
// (only its method and path are logged).
var laneRequest = &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/api/events"}}

// startLane takes the connection of a poll over and serves the poll on it,
// and the client's requests after it. It returns false, having done
// nothing, when the connection cannot be taken: the server does not listen
// through Listen, the client asked to close, or it is not HTTP/1.1.
func (s *Server) startLane(w http.ResponseWriter, r *http.Request, req comet.Request, pres *presence.Client) bool {
	if s.recycle == nil || r.Close || !r.ProtoAtLeast(1, 1) || s.recycle.draining.Load() {
		return false
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	// The client may have sent more already: those bytes stay in front.
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ = brw.Reader.Peek(n)
	}
	src := withEarly(conn, early)
	l := &lane{s: s, conn: unbuffered(src), src: src, remote: r.RemoteAddr, pres: pres, now: time.Now()}
	l.deliverFn = l.deliver
	if !s.recycle.addLane(l) {
		conn.Close()
		s.presence.PollEnded(pres, false, time.Now())
		return true
	}
	l.raw, _ = l.rawConn() // nil without a descriptor: no watching, and blocking writes
	s.recycle.watch.watch(l)
	if l.poll(req) {
		go l.serve() // and let the HTTP server's goroutine end
	}
	return true
}

// serve reads and serves the client's requests until a poll has to wait,
// the connection ends, or a request that is not a poll is handed back.
func (l *lane) serve() {
	for {
		r, err := l.next()
		if err != nil {
			if errors.Is(err, errHandBack) {
				l.handBack()
			} else {
				l.close()
			}
			return
		}
		l.closing = r.Close || !r.ProtoAtLeast(1, 1)
		req, err := l.startPoll(r)
		if err != nil {
			l.client = ""
			if !l.write(l.s.errorResponse(r, err)) {
				return
			}
			continue
		}
		if !l.poll(req) {
			return
		}
	}
}

// startPoll checks the poll r: who calls, then its parameters. The caller
// of a repeat (r is l.req) is known already while the memo is good.
func (l *lane) startPoll(r *http.Request) (comet.Request, error) {
	id, ok := auth.Identity{}, false
	if r == l.req {
		id, ok = l.s.auth.Recall(&l.memo, l.now)
	}
	var again *presence.Client
	if ok {
		again = l.pres // the same client's
	} else {
		var err error
		if id, err = l.s.auth.IdentifyMemo(r, &l.memo); err != nil {
			return comet.Request{}, err
		}
	}
	req, pres, err := l.s.pollRequest(r, id, again, l.now)
	if err != nil {
		return comet.Request{}, err
	}
	l.pres = pres
	return req, nil
}

// forgetLast drops what is kept of the last poll: a quiet connection keeps
// nothing while its poll waits.
func (l *lane) forgetLast() {
	l.req, l.lastHdrs, l.memo = nil, "", auth.Memo{}
	clear(l.hdr)
}

// poll starts req on the hub. When the answer is ready at once it writes it
// and returns whether to go on serving. Otherwise, on a busy connection
// (its last poll that waited was answered within holdAfter), the poll is
// held: poll returns true, and the goroutine goes on to read the client's
// next request while an answer writer writes the answer (next waits for
// that write before it serves anything); on a quiet one, the poll is
// parked: poll returns false at once, and resume writes the answer on a
// goroutine of its own when it comes.
func (l *lane) poll(req comet.Request) bool {
	l.client = req.Client
	hold := l.busy
	if !hold {
		if l.br != nil && l.br.Buffered() == 0 {
			// A parked poll keeps no buffer unless the client sent
			// something more already. (From Start on, the answer
			// may be served on another goroutine: the buffer goes
			// now.)
			l.release()
		}
		l.forgetLast() // nor the request's header values
	}
	l.started = l.now
	l.pstate.Store(pollStarting)
	l.state.Store(laneWaiting)
	p := l.s.hub.Start(context.Background(), req, l.deliverFn)
	// From here the watcher cancels the poll when the client hangs up;
	// one that hung up already has its poll cancelled now. (Both the
	// watcher and the lane store, then load: one of them sees the other.)
	l.pending.Store(p)
	if l.hungUp.Load() {
		l.s.hub.Cancel(p, context.Canceled)
	}
	if !hold {
		if l.pstate.CompareAndSwap(pollStarting, pollParked) {
			return false // resume answers it
		}
		return l.answer()
	}
	if l.wake == nil {
		l.wake = make(chan struct{}, 1)
	}
	if l.pstate.CompareAndSwap(pollStarting, pollHeld) {
		l.held = true
		return true
	}
	return l.answer()
}

// awaitHeld waits until the held poll's answer has been written, if one is
// outstanding. Everything the writer did happens before it returns.
func (l *lane) awaitHeld() {
	if !l.held {
		return
	}
	l.held = false
	if l.pstate.CompareAndSwap(pollHeld, pollAwaited) {
		<-l.wake
	}
}

// waited records how long a poll that had to wait waited, until now:
// whether the connection is busy. A poll answered at once (a first poll, a
// catch-up) says nothing about the next one, and changes nothing.
func (l *lane) waited(now time.Time) { l.busy = now.Sub(l.started) < holdAfter }

// holdAfter: a connection whose poll was answered within this time is busy,
// and its next poll that waits is held (the goroutine serving it reads on,
// and an answer writer writes the answer) rather than parked, which would
// have a new goroutine started for the answer.
const holdAfter = time.Second

// deliver is the hub's callback with the poll's answer.
func (l *lane) deliver(res comet.Result, err error) {
	l.res, l.err = res, err
	for {
		switch l.pstate.Load() {
		case pollStarting:
			if l.pstate.CompareAndSwap(pollStarting, pollAnswered) {
				return // Start has not returned: poll answers it
			}
		case pollHeld, pollAwaited:
			l.s.answers.add()
			l.s.recycle.writers.add(l)
			return
		default: // parked
			l.s.answers.add()
			go l.resume()
			return
		}
	}
}

// resume writes a parked poll's answer and serves what follows.
func (l *lane) resume() {
	l.waited(time.Now())
	ok := l.answer()
	l.s.answers.done()
	if ok {
		l.serve()
	}
}

// answer writes the current poll's answer; it reports whether the
// connection stays open.
func (l *lane) answer() bool {
	l.state.Store(laneBusy)
	l.now = time.Now()
	bp := outPool.Get().(*[]byte)
	defer outPool.Put(bp)
	*bp = l.endPoll((*bp)[:0], l.closing || l.s.recycle.draining.Load(), l.now)
	return l.send(*bp)
}

// endPoll ends the current poll at now (presence records its end) and
// appends its answer to b: the events, or the error's answer.
func (l *lane) endPoll(b []byte, closing bool, now time.Time) []byte {
	l.pending.Store(nil)
	res, err := l.res, l.err
	l.res, l.err = comet.Result{}, nil
	l.s.presence.PollEnded(l.pres, l.hungUp.Load(), now)
	if err != nil {
		return l.s.pollResponse(laneRequest, res, err).appendTo(b, closing)
	}
	return appendAnswer(b, res, closing, now)
}

// writeHeld writes a held poll's answer; an answer writer calls it while
// the lane's goroutine reads on. It touches only what that goroutine
// leaves alone until awaitHeld returns.
func (l *lane) writeHeld() {
	now := time.Now()
	l.waited(now)
	closing := l.closing || l.s.recycle.draining.Load()
	bp := outPool.Get().(*[]byte)
	*bp = l.endPoll((*bp)[:0], closing, now)
	n, werr := l.tryWrite(*bp)
	if werr == nil && n < len(*bp) {
		// The socket's buffer is full: a goroutine of its own waits to
		// write the rest, and the writer goes on to the next answer.
		rest := slices.Clone((*bp)[n:])
		outPool.Put(bp)
		go func() {
			l.wdl = now.Add(laneWriteTimeout)
			l.conn.SetWriteDeadline(l.wdl)
			_, werr := l.conn.Write(rest)
			l.heldWritten(werr, closing, time.Now())
		}()
		return
	}
	outPool.Put(bp)
	l.heldWritten(werr, closing, now)
}

// tryWrite writes what of b the socket takes now, without waiting.
func (l *lane) tryWrite(b []byte) (int, error) {
	if l.raw == nil {
		l.conn.SetWriteDeadline(time.Now().Add(laneWriteTimeout))
		return l.conn.Write(b)
	}
	n, err := 0, error(nil)
	if cerr := l.raw.Control(func(fd uintptr) {
		for {
			n, err = syscall.Write(int(fd), b)
			if err != syscall.EINTR {
				break
			}
		}
	}); cerr != nil {
		return 0, cerr
	}
	if err == syscall.EAGAIN {
		return 0, nil
	}
	return max(n, 0), err
}

// heldWritten ends a held poll's answer, written at now: the connection
// closes when the answer said so or could not be written (the lane's
// goroutine then finds the end and closes the lane), and the goroutine, if
// it waits, goes on.
func (l *lane) heldWritten(err error, closing bool, now time.Time) {
	if err != nil || closing {
		l.conn.Close()
	} else {
		// The goroutine reads already, under a deadline set before the
		// poll waited: the client has IdleTimeout from the answer.
		l.extendRead(now)
		// Now the client's next request is awaited; a shutdown closes
		// such connections (a lane stores, then checks; drain sets,
		// then looks: one of them sees the other).
		l.state.Store(laneReading)
		if l.s.recycle.draining.Load() {
			l.conn.Close()
		}
	}
	l.s.answers.done()
	if l.pstate.Swap(pollWritten) == pollAwaited {
		l.wake <- struct{}{}
	}
}

// appendAnswer appends a poll's 200 answer, headers as api.WriteRaw
// writes them and the body as encodePoll does.
func appendAnswer(b []byte, res comet.Result, closing bool, now time.Time) []byte {
	var digits [20]byte
	cursor := strconv.AppendInt(digits[:0], res.Cursor, 10)
	n := len(`{"cursor":,"events":[]}`) + len(cursor) + 1 // and the newline
	for i, e := range res.Events {
		if i > 0 {
			n++
		}
		n += len(e.JSON)
	}
	b = append(b, "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, "\r\nContent-Type: application/json; charset=utf-8\r\nDate: "...)
	b = appendDate(b, now)
	if closing {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	b = appendPoll(b, res)
	return append(b, '\n')
}

// dateStamp is the Date header's value for one second.
type dateStamp struct {
	sec int64
	b   []byte
}

var lastDate atomic.Pointer[dateStamp]

// appendDate appends the current time as an HTTP Date, formatted once a
// second.
func appendDate(b []byte, now time.Time) []byte {
	d := lastDate.Load()
	if d == nil || d.sec != now.Unix() {
		d = &dateStamp{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
		lastDate.Store(d)
	}
	return append(b, d.b...)
}

// write sends a buffered response; it reports whether the connection stays
// open.
func (l *lane) write(resp *bufferedResponse) bool {
	bp := outPool.Get().(*[]byte)
	defer outPool.Put(bp)
	*bp = resp.appendTo((*bp)[:0], l.closing || l.s.recycle.draining.Load())
	return l.send(*bp)
}

// send writes one whole response and closes the connection when the
// response said so or the write failed.
func (l *lane) send(b []byte) bool {
	if l.wdl.Sub(l.now) < laneWriteTimeout/2 {
		l.wdl = l.now.Add(laneWriteTimeout)
		l.conn.SetWriteDeadline(l.wdl)
	}
	_, err := l.conn.Write(b)
	if err != nil || l.closing || l.s.recycle.draining.Load() {
		l.close()
		return false
	}
	return true
}

// rawConn returns the connection's file descriptor access.
func (l *lane) rawConn() (syscall.RawConn, error) {
	sc, ok := l.conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("chatd: connection without a file descriptor")
	}
	return sc.SyscallConn()
}

// errHandBack: the next request is not one for the lane.
var errHandBack = errors.New("chatd: not a poll")

// next reads the client's next request when it is a poll (a GET of
// /api/events whose head fits the buffer), or returns errHandBack with the
// request left unread.
func (l *lane) next() (*http.Request, error) {
	if l.br == nil {
		l.br = readerPool.Get().(*bufio.Reader)
		l.br.Reset(l.src)
	}
	if !l.held {
		// (While a held poll waits, its answer writer does this.)
		l.state.Store(laneReading)
		if l.s.recycle.draining.Load() {
			return nil, net.ErrClosed
		}
	}
	l.extendRead(l.now)
	_, err := l.br.Peek(1)
	if l.held {
		if err != nil {
			l.gone() // the client left its waiting poll
		}
		l.awaitHeld() // the answer goes first
	}
	if err != nil {
		return nil, err
	}
	l.now = time.Now() // when the request came
	var head []byte
	for slow := false; ; {
		buf, _ := l.br.Peek(l.br.Buffered())
		if n := min(len(buf), len(lanePrefix)+1); string(buf[:n]) != (lanePrefix + "?")[:n] && string(buf[:n]) != (lanePrefix + " ")[:n] {
			return nil, errHandBack
		}
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			head = buf[:i+4]
			break
		}
		if bytes.Contains(buf, []byte("\n\n")) {
			break // bare line feeds: net/http's parser reads them
		}
		if len(buf) == l.br.Size() {
			return nil, errHandBack // a large head: the HTTP server reads it
		}
		if !slow {
			// The head did not come in one piece: it has
			// ReadHeaderTimeout to arrive, as on the HTTP server.
			slow = true
			d := time.Now().Add(ReadHeaderTimeout)
			l.rdl.Store(d.UnixNano())
			l.conn.SetReadDeadline(d)
		}
		if _, err := l.br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
	if r := l.repeat(head); r != nil {
		l.br.Discard(len(head))
		l.state.Store(laneBusy)
		return r, nil
	}
	if l.hdr == nil {
		l.hdr = make(http.Header, 4)
	}
	l.forgetLast()
	r, ok := parseHead(head, l.hdr)
	if ok {
		if l.busy {
			// Its next polls will likely repeat these headers.
			l.req, l.lastHdrs = r, string(head[bytes.Index(head, []byte("\r\n")):])
		}
		l.br.Discard(len(head))
	} else {
		var err error
		if r, err = http.ReadRequest(l.br); err != nil {
			return nil, err
		}
	}
	l.state.Store(laneBusy)
	if r.ContentLength != 0 || r.Host == "" {
		// A GET with a body, or HTTP/1.1 without Host: refused, as the
		// HTTP server refuses it, and the connection closed.
		l.closing = true
		l.write(badRequest())
		return nil, net.ErrClosed
	}
	r.RemoteAddr = l.remote
	return r, nil
}

// extendRead gives the client IdleTimeout from now to send its next
// request. Deadlines cost a timer update each: the read deadline is
// renewed only when half its time is gone.
func (l *lane) extendRead(now time.Time) {
	if l.rdl.Load()-now.UnixNano() < int64(IdleTimeout/2) {
		d := now.Add(IdleTimeout)
		l.rdl.Store(d.UnixNano())
		l.conn.SetReadDeadline(d)
	}
}

// repeat returns the last poll, with head's request line, when head has
// the same header lines (head is a whole head: it ends in a blank line).
func (l *lane) repeat(head []byte) *http.Request {
	if l.req == nil {
		return nil
	}
	eol := bytes.Index(head, []byte("\r\n"))
	if string(head[eol:]) != l.lastHdrs {
		return nil
	}
	target, query, ok := pollLine(string(head[:eol]))
	if !ok {
		return nil
	}
	l.req.RequestURI, l.req.URL.RawQuery = target, query
	return l.req
}

// badRequest is the answer to a request the lane cannot serve.
func badRequest() *bufferedResponse {
	b := newBufferedResponse()
	b.header.Set("Content-Type", "text/plain; charset=utf-8")
	b.WriteHeader(http.StatusBadRequest)
	b.Write([]byte("400 Bad Request"))
	return b
}

// handBack gives the connection, with what the lane has read of the next
// request, back to the HTTP server.
func (l *lane) handBack() {
	var early []byte
	if n := l.br.Buffered(); n > 0 {
		early, _ = l.br.Peek(n)
	}
	c := withEarly(l.src, early)
	l.release()
	l.conn.SetReadDeadline(time.Time{})
	l.conn.SetWriteDeadline(time.Time{})
	l.s.recycle.watch.forget(l)
	l.s.recycle.removeLane(l)
	l.s.recycle.giveBack(c)
}

// close ends the connection.
func (l *lane) close() {
	l.release()
	l.s.recycle.watch.forget(l)
	l.conn.Close()
	l.s.recycle.removeLane(l)
}

func (l *lane) release() {
	if l.br != nil {
		l.br.Reset(nil)
		readerPool.Put(l.br)
		l.br = nil
	}
}

// addLane records a lane, so a shutdown can end it; it refuses when the
// server is draining.
func (rc *recycler) addLane(l *lane) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.draining.Load() {
		return false
	}
	rc.lanes[l] = struct{}{}
	return true
}

func (rc *recycler) removeLane(l *lane) {
	rc.mu.Lock()
	delete(rc.lanes, l)
	rc.mu.Unlock()
}

// drainLanes closes the lanes waiting for a next request; lanes whose poll
// waits close after its answer (the hub answers them all on Drain).
func (rc *recycler) drainLanes() {
	for l := range rc.lanes {
		if l.state.Load() == laneReading {
			l.conn.Close()
		}
	}
}

// laneHeaders are the request headers the poll path reads (who calls, the
// client's address and agent, the framing); the lane's own parser keeps
// only these. A header added to the poll path must be added here.
var laneHeaders = [...]string{
	"Authorization", "Connection", "Content-Length", "Cookie", "Host",
	"Transfer-Encoding", "User-Agent", "X-Forwarded-For", "X-Forwarded-Proto",
}

// parseHead parses the head of a poll request (its bytes up to and
// including the blank line) the way browsers and bots send one:
// "GET /api/events?... HTTP/1.1", one header per line. It returns false
// for anything else (HTTP/1.0, folded or repeated headers, control
// bytes, a body), which net/http's parser then reads: it costs a fraction
// of that parser's time and allocations, and never decides differently.
//
// The headers kept go into h, which must be empty.
func parseHead(head []byte, h http.Header) (*http.Request, bool) {
	// One string for the whole head: every value kept is a piece of it.
	rest := string(head)
	line, rest, ok := strings.Cut(rest, "\r\n")
	if !ok {
		return nil, false
	}
	target, query, ok := pollLine(line)
	if !ok {
		return nil, false
	}
	vals := make([]string, len(laneHeaders))
	for {
		line, rest, ok = strings.Cut(rest, "\r\n")
		if !ok {
			return nil, false
		}
		if line == "" {
			break
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return nil, false
		}
		key, value := line[:colon], strings.Trim(line[colon+1:], " \t")
		for i := 0; i < len(key); i++ {
			if !isTokenByte(key[i]) {
				return nil, false
			}
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
				return nil, false
			}
		}
		for i, name := range laneHeaders {
			if len(key) == len(name) && strings.EqualFold(key, name) {
				if _, dup := h[name]; dup {
					return nil, false
				}
				vals[i] = value
				h[name] = vals[i : i+1 : i+1]
				break
			}
		}
	}
	if rest != "" {
		return nil, false
	}
	host, ok := h["Host"]
	if !ok || host[0] == "" {
		return nil, false
	}
	delete(h, "Host")
	if _, ok := h["Transfer-Encoding"]; ok {
		return nil, false
	}
	if cl, ok := h["Content-Length"]; ok && cl[0] != "0" {
		return nil, false
	}
	r := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Path: "/api/events", RawQuery: query},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       host[0],
		RequestURI: target,
		Body:       http.NoBody,
	}
	if c, ok := h["Connection"]; ok {
		for tok := range strings.SplitSeq(c[0], ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "close") {
				r.Close = true
			}
		}
	}
	return r, true
}

// pollLine reads the request line of a poll, "GET /api/events?... HTTP/1.1",
// and returns its target and query.
func pollLine(line string) (target, query string, ok bool) {
	if len(line) <= len("GET  HTTP/1.1") || !strings.HasPrefix(line, "GET ") || !strings.HasSuffix(line, " HTTP/1.1") {
		return "", "", false
	}
	target = line[len("GET ") : len(line)-len(" HTTP/1.1")]
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f {
			return "", "", false
		}
	}
	path, query, _ := strings.Cut(target, "?")
	if path != "/api/events" {
		return "", "", false
	}
	return target, query, true
}

// isTokenByte reports whether c may appear in a header name (RFC 9110's
// tchar).
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
