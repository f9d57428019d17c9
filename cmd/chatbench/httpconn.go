package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
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

	in       inbuf
	reply    reply
	dials    int
	deadline time.Time // of nc; renewed only when it gets close
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
	c.in.start, c.in.end = 0, 0
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
	if err := c.readReply(nc); err != nil {
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

// readReply reads one response into c.reply.
func (c *httpConn) readReply(nc net.Conn) error {
	for eof := false; ; {
		n, err := parseReply(c.in.unread(), eof, &c.reply)
		if err != nil {
			return err
		}
		if n > 0 {
			c.in.consume(n)
			return nil
		}
		m, err := nc.Read(c.in.space())
		c.in.end += m
		switch {
		case err == io.EOF:
			eof = true
		case err != nil:
			return readFailed(err, len(c.in.unread()))
		}
	}
}

// inbuf holds the bytes read from a connection; in.b[start:end] are not
// parsed yet.
type inbuf struct {
	b          []byte
	start, end int
}

// readSize is the least room a read is given.
const readSize = 4096

// unread returns the bytes not parsed yet.
func (in *inbuf) unread() []byte { return in.b[in.start:in.end] }

// consume marks n bytes parsed.
func (in *inbuf) consume(n int) {
	in.start += n
	if in.start == in.end {
		in.start, in.end = 0, 0
	}
}

// space returns room for the next read at the end of the buffer, moving
// the unparsed bytes to the front or growing it first when needed. It
// invalidates what parseReply returned pointing into the buffer.
func (in *inbuf) space() []byte {
	if len(in.b)-in.end < readSize {
		n := in.end - in.start
		if in.start > 0 && len(in.b)-n >= readSize {
			copy(in.b, in.b[in.start:in.end])
		} else {
			nb := make([]byte, max(2*len(in.b), n+readSize))
			copy(nb, in.b[in.start:in.end])
			in.b = nb
		}
		in.start, in.end = 0, n
	}
	return in.b[in.end:]
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
