// Package chatd wires the chat server together: it opens the database,
// builds the features (accounts, rooms, messages, presence) around the
// event log and the delivery hub, and serves the HTTP API and pages.
// cmd/chatd parses flags and signals and calls New; the black-box tests do
// the same through the real binary.
package chatd

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"chatd/admin"
	"chatd/auth"
	"chatd/comet"
	"chatd/events"
	"chatd/messages"
	"chatd/presence"
	"chatd/rooms"
	"chatd/store"
)

//go:embed schema.sql
var schemaV1 string

//go:embed schema_v2.sql
var schemaV2 string

//go:embed schema_v3.sql
var schemaV3 string

//go:embed schema_v4.sql
var schemaV4 string

// migrations brings a database from schema version i to i+1. A release
// that changes the schema appends a step; steps are never edited.
var migrations = []string{schemaV1, schemaV2, schemaV3, schemaV4}

// Config is the server's configuration. Zero fields take the defaults.
type Config struct {
	// DB is the SQLite database file (default chatd.db).
	DB string
	// PresenceTimeout is how long a client may go without polling before it
	// counts as gone (default 60s).
	PresenceTimeout time.Duration
	// ReplayWindow is how far back a cursor may replay (default 168h).
	ReplayWindow time.Duration
	// PostRate is how many messages per second a user may post on average
	// (default 5; negative: unlimited); PostBurst how many at once
	// (default 20).
	PostRate  float64
	PostBurst int
	// QueueSize is how many recent events each user's queue keeps in memory
	// (default 512).
	QueueSize int
	// Hashes bounds the password hashes running at once (default: half
	// the CPUs, at least one). Each argon2id hash takes a core for tens of
	// milliseconds: the bound keeps a login flood from taking every core
	// away from message delivery.
	Hashes int
	// TrustProxy takes client addresses from X-Forwarded-For, and whether
	// the browser used HTTPS from X-Forwarded-Proto.
	TrustProxy bool
	// Logger receives the server's logs (default: discard).
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.DB == "" {
		c.DB = "chatd.db"
	}
	if c.PresenceTimeout <= 0 {
		c.PresenceTimeout = 60 * time.Second
	}
	if c.ReplayWindow <= 0 {
		c.ReplayWindow = 168 * time.Hour
	}
	if c.PostRate == 0 {
		c.PostRate = 5
	}
	if c.PostBurst <= 0 {
		c.PostBurst = 20
	}
	if c.Hashes <= 0 {
		c.Hashes = max(1, runtime.NumCPU()/2)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is a running chatd: the features, the hub and the HTTP handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	db       *store.DB
	events   *events.Log
	hub      *comet.Hub
	auth     *auth.Service
	rooms    *rooms.Service
	messages *messages.Service
	presence *presence.Tracker
	admin    *admin.Service
	metrics  *metrics
	handler  http.Handler

	recycle *recycler // set by Listen: where the poll lane gives connections back
	answers inflight  // answers the poll lane is writing

	stop    chan struct{}
	wg      sync.WaitGroup
	closing sync.Once
}

// New opens the database (creating and migrating it as needed) and builds
// the server. Its background work (presence timeouts, queue and log
// pruning) runs until Close.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.defaults()
	db, err := store.Open(ctx, cfg.DB, migrations)
	if err != nil {
		return nil, err
	}
	s, err := build(ctx, cfg, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.wg.Add(2)
	go s.background()
	go s.followCredentials()
	return s, nil
}

func build(ctx context.Context, cfg Config, db *store.DB) (*Server, error) {
	s := &Server{cfg: cfg, log: cfg.Logger, db: db, stop: make(chan struct{})}
	s.metrics = newMetrics()
	db.ObserveCommits(s.metrics.observeCommit)
	db.ObserveWrites(s.metrics.observeWrite)
	var err error
	if s.events, err = events.Open(ctx, db, cfg.ReplayWindow); err != nil {
		return nil, err
	}
	s.hub = comet.New(s.events, s.events.Last(), comet.Config{
		QueueSize: cfg.QueueSize,
		IdleQueue: 2 * cfg.PresenceTimeout,
		Observe:   s.metrics.observeDelivery,
	})
	s.events.PublishTo(countingPublisher{s.hub, s.metrics})
	s.rooms = rooms.New(db, s.events, nil)
	if s.auth, err = auth.New(ctx, db, s.log, auth.Config{Hashes: cfg.Hashes, TrustProxy: cfg.TrustProxy}, s.rooms); err != nil {
		return nil, err
	}
	s.rooms.SetAuth(s.auth)
	if s.presence, err = presence.New(ctx, db, s.events, s.hub, s.log, cfg.PresenceTimeout); err != nil {
		return nil, err
	}
	s.auth.SetPresence(s.presence)
	rate := cfg.PostRate
	if rate < 0 {
		rate = 0
	}
	s.messages = messages.New(db, s.events, s.rooms, messages.Config{Rate: rate, Burst: cfg.PostBurst})
	s.admin, err = admin.New(ctx, db, s.log, admin.Deps{
		Accounts: s.auth, Rooms: s.rooms, Messages: s.messages,
		Events: s.events, Hub: s.hub, Presence: s.presence,
	})
	if err != nil {
		return nil, err
	}
	s.messages.SetAuditor(s.admin)
	s.metrics.watch(s)
	if s.handler, err = s.routes(); err != nil {
		return nil, err
	}
	return s, nil
}

// countingPublisher counts events on their way to the hub.
type countingPublisher struct {
	hub *comet.Hub
	m   *metrics
}

func (p countingPublisher) PublishBatch(batch []comet.Delivery) {
	p.m.events.Add(float64(len(batch)))
	p.hub.PublishBatch(batch)
}

// ServeHTTP serves the API and the pages.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Auth returns the accounts feature (for the operator's commands).
func (s *Server) Auth() *auth.Service { return s.auth }

// Admin returns the admin feature (for the operator's commands).
func (s *Server) Admin() *admin.Service { return s.admin }

// RotateCookieKeys adds a new session cookie key pair (the operator's
// "chatd keys rotate"), which a server uses for new cookies from its next
// start; cookies made with older pairs keep working. With retire, the older
// pairs are deleted and every browser session ends, and it returns how many
// did.
func (s *Server) RotateCookieKeys(ctx context.Context, retire bool) (int64, error) {
	if err := auth.RotateKeys(ctx, s.db); err != nil {
		return 0, err
	}
	if !retire {
		return 0, nil
	}
	return auth.RetireOldKeys(ctx, s.db)
}

func (s *Server) background() {
	defer s.wg.Done()
	tick := max(100*time.Millisecond, min(time.Second, s.cfg.PresenceTimeout/10))
	presenceT := time.NewTicker(tick)
	defer presenceT.Stop()
	queuesT := time.NewTicker(30 * time.Second)
	defer queuesT.Stop()
	// Prune often enough that the replay window is kept to within a
	// quarter of its length.
	pruneT := time.NewTicker(max(time.Second, min(10*time.Minute, s.cfg.ReplayWindow/4)))
	defer pruneT.Stop()
	var heap heapRelease
	ctx := context.Background()
	for {
		select {
		case <-s.stop:
			return
		case now := <-presenceT.C:
			s.presence.Sweep(ctx, now)
		case now := <-queuesT.C:
			s.hub.Sweep(now)
			heap.afterBurst()
		case <-pruneT.C:
			if err := s.events.Prune(ctx); err != nil {
				s.log.Error("pruning the event log", "err", err)
			}
		}
	}
}

// followCredentials reads the log of credential changes once a second. It
// has a goroutine of its own because the identity cache stops trusting its
// entries when the log has not been read for a few seconds: work that takes
// long elsewhere (a sweep that announces a crowd leaving) must not make
// every request query the database in the meantime.
func (s *Server) followCredentials() {
	defer s.wg.Done()
	// Credential changes other processes make take effect within this.
	authT := time.NewTicker(time.Second)
	defer authT.Stop()
	ctx := context.Background()
	for {
		select {
		case <-s.stop:
			return
		case <-authT.C:
			changed, err := s.auth.ReadChanges(ctx)
			if err != nil {
				s.log.Error("following credential changes", "err", err)
			}
			// Their waiting polls end empty, and the next ones are
			// checked against the database.
			for _, uid := range changed {
				s.hub.EndUser(uid, nil)
			}
		}
	}
}

// Drain answers every pending poll and makes new polls answer at once: the
// first step of a graceful shutdown, before the HTTP server stops.
func (s *Server) Drain() {
	if s.recycle != nil {
		s.recycle.drain()
	}
	s.hub.Close()
}

// Close stops the background work, lets queued writes finish and closes
// the database.
func (s *Server) Close() error {
	var err error
	s.closing.Do(func() {
		s.hub.Close()
		s.waitAnswers(laneWriteTimeout)
		if s.recycle != nil {
			s.recycle.watch.close()
		}
		close(s.stop)
		s.wg.Wait()
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("chatd: close database: %w", cerr)
		}
	})
	return err
}

// Health reports whether the database can be read and written.
func (s *Server) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := s.db.Health(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: the database did not answer in time", store.ErrUnavailable)
	}
	return err
}
