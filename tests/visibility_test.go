package tests

import (
	"fmt"
	"testing"
	"time"
)

// TestLiveDeliveryEqualsReplay runs a conversation in which people join,
// leave, get invited to private rooms and post, while each follows their
// events live. After a restart, a replay of each user's events from the
// same starting cursor, read from SQLite, must be exactly what they saw
// live: the same events, once each, in the same order.
func TestLiveDeliveryEqualsReplay(t *testing.T) {
	srv := startServer(t, "CHATD_POST_RATE=-1")
	names := []string{"ann", "ben", "cat", "dan"}
	users := map[string]*client{}
	start := map[string]int64{}
	for _, n := range names {
		users[n] = register(t, srv, n, "password1")
	}
	for _, n := range names {
		start[n] = users[n].online()
	}
	ann, ben, cat, dan := users["ann"], users["ben"], users["cat"], users["dan"]

	ann.must(201, "POST", "/api/rooms", map[string]any{"name": "ops", "private": true})
	ben.must(201, "POST", "/api/rooms", map[string]any{"name": "games", "topic": "play"})
	for i := range 6 {
		ann.post("ops", fmt.Sprintf("ops %d", i))
		ben.post("games", fmt.Sprintf("games %d", i))
		cat.post("lobby", fmt.Sprintf("lobby %d", i))
		switch i {
		case 1:
			ann.must(200, "POST", "/api/rooms/ops/invite", map[string]string{"user": "cat"})
			dan.must(200, "POST", "/api/rooms/games/join", nil)
		case 3:
			cat.must(200, "POST", "/api/rooms/ops/leave", nil)
			dan.must(200, "POST", "/api/rooms/lobby/leave", nil)
			ben.must(200, "PATCH", "/api/rooms/games", map[string]string{"topic": "new topic"})
		case 4:
			dan.must(201, "POST", "/api/users/ann/messages", map[string]string{"text": "psst"})
			ann.must(204, "POST", "/api/presence", map[string]string{"status": "away"})
		}
	}
	last := ann.post("lobby", "the end")

	// Live: each user follows their cursor until the last event of the
	// conversation has been published (ids are global, so waiting for the
	// cursor to reach it is enough; dan left the lobby and won't see it).
	live := map[string][]int64{}
	var lastID int64
	{
		c := start["ann"]
		evs := ann.waitFor(&c, 10*time.Second, func(e event) bool { return e.Type == "message" && e.Message.ID == last.ID })
		lastID = evs[len(evs)-1].ID
	}
	for _, n := range names {
		c := start[n]
		deadline := time.Now().Add(10 * time.Second)
		for c < lastID && time.Now().Before(deadline) {
			a := users[n].poll(c, 0)
			for _, e := range a.Events {
				if e.ID <= lastID {
					live[n] = append(live[n], e.ID)
				}
			}
			if a.Cursor == c {
				break
			}
			c = a.Cursor
		}
	}

	srv.Restart(t)
	for _, n := range names {
		var replay []int64
		c := start[n]
		for {
			a := users[n].poll(c, 0)
			for _, e := range a.Events {
				if e.ID <= lastID {
					replay = append(replay, e.ID)
				}
			}
			if a.Cursor == c || a.Cursor >= lastID {
				break
			}
			c = a.Cursor
		}
		if fmt.Sprint(replay) != fmt.Sprint(live[n]) {
			t.Errorf("%s: live %v\nreplay %v", n, live[n], replay)
		}
		if len(live[n]) == 0 {
			t.Errorf("%s saw nothing live", n)
		}
	}
}
