// Package comet is chatd's delivery engine: per-user event queues in
// memory, the pending long-polls waiting on them, the rule of one pending
// poll per client, and the wake-ups that answer a poll the moment an event
// for its user is published.
//
// A queue holds the most recent events of one user, up to a bound. A poll
// whose cursor falls inside the queue is answered from memory; one whose
// cursor is older is answered from the durable log, so a restart or a long
// absence costs a database read and never a gap. The hub knows nothing of
// rooms or messages: events arrive already encoded, with their recipients.
//
// A waiting poll is a record on its queue, not a blocked goroutine: Start
// registers it and returns, and the hub calls the poll's deliver function
// once, when an event arrives, the timeout passes, a newer poll of the
// same client takes over, or the client is ended. That lets the HTTP layer
// park an idle long-poll's connection without a goroutine or buffers.
package comet

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"
)

// Event is one encoded event of the log.
type Event struct {
	ID   int64
	JSON []byte
	// Published is when the hub received the event; zero for events read
	// back from the log.
	Published time.Time
}

// Log is the durable log the hub reads events from when a queue does not
// hold them any more.
type Log interface {
	// After returns up to limit events after cursor that user may see,
	// oldest first, and the cursor to continue from.
	After(ctx context.Context, user, cursor int64, limit int) ([]Event, int64, error)
}

// Errors a poll may end with.
var (
	// ErrSuperseded: a newer poll of the same client took over.
	ErrSuperseded = errors.New("comet: superseded by a newer poll of the same client")
	// ErrRevoked: the client's credentials were revoked (logout, ban).
	ErrRevoked = errors.New("comet: client revoked")
)

// Config tunes a Hub. Zero fields take the defaults.
type Config struct {
	// QueueSize is how many recent events a user's queue keeps in memory
	// at least; it holds at most twice as many.
	QueueSize int
	// BatchLimit is the most events one poll answer carries.
	BatchLimit int
	// IdleQueue is how long a queue with no poll is kept.
	IdleQueue time.Duration
	// Observe, when set, is told the delay between an event's publication
	// and the answer that carries it to a poll.
	Observe func(time.Duration)
}

func (c *Config) defaults() {
	if c.QueueSize <= 0 {
		c.QueueSize = 512
	}
	if c.BatchLimit <= 0 {
		c.BatchLimit = 500
	}
	if c.IdleQueue <= 0 {
		c.IdleQueue = 2 * time.Minute
	}
}

// Hub holds the queues and pending polls.
type Hub struct {
	cfg Config
	log Log

	mu      sync.Mutex
	closed  bool
	last    int64 // the newest event published; new queues start after it
	queues  map[int64]*queue
	clients map[string]*Pending // the pending poll of each client
	woken   []*queue            // queues with waiters that got events in this publication
}

type queue struct {
	since    int64    // the queue holds every event for the user with id > since
	events   []*Event // ascending ids; trimmed from the front
	waiters  []*Pending
	marked   bool // in h.woken
	polls    int  // polls between Start and their answer
	lastUsed time.Time
}

// Pending is a poll that has been started and not yet answered.
type Pending struct {
	user    int64
	client  string
	q       *queue
	cursor  int64 // where to read from: may be past events not for this user
	reply   int64 // the cursor of an empty answer: the request's
	timer   *time.Timer
	deliver func(Result, error)
	done    bool
}

// answer is a poll's outcome, run after the hub's lock is released.
type answer struct {
	p   *Pending
	res Result
	err error
}

// New returns a hub that reads old events from log. last is the id of the
// newest event already in the log: queues made before anything is published
// start after it.
func New(log Log, last int64, cfg Config) *Hub {
	cfg.defaults()
	return &Hub{
		cfg:     cfg,
		log:     log,
		last:    last,
		queues:  make(map[int64]*queue),
		clients: make(map[string]*Pending),
	}
}

// Delivery is one event with the users who may see it.
type Delivery struct {
	Event Event
	To    []int64
	// Everyone delivers the event to every user with a queue.
	Everyone bool
}

