package chatd

import (
	"runtime/debug"
	rtmetrics "runtime/metrics"
)

// minRelease is the least memory worth a forced collection and release:
// of free heap, or of objects new since the last release.
const minRelease = 16 << 20

// heapRelease hands the memory a burst left behind (a crowd signing in, a
// reconnect storm) and the garbage of a quiet spell back to the OS once
// the server is quiet.
//
// Go's scavenger returns free heap by itself, but slowly, and keeps about
// as much again as the heap in use; debug.FreeOSMemory collects and
// returns it all at once, at the price of a full collection (0.2–0.3 s
// with 18,000 clients connected, on two cores). On a busy server that buys
// nothing, since the heap grows back into the released pages within
// seconds and faults them in again, and collections come often anyway. So
// it is paid only when at most one collection ran since the last look 30 s
// before (the heap is not being refilled) and there is something to hand
// back: at least minRelease of free heap, or as much of new objects since
// the last release, most of them garbage on a quiet server.
type heapRelease struct {
	samples []rtmetrics.Sample
	cycles  uint64 // collections counted at the last look
	after   uint64 // bytes in objects right after the last release
}

// afterBurst looks at the heap and releases its free memory if the server
// is quiet. The caller calls it periodically (every 30 s) from one
// goroutine.
func (h *heapRelease) afterBurst() {
	if !h.quiet(h.read()) {
		return
	}
	debug.FreeOSMemory()
	// Its own collection says nothing about the load.
	h.cycles, _, h.after = h.read()
}

// quiet reports, from the count of collections so far, the free heap the
// runtime still holds and the bytes in objects (live or not yet
// collected), whether releasing is worth it.
func (h *heapRelease) quiet(cycles, free, objects uint64) bool {
	busy := cycles-h.cycles > 1
	h.cycles = cycles
	return !busy && (free >= minRelease || objects >= h.after+minRelease)
}

// read returns the runtime's count of collections so far, the bytes of
// heap that are free but not yet returned to the OS, and the bytes in
// objects, live or not yet collected.
func (h *heapRelease) read() (cycles, free, objects uint64) {
	if h.samples == nil {
		h.samples = []rtmetrics.Sample{
			{Name: "/gc/cycles/total:gc-cycles"},
			{Name: "/memory/classes/heap/free:bytes"},
			{Name: "/memory/classes/heap/objects:bytes"},
		}
	}
	rtmetrics.Read(h.samples)
	return h.samples[0].Value.Uint64(), h.samples[1].Value.Uint64(), h.samples[2].Value.Uint64()
}
