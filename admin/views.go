package admin

import (
	"context"
	"sort"
	"strings"
	"time"

	"chatd/auth"
	"chatd/messages"
	"chatd/rooms"
)

// UserInfo is an account as the admin sees it.
type UserInfo struct {
	auth.User
	// Status is online, away or offline.
	Status string
}

// Users returns the accounts whose name contains search (all when empty),
// by name, at most limit.
func (s *Service) Users(ctx context.Context, search string, limit int) ([]UserInfo, error) {
	us, err := auth.ListUsers(ctx, s.db.Reader(), search, limit)
	if err != nil {
		return nil, err
	}
	out := make([]UserInfo, len(us))
	for i, u := range us {
		out[i] = UserInfo{User: u, Status: s.deps.Presence.Status(u.ID)}
	}
	return out, nil
}

// Rooms returns the public and private rooms, by name, at most limit.
func (s *Service) Rooms(ctx context.Context, limit int) ([]rooms.Room, error) {
	return rooms.All(ctx, s.db.Reader(), limit)
}

// Messages returns the newest messages of public and private rooms,
// newest first.
func (s *Service) Messages(ctx context.Context, limit int) ([]messages.Message, error) {
	return s.deps.Messages.Recent(ctx, limit)
}

// Bots returns the bots whose name contains search, with their tokens'
// state, by name, at most limit.
func (s *Service) Bots(ctx context.Context, search string, limit int) ([]auth.Bot, error) {
	return auth.ListBots(ctx, s.db.Reader(), search, limit)
}

// ClientInfo is one live client: a browser or a bot token.
type ClientInfo struct {
	User string
	// Client is the client's key: "s:" and a prefix of the session's
	// stored hash for a browser, "t:" and the token's id for a bot.
	Client string
	// Kind is "browser", "bot", or "restored" for a client that was live
	// when the server last stopped and has not polled since.
	Kind         string
	PendingPolls int
	LastPoll     time.Time
	UserAgent    string
	Addr         string
}

// Clients returns the live clients by user, with their pending polls as
// the hub counts them.
func (s *Service) Clients() []ClientInfo {
	pending := s.deps.Hub.PendingByClient()
	cs := s.deps.Presence.Clients()
	out := make([]ClientInfo, len(cs))
	for i, c := range cs {
		kind := "browser"
		switch {
		case strings.HasPrefix(c.Key, "t:"):
			kind = "bot"
		case strings.HasPrefix(c.Key, "restart:"):
			kind = "restored"
		}
		out[i] = ClientInfo{
			User:         c.User,
			Client:       c.Key,
			Kind:         kind,
			PendingPolls: pending[c.Key],
			LastPoll:     c.LastPoll,
			UserAgent:    c.UserAgent,
			Addr:         c.Addr,
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return strings.ToLower(out[i].User) < strings.ToLower(out[j].User) })
	return out
}
