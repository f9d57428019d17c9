package admin

import (
	"context"
	"fmt"
	"time"

	"chatd/api"
	"chatd/auth"
	"chatd/comet"
	"chatd/events"
	"chatd/rooms"
	"chatd/store"
)

// Ban bans the user called name: in one transaction the account is marked
// banned, its sessions and tokens are deleted and a banned event is
// appended (the user and everyone sharing a room with them see it). Once
// that has committed, the user's pending polls end (answered 401) and
// their clients are gone from presence. Banning oneself is refused
// (InvalidArgument), and so is banning the last admin (Conflict).
func (s *Service) Ban(ctx context.Context, actor auth.User, name string) error {
	var u auth.User
	err := s.do(ctx, actor, "user.ban", func(ctx context.Context, tx *store.Tx, rec *record) error {
		var err error
		if u, err = auth.UserByName(ctx, tx, name); err != nil {
			return err
		}
		rec.target = u.Name
		if u.ID == actor.ID {
			return api.Errorf(api.InvalidArgument, "you cannot ban yourself")
		}
		if u.IsAdmin() {
			if err := anotherAdmin(ctx, tx, u); err != nil {
				return err
			}
		}
		// Revoke even when already banned: it costs nothing and leaves no
		// doubt that no credential of a banned account survives.
		if err := auth.Revoke(ctx, tx, u.ID); err != nil {
			return err
		}
		s.deps.Accounts.Forget(tx, u.ID)
		if u.Banned {
			rec.detail = "already banned"
			return nil
		}
		if _, err := tx.ExecContext(ctx, "UPDATE users SET banned = 1 WHERE id = ?", u.ID); err != nil {
			return fmt.Errorf("ban %s: %w", u.Name, err)
		}
		_, err = s.deps.Events.Append(ctx, tx, events.Event{
			Body:     events.Body{Type: "banned", User: u.Name, By: actor.Name},
			Audience: events.Peers,
			Subject:  u.ID,
		})
		return err
	})
	if err != nil {
		return err
	}
	s.cutOff(ctx, actor, u.ID)
	return nil
}

// cutOff ends the user's pending polls (they answer 401) and drops their
// clients from presence. It runs after the transaction that revoked their
// credentials has committed, so a client cannot slip a new poll in between.
// The operator's command line runs beside the server, not in it: the polls
// it could end are its own process's, which has none, so it does nothing.
func (s *Service) cutOff(ctx context.Context, actor auth.User, userID int64) {
	if actor == Operator {
		return
	}
	s.deps.Hub.EndUser(userID, comet.ErrRevoked)
	s.deps.Presence.UserGone(context.WithoutCancel(ctx), userID)
}

// Unban lifts the ban on the user called name. Their old sessions and
// tokens stay revoked: a person signs in again, a bot needs a new token.
func (s *Service) Unban(ctx context.Context, actor auth.User, name string) error {
	return s.do(ctx, actor, "user.unban", func(ctx context.Context, tx *store.Tx, rec *record) error {
		u, err := auth.UserByName(ctx, tx, name)
		if err != nil {
			return err
		}
		rec.target = u.Name
		if !u.Banned {
			rec.detail = "was not banned"
			return nil
		}
		if _, err := tx.ExecContext(ctx, "UPDATE users SET banned = 0 WHERE id = ?", u.ID); err != nil {
			return fmt.Errorf("unban %s: %w", u.Name, err)
		}
		s.deps.Accounts.Forget(tx, u.ID)
		return nil
	})
}

// SetRole makes the person called name a user or an admin. Bots keep their
// role (InvalidArgument), and the last admin cannot be made a user
// (Conflict). The change takes effect with the person's next request.
// (Made from the command line, within the seconds the server trusts a
// credential it has checked.)
func (s *Service) SetRole(ctx context.Context, actor auth.User, name, role string) error {
	if role != auth.RoleUser && role != auth.RoleAdmin {
		return api.Errorf(api.InvalidArgument, "role must be %q or %q", auth.RoleUser, auth.RoleAdmin)
	}
	return s.do(ctx, actor, "user.role", func(ctx context.Context, tx *store.Tx, rec *record) error {
		u, err := auth.UserByName(ctx, tx, name)
		if err != nil {
			return err
		}
		rec.target = u.Name
		rec.detail = u.Role + " → " + role
		switch {
		case u.Role == auth.RoleBot:
			return api.Errorf(api.InvalidArgument, "%s is a bot: a bot's role cannot change", u.Name)
		case u.Role == role:
			rec.detail = "already " + role
			return nil
		case u.IsAdmin():
			if err := anotherAdmin(ctx, tx, u); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE users SET role = ? WHERE id = ?", role, u.ID); err != nil {
			return fmt.Errorf("role of %s: %w", u.Name, err)
		}
		s.deps.Accounts.Forget(tx, u.ID)
		return nil
	})
}

