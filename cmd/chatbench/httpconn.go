package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// errClosed reports a round trip on a connection that its owner closed,
// which is how a phase stops its clients.
var errClosed = errors.New("connection closed by harness")

// httpConn is one keep-alive HTTP/1.1 connection of one simulated client.
//
// It speaks just enough HTTP/1.1 for chatbench and no more, because the
// harness must cost less than the servers it measures: a request is written
// whole from a buffer the caller prepared, and a reply is read with a
// Content-Length or chunked body into a buffer that is reused. Only the
// status and the few headers chatbench needs are kept. An httpConn is owned
// by one goroutine; only close may be called from another.
type httpConn struct {
	dialer *net.Dialer
	addr   string

	mu     sync.Mutex // guards nc against close from another goroutine
	nc     net.Conn
	closed atomic.Bool

	br       *bufio.Reader
	reply    reply
	dials    int
	deadline time.Time // of nc; renewed only when it gets close
}

// reply is the part of an HTTP response chatbench uses. Its slices are
// valid until the next round trip on the same connection.
type reply struct {
	status       int
	body         []byte
	lastModified []byte
	etag         []byte
	retryAfter   time.Duration
	close        bool
}

// sourceIP returns the loopback source address for connection i. Spreading
// connections over 127.0.0.2 to 127.0.0.251 keeps any one source address
// far from running out of ephemeral ports.
func sourceIP(i int) net.IP {
	return net.IPv4(127, 0, 0, byte(2+i%250))
}

// newHTTPConn returns an unconnected client for addr whose connections come
// from the i-th loopback source address. It dials on first use.
func newHTTPConn(addr string, i int) *httpConn {
	return &httpConn{
		addr: addr,
		dialer: &net.Dialer{
			LocalAddr: &net.TCPAddr{IP: sourceIP(i)},
			Timeout:   10 * time.Second,
		},
	}
}

// dial opens the connection if it is not open.
func (c *httpConn) dial() error {
	if c.closed.Load() {
		return errClosed
	}
	c.mu.Lock()
	nc := c.nc
	c.mu.Unlock()
	if nc != nil {
		return nil
	}
	nc, err := c.dialer.Dial("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", c.addr, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		nc.Close()
		return errClosed
	}
	c.nc = nc
	c.deadline = time.Time{}
	c.dials++
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, 4096)
	} else {
		c.br.Reset(nc)
	}
	return nil
}

// drop closes the current network connection; the next round trip redials.
func (c *httpConn) drop() {
	c.mu.Lock()
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
	c.mu.Unlock()
}

// close closes the connection for good. A round trip blocked on it returns
// errClosed.
func (c *httpConn) close() {
	c.closed.Store(true)
	c.drop()
}

// roundTrip writes req, which must be a complete HTTP/1.1 request, and
// reads the reply, allowing timeout for both. On any error the connection
// is dropped, so the next call starts afresh.
//
// A kept-alive connection may have been closed by the server while idle;
// like any HTTP client, roundTrip then redials once, but only for a GET
// that got no byte of answer, which the server cannot have acted on.
func (c *httpConn) roundTrip(req []byte, timeout time.Duration) (*reply, error) {
	reused := c.isOpen()
	r, err := c.try(req, timeout)
	if err != nil && reused && bytes.HasPrefix(req, []byte("GET ")) && staleConnError(err) {
		r, err = c.try(req, timeout)
	}
	return r, err
}

// isOpen reports whether a connection is open.
func (c *httpConn) isOpen() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nc != nil
}

// staleError marks a failure before any byte of the reply arrived.
type staleError struct{ err error }

func (e staleError) Error() string { return e.err.Error() }
func (e staleError) Unwrap() error { return e.err }

// staleConnError reports whether err is what a connection the server had
// already closed produces: a failed write, or an end or reset before the
// status line.
func staleConnError(err error) bool {
	var se staleError
	return errors.As(err, &se) && !errors.Is(err, errClosed)
}

