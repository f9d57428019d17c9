//go:build !linux

package chatd

// watcher is Linux only: elsewhere a waiting poll whose client closed its
// connection is noticed when the poll is answered (at its timeout at the
// latest).
type watcher struct{}

func newWatcher() *watcher        { return nil }
func (w *watcher) watch(l *lane)  {}
func (w *watcher) forget(l *lane) {}
func (w *watcher) close()         {}