// Publish appends ev to the queues of the users in to (or of every user with
// a queue, when everyone is set) and answers their waiting polls. Events
// must be published in increasing id order. Users without a queue in memory
// will read the event from the log.
func (h *Hub) Publish(ev Event, to []int64, everyone bool) {
	h.PublishBatch([]Delivery{{Event: ev, To: to, Everyone: everyone}})
}

// PublishBatch publishes the events of one commit together: every queue
// gets its events before any waiting poll is answered, so a poll answers
// with all of them at once rather than one answer each.
func (h *Hub) PublishBatch(batch []Delivery) {
	now := time.Now()
	h.mu.Lock()
	for i := range batch {
		d := &batch[i]
		// A copy of its own: queues keep the event after the caller reuses
		// the batch.
		e := new(Event)
		*e = d.Event
		e.Published = now
		h.last = max(h.last, e.ID)
		if d.Everyone {
			for _, q := range h.queues {
				h.push(q, e)
			}
			continue
		}
		for _, u := range d.To {
			if q := h.queues[u]; q != nil {
				h.push(q, e)
			}
		}
	}
	var ready []answer
	for _, q := range h.woken {
		q.marked = false
		for _, p := range slices.Clone(q.waiters) {
			if evs := q.after(p.cursor, h.cfg.BatchLimit); len(evs) > 0 {
				ready = h.finishLocked(ready, p, Result{Events: evs, Cursor: evs[len(evs)-1].ID}, nil)
			}
		}
	}
	clear(h.woken)
	h.woken = h.woken[:0]
	h.mu.Unlock()
	h.run(ready)
}

func (h *Hub) push(q *queue, e *Event) {
	if e.ID <= q.since || (len(q.events) > 0 && e.ID <= q.events[len(q.events)-1].ID) {
		return
	}
	if len(q.events) >= 2*h.cfg.QueueSize {
		// Keep the newest QueueSize events. Trimming only when twice that
		// many have gathered makes the copy cost O(1) per event; copying
		// rather than reslicing lets the dropped events be freed.
		drop := len(q.events) - h.cfg.QueueSize
		q.since = q.events[drop-1].ID
		kept := make([]*Event, h.cfg.QueueSize, 2*h.cfg.QueueSize)
		copy(kept, q.events[drop:])
		q.events = kept
	}
	q.events = append(q.events, e)
	if len(q.waiters) > 0 && !q.marked {
		q.marked = true
		h.woken = append(h.woken, q)
	}
}

// after returns up to limit events with id > cursor. The caller holds h.mu
// and has checked cursor >= q.since.
func (q *queue) after(cursor int64, limit int) []*Event {
	if n := len(q.events); n == 0 || q.events[n-1].ID <= cursor {
		return nil // the common case: a poll that is up to date
	}
	i := sort.Search(len(q.events), func(i int) bool { return q.events[i].ID > cursor })
	n := min(len(q.events)-i, limit)
	if n <= 0 {
		return nil
	}
	out := make([]*Event, n)
	copy(out, q.events[i:i+n])
	return out
}

// Request is one long-poll.
type Request struct {
	User   int64
	Client string // the client's key: one pending poll per key
	Cursor int64
	// Timeout is how long to wait when there is nothing to answer; zero
	// answers at once.
	Timeout time.Duration
}

// Result is a poll's answer.
type Result struct {
	Events []*Event
	// Cursor is the id of the last event returned, or the request's cursor
	// when none were.
	Cursor int64
}

