package auth

import (
	"context"
	"fmt"
	"time"

	"chatd/store"
)

// pruneAfter is how many read rows of the change log may pile up before
// they are deleted.
const pruneAfter = 1000

// ReadChanges reads the credential changes logged since its last call, by
// this process or another (the triggers of schema_v2.sql write them),
// drops the cached credentials of the users they concern and returns those
// users (once each, in no order). The server calls
// it every second. Cached credentials are used only while it keeps
// succeeding (within trustFor of the last success); without it, every
// request is checked against the database. Rows it has read are deleted
// now and then.
func (s *Service) ReadChanges(ctx context.Context) ([]int64, error) {
	s.changesMu.Lock()
	defer s.changesMu.Unlock()
	// Whatever was committed before this moment is in what the query
	// reads: the cache may be trusted as of now.
	started := time.Now()
	rows, err := s.db.Reader().QueryContext(ctx, "SELECT id, user_id FROM auth_changes WHERE id > ? ORDER BY id", s.changesRead)
	if err != nil {
		return nil, fmt.Errorf("auth: reading the change log: %w", err)
	}
	defer rows.Close()
	last := s.changesRead
	var users []int64
	seen := make(map[int64]bool)
	for rows.Next() {
		var uid int64
		if err := rows.Scan(&last, &uid); err != nil {
			return nil, fmt.Errorf("auth: reading the change log: %w", err)
		}
		if !seen[uid] {
			seen[uid] = true
			users = append(users, uid)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auth: reading the change log: %w", err)
	}
	for _, uid := range users {
		s.cache.forgetUser(uid)
	}
	s.cache.checked.Store(started.UnixNano())
	s.changesKept += last - s.changesRead
	s.changesRead = last
	if s.changesKept < pruneAfter {
		return users, nil
	}
	s.changesKept = 0
	err = s.db.Write(ctx, func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM auth_changes WHERE id <= ?", last)
		return err
	})
	if err != nil {
		return users, fmt.Errorf("auth: pruning the change log: %w", err)
	}
	return users, nil
}
