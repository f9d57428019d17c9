package chatd

import (
	"runtime"
	"sync"
)

// answerWriters write the answers of held polls.
//
// The hub answers a publication's polls on the goroutine that published
// it, which is the database's writer: it must not spend a system call per
// listener of a large room, and waking each held lane's goroutine to write
// its own answer cost a goroutine switch per answer. So the answer of a
// held poll is queued, and a few writer goroutines (one per CPU at most,
// started when answers wait and gone when none do) write the queued
// answers one after another, without waiting on any socket (writeHeld).
type answerWriters struct {
	mu      sync.Mutex
	queue   []*lane
	head    int // queue[head:] wait
	running int
}

// writerBatch is how many answers a writer takes at a time.
const writerBatch = 64

// add queues the answer of the held poll of l, and starts a writer when
// none runs or the queue outgrows those that do.
func (w *answerWriters) add(l *lane) {
	w.mu.Lock()
	w.queue = append(w.queue, l)
	start := w.running == 0 || (len(w.queue)-w.head > writerBatch*w.running && w.running < runtime.GOMAXPROCS(0))
	if start {
		w.running++
	}
	w.mu.Unlock()
	if start {
		go w.run()
	}
}

// run writes queued answers until none are left.
func (w *answerWriters) run() {
	batch := make([]*lane, 0, writerBatch)
	for {
		w.mu.Lock()
		n := min(len(w.queue)-w.head, writerBatch)
		if n == 0 {
			w.running--
			w.mu.Unlock()
			return
		}
		batch = append(batch[:0], w.queue[w.head:w.head+n]...)
		clear(w.queue[w.head : w.head+n])
		if w.head += n; w.head == len(w.queue) {
			w.queue, w.head = w.queue[:0], 0
		} else if w.head > 1024 && 2*w.head > len(w.queue) {
			// Never empty for long: move what waits to the front, so
			// the queue does not grow without end.
			k := copy(w.queue, w.queue[w.head:])
			clear(w.queue[k:])
			w.queue, w.head = w.queue[:k], 0
		}
		w.mu.Unlock()
		for _, l := range batch {
			l.writeHeld()
		}
	}
}