// Start begins the poll r. deliver is called exactly once with the answer:
// the events after r.Cursor that r.User may see, or an empty result when
// r.Timeout passes with none, the client disconnects or the hub closes; or
// ErrSuperseded when a newer poll of the same client takes over, ErrRevoked
// when the client's credentials are revoked, or an error reading the log.
// When the answer is known at once (events waiting, poll mode) deliver runs
// before Start returns; otherwise it runs later on another goroutine, and
// must not block. ctx is used only while Start runs.
func (h *Hub) Start(ctx context.Context, r Request, deliver func(Result, error)) *Pending {
	p := &Pending{user: r.User, client: r.Client, cursor: r.Cursor, reply: r.Cursor, deliver: deliver}
	var ready []answer
	h.mu.Lock()
	if h.closed {
		p.done = true
		h.mu.Unlock()
		deliver(Result{Cursor: r.Cursor}, nil)
		return p
	}
	if old := h.clients[r.Client]; old != nil {
		ready = h.finishLocked(ready, old, Result{}, ErrSuperseded)
	}
	q := h.queues[r.User]
	if q == nil {
		q = &queue{since: h.last}
		h.queues[r.User] = q
	}
	q.polls++
	p.q = q
	if p.cursor >= q.since {
		// The queue answers: at once, or when an event comes. (A poll
		// answered at once is never listed as its client's pending poll.)
		ready = h.answerOrWaitLocked(ready, p, r.Timeout)
		h.mu.Unlock()
		h.run(ready)
		return p
	}
	// The cursor is older than the queue: the log answers, read without
	// the lock, and a newer poll of the client may take over meanwhile.
	h.clients[r.Client] = p
	h.mu.Unlock()
	h.run(ready)
	ready = nil

	for {
		h.mu.Lock()
		if p.done {
			h.mu.Unlock()
			return p
		}
		if p.cursor < q.since {
			cursor := p.cursor
			h.mu.Unlock()
			evs, next, err := h.log.After(ctx, r.User, cursor, h.cfg.BatchLimit)
			h.mu.Lock()
			switch {
			case p.done:
			case err != nil:
				ready = h.finishLocked(nil, p, Result{}, err)
			case len(evs) > 0:
				out := make([]*Event, len(evs))
				for i := range evs {
					out[i] = &evs[i]
				}
				ready = h.finishLocked(nil, p, Result{Events: out, Cursor: evs[len(evs)-1].ID}, nil)
			default:
				// Nothing for this user up to next. The queue holds what
				// follows (once next reaches q.since), or the log does.
				p.cursor = next
				h.mu.Unlock()
				continue
			}
			h.mu.Unlock()
			h.run(ready)
			return p
		}
		ready = h.answerOrWaitLocked(nil, p, r.Timeout)
		h.mu.Unlock()
		h.run(ready)
		return p
	}
}

// answerOrWaitLocked answers p from its queue when the queue holds events
// after its cursor, or at once when it may not wait; otherwise p becomes
// its client's pending poll and waits on the queue. The caller holds h.mu
// and has checked p.cursor >= p.q.since.
func (h *Hub) answerOrWaitLocked(ready []answer, p *Pending, timeout time.Duration) []answer {
	if evs := p.q.after(p.cursor, h.cfg.BatchLimit); len(evs) > 0 {
		return h.finishLocked(ready, p, Result{Events: evs, Cursor: evs[len(evs)-1].ID}, nil)
	}
	if timeout <= 0 {
		return h.finishLocked(ready, p, Result{Cursor: p.reply}, nil)
	}
	h.clients[p.client] = p
	p.q.waiters = append(p.q.waiters, p)
	p.timer = time.AfterFunc(timeout, func() { h.end(p, Result{Cursor: p.reply}, nil) })
	return ready
}

// Cancel ends the poll with err (its request went away), unless it has
// been answered already.
func (h *Hub) Cancel(p *Pending, err error) { h.end(p, Result{}, err) }

// end answers p unless it was answered already.
func (h *Hub) end(p *Pending, res Result, err error) {
	h.mu.Lock()
	ready := h.finishLocked(nil, p, res, err)
	h.mu.Unlock()
	h.run(ready)
}

