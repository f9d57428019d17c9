package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// epoch is the harness's time origin. Send and receive times are both taken
// from the monotonic clock relative to it, so a latency never depends on the
// wall clock.
var epoch = time.Now()

// mono returns nanoseconds since epoch on the monotonic clock.
func mono() int64 { return int64(time.Since(epoch)) }

// The latency histogram counts microseconds in log-linear buckets: exact
// below 256 µs, then 128 buckets per power of two (under 1% error), which
// covers a few hours in about 4,500 buckets.
const (
	histExact = 256
	histSub   = 128
	histMaxE  = 36
	histSize  = histExact + histMaxE*histSub
)

// histogram is a concurrent latency histogram. Recording is one atomic add,
// cheap enough to do for every delivery.
type histogram struct {
	counts [histSize]atomic.Uint64
	max    atomic.Int64
}

// bucketOf maps a duration in microseconds to its bucket.
func bucketOf(us uint64) int {
	if us < histExact {
		return int(us)
	}
	e := bits.Len64(us) - 8 // us>>e keeps 8 significant bits: 128..255
	if e > histMaxE {
		return histSize - 1
	}
	return histExact + (e-1)*histSub + int(us>>e) - histSub
}

// bucketLow returns the smallest value in microseconds that falls in bucket b.
func bucketLow(b int) uint64 {
	if b < histExact {
		return uint64(b)
	}
	b -= histExact
	e := b/histSub + 1
	return uint64(histSub+b%histSub) << e
}

// record adds one observation of ns nanoseconds. Negative values (clock
// noise) count as zero.
func (h *histogram) record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.counts[bucketOf(uint64(ns/1000))].Add(1)
	for {
		m := h.max.Load()
		if ns <= m || h.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

// summary is a read-out of a histogram.
type summary struct {
	Count              uint64
	P50, P90, P99, Max time.Duration
}

// summarize computes the count, percentiles and maximum recorded so far.
// Percentiles report the upper edge of their bucket (at most 1% high).
func (h *histogram) summarize() summary {
	var counts [histSize]uint64
	var total uint64
	for i := range h.counts {
		counts[i] = h.counts[i].Load()
		total += counts[i]
	}
	s := summary{Count: total, Max: time.Duration(h.max.Load())}
	if total == 0 {
		return s
	}
	q := func(p float64) time.Duration {
		rank := uint64(p*float64(total) + 0.5)
		if rank < 1 {
			rank = 1
		}
		var seen uint64
		for i, c := range counts {
			seen += c
			if seen >= rank {
				hi := bucketLow(i + 1)
				if i < histExact {
					hi = uint64(i) + 1
				}
				d := time.Duration(hi) * time.Microsecond
				if d > s.Max {
					d = s.Max
				}
				return d
			}
		}
		return s.Max
	}
	s.P50, s.P90, s.P99 = q(0.50), q(0.90), q(0.99)
	return s
}

// procStat is what chatbench reads about a server's processes.
type procStat struct {
	CPU time.Duration // user+system time, summed over the processes
	RSS int64         // bytes, VmRSS summed over the processes
	PSS int64         // bytes, proportional set size: shared pages counted once
}

// clockTick is the unit of utime and stime in /proc/PID/stat. Linux reports
// them in USER_HZ, which is 100 on every architecture Go supports.
const clockTick = 10 * time.Millisecond

// readProc sums CPU time and memory over pids. A pid that has gone away is
// an error: the measurement would be wrong without it.
func readProc(pids []int) (procStat, error) {
	var ps procStat
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return ps, fmt.Errorf("read server stat: %w", err)
		}
		// Fields after the command name, which is in parentheses and may
		// hold spaces: state is field 3, utime 14, stime 15.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			return ps, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) < 13 {
			return ps, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
		}
		ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
		st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
		if err1 != nil || err2 != nil {
			return ps, fmt.Errorf("parse /proc/%d/stat: bad utime or stime", pid)
		}
		ps.CPU += time.Duration(ut+st) * clockTick
		rss, err := statusField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
		if err != nil {
			return ps, err
		}
		ps.RSS += rss
		pss, err := statusField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
		if err != nil {
			pss = rss // kernels without smaps_rollup: fall back to RSS
		}
		ps.PSS += pss
	}
	return ps, nil
}

// statusField returns the value in bytes of a "Name:  N kB" line of a /proc
// file.
func statusField(path, name string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("read server memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(name)) {
			continue
		}
		fs := bytes.Fields(line[len(name):])
		if len(fs) == 0 {
			break
		}
		kb, err := strconv.ParseInt(string(fs[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s %s: %w", path, name, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%s: no %s line", path, name)
}

// childPIDs lists the processes whose parent is pid (nginx's workers).
func childPIDs(pid int) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 2 {
			continue
		}
		if pp, _ := strconv.Atoi(string(f[1])); pp == pid {
			if k, err := strconv.Atoi(filepath.Base(filepath.Dir(d))); err == nil {
				kids = append(kids, k)
			}
		}
	}
	return kids
}

// selfCPU returns the CPU time the harness itself has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg returns the one-minute load average, or -1 if it cannot be read.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := bytes.Fields(b)
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(string(f[0]), 64)
	if err != nil {
		return -1
	}
	return v
}

// window measures the server's and the harness's resources between two
// instants.
type window struct {
	start     time.Time
	server0   procStat
	harness0  time.Duration
	pids      []int
	serverErr error
}

// openWindow starts a measurement over pids.
func openWindow(pids []int) *window {
	w := &window{start: time.Now(), pids: pids, harness0: selfCPU()}
	w.server0, w.serverErr = readProc(pids)
	return w
}

// windowResult is what a closed window measured.
type windowResult struct {
	Elapsed    time.Duration
	ServerCPU  time.Duration
	HarnessCPU time.Duration
	Server     procStat // at the end of the window
}

// close ends the measurement.
func (w *window) close() (windowResult, error) {
	r := windowResult{Elapsed: time.Since(w.start), HarnessCPU: selfCPU() - w.harness0}
	if w.serverErr != nil {
		return r, w.serverErr
	}
	end, err := readProc(w.pids)
	if err != nil {
		return r, err
	}
	r.Server = end
	r.ServerCPU = end.CPU - w.server0.CPU
	return r, nil
}
