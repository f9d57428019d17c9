package auth

import (
	"sync"
	"sync/atomic"
	"time"
)

// identityTTL is how long a resolved credential is trusted without asking
// the database again. Changes made by this process (logout, bans, role
// changes, revoked tokens) drop the affected entries at once; the TTL only
// bounds how long a change made by another process (an operator command
// on the same database file) takes to be seen.
const identityTTL = 5 * time.Second

// maxCached bounds the cache's memory.
const maxCached = 200_000

// identityCache remembers recently resolved credentials (a session cookie's
// value or a bearer token), so a long-poll does not cost a database query
// and a cookie decode every time.
type identityCache struct {
	mu      sync.Mutex
	entries map[credential]cachedIdentity
	// gens counts the invalidations of each user: a lookup that started
	// before an invalidation must not cache what it read.
	gens  map[int64]uint64
	total atomic.Uint64 // invalidations so far; written under mu
	floor uint64        // lookups from before this epoch may not cache (gens was cleared)
}

// credential is what a request presents: a bearer token or a session
// cookie's value.
type credential struct {
	cookie bool
	value  string
}

type cachedIdentity struct {
	id       Identity
	lastUsed int64 // tokens: the stored last use, for touchToken
	expires  time.Time
}

func newIdentityCache() *identityCache {
	return &identityCache{entries: make(map[credential]cachedIdentity), gens: make(map[int64]uint64)}
}

func (c *identityCache) get(key credential, now time.Time) (cachedIdentity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || now.After(e.expires) {
		return cachedIdentity{}, false
	}
	return e, true
}

// epoch returns a token to pass to put: the count of invalidations so far.
func (c *identityCache) epoch() uint64 { return c.total.Load() }

// put caches e unless its user was invalidated since epoch was read (the
// database answer may predate the change).
func (c *identityCache) put(key credential, e cachedIdentity, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gens[e.id.User.ID] > epoch || c.floor > epoch {
		return
	}
	if len(c.entries) >= maxCached {
		now := time.Now()
		for k, v := range c.entries {
			if now.After(v.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCached {
			clear(c.entries)
		}
	}
	c.entries[key] = e
}

// forgetUser drops every cached credential of the user.
func (c *identityCache) forgetUser(userID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := c.total.Add(1)
	c.gens[userID] = total
	if len(c.gens) > maxCached {
		// Old generations only matter to lookups in flight; a lookup
		// older than every entry is refused by total below.
		clear(c.gens)
		c.floor = total
	}
	for k, v := range c.entries {
		if v.id.User.ID == userID {
			delete(c.entries, k)
		}
	}
}
