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
	h := heapRelease{cycles: 10, after: 100 * mib}
	for _, look := range []struct {
		cycles, free, objects uint64
		want                  bool
		why                   string
	}{
		{14, 200 * mib, 300 * mib, false, "four collections since the last look: the heap is busy"},
		{15, 200 * mib, 100 * mib, true, "one collection since the last look, 200 MiB free"},
		{15, 8 * mib, 104 * mib, false, "quiet, but only 8 MiB free and 4 MiB of new objects"},
		{15, minRelease, 100 * mib, true, "quiet, minRelease free"},
		{15, 0, 100*mib + minRelease, true, "quiet, minRelease of new objects since the last release"},
		{17, 64 * mib, 300 * mib, false, "two collections since the last look"},
	} {
		if got := h.quiet(look.cycles, look.free, look.objects); got != look.want {
			t.Errorf("%s: release %v, want %v", look.why, got, look.want)
		}
	}
}

// TestHeapReleaseReadsTheRuntime: the figures it decides on are the
// runtime's own.
func TestHeapReleaseReadsTheRuntime(t *testing.T) {
	var h heapRelease
	before, _, _ := h.read()
	runtime.GC()
	after, _, objects := h.read()
	if after <= before {
		t.Fatalf("collections counted %d before runtime.GC and %d after", before, after)
	}
	if objects == 0 {
		t.Fatal("no bytes in objects")
	}
	h.afterBurst() // must not panic on any sample
}