// try is one attempt of roundTrip.
func (c *httpConn) try(req []byte, timeout time.Duration) (*reply, error) {
	if err := c.dial(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	nc := c.nc
	c.mu.Unlock()
	if nc == nil {
		return nil, errClosed
	}
	// Setting a deadline costs a timer update; renewing it only when less
	// than timeout is left keeps that off the per-request path while still
	// bounding every round trip.
	if now := time.Now(); c.deadline.Sub(now) < timeout {
		c.deadline = now.Add(2 * timeout)
		if err := nc.SetDeadline(c.deadline); err != nil {
			c.drop()
			return nil, c.wrap(err)
		}
	}
	if _, err := nc.Write(req); err != nil {
		c.drop()
		return nil, staleError{c.wrap(err)}
	}
	if err := c.readReply(); err != nil {
		c.drop()
		return nil, c.wrap(err)
	}
	if c.reply.close {
		c.drop()
	}
	return &c.reply, nil
}

// wrap turns errors caused by close into errClosed.
func (c *httpConn) wrap(err error) error {
	if c.closed.Load() {
		return errClosed
	}
	return fmt.Errorf("http %s: %w", c.addr, err)
}

var (
	hdrContentLength    = []byte("content-length")
	hdrTransferEncoding = []byte("transfer-encoding")
	hdrConnection       = []byte("connection")
	hdrLastModified     = []byte("last-modified")
	hdrEtag             = []byte("etag")
	hdrRetryAfter       = []byte("retry-after")
)

// readReply reads one response into c.reply.
func (c *httpConn) readReply() error {
	r := &c.reply
	r.status, r.retryAfter, r.close = 0, 0, false
	r.body = r.body[:0]
	r.lastModified = r.lastModified[:0]
	r.etag = r.etag[:0]

	line, err := c.br.ReadSlice('\n')
	if err != nil {
		err = fmt.Errorf("read status line: %w", err)
		if len(line) == 0 && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return staleError{err}
		}
		return err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return fmt.Errorf("malformed status line %q", line)
	}
	st, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return fmt.Errorf("malformed status line %q", line)
	}
	r.status = st
	if line[7] == '0' {
		r.close = true // HTTP/1.0 closes unless told otherwise
	}

	length, chunked := int64(-1), false
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read header: %w", err)
		}
		line = trimEOL(line)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return fmt.Errorf("malformed header %q", line)
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case asciiEqualFold(name, hdrContentLength):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("bad Content-Length %q", value)
			}
			length = n
		case asciiEqualFold(name, hdrTransferEncoding):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case asciiEqualFold(name, hdrConnection):
			if bytes.EqualFold(value, []byte("close")) {
				r.close = true
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				r.close = false
			}
		case asciiEqualFold(name, hdrLastModified):
			r.lastModified = append(r.lastModified, value...)
		case asciiEqualFold(name, hdrEtag):
			r.etag = append(r.etag, value...)
		case asciiEqualFold(name, hdrRetryAfter):
			if s, err := strconv.Atoi(string(value)); err == nil {
				r.retryAfter = time.Duration(s) * time.Second
			}
		}
	}

	switch {
	case r.status == 204 || r.status == 304 || r.status/100 == 1:
		return nil
	case chunked:
		return c.readChunked()
	case length >= 0:
		r.body = grow(r.body, int(length))
		_, err := io.ReadFull(c.br, r.body)
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		return nil
	default:
		// No length: the body runs to the end of the connection.
		r.close = true
		b, err := io.ReadAll(c.br)
		r.body = append(r.body, b...)
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		return nil
	}
}

// readChunked reads a chunked body into c.reply.body.
func (c *httpConn) readChunked() error {
	r := &c.reply
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read chunk size: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, then the blank line
				line, err = c.br.ReadSlice('\n')
				if err != nil {
					return fmt.Errorf("read trailer: %w", err)
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		old := len(r.body)
		r.body = grow(r.body, old+int(n))
		if _, err := io.ReadFull(c.br, r.body[old:]); err != nil {
			return fmt.Errorf("read chunk: %w", err)
		}
		if _, err := c.br.Discard(2); err != nil {
			return fmt.Errorf("read chunk end: %w", err)
		}
	}
}

// trimEOL drops a trailing LF or CRLF.
func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n > 1 && b[n-2] == '\r' {
			b = b[:n-2]
		}
	}
	return b
}

// grow returns b resized to n bytes, keeping its contents.
func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	nb := make([]byte, n, n+n/2+512)
	copy(nb, b)
	return nb
}

// asciiEqualFold reports whether a equals the lower-case ASCII word lower,
// ignoring case.
func asciiEqualFold(a, lower []byte) bool {
	if len(a) != len(lower) {
		return false
	}
	for i, ch := range a {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != lower[i] {
			return false
		}
	}
	return true
}

// appendRequest appends a complete HTTP/1.1 request to b. headers holds
// whole header lines, each ending in CRLF. A body is sent with its
// Content-Type and Content-Length.
func appendRequest(b []byte, method, target, host string, headers []byte, ctype string, body []byte) []byte {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	b = append(b, headers...)
	if body != nil || method == "POST" {
		if ctype != "" {
			b = append(b, "Content-Type: "...)
			b = append(b, ctype...)
			b = append(b, "\r\n"...)
		}
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}
