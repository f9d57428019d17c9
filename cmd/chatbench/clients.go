package main

import (
	"bytes"
	"context"
	"strconv"
	"sync/atomic"
	"time"
)

// A chatbench message carries everything a listener needs to judge its
// delivery, in plain ASCII that no server escapes:
//
//	cb1.RUN.STEP.POSTER.SEQ.SENT.xxxx…
//
// RUN tells this phase's messages from any other's, STEP is the rate step
// the message was sent in, POSTER and SEQ let every listener check that it
// saw each poster's messages exactly once and in order, and SENT is the
// send time in nanoseconds since the harness started. Padding brings the
// message to the configured size.
var payloadMagic = []byte("cb1.")

// appendPayload appends a message of at least size bytes to b.
func appendPayload(b []byte, run uint32, step, poster int, seq uint32, sent int64, size int) []byte {
	start := len(b)
	b = append(b, payloadMagic...)
	b = strconv.AppendUint(b, uint64(run), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(step), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(poster), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(seq), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, sent, 10)
	b = append(b, '.')
	for len(b)-start < size {
		b = append(b, 'x')
	}
	return b
}

// payload is a parsed chatbench message header.
type payload struct {
	run    uint32
	step   int
	poster int
	seq    uint32
	sent   int64
}

// parsePayload reads the header of a chatbench message. It returns false
// for anything else, such as a message a person posted.
func parsePayload(b []byte) (payload, bool) {
	var p payload
	if !bytes.HasPrefix(b, payloadMagic) {
		return p, false
	}
	b = b[len(payloadMagic):]
	var f [5]int64
	for i := range f {
		n, rest, ok := leadingInt(b)
		if !ok || len(rest) == 0 || rest[0] != '.' {
			return p, false
		}
		f[i], b = n, rest[1:]
	}
	if f[0] > 1<<32-1 || f[3] > 1<<32-1 || f[1] > 1<<20 || f[2] > 1<<30 {
		return p, false
	}
	return payload{run: uint32(f[0]), step: int(f[1]), poster: int(f[2]), seq: uint32(f[3]), sent: f[4]}, true
}

// leadingInt parses the non-negative decimal integer at the start of b.
func leadingInt(b []byte) (int64, []byte, bool) {
	var n int64
	i := 0
	for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		if n > (1<<62)/10 {
			return 0, b, false
		}
		n = n*10 + int64(b[i]-'0')
	}
	return n, b[i:], i > 0
}

// group is a chat room (chatd) or channel (nchan) with its listeners and
// posters.
type group struct {
	name      string
	listeners []*listener
	posters   []*poster
}

// listener is one simulated client: one connection, one long-poll at a
// time, following its cursor.
type listener struct {
	id    int
	group *group
	conn  *httpConn
	req   []byte

	// chatd state.
	token  string
	cursor int64 // -1 until the first reply

	// nchan state.
	path    string
	lastMod []byte
	etag    []byte

	// next holds the next sequence number expected from each poster of the
	// phase, by poster index; it is touched only by the listener's own
	// goroutine until the phase has stopped.
	next []uint32
	// progress counts the messages this listener has accounted for (each
	// delivered in order, or skipped over as a gap), so the phase can tell
	// when every listener has caught up without reading next.
	progress atomic.Int64
	// done is when the listener reached its target (storm), in mono ns.
	done   atomic.Int64
	target int64
	// firstTimeout, if set, is the timeout of the first poll, so that the
	// heartbeats of clients started together spread out as those of
	// clients arriving at random times would.
	firstTimeout time.Duration
}

