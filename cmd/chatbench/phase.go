package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// stepStats counts one posting step. Deliveries are attributed twice: by
// the step the message was sent in (for latency), and by the step during
// which it arrived (for throughput and CPU per delivery, which must match
// the CPU measured over the same window).
type stepStats struct {
	lat        histogram // delivery latency of messages sent in this step
	ackLat     histogram // time from send to the server's acknowledgement
	bySend     atomic.Int64
	byRecv     atomic.Int64
	acked      atomic.Int64
	postErrors atomic.Int64

	win   windowResult // server and harness resources over the step
	store *storeHists  // the server's commits and writes over the step, if it times them
}

// phaseStats counts one phase of one scenario on one system.
type phaseStats struct {
	steps     []*stepStats
	delivered atomic.Int64
	gaps      atomic.Int64 // sequence numbers skipped in what arrived
	missing   atomic.Int64 // messages that had not arrived when the phase stopped
	dups      atomic.Int64
	foreign   atomic.Int64 // messages of other runs or from people
	polls     atomic.Int64
	empty     atomic.Int64 // heartbeats: polls answered with nothing
	other     atomic.Int64 // events other than chatbench messages
	pollErrs  atomic.Int64
	pending   atomic.Int64 // polls written and not yet answered

	mu        sync.Mutex
	errCounts map[string]int
}

// pollError counts a failed poll and remembers its kind.
func (s *phaseStats) pollError(err error) {
	s.pollErrs.Add(1)
	s.noteError("poll: " + err.Error())
}

// noteError remembers an error message, counting repeats, so a report can
// show what went wrong without printing thousands of lines.
func (s *phaseStats) noteError(msg string) {
	msg = addrPattern.ReplaceAllString(msg, "ADDR")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.errCounts == nil {
		s.errCounts = make(map[string]int)
	}
	if len(s.errCounts) < 20 || s.errCounts[msg] > 0 {
		s.errCounts[msg]++
	}
}

// errorSamples returns up to n remembered error messages with their counts.
func (s *phaseStats) errorSamples(n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for m, c := range s.errCounts {
		if len(out) == n {
			break
		}
		out = append(out, fmt.Sprintf("%d× %s", c, m))
	}
	return out
}

// addrPattern matches the socket addresses in network errors, which would
// otherwise make every client's error unique.
var addrPattern = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

// fleet is the clients of a phase.
type fleet struct {
	groups    []*group
	listeners []*listener
	posters   []*poster
}

// phase runs one scenario against one system: it owns the clients, the
// goroutines that drive them and the counters they feed.
type phase struct {
	sys         system
	fleet       *fleet
	stats       *phaseStats
	run         uint32
	payloadSize int
	pollTimeout time.Duration

	ctx    context.Context
	cancel context.CancelFunc

	stopping atomic.Bool
	curStep  atomic.Int32 // the step being measured; deliveries outside any step count nowhere
	lastStep atomic.Int32 // posters stop before this step
	budget   atomic.Int64 // messages left in a counted step

	listenWG sync.WaitGroup
}

// newPhase prepares a phase over an already provisioned fleet.
func newPhase(ctx context.Context, sys system, f *fleet, cfg *config) *phase {
	ctx, cancel := context.WithCancel(ctx)
	ph := &phase{
		sys:         sys,
		fleet:       f,
		stats:       &phaseStats{},
		run:         rand.Uint32(),
		payloadSize: cfg.payload,
		pollTimeout: cfg.pollTimeout,
		ctx:         ctx,
		cancel:      cancel,
	}
	ph.curStep.Store(-1)
	ph.lastStep.Store(1 << 30)
	nPosters := len(f.posters)
	for _, l := range f.listeners {
		l.next = make([]uint32, nPosters)
		for i := range l.next {
			l.next[i] = 1
		}
		l.progress.Store(0)
		l.done.Store(0)
	}
	return ph
}

// setSteps makes room for n steps of statistics.
func (ph *phase) setSteps(n int) {
	ph.stats.steps = make([]*stepStats, n)
	for i := range ph.stats.steps {
		ph.stats.steps[i] = &stepStats{}
	}
}

// prime makes every listener's first request, with bounded concurrency,
// so that each has a connection and (in chatd) a cursor before anything is
// posted.
func (ph *phase) prime(concurrency int) error {
	// Closing the connections ends requests in flight when the run is
	// cancelled; the listeners redial when they start.
	stop := context.AfterFunc(ph.ctx, func() {
		for _, l := range ph.fleet.listeners {
			l.conn.drop()
		}
	})
	defer stop()
	return forEach(ph.ctx, len(ph.fleet.listeners), concurrency, func(i int) error {
		return ph.sys.prime(ph.ctx, ph.fleet.listeners[i])
	})
}

