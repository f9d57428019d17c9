//go:build linux

package chatd

import (
	"io"
	"syscall"
)

// waitReader reads a lane's connection. When its last read emptied the
// socket, it waits for the client's next bytes before it reads, rather than
// try a read that fails with EAGAIN first, as the net package does: on a
// busy connection the next poll has nearly always not arrived when the
// answer has just been written, so that would cost a system call per
// answer for nothing.
type waitReader struct {
	raw     syscall.RawConn
	drained bool // the last read left the socket empty
}

func (r *waitReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	wait := r.drained
	rerr := r.raw.Read(func(fd uintptr) bool {
		if wait {
			// Data that came after the last read woke the poller
			// (the net poller is edge-triggered): wait for that.
			wait = false
			return false
		}
		for {
			n, err = syscall.Read(int(fd), p)
			if err != syscall.EINTR {
				return err != syscall.EAGAIN
			}
		}
	})
	switch {
	case rerr != nil:
		return 0, rerr
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	}
	r.drained = n < len(p)
	return n, nil
}

// reader returns what the lane's buffer reads from: the connection through
// a waitReader, or the connection as it is while bytes read ahead are in
// front of it or its descriptor is out of reach.
func (l *lane) reader() io.Reader {
	if bc, ok := l.src.(*bufferedConn); (ok && len(bc.early) > 0) || l.raw == nil {
		return l.src
	}
	l.rd.raw = l.raw
	return &l.rd
}
