// Package presence tracks who is online. A user is online while any of
// their clients polls: the first client that appears brings a `login`
// event, the last one leaving (logout, disconnect, no poll for longer
// than the presence timeout, or no poll within Grace of a hang-up) brings
// `logout`, and a user may mark themselves away and back with `presence`
// events.
//
// A client on a short leash is gone unless it polls again within Grace of
// its last poll's end. Two things put a client on it:
//   - it hung up on its waiting poll: a browser whose last tabs closed
//     together, so that each believed another remained and none sent the
//     goodbye beacon, or that crashed;
//   - its record was made by a poll that came within Grace after the
//     client disconnected: a poll a closing tab sent just before its
//     goodbye beacon, which may arrive after it.
//
// A tab that hands the poll to another tab, a page that reloads, and a
// poller that retries all poll again well within Grace.
package presence

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"chatd/api"
	"chatd/auth"
	"chatd/events"
	"chatd/store"
)

// Statuses.
const (
	Online  = "online"
	Away    = "away"
	Offline = "offline"
)

// Grace is how long a client on a short leash has to poll again before it
// is gone. It is capped at the presence timeout.
const Grace = 2 * time.Second

// Ender ends a client's pending poll (the comet hub).
type Ender interface {
	EndClient(client string, why error)
}

// Tracker is the presence feature.
type Tracker struct {
	db      *store.DB
	events  *events.Log
	ender   Ender
	log     *slog.Logger
	timeout time.Duration

	mu           sync.Mutex
	users        map[int64]*userState
	clients      map[string]*Client
	disconnected map[string]time.Time // clients gone by disconnect or logout, within Grace
}

type userState struct {
	sync sync.Mutex // serialises this user's announcements, in order

	// Guarded by Tracker.mu:
	name      string
	clients   int
	pref      string // online or away: what the user asked to be
	announced string // what the last committed event said
}

// Client is one live client of a user.
type Client struct {
	Key       string
	UserID    int64
	User      string
	UserAgent string
	Addr      string
	Pending   int
	LastPoll  time.Time

	us    *userState // its user's, which stays for the process's life
	gone  bool       // removed: a new poll of the key makes a new record
	leash bool       // gone unless it polls again within Grace
}

// New returns a tracker. Users the database shows as online (the server
// stopped while they were) are given one presence timeout to come back
// before they are announced offline.
func New(ctx context.Context, db *store.DB, log *events.Log, ender Ender, logger *slog.Logger, timeout time.Duration) (*Tracker, error) {
	t := &Tracker{
		db:           db,
		events:       log,
		ender:        ender,
		log:          logger,
		timeout:      timeout,
		users:        make(map[int64]*userState),
		clients:      make(map[string]*Client),
		disconnected: make(map[string]time.Time),
	}
	rows, err := db.Reader().QueryContext(ctx, "SELECT id, name, status FROM users WHERE status != 'offline'")
	if err != nil {
		return nil, fmt.Errorf("presence: load: %w", err)
	}
	defer rows.Close()
	now := time.Now()
	for rows.Next() {
		var id int64
		var name, status string
		if err := rows.Scan(&id, &name, &status); err != nil {
			return nil, fmt.Errorf("presence: load: %w", err)
		}
		key := fmt.Sprintf("restart:%d", id)
		us := &userState{name: name, clients: 1, pref: status, announced: status}
		t.users[id] = us
		t.clients[key] = &Client{Key: key, UserID: id, User: name, LastPoll: now, us: us}
	}
	return t, rows.Err()
}

func (t *Tracker) userLocked(id int64, name string) *userState {
	us := t.users[id]
	if us == nil {
		us = &userState{name: name, pref: Online, announced: Offline}
		t.users[id] = us
	}
	return us
}

// Status returns the user's status.
func (t *Tracker) Status(userID int64) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.statusLocked(userID)
}

func (t *Tracker) statusLocked(userID int64) string { return t.users[userID].status() }