// anotherAdmin returns Conflict unless an admin other than u is left who
// is not banned: chatd always keeps someone who can administer it.
func anotherAdmin(ctx context.Context, tx *store.Tx, u auth.User) error {
	var n int
	err := tx.QueryRowContext(ctx, "SELECT count(*) FROM users WHERE role = 'admin' AND banned = 0 AND id != ?", u.ID).Scan(&n)
	if err != nil {
		return fmt.Errorf("count admins: %w", err)
	}
	if n == 0 {
		return api.Errorf(api.Conflict, "%s is the last admin: make someone else an admin first", u.Name)
	}
	return nil
}

// DeleteRecent removes the messages that the user called name posted
// since the given time (the zero time: all of them), and returns how many.
func (s *Service) DeleteRecent(ctx context.Context, actor auth.User, name string, since time.Time) (int, error) {
	if err := mustBeAdmin(actor); err != nil {
		return 0, err
	}
	// Find the messages before taking the writer: that is a scan.
	u, err := auth.UserByName(ctx, s.db.Reader(), name)
	if err != nil {
		return 0, err
	}
	sel, err := s.deps.Messages.SelectRecent(ctx, u.ID, since)
	if err != nil {
		return 0, err
	}
	var n int
	err = s.do(ctx, actor, "user.delete_messages", func(ctx context.Context, tx *store.Tx, rec *record) error {
		now, err := auth.UserByName(ctx, tx, name)
		if err != nil {
			return err
		}
		if now.ID != u.ID {
			return api.Errorf(api.Conflict, "the account called %q changed while its messages were found; try again", name)
		}
		rec.target = now.Name
		if n, err = s.deps.Messages.DeleteRecent(ctx, tx, actor, sel); err != nil {
			return err
		}
		if since.IsZero() {
			rec.detail = fmt.Sprintf("%d messages, all of them", n)
		} else {
			rec.detail = fmt.Sprintf("%d messages since %s", n, api.Time(since))
		}
		return nil
	})
	return n, err
}

// DeleteMessage removes one message, whoever wrote it.
func (s *Service) DeleteMessage(ctx context.Context, actor auth.User, id int64) error {
	return s.do(ctx, actor, "message.delete", func(ctx context.Context, tx *store.Tx, rec *record) error {
		m, err := s.deps.Messages.DeleteTx(ctx, tx, actor, id)
		if err != nil {
			return err
		}
		rec.target = m.User
		rec.detail = fmt.Sprintf("message %d in %s", m.ID, m.Room)
		return nil
	})
}

// CreateRoom makes a room with the admin as its first member. It returns
// Conflict when the name is taken.
func (s *Service) CreateRoom(ctx context.Context, actor auth.User, name, topic string, private bool) (rooms.Room, error) {
	var room rooms.Room
	err := s.do(ctx, actor, "room.create", func(ctx context.Context, tx *store.Tx, rec *record) error {
		rec.target = name
		var err error
		room, err = s.deps.Rooms.CreateTx(ctx, tx, actor, name, topic, private)
		rec.detail = room.Kind
		return err
	})
	return room, err
}

// SetTopic changes a room's topic.
func (s *Service) SetTopic(ctx context.Context, actor auth.User, name, topic string) (rooms.Room, error) {
	var room rooms.Room
	err := s.do(ctx, actor, "room.topic", func(ctx context.Context, tx *store.Tx, rec *record) error {
		rec.target, rec.detail = name, topic
		var err error
		room, err = s.deps.Rooms.SetTopicTx(ctx, tx, actor, name, topic)
		return err
	})
	return room, err
}

// Kick removes the user called user from the room; they and the room see a
// leave event that says kicked. It returns NotFound when they are not in it.
func (s *Service) Kick(ctx context.Context, actor auth.User, room, user string) error {
	return s.do(ctx, actor, "room.kick", func(ctx context.Context, tx *store.Tx, rec *record) error {
		rec.target, rec.detail = user, "from "+room
		return s.deps.Rooms.Kick(ctx, tx, actor, room, user)
	})
}

// DeleteRoom deletes a room; its members see room_deleted. The lobby
// cannot be deleted (InvalidArgument).
func (s *Service) DeleteRoom(ctx context.Context, actor auth.User, name string) error {
	return s.do(ctx, actor, "room.delete", func(ctx context.Context, tx *store.Tx, rec *record) error {
		rec.target = name
		return s.deps.Rooms.Delete(ctx, tx, actor, name)
	})
}

