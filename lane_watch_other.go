//go:build !linux

package chatd

import "io"

// watcher is Linux only: elsewhere a waiting poll whose client closed its
// connection is noticed when the poll is answered (at its timeout at the
// latest).
type watcher struct{}

func newWatcher() *watcher        { return nil }
func (w *watcher) watch(l *lane)  {}
func (w *watcher) forget(l *lane) {}
func (w *watcher) close()         {}

// waitReader is Linux only.
type waitReader struct{}

// reader returns what the lane's buffer reads from.
func (l *lane) reader() io.Reader { return l.src }