// status is the user's status; the caller holds Tracker.mu.
func (us *userState) status() string {
	if us == nil || us.clients == 0 {
		return Offline
	}
	return us.pref
}

// PollStarted records that the client polls now, and returns its record
// for PollAgain and PollEnded. The user's first client brings them online.
func (t *Tracker) PollStarted(ctx context.Context, u auth.User, client string, r *http.Request) *Client {
	now := time.Now()
	t.mu.Lock()
	c := t.clients[client]
	if c == nil {
		us := t.userLocked(u.ID, u.Name)
		c = &Client{Key: client, UserID: u.ID, User: u.Name, us: us}
		if at, ok := t.disconnected[client]; ok && now.Sub(at) <= t.grace() {
			c.leash = true
		}
		t.clients[client] = c
		us.clients++
	} else {
		c.leash = false
	}
	c.Pending++
	c.LastPoll = now
	c.UserAgent = r.UserAgent()
	c.Addr = r.RemoteAddr
	due := c.us.announced != c.us.status()
	t.mu.Unlock()
	if due {
		t.announce(ctx, u.ID)
	}
	return c
}

// PollAgain is PollStarted for a poll that comes, with the same headers, on
// the connection of c's last poll (the poll lane's next poll): it records
// the poll, made at now, and returns true, or returns false, recording
// nothing, when c has been removed since.
func (t *Tracker) PollAgain(ctx context.Context, c *Client, now time.Time) bool {
	t.mu.Lock()
	if c.gone {
		t.mu.Unlock()
		return false
	}
	c.Pending++
	c.LastPoll = now
	c.leash = false
	due := c.us.announced != c.us.status()
	t.mu.Unlock()
	if due {
		t.announce(ctx, c.UserID)
	}
	return true
}

// PollEnded records that one of the client's polls, started with the
// record c, was answered at now, or, when hungUp, that its client hung up
// on it: unless another of its polls waits, that puts the client on the
// short leash.
func (t *Tracker) PollEnded(c *Client, hungUp bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !c.gone {
		c.Pending = max(0, c.Pending-1)
		c.LastPoll = now
		if hungUp && c.Pending == 0 {
			c.leash = true
		}
	}
}

// grace is Grace, capped at the presence timeout.
func (t *Tracker) grace() time.Duration { return min(Grace, t.timeout) }

// ClientGone removes the client (logout, disconnect) and ends its pending
// poll. When it was the user's last client, they go offline.
func (t *Tracker) ClientGone(ctx context.Context, u auth.User, client string) {
	if t.ender != nil {
		t.ender.EndClient(client, nil)
	}
	t.mu.Lock()
	due := t.removeLocked(client)
	t.disconnected[client] = time.Now()
	t.mu.Unlock()
	if due {
		t.announce(ctx, u.ID)
	}
}

// UserGone removes every client of the user (a ban or a deletion).
func (t *Tracker) UserGone(ctx context.Context, userID int64) {
	t.mu.Lock()
	for k, c := range t.clients {
		if c.UserID == userID {
			t.removeLocked(k)
		}
	}
	t.mu.Unlock()
	t.announce(ctx, userID)
}

// removeLocked drops a client and reports whether its user's status changed.
func (t *Tracker) removeLocked(client string) bool {
	c := t.clients[client]
	if c == nil {
		return false
	}
	delete(t.clients, client)
	c.gone = true
	us := t.users[c.UserID]
	if us == nil {
		return false
	}
	us.clients--
	return us.clients == 0
}

// SetStatus marks the user away or back online. A user with no live client
// counts the calling client as live from now.
func (t *Tracker) SetStatus(ctx context.Context, u auth.User, client, status string) error {
	if status != Online && status != Away {
		return api.Errorf(api.InvalidArgument, "status must be %q or %q", Online, Away)
	}
	t.mu.Lock()
	us := t.userLocked(u.ID, u.Name)
	us.pref = status
	if t.clients[client] == nil {
		t.clients[client] = &Client{Key: client, UserID: u.ID, User: u.Name, LastPoll: time.Now(), us: us}
		us.clients++
	}
	t.mu.Unlock()
	return t.announce(ctx, u.ID)
}

