package comet

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// memLog is a durable log in memory: every event with its recipients.
type memLog struct {
	mu     sync.Mutex
	events []Event
	to     []map[int64]bool
	reads  int
}

func (l *memLog) add(id int64, users ...int64) Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	ev := Event{ID: id, JSON: []byte(fmt.Sprintf(`{"id":%d}`, id))}
	to := map[int64]bool{}
	for _, u := range users {
		to[u] = true
	}
	l.events = append(l.events, ev)
	l.to = append(l.to, to)
	return ev
}

func (l *memLog) After(ctx context.Context, user, cursor int64, limit int) ([]Event, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	var out []Event
	next := cursor
	for i, e := range l.events {
		if e.ID <= cursor {
			continue
		}
		if len(out) == limit {
			break
		}
		next = e.ID
		if l.to[i][user] {
			out = append(out, e)
		}
	}
	return out, next, nil
}

// publish logs an event and publishes it, as the event log does on commit.
func publish(h *Hub, l *memLog, id int64, users ...int64) {
	ev := l.add(id, users...)
	h.Publish(ev, users, false)
}

// checkNoLeak fails the test if goroutines started during it outlive it.
func checkNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			runtime.Gosched()
			time.Sleep(5 * time.Millisecond) // give exiting goroutines a moment; bounded by the deadline
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines leaked:\n%s", n-before, buf[:runtime.Stack(buf, true)])
		}
	})
}

