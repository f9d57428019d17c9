package chatd

import (
	"runtime"
	"testing"
)

// TestHeapReleaseOnlyWhenQuiet: memory a burst left behind goes back to the
// OS once the heap stops being refilled, and not while collections keep
// coming, when it would only be faulted in again.
func TestHeapReleaseOnlyWhenQuiet(t *testing.T) {
	const mib = 1 << 20
	h := heapRelease{cycles: 10}
	for _, look := range []struct {
		cycles, free uint64
		want         bool
		why          string
	}{
		{14, 200 * mib, false, "four collections since the last look: the heap is busy"},
		{15, 200 * mib, true, "one collection since the last look, 200 MiB free"},
		{15, 8 * mib, false, "quiet, but only 8 MiB free"},
		{15, minRelease, true, "quiet, minRelease free"},
		{17, 64 * mib, false, "two collections since the last look"},
	} {
		if got := h.quiet(look.cycles, look.free); got != look.want {
			t.Errorf("%s: release %v, want %v", look.why, got, look.want)
		}
	}
}

// TestHeapReleaseReadsTheRuntime: the figures it decides on are the
// runtime's own.
func TestHeapReleaseReadsTheRuntime(t *testing.T) {
	var h heapRelease
	before, _ := h.read()
	runtime.GC()
	after, _ := h.read()
	if after <= before {
		t.Fatalf("collections counted %d before runtime.GC and %d after", before, after)
	}
	h.afterBurst() // must not panic on either sample
}
