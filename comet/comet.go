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
package comet

import (
	"context"
	"errors"
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
	clients map[string]*poll // the pending poll of each client
	woken   []*queue         // queues to wake once a publication is done
}

type queue struct {
	since    int64    // the queue holds every event for the user with id > since
	events   []*Event // ascending ids; trimmed from the front
	wake     chan struct{}
	waiting  bool // a poll holds wake: close it on the next event
	marked   bool // in h.woken, to be woken at the end of this publication
	polls    int  // pending polls on this queue
	lastUsed time.Time
}

type poll struct {
	user   int64
	client string
	done   chan struct{}
	why    error // why done was closed; nil for a plain end (disconnect, shutdown)
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
		clients: make(map[string]*poll),
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
// a queue, when everyone is set) and wakes their pending polls. Events must
// be published in increasing id order. Users without a queue in memory will
// read the event from the log.
func (h *Hub) Publish(ev Event, to []int64, everyone bool) {
	h.PublishBatch([]Delivery{{Event: ev, To: to, Everyone: everyone}})
}

// PublishBatch publishes the events of one commit together: every queue
// gets its events before any pending poll is woken, so a poll answers with
// all of them at once rather than one answer each.
func (h *Hub) PublishBatch(batch []Delivery) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
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
	for _, q := range h.woken {
		q.marked = false
		close(q.wake)
		q.wake = make(chan struct{})
		q.waiting = false
	}
	clear(h.woken)
	h.woken = h.woken[:0]
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
	if q.waiting && !q.marked {
		q.marked = true
		h.woken = append(h.woken, q)
	}
}

// after returns up to limit events with id > cursor. The caller holds h.mu
// and has checked cursor >= q.since.
func (q *queue) after(cursor int64, limit int) []*Event {
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

// Poll answers r with the events after r.Cursor that r.User may see, waiting
// up to r.Timeout for the first one. It returns ErrSuperseded when a newer
// poll of the same client takes over, ErrRevoked when the client's
// credentials are revoked, and ctx's error when the request goes away. A
// disconnect or a shutdown ends the poll with an empty result.
func (h *Hub) Poll(ctx context.Context, r Request) (Result, error) {
	p := &poll{user: r.User, client: r.Client, done: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return Result{Cursor: r.Cursor}, nil
	}
	if old := h.clients[r.Client]; old != nil {
		old.why = ErrSuperseded
		close(old.done)
	}
	h.clients[r.Client] = p
	q := h.queues[r.User]
	if q == nil {
		q = &queue{since: h.last, wake: make(chan struct{})}
		h.queues[r.User] = q
	}
	q.polls++
	h.mu.Unlock()

	defer func() {
		h.mu.Lock()
		if h.clients[r.Client] == p {
			delete(h.clients, r.Client)
		}
		q.polls--
		q.lastUsed = time.Now()
		h.mu.Unlock()
	}()

	var timer *time.Timer
	if r.Timeout > 0 {
		timer = time.NewTimer(r.Timeout)
		defer timer.Stop()
	}
	cursor := r.Cursor // where to read from; may move past events not for this user
	for {
		h.mu.Lock()
		if cursor < q.since {
			h.mu.Unlock()
			evs, next, err := h.log.After(ctx, r.User, cursor, h.cfg.BatchLimit)
			if err != nil {
				return Result{}, err
			}
			if len(evs) > 0 {
				out := make([]*Event, len(evs))
				for i := range evs {
					out[i] = &evs[i]
				}
				return Result{Events: out, Cursor: evs[len(evs)-1].ID}, nil
			}
			// Nothing for this user up to next. The queue holds what
			// follows (once next reaches q.since), or the log does.
			cursor = next
			continue
		}
		if evs := q.after(cursor, h.cfg.BatchLimit); len(evs) > 0 {
			h.mu.Unlock()
			h.observe(evs)
			return Result{Events: evs, Cursor: evs[len(evs)-1].ID}, nil
		}
		if timer == nil {
			h.mu.Unlock()
			return Result{Cursor: r.Cursor}, nil
		}
		q.waiting = true
		wake := q.wake
		h.mu.Unlock()

		select {
		case <-wake:
		case <-p.done:
			h.mu.Lock()
			why := p.why
			var evs []*Event
			if errors.Is(why, ErrRevoked) && cursor >= q.since {
				// The events that came with the revocation (a ban is
				// announced before the polls end) are delivered first;
				// the next poll gets the error.
				evs = q.after(cursor, h.cfg.BatchLimit)
			}
			h.mu.Unlock()
			if len(evs) > 0 {
				h.observe(evs)
				return Result{Events: evs, Cursor: evs[len(evs)-1].ID}, nil
			}
			if why != nil {
				return Result{}, why
			}
			return Result{Cursor: r.Cursor}, nil
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-timer.C:
			return Result{Cursor: r.Cursor}, nil
		}
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
	defer h.mu.Unlock()
	if p := h.clients[client]; p != nil {
		p.why = why
		delete(h.clients, client)
		close(p.done)
	}
}

// EndUser ends every pending poll of the user with why.
func (h *Hub) EndUser(user int64, why error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, p := range h.clients {
		if p.user == user {
			p.why = why
			delete(h.clients, k)
			close(p.done)
		}
	}
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
	defer h.mu.Unlock()
	h.closed = true
	for k, p := range h.clients {
		delete(h.clients, k)
		close(p.done)
	}
}