func ids(evs []*Event) []int64 {
	var out []int64
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func TestPollWaitsAndWakesOnPublish(t *testing.T) {
	checkNoLeak(t)
	l := &memLog{}
	h := New(l, 0, Config{})
	got := make(chan Result, 1)
	go func() {
		r, err := h.Poll(context.Background(), Request{User: 1, Client: "a", Cursor: 0, Timeout: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	waitFor(t, func() bool { return h.Pending() == 1 })
	publish(h, l, 1, 2)    // not for user 1
	publish(h, l, 2, 1, 2) // for user 1
	select {
	case r := <-got:
		if fmt.Sprint(ids(r.Events)) != "[2]" || r.Cursor != 2 {
			t.Fatalf("poll = %v cursor %d, want [2] cursor 2", ids(r.Events), r.Cursor)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending poll not woken by publish")
	}
	if h.Pending() != 0 {
		t.Fatalf("pending = %d after answer", h.Pending())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		runtime.Gosched()
	}
}

func TestTimeoutAnswersEmptyWithSameCursor(t *testing.T) {
	checkNoLeak(t)
	h := New(&memLog{}, 0, Config{})
	r, err := h.Poll(context.Background(), Request{User: 1, Client: "a", Cursor: 0, Timeout: 20 * time.Millisecond})
	if err != nil || len(r.Events) != 0 || r.Cursor != 0 {
		t.Fatalf("heartbeat = %+v, %v", r, err)
	}
	r, err = h.Poll(context.Background(), Request{User: 1, Client: "a", Cursor: 0})
	if err != nil || len(r.Events) != 0 {
		t.Fatalf("poll mode = %+v, %v", r, err)
	}
}

func TestNewerPollSupersedesOlder(t *testing.T) {
	checkNoLeak(t)
	l := &memLog{}
	h := New(l, 0, Config{})
	first := make(chan error, 1)
	go func() {
		_, err := h.Poll(context.Background(), Request{User: 1, Client: "a", Timeout: 10 * time.Second})
		first <- err
	}()
	waitFor(t, func() bool { return h.Pending() == 1 })
	second := make(chan Result, 1)
	go func() {
		r, _ := h.Poll(context.Background(), Request{User: 1, Client: "a", Timeout: 10 * time.Second})
		second <- r
	}()
	if err := <-first; !errors.Is(err, ErrSuperseded) {
		t.Fatalf("older poll ended with %v, want ErrSuperseded", err)
	}
	waitFor(t, func() bool { return h.Pending() == 1 })
	publish(h, l, 1, 1)
	if r := <-second; len(r.Events) != 1 {
		t.Fatalf("newer poll = %+v", r)
	}
}

func TestReplayFromLogWhenQueueDoesNotReach(t *testing.T) {
	checkNoLeak(t)
	l := &memLog{}
	h := New(l, 0, Config{QueueSize: 2, BatchLimit: 3})
	// The user's queue exists (they polled once) and then overflows.
	h.Poll(context.Background(), Request{User: 1, Client: "a"})
	for id := int64(1); id <= 10; id++ {
		if id%2 == 0 {
			publish(h, l, id, 1)
		} else {
			publish(h, l, id, 2)
		}
	}
	// From 0: the queue holds only the last 4 events of user 1, so the
	// first answers come from the log, then from memory; together they
	// are every event of user 1, once, in order.
	var got []int64
	cursor := int64(0)
	for range 10 {
		r, err := h.Poll(context.Background(), Request{User: 1, Client: "a", Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Events) == 0 {
			break
		}
		got = append(got, ids(r.Events)...)
		cursor = r.Cursor
	}
	if fmt.Sprint(got) != "[2 4 6 8 10]" {
		t.Fatalf("replay = %v, want [2 4 6 8 10]", got)
	}
	if l.reads == 0 {
		t.Fatal("the log was never read: the test did not exercise replay")
	}
}

func TestQueueMemoryIsBounded(t *testing.T) {
	h := New(&memLog{}, 0, Config{QueueSize: 16})
	h.Poll(context.Background(), Request{User: 1, Client: "a"})
	for id := int64(1); id <= 10_000; id++ {
		h.Publish(Event{ID: id}, []int64{1}, false)
	}
	if q, e := h.Queues(); q != 1 || e > 32 {
		t.Fatalf("queues %d holding %d events, want 1 holding at most 32", q, e)
	}
	// Users who never poll get no queue at all.
	for id := int64(10_001); id <= 10_100; id++ {
		h.Publish(Event{ID: id}, []int64{2, 3, 4}, false)
	}
	if q, _ := h.Queues(); q != 1 {
		t.Fatalf("%d queues: users who never polled got queues", q)
	}
	// An idle queue is dropped by the sweep.
	h.Sweep(time.Now().Add(time.Hour))
	if q, _ := h.Queues(); q != 0 {
		t.Fatalf("%d queues after sweeping idle ones", q)
	}
}

func TestEndUserRevokesAndCloseAnswersEveryone(t *testing.T) {
	checkNoLeak(t)
	h := New(&memLog{}, 0, Config{})
	errs := make(chan error, 3)
	for i, c := range []string{"a", "b", "c"} {
		user := int64(1)
		if i == 2 {
			user = 2
		}
		go func() {
			_, err := h.Poll(context.Background(), Request{User: user, Client: c, Timeout: 10 * time.Second})
			errs <- err
		}()
	}
	waitFor(t, func() bool { return h.Pending() == 3 })
	h.EndUser(1, ErrRevoked)
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrRevoked) {
			t.Fatalf("user 1's poll ended with %v, want ErrRevoked", err)
		}
	}
	h.Close()
	if err := <-errs; err != nil {
		t.Fatalf("poll at close ended with %v, want a plain answer", err)
	}
	// After Close polls answer at once.
	if _, err := h.Poll(context.Background(), Request{User: 3, Client: "d", Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
}

func TestCancelledRequestLeavesNothing(t *testing.T) {
	checkNoLeak(t)
	h := New(&memLog{}, 0, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := h.Poll(ctx, Request{User: 1, Client: "a", Timeout: time.Hour})
		done <- err
	}()
	waitFor(t, func() bool { return h.Pending() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled poll ended with %v", err)
	}
	if h.Pending() != 0 {
		t.Fatal("a cancelled poll is still pending")
	}
}

// TestConcurrentPublishAndPoll runs many pollers against a publisher and
// checks every user gets each of their events exactly once (run with -race).
func TestConcurrentPublishAndPoll(t *testing.T) {
	checkNoLeak(t)
	l := &memLog{}
	h := New(l, 0, Config{QueueSize: 8, BatchLimit: 5})
	const users, events = 8, 400
	var wg sync.WaitGroup
	results := make([][]int64, users)
	for u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cursor := int64(0)
			for cursor < events {
				r, err := h.Poll(context.Background(), Request{User: int64(u), Client: fmt.Sprint(u), Cursor: cursor, Timeout: time.Second})
				if err != nil {
					t.Error(err)
					return
				}
				results[u] = append(results[u], ids(r.Events)...)
				if len(r.Events) > 0 {
					cursor = r.Cursor
				}
				if len(results[u]) > 0 && results[u][len(results[u])-1] == events {
					return
				}
			}
		}()
	}
	for id := int64(1); id <= events; id++ {
		// Every user gets every event; the last event reaches everyone.
		var to []int64
		for u := range users {
			to = append(to, int64(u))
		}
		publish(h, l, id, to...)
	}
	wg.Wait()
	for u, got := range results {
		if len(got) != events {
			t.Fatalf("user %d got %d events, want %d", u, len(got), events)
		}
		for i, id := range got {
			if id != int64(i+1) {
				t.Fatalf("user %d: event %d at position %d", u, id, i)
			}
		}
	}
}

func TestPublishBatchWakesOnceWithEveryEvent(t *testing.T) {
	checkNoLeak(t)
	l := &memLog{}
	h := New(l, 0, Config{})
	got := make(chan Result, 1)
	go func() {
		r, _ := h.Poll(context.Background(), Request{User: 1, Client: "a", Timeout: 10 * time.Second})
		got <- r
	}()
	waitFor(t, func() bool { return h.Pending() == 1 })
	batch := []Delivery{}
	for id := int64(1); id <= 5; id++ {
		batch = append(batch, Delivery{Event: l.add(id, 1), To: []int64{1}})
	}
	h.PublishBatch(batch)
	// The caller may reuse its batch: the hub must have kept copies.
	for i := range batch {
		batch[i].Event = Event{ID: 999}
	}
	r := <-got
	if fmt.Sprint(ids(r.Events)) != "[1 2 3 4 5]" {
		t.Fatalf("one poll answer = %v, want all five events of the commit", ids(r.Events))
	}
}

func TestRevokedPollDeliversWhatCameBeforeTheRevocation(t *testing.T) {
	checkNoLeak(t)
	h := New(&memLog{}, 0, Config{})
	// The poll waits; the ban event reaches the queue but the revocation
	// comes before the poll is answered.
	var res Result
	var err error
	answered := 0
	p := h.Start(context.Background(), Request{User: 1, Client: "a", Timeout: 10 * time.Second}, func(r Result, e error) {
		res, err = r, e
		answered++
	})
	h.mu.Lock()
	h.push(p.q, &Event{ID: 1})
	h.woken = h.woken[:0] // not answered by the publication: the revocation must deliver it
	p.q.marked = false
	h.mu.Unlock()
	h.EndUser(1, ErrRevoked)
	if answered != 1 || err != nil || len(res.Events) != 1 {
		t.Fatalf("revoked poll answered %d times with %+v, %v; want the pending event first", answered, res, err)
	}
}
