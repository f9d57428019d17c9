package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"time"
)

// reply is the part of an HTTP response chatbench uses. Its slices are
// valid until the next round trip on the same connection.
type reply struct {
	status       int
	body         []byte // a Content-Length body lies in the read buffer
	lastModified []byte
	etag         []byte
	retryAfter   time.Duration
	close        bool

	chunks []byte // a chunked body, put together
}

var (
	hdrContentLength    = []byte("content-length")
	hdrTransferEncoding = []byte("transfer-encoding")
	hdrConnection       = []byte("connection")
	hdrLastModified     = []byte("last-modified")
	hdrEtag             = []byte("etag")
	hdrRetryAfter       = []byte("retry-after")
)

// maxHead bounds a response's status line and headers.
const maxHead = 64 << 10

// errNoStatus is a response that ended before its status line: what a
// kept-alive connection the server had closed gives. parseReply returns it
// as a staleError.
var errNoStatus = errors.New("connection ended before the status line")

// readFailed is the error of a read that failed while unread bytes of the
// reply were waiting: a reset before any byte is, like an end there
// (errNoStatus), what a connection the server had closed gives.
func readFailed(err error, unread int) error {
	err = fmt.Errorf("read reply: %w", err)
	if unread == 0 && errors.Is(err, syscall.ECONNRESET) {
		return staleError{err}
	}
	return err
}

// parseReply reads the response at the start of b into r and returns the
// number of bytes it took, or 0 when b does not hold all of it yet. eof
// says no more bytes will come: a body without a length ends there, and
// anything else missing is an error.
//
// Both the harness's blocking round trips and its event loop read replies
// this way: read what has come, try to parse, read more when it is short.
// Replies are small, so parsing again after a short read costs little.
func parseReply(b []byte, eof bool, r *reply) (int, error) {
	r.status, r.retryAfter, r.close = 0, 0, false
	r.body = nil
	r.lastModified = r.lastModified[:0]
	r.etag = r.etag[:0]

	line, off, ok := nextLine(b, 0)
	if !ok {
		return short(b, eof, true)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, fmt.Errorf("malformed status line %q", truncate(line, 80))
	}
	st, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("malformed status line %q", truncate(line, 80))
	}
	r.status = st
	if line[7] == '0' {
		r.close = true // HTTP/1.0 closes unless told otherwise
	}

	length, chunked := int64(-1), false
	for {
		line, off, ok = nextLine(b, off)
		if !ok {
			return short(b, eof, true)
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return 0, fmt.Errorf("malformed header %q", truncate(line, 80))
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case asciiEqualFold(name, hdrContentLength):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("bad Content-Length %q", value)
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
		return off, nil
	case chunked:
		return parseChunked(b, off, eof, r)
	case length >= 0:
		if int64(len(b)-off) < length {
			return short(b, eof, false)
		}
		r.body = b[off : off+int(length)]
		return off + int(length), nil
	default:
		// No length: the body runs to the end of the connection.
		if !eof {
			return 0, nil
		}
		r.close = true
		r.body = b[off:]
		return len(b), nil
	}
}

// parseChunked reads the chunked body starting at off into r.chunks.
func parseChunked(b []byte, off int, eof bool, r *reply) (int, error) {
	r.chunks = r.chunks[:0]
	for {
		line, next, ok := nextLine(b, off)
		if !ok {
			return short(b, eof, false)
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad chunk size %q", truncate(line, 80))
		}
		off = next
		if n == 0 {
			for { // trailers, then the blank line
				line, off, ok = nextLine(b, off)
				if !ok {
					return short(b, eof, false)
				}
				if len(line) == 0 {
					r.body = r.chunks
					return off, nil
				}
			}
		}
		if int64(len(b)-off) < n+2 {
			return short(b, eof, false)
		}
		r.chunks = append(r.chunks, b[off:off+int(n)]...)
		off += int(n) + 2 // and the chunk's CRLF
	}
}

// nextLine returns the line of b starting at off without its LF or CRLF,
// and where the next one starts; false when the line is not complete.
func nextLine(b []byte, off int) ([]byte, int, bool) {
	i := bytes.IndexByte(b[off:], '\n')
	if i < 0 {
		return nil, off, false
	}
	return trimEOL(b[off : off+i+1]), off + i + 1, true
}

// short is parseReply's answer for an incomplete response (in its head,
// or in its body): wait for more, unless no more will come or the head has
// grown past reason.
func short(b []byte, eof, inHead bool) (int, error) {
	switch {
	case eof && len(b) == 0:
		return 0, staleError{errNoStatus}
	case eof:
		return 0, fmt.Errorf("response cut short after %d bytes", len(b))
	case inHead && len(b) > maxHead:
		return 0, fmt.Errorf("response head over %d bytes", maxHead)
	}
	return 0, nil
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