// finishLocked retires p and queues its answer onto ready. The caller holds
// h.mu and runs the answers after releasing it.
func (h *Hub) finishLocked(ready []answer, p *Pending, res Result, err error) []answer {
	if p.done {
		return ready
	}
	p.done = true
	if h.clients[p.client] == p {
		delete(h.clients, p.client)
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	if q := p.q; q != nil {
		if i := slices.Index(q.waiters, p); i >= 0 {
			q.waiters = slices.Delete(q.waiters, i, i+1)
		}
		q.polls--
		q.lastUsed = time.Now()
	}
	return append(ready, answer{p, res, err})
}

// run delivers answers; the caller does not hold h.mu.
func (h *Hub) run(ready []answer) {
	for _, a := range ready {
		h.observe(a.res.Events)
		a.p.deliver(a.res, a.err)
	}
}

// Poll is Start for a caller that waits: it returns the answer, or ctx's
// error when the request goes away first.
func (h *Hub) Poll(ctx context.Context, r Request) (Result, error) {
	type outcome struct {
		res Result
		err error
	}
	ch := make(chan outcome, 1)
	p := h.Start(ctx, r, func(res Result, err error) { ch <- outcome{res, err} })
	select {
	case o := <-ch:
		return o.res, o.err
	case <-ctx.Done():
		h.Cancel(p, ctx.Err())
		o := <-ch
		return o.res, o.err
	}
}

func (h *Hub) observe(evs []*Event) {
	if h.cfg.Observe == nil {
		return
	}
	now := time.Now()
	for _, e := range evs {
		if !e.Published.IsZero() {
			h.cfg.Observe(now.Sub(e.Published))
		}
	}
}

// EndClient ends the client's pending poll, if any: with an empty answer, or
// with why when it is not nil.
func (h *Hub) EndClient(client string, why error) {
	h.mu.Lock()
	var ready []answer
	if p := h.clients[client]; p != nil {
		ready = h.finishLocked(ready, p, Result{Cursor: p.reply}, why)
	}
	h.mu.Unlock()
	h.run(ready)
}

// EndUser ends every pending poll of the user: with an empty answer when
// why is nil (the client polls again at once), or else with why. A revoked
// poll first delivers the events already waiting in its queue (a ban is
// announced before the polls end); the next poll gets the error.
func (h *Hub) EndUser(user int64, why error) {
	h.mu.Lock()
	var ready []answer
	for _, p := range h.clients {
		if p.user != user {
			continue
		}
		if why == nil {
			ready = h.finishLocked(ready, p, Result{Cursor: p.reply}, nil)
			continue
		}
		if errors.Is(why, ErrRevoked) && p.cursor >= p.q.since {
			if evs := p.q.after(p.cursor, h.cfg.BatchLimit); len(evs) > 0 {
				ready = h.finishLocked(ready, p, Result{Events: evs, Cursor: evs[len(evs)-1].ID}, nil)
				continue
			}
		}
		ready = h.finishLocked(ready, p, Result{}, why)
	}
	h.mu.Unlock()
	h.run(ready)
}

// Pending returns the number of pending polls.
func (h *Hub) Pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// PendingByClient returns the number of pending polls per client key (0 or
// 1 each), for the clients that have one.
func (h *Hub) PendingByClient() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.clients))
	for k := range h.clients {
		out[k] = 1
	}
	return out
}

// Queues returns how many user queues are in memory and how many events
// they hold in all.
func (h *Hub) Queues() (queues, events int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, q := range h.queues {
		events += len(q.events)
	}
	return len(h.queues), events
}

// Sweep drops the queues that have had no poll for the configured idle time.
func (h *Hub) Sweep(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for u, q := range h.queues {
		if q.polls == 0 && now.Sub(q.lastUsed) > h.cfg.IdleQueue {
			delete(h.queues, u)
		}
	}
}

// Close answers every pending poll with an empty result and makes later
// polls answer at once. It is part of a graceful shutdown.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	var ready []answer
	for _, p := range h.clients {
		ready = h.finishLocked(ready, p, Result{Cursor: p.reply}, nil)
	}
	h.mu.Unlock()
	h.run(ready)
}
