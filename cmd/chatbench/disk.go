package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// The disk's share of a durable server's latency, measured three ways:
// chatd's own timing of its commits over each measured window, its timing
// of its callers' writes (queueing behind other writes included), and a
// probe of the data directory's fsync before each scenario, which tells
// what the disk alone does to a writer that syncs a small append every few
// milliseconds.

// commitMetric is chatd's histogram of COMMIT times (the WAL append and
// its fsync); writeMetric its histogram of how long each write's caller
// waited (for the writer, the work, and the commit).
const (
	commitMetric = "chatd_store_commit_seconds"
	writeMetric  = "chatd_store_write_seconds"
)

// timeHist is a cumulative Prometheus histogram of durations as /metrics
// shows it: counts[i] observations took at most le[i] seconds.
type timeHist struct {
	le     []float64
	counts []float64
	sum    float64
	n      float64
}

// parseHist reads the named histogram's buckets, sum and count from
// Prometheus text. ok is false when the histogram is not there.
func parseHist(text []byte, metric string) (h timeHist, ok bool) {
	bucket := []byte(metric + `_bucket{le="`)
	h.sum, _ = metricValue(text, metric+"_sum")
	h.n, ok = metricValue(text, metric+"_count")
	for line := range bytes.Lines(text) {
		if rest, found := bytes.CutPrefix(bytes.TrimRight(line, "\n"), bucket); found {
			end := bytes.IndexByte(rest, '"')
			if end < 0 || end+2 > len(rest) {
				continue
			}
			f := bytes.Fields(rest[end+2:]) // after `"}`
			if len(f) != 1 {
				continue
			}
			le, err1 := strconv.ParseFloat(string(rest[:end]), 64)
			c, err2 := strconv.ParseFloat(string(f[0]), 64)
			if err1 == nil && err2 == nil {
				h.le = append(h.le, le)
				h.counts = append(h.counts, c)
			}
		}
	}
	return h, ok && len(h.le) > 0
}

func (h timeHist) clone() timeHist {
	return timeHist{le: slices.Clone(h.le), counts: slices.Clone(h.counts), sum: h.sum, n: h.n}
}

// minus returns the observations of h that are not in o, an earlier
// reading of the same histogram.
func (h timeHist) minus(o timeHist) timeHist {
	return h.add(o, -1)
}

// plus returns the observations of h and of o, read with the same
// buckets (h may be empty).
func (h timeHist) plus(o timeHist) timeHist {
	if len(h.le) == 0 {
		return o.clone()
	}
	return h.add(o, +1)
}

// add returns h with sign times o's counts added, bucket by bucket.
func (h timeHist) add(o timeHist, sign float64) timeHist {
	d := h.clone()
	if len(o.counts) != len(d.counts) {
		return d // different buckets: nothing to add
	}
	for i := range d.counts {
		d.counts[i] += sign * o.counts[i]
	}
	d.sum += sign * o.sum
	d.n += sign * o.n
	return d
}

// timeSummary is what a report says about the commits, or the writes, of
// a window.
type timeSummary struct {
	Count  int64   `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	// P99Ms is the upper bound of the bucket holding the 99th percentile
	// (-1 when it is beyond the last bucket).
	P99Ms float64 `json:"p99_at_most_ms"`
	// Over5 and Over20 count those that took more than 5 and 20 ms.
	Over5  int64 `json:"over_5ms"`
	Over20 int64 `json:"over_20ms"`
	// SlowestMs is the upper bound of the bucket holding the slowest
	// (-1 when it is beyond the last bucket).
	SlowestMs float64 `json:"slowest_at_most_ms"`
}

// summary reduces h for a report.
func (h timeHist) summary() timeSummary {
	s := timeSummary{Count: int64(h.n), P99Ms: -1, SlowestMs: -1}
	if h.n <= 0 {
		return s
	}
	s.MeanMs = h.sum / h.n * 1000
	s.P99Ms = h.bound(0.99 * h.n)
	s.SlowestMs = h.bound(h.n)
	s.Over5 = int64(h.n - h.at(0.005))
	s.Over20 = int64(h.n - h.at(0.020))
	return s
}

// describe says s in a report's words: the count, mean, p99, slowest and
// how many took over 5 and 20 ms.
func (s timeSummary) describe() string {
	bound := func(ms float64) string {
		if ms < 0 {
			return "beyond the last bucket"
		}
		return "≤ " + num(ms) + " ms"
	}
	return fmt.Sprintf("%s, mean %s ms, p99 %s, slowest %s, %s over 5 ms, %s over 20 ms",
		thousands(s.Count), num(s.MeanMs), bound(s.P99Ms), bound(s.SlowestMs), thousands(s.Over5), thousands(s.Over20))
}

// bound returns the upper bound, in milliseconds, of the first bucket that
// holds at least n observations (-1 when only the +Inf bucket does).
func (h timeHist) bound(n float64) float64 {
	for i, le := range h.le {
		if h.counts[i] >= n {
			if math.IsInf(le, 1) {
				return -1
			}
			return le * 1000
		}
	}
	return -1
}

// at returns how many observations took at most le seconds (le must be a
// bucket bound; otherwise the next smaller bound counts).
func (h timeHist) at(le float64) float64 {
	var c float64
	for i, b := range h.le {
		if b > le {
			break
		}
		c = h.counts[i]
	}
	return c
}

// fsyncProbe is what the data directory's disk did when asked to sync a
// small append every few milliseconds.
type fsyncProbe struct {
	Syncs int     `json:"syncs"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	Over5 int     `json:"over_5ms"`
}

