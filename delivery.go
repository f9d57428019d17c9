package chatd

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"chatd/api"
	"chatd/auth"
	"chatd/comet"
	"chatd/events"
	"chatd/presence"
	"chatd/rooms"
)

// Long-poll timeouts, in seconds.
const (
	defaultPollTimeout = 25
	maxPollTimeout     = 55
)

// PollParams are the query parameters of GET /api/events.
type PollParams struct {
	Cursor    int64
	HasCursor bool
	Timeout   time.Duration
}

// ParsePoll reads cursor, timeout and wait from a query. A timeout over the
// maximum is lowered to it; wait=0 means answer at once.
func ParsePoll(q url.Values) (PollParams, error) {
	return parsePoll(q.Get("cursor"), q.Get("timeout"), q.Get("wait"))
}

// parsePollQuery is ParsePoll of a raw query string, as r.URL.Query()
// would read it. A plain query (no escapes, no semicolons) is read without
// building url.Values: every long-poll comes through here.
func parsePollQuery(raw string) (PollParams, error) {
	if strings.ContainsAny(raw, "%+;") {
		q, _ := url.ParseQuery(raw)
		return ParsePoll(q)
	}
	var cursor, timeout, wait string
	var seen [3]bool
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(pair, "=")
		switch {
		case k == "cursor" && !seen[0]:
			cursor, seen[0] = v, true
		case k == "timeout" && !seen[1]:
			timeout, seen[1] = v, true
		case k == "wait" && !seen[2]:
			wait, seen[2] = v, true
		}
	}
	return parsePoll(cursor, timeout, wait)
}

func parsePoll(cursor, timeout, wait string) (PollParams, error) {
	p := PollParams{Timeout: defaultPollTimeout * time.Second}
	if v := cursor; v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return p, api.Errorf(api.InvalidArgument, "cursor must be a non-negative integer, not %q", truncate(v))
		}
		p.Cursor, p.HasCursor = n, true
	}
	if v := timeout; v != "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs < 0 || math.IsNaN(secs) {
			return p, api.Errorf(api.InvalidArgument, "timeout must be a number of seconds from 0 to %d, not %q", maxPollTimeout, truncate(v))
		}
		p.Timeout = time.Duration(min(secs, maxPollTimeout) * float64(time.Second))
	}
	if v := wait; v != "" {
		switch v {
		case "0", "false":
			p.Timeout = 0
		case "1", "true":
		default:
			return p, api.Errorf(api.InvalidArgument, "wait must be 0 or 1, not %q", truncate(v))
		}
	}
	return p, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) error {
	id, _ := auth.FromContext(r.Context())
	req, pres, err := s.pollRequest(r, id, nil, time.Now())
	if err != nil {
		return err
	}
	s.poll(w, r, req, pres)
	return nil
}

// pollRequest reads a poll's parameters, checks its cursor and records the
// client's poll with presence, returning the client's presence record.
// again, when not nil, is the record of the same client's last poll on the
// same connection with the same headers. now is when the poll came.
func (s *Server) pollRequest(r *http.Request, id auth.Identity, again *presence.Client, now time.Time) (comet.Request, *presence.Client, error) {
	p, err := parsePollQuery(r.URL.RawQuery)
	if err != nil {
		return comet.Request{}, nil, err
	}
	ctx := r.Context()
	if !p.HasCursor {
		p.Cursor = s.events.Last()
	} else if err := s.events.Check(ctx, p.Cursor); err != nil {
		return comet.Request{}, nil, err
	}
	if again == nil || !s.presence.PollAgain(ctx, again, now) {
		again = s.presence.PollStarted(ctx, id.User, id.Client, r)
	}
	return comet.Request{User: id.User.ID, Client: id.Client, Cursor: p.Cursor, Timeout: p.Timeout}, again, nil
}

// encodePoll writes a poll answer from the events' pre-encoded JSON.
func encodePoll(res comet.Result) []byte {
	n := 40
	for _, e := range res.Events {
		n += len(e.JSON) + 1
	}
	return appendPoll(make([]byte, 0, n), res)
}

// appendPoll appends the JSON of a poll answer to b.
func appendPoll(b []byte, res comet.Result) []byte {
	b = append(b, `{"cursor":`...)
	b = strconv.AppendInt(b, res.Cursor, 10)
	b = append(b, `,"events":[`...)
	for i, e := range res.Events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.JSON...)
	}
	return append(b, "]}"...)
}

func (s *Server) handleDisconnect(w http.ResponseWriter, r *http.Request) error {
	id, _ := auth.FromContext(r.Context())
	s.presence.ClientGone(r.Context(), id.User, id.Client)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleState answers a snapshot of what the caller sees, consistent with
// the cursor it carries: the rooms and members are read in the same
// database snapshot as the cursor.
func (s *Server) handleState(w http.ResponseWriter, r *http.Request) error {
	id, _ := auth.FromContext(r.Context())
	ctx := r.Context()
	tx, err := s.db.Reader().BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer tx.Rollback()
	cursor, err := events.Newest(ctx, tx)
	if err != nil {
		return err
	}
	visible, err := rooms.Visible(ctx, tx, id.User.ID)
	if err != nil {
		return err
	}
	joined, err := rooms.Joined(ctx, tx, id.User.ID)
	if err != nil {
		return err
	}
	peers, err := rooms.Peers(ctx, tx, id.User.ID)
	if err != nil {
		return err
	}
	people := make([]auth.UserJSON, len(peers))
	for i, u := range peers {
		people[i] = s.auth.View(u)
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{
		"user":     s.auth.View(id.User),
		"rooms":    rooms.ListView(visible, joined),
		"presence": people,
		"cursor":   cursor,
	})
	return nil
}