// announce writes the events that bring what the user's peers were told in
// line with the user's status now. Announcements of one user are
// serialised; different users' share group commits.
func (t *Tracker) announce(ctx context.Context, userID int64) error {
	t.mu.Lock()
	us := t.users[userID]
	t.mu.Unlock()
	if us == nil {
		return nil
	}
	us.sync.Lock()
	defer us.sync.Unlock()
	// Loop until what was announced matches the status: the status may
	// move on while an announcement is being written.
	for {
		t.mu.Lock()
		want := t.statusLocked(userID)
		have := us.announced
		name := us.name
		t.mu.Unlock()
		if want == have {
			return nil
		}
		typ := "presence"
		switch {
		case have == Offline:
			typ = "login"
		case want == Offline:
			typ = "logout"
		}
		err := t.db.Write(context.WithoutCancel(ctx), func(ctx context.Context, tx *store.Tx) error {
			now := time.Now().UnixMilli()
			if _, err := tx.ExecContext(ctx, "UPDATE users SET status = ?, last_seen = ? WHERE id = ?", want, now, userID); err != nil {
				return fmt.Errorf("presence: %s %s: %w", typ, name, err)
			}
			_, err := t.events.Append(ctx, tx, events.Event{
				Body:     events.Body{Type: typ, User: name, Status: want},
				Audience: events.Peers,
				Subject:  userID,
			})
			return err
		})
		if err != nil {
			t.log.Error("presence: announce", "user", name, "type", typ, "err", err)
			return err
		}
		t.mu.Lock()
		us.announced = want
		t.mu.Unlock()
	}
}

// Sweep drops clients that have not polled for longer than the presence
// timeout, or for longer than Grace on the short leash, and announces the
// users who went offline.
func (t *Tracker) Sweep(ctx context.Context, now time.Time) {
	var gone []int64
	grace := t.grace()
	t.mu.Lock()
	for k, at := range t.disconnected {
		if now.Sub(at) > grace {
			delete(t.disconnected, k)
		}
	}
	for k, c := range t.clients {
		if c.Pending > 0 {
			continue
		}
		if idle := now.Sub(c.LastPoll); idle > t.timeout || c.leash && idle > grace {
			uid := c.UserID
			if t.removeLocked(k) {
				gone = append(gone, uid)
			}
		}
	}
	t.mu.Unlock()
	// Each announcement is a write of its own, and writes in flight at the
	// same time share a commit: announced together, a crowd that leaves at
	// once (the end of a class, a network outage) costs a few commits
	// rather than one fsync per user, and its logouts do not hold the
	// writer, and the messages queued behind it, for seconds.
	var wg sync.WaitGroup
	slots := make(chan struct{}, sweepAnnouncers)
	for _, uid := range gone {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			t.announce(ctx, uid)
		})
	}
	wg.Wait()
}

// sweepAnnouncers bounds how many of a sweep's announcements are written at
// once: about half of what the writer puts in one commit.
const sweepAnnouncers = 256

// Clients returns the live clients, by user name then key.
func (t *Tracker) Clients() []Client {
	t.mu.Lock()
	out := make([]Client, 0, len(t.clients))
	for _, c := range t.clients {
		out = append(out, *c)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].User != out[j].User {
			return out[i].User < out[j].User
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// Count returns the number of live clients.
func (t *Tracker) Count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.clients)
}

// Routes adds the presence endpoint.
func (t *Tracker) Routes(mux *http.ServeMux, require func(http.Handler) http.Handler) {
	mux.Handle("POST /api/presence", require(api.Handler(t.log, func(w http.ResponseWriter, r *http.Request) error {
		id, _ := auth.FromContext(r.Context())
		var body struct {
			Status string `json:"status"`
		}
		if err := api.DecodeJSON(w, r, &body); err != nil {
			return err
		}
		if err := t.SetStatus(r.Context(), id.User, id.Client, body.Status); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})))
}