// probeFsync appends 64 KiB to a file in dir and fdatasyncs it, every 2 ms,
// for dur: about one small commit's worth of WAL, at the pace of the
// many-rooms scenario. The file is removed afterwards. Its percentiles come
// from the histogram every latency in the report uses.
func probeFsync(ctx context.Context, dir string, dur time.Duration) (fsyncProbe, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return fsyncProbe{}, fmt.Errorf("fsync probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 64<<10)
	h := new(histogram)
	over5 := 0
	end := time.Now().Add(dur)
	for time.Now().Before(end) && ctx.Err() == nil {
		if _, err := f.Write(buf); err != nil {
			return fsyncProbe{}, fmt.Errorf("fsync probe: write %s: %w", filepath.Base(f.Name()), err)
		}
		t := time.Now()
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return fsyncProbe{}, fmt.Errorf("fsync probe: fdatasync: %w", err)
		}
		d := time.Since(t)
		h.record(int64(d))
		if d > 5*time.Millisecond {
			over5++
		}
		time.Sleep(2 * time.Millisecond) // the pace being probed, not a wait for a condition
	}
	s := h.summarize()
	if s.Count == 0 {
		return fsyncProbe{}, fmt.Errorf("fsync probe: no sync in %v", dur)
	}
	return fsyncProbe{Syncs: int(s.Count), P50Ms: ms(s.P50), P99Ms: ms(s.P99), MaxMs: ms(s.Max), Over5: over5}, nil
}

// storeHists are a durable server's two store histograms, read together.
type storeHists struct {
	commits, writes timeHist
}

// minus returns the observations of h that are not in o, an earlier
// reading.
func (h storeHists) minus(o storeHists) storeHists {
	return storeHists{h.commits.minus(o.commits), h.writes.minus(o.writes)}
}

// plus returns the observations of h and of o.
func (h storeHists) plus(o storeHists) storeHists {
	return storeHists{h.commits.plus(o.commits), h.writes.plus(o.writes)}
}

// parseStoreHists reads both store histograms from Prometheus text. ok is
// false when the commits' is not there; a server without the writes'
// leaves it empty.
func parseStoreHists(text []byte) (h storeHists, ok bool) {
	h.commits, ok = parseHist(text, commitMetric)
	h.writes, _ = parseHist(text, writeMetric)
	return h, ok
}

// storeTimes reads chatd's store histograms. ok is false when the server
// does not export them (or /metrics cannot be read).
func (c *chatdSystem) storeTimes(ctx context.Context) (storeHists, bool) {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	req := appendRequest(nil, "GET", "/metrics", c.addr, nil, "", nil)
	r, err := c.ctl.roundTrip(req, 10*time.Second)
	if err != nil || r.status != 200 {
		return storeHists{}, false
	}
	return parseStoreHists(r.body)
}

// dataDir is where chatbench put chatd's database ("" when it attached to
// a running chatd).
func (c *chatdSystem) dataDir() string {
	if c.srv == nil {
		return ""
	}
	return c.srv.dir
}

// storeTimes: nchan keeps its messages in memory and commits nothing.
func (n *nchanSystem) storeTimes(ctx context.Context) (storeHists, bool) {
	return storeHists{}, false
}

// dataDir: nchan stores nothing, so there is no disk to probe.
func (n *nchanSystem) dataDir() string { return "" }