// online brings a fleet to the starting line: every listener connects
// and polls once (in chatd that makes it online), every client joins its
// room, and every listener takes a fresh cursor, past its room's join
// events. It logs how long each stage took.
func (ph *phase) online(concurrency int, log *slog.Logger) error {
	t := time.Now()
	if err := ph.prime(concurrency); err != nil {
		return err
	}
	t1 := time.Now()
	if err := ph.sys.join(ph.ctx, ph.fleet); err != nil {
		return err
	}
	t2 := time.Now()
	if err := ph.prime(concurrency); err != nil {
		return err
	}
	log.Info("clients online", "listeners", len(ph.fleet.listeners), "first_polls", t1.Sub(t).Round(time.Millisecond),
		"joins", t2.Sub(t1).Round(time.Millisecond), "cursors", time.Since(t2).Round(time.Millisecond))
	return nil
}

// settle waits until the server holds n long-polls and no reply has
// arrived for half a second: new chatd clients first receive each other's
// login events, and a measurement must not start in that burst. If the
// server does not report its held polls, the harness's own count of
// unanswered polls stands in.
func (ph *phase) settle(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	quietSince, lastPolls := time.Now(), ph.stats.polls.Load()
	for {
		pause(ph.ctx, 100*time.Millisecond)
		if err := ph.ctx.Err(); err != nil {
			return err
		}
		if p := ph.stats.polls.Load(); p != lastPolls {
			quietSince, lastPolls = time.Now(), p
		}
		held, err := ph.sys.held(ph.ctx)
		if err != nil {
			return err
		}
		if held < 0 {
			held = int(ph.stats.pending.Load())
		}
		if held >= n && time.Since(quietSince) >= 500*time.Millisecond {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v the server holds %d of %d long-polls (%d poll errors: %s)",
				timeout, held, n, ph.stats.pollErrs.Load(), strings.Join(ph.stats.errorSamples(3), "; "))
		}
	}
}

// post runs the posters through steps, measuring the server and the harness
// over each step. After each step, judge may end the run early by
// returning false.
func (ph *phase) post(steps []step, judge func(k int) bool) {
	ph.setSteps(len(steps))
	starts := make([]time.Time, len(steps))
	t := time.Now().Add(50 * time.Millisecond)
	for k, st := range steps {
		starts[k] = t
		t = t.Add(st.dur)
	}
	for _, st := range steps {
		if st.count > 0 { // counted steps are only used alone
			ph.budget.Store(st.count)
		}
	}
	var wg sync.WaitGroup
	for _, p := range ph.fleet.posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ph, steps, starts)
		}()
	}
	postersDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(postersDone)
	}()
	for k := range steps {
		pause(ph.ctx, time.Until(starts[k]))
		ph.curStep.Store(int32(k))
		h0, timed := ph.sys.storeTimes(ph.ctx)
		w := openWindow(ph.sys.procs())
		end := time.NewTimer(time.Until(starts[k].Add(steps[k].dur)))
		select {
		case <-end.C:
		case <-postersDone:
		case <-ph.ctx.Done():
		}
		end.Stop()
		res, err := w.close()
		if err != nil {
			ph.stats.noteError("measure: " + err.Error())
		}
		ph.stats.steps[k].win = res
		if h1, ok := ph.sys.storeTimes(ph.ctx); timed && ok {
			d := h1.minus(h0)
			ph.stats.steps[k].store = &d
		}
		if judge != nil && !judge(k) {
			ph.lastStep.Store(int32(k + 1))
			break
		}
	}
	ph.curStep.Store(-1)
	wg.Wait()
}

// expected returns how many messages listener l should account for once
// every poster has finished: the sum of its group's posters' sequences.
func expected(l *listener) int64 {
	var n int64
	for _, p := range l.group.posters {
		n += int64(p.seq.Load())
	}
	return n
}

// drain waits until every listener has accounted for every message posted
// to its group, or until timeout. It reports whether all caught up.
func (ph *phase) drain(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		behind := 0
		for _, l := range ph.fleet.listeners {
			if l.progress.Load() < expected(l) {
				behind++
			}
		}
		if behind == 0 {
			return true
		}
		if time.Now().After(deadline) || ph.ctx.Err() != nil {
			return false
		}
		pause(ph.ctx, 20*time.Millisecond)
	}
}

// stop ends every client and waits for the listeners to return, then
// counts the messages that never arrived as missing.
func (ph *phase) stop() {
	ph.stopping.Store(true)
	for _, l := range ph.fleet.listeners {
		l.conn.close()
	}
	for _, p := range ph.fleet.posters {
		p.conn.close()
	}
	ph.listenWG.Wait()
	ph.cancel()
	for _, l := range ph.fleet.listeners {
		for _, p := range l.group.posters {
			if missing := int64(p.seq.Load()) - int64(l.next[p.idx]-1); missing > 0 {
				ph.stats.missing.Add(missing)
			}
		}
	}
}

// forEach calls fn(i) for i in [0, n) on up to concurrency goroutines and
// returns the first error.
func forEach(ctx context.Context, n, concurrency int, fn func(i int) error) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < min(concurrency, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { firstErr = err })
					next.Store(int64(n)) // stop handing out work
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// errUnsupported reports a scenario that a system cannot run.
var errUnsupported = errors.New("not supported by this system")