// CreateBot makes a bot account and returns it with its token: the only
// time the token is seen, since only its hash is stored. With lobby set the
// bot joins the lobby, so it can post there at once. It returns Conflict
// when the name is taken.
func (s *Service) CreateBot(ctx context.Context, actor auth.User, name string, lobby bool) (auth.User, string, error) {
	var u auth.User
	var token string
	err := s.do(ctx, actor, "bot.create", func(ctx context.Context, tx *store.Tx, rec *record) error {
		rec.target = name
		var err error
		u, token, err = s.deps.Accounts.CreateBotTx(ctx, tx, name, lobby)
		return err
	})
	return u, token, err
}

// NewBotToken replaces the tokens of the bot called name with a new one,
// returned this once. Polls made with the old token end at once.
func (s *Service) NewBotToken(ctx context.Context, actor auth.User, name string) (auth.User, string, error) {
	var u auth.User
	var token string
	err := s.do(ctx, actor, "bot.token", func(ctx context.Context, tx *store.Tx, rec *record) error {
		var err error
		if u, err = auth.UserByName(ctx, tx, name); err != nil {
			return err
		}
		rec.target = u.Name
		if u.Banned {
			return api.Errorf(api.Conflict, "%s is banned: unban it first", u.Name)
		}
		if token, err = auth.ReplaceToken(ctx, tx, u); err != nil {
			return err
		}
		s.deps.Accounts.Forget(tx, u.ID)
		return nil
	})
	if err != nil {
		return auth.User{}, "", err
	}
	s.cutOff(ctx, actor, u.ID)
	return u, token, nil
}

// RevokeBot deletes the tokens of the bot called name: they stop working at
// once and the bot's pending polls end. The account and its messages stay;
// NewBotToken gives it a new token. It returns InvalidArgument when name is
// not a bot.
func (s *Service) RevokeBot(ctx context.Context, actor auth.User, name string) error {
	var u auth.User
	err := s.do(ctx, actor, "bot.revoke", func(ctx context.Context, tx *store.Tx, rec *record) error {
		var err error
		if u, err = auth.UserByName(ctx, tx, name); err != nil {
			return err
		}
		rec.target = u.Name
		if u.Role != auth.RoleBot {
			return api.Errorf(api.InvalidArgument, "%s is not a bot; ban a person instead", u.Name)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM tokens WHERE user_id = ?", u.ID)
		if err != nil {
			return fmt.Errorf("revoke tokens of %s: %w", u.Name, err)
		}
		n, _ := res.RowsAffected()
		rec.detail = fmt.Sprintf("%d token(s)", n)
		s.deps.Accounts.Forget(tx, u.ID)
		return nil
	})
	if err != nil {
		return err
	}
	s.cutOff(ctx, actor, u.ID)
	return nil
}

// CreateUser makes a person's account with a password, for the operator's
// command line; role is "user" or "admin". With lobby set they join the
// lobby. It returns Conflict when the name is taken.
func (s *Service) CreateUser(ctx context.Context, actor auth.User, name, password, role string, lobby bool) (auth.User, error) {
	if err := auth.ValidName(name); err != nil {
		return auth.User{}, err
	}
	if role != auth.RoleUser && role != auth.RoleAdmin {
		return auth.User{}, api.Errorf(api.InvalidArgument, "role must be %q or %q", auth.RoleUser, auth.RoleAdmin)
	}
	hash, err := s.deps.Accounts.HashPassword(ctx, password)
	if err != nil {
		return auth.User{}, err
	}
	var u auth.User
	err = s.do(ctx, actor, "user.create", func(ctx context.Context, tx *store.Tx, rec *record) error {
		rec.target, rec.detail = name, role
		var err error
		u, err = s.deps.Accounts.CreateUserTx(ctx, tx, name, hash, role, lobby)
		return err
	})
	return u, err
}

// SetPassword replaces the password of the person called name (the
// operator's reset) and deletes their sessions, so every request made with
// the old ones is refused. It runs from the command line, in another
// process than the server: a poll already pending keeps waiting until its
// timeout, and then gets 401.
func (s *Service) SetPassword(ctx context.Context, actor auth.User, name, password string) error {
	hash, err := s.deps.Accounts.HashPassword(ctx, password)
	if err != nil {
		return err
	}
	return s.do(ctx, actor, "user.password", func(ctx context.Context, tx *store.Tx, rec *record) error {
		rec.target = name
		u, err := auth.SetPasswordTx(ctx, tx, name, hash)
		if err != nil {
			return err
		}
		s.deps.Accounts.Forget(tx, u.ID)
		return nil
	})
}