// deliver accounts for one message payload received at now. It is called
// by the listener's goroutine only.
func (l *listener) deliver(b []byte, now int64, ph *phase) {
	p, ok := parsePayload(b)
	if !ok || p.run != ph.run || p.poster >= len(l.next) {
		ph.stats.foreign.Add(1)
		return
	}
	want := l.next[p.poster]
	switch {
	case p.seq == want:
		l.next[p.poster] = want + 1
		l.progress.Add(1)
	case p.seq > want:
		ph.stats.gaps.Add(int64(p.seq - want))
		l.next[p.poster] = p.seq + 1
		l.progress.Add(int64(p.seq-want) + 1)
	default:
		ph.stats.dups.Add(1)
		return
	}
	if l.target > 0 && l.progress.Load() >= l.target && l.done.Load() == 0 {
		l.done.Store(now)
	}
	if p.step >= 0 && p.step < len(ph.stats.steps) {
		s := ph.stats.steps[p.step]
		s.lat.record(now - p.sent)
		s.bySend.Add(1)
	}
	if w := int(ph.curStep.Load()); w >= 0 && w < len(ph.stats.steps) {
		ph.stats.steps[w].byRecv.Add(1)
	}
	ph.stats.delivered.Add(1)
}

// pause sleeps for d or until ctx is done.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// poster is one simulated author (in chatd, its own bot account) posting
// into one group, one message at a time.
type poster struct {
	idx   int
	group *group
	conn  *httpConn
	req   []byte
	body  []byte

	token string // chatd
	path  string // where to POST

	seq   atomic.Uint32 // last sequence number sent
	acked atomic.Int64
}

// step is one stretch of posting at a fixed total rate.
type step struct {
	rate  float64       // messages per second over all posters; 0: as fast as they can
	dur   time.Duration // how long the step lasts
	count int64         // if >0, the step ends after this many messages in all
}

// run posts through the phase's steps. Each poster owns an equal share of
// the rate and keeps its own schedule, staggered so posters do not fire
// together; a poster that falls behind sends at once rather than bursting
// to catch up.
func (p *poster) run(ph *phase, steps []step, starts []time.Time) {
	n := len(ph.fleet.posters)
	for k, st := range steps {
		if k >= int(ph.lastStep.Load()) {
			return
		}
		end := starts[k].Add(st.dur)
		var interval time.Duration
		if st.rate > 0 {
			interval = time.Duration(float64(time.Second) * float64(n) / st.rate)
		}
		next := starts[k].Add(interval * time.Duration(p.idx) / time.Duration(n))
		if d := time.Until(starts[k]); d > 0 {
			pause(ph.ctx, d)
		}
		for ph.ctx.Err() == nil && !ph.stopping.Load() && k < int(ph.lastStep.Load()) {
			now := time.Now()
			if !now.Before(end) {
				break
			}
			if interval > 0 {
				if d := next.Sub(now); d > 0 {
					pause(ph.ctx, min(d, end.Sub(now)))
					if !time.Now().Before(end) {
						break
					}
				}
				next = next.Add(interval)
				if lag := time.Since(next); lag > interval*4 {
					next = time.Now() // fell far behind: do not burst
				}
			}
			if st.count > 0 && ph.budget.Add(-1) < 0 {
				break
			}
			p.postOne(ph, k)
		}
	}
}

// postOne sends the next message and records its acknowledgement.
func (p *poster) postOne(ph *phase, k int) {
	s := ph.stats.steps[k]
	seq := p.seq.Load() + 1
	p.seq.Store(seq)
	sent := mono()
	p.body = appendPayload(p.body[:0], ph.run, k, p.idx, seq, sent, ph.payloadSize)
	p.req = ph.sys.appendPost(p.req[:0], p, p.body)
	r, err := p.conn.roundTrip(p.req, 30*time.Second)
	if err != nil {
		if !ph.stopping.Load() {
			s.postErrors.Add(1)
			ph.stats.noteError("post: " + err.Error())
		}
		return
	}
	if !ph.sys.postAccepted(r.status) {
		s.postErrors.Add(1)
		ph.stats.noteError("post: HTTP " + strconv.Itoa(r.status) + " " + string(truncate(r.body, 120)))
		if r.retryAfter > 0 {
			pause(ph.ctx, r.retryAfter)
		}
		return
	}
	s.ackLat.record(mono() - sent)
	s.acked.Add(1)
	p.acked.Add(1)
}

// truncate returns at most n bytes of b.
func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
