package auth

import (
	"sync"
	"sync/atomic"
	"time"
)

// identityTTL is how long a resolved credential is trusted without asking
// the database again. Changes made by this process (logout, bans, role
// changes, revoked tokens) drop the affected entries at once; changes made
// by another process (an operator command on the same database file) are
// read from the auth_changes log (ReadChanges) within a second. The TTL
// only bounds an entry's life should a change escape both.
const identityTTL = 10 * time.Minute

// trustFor is how long after the last successful read of the change log
// the cache still answers: when the log cannot be read, every credential is
// checked against the database again, as if nothing were cached.
const trustFor = 5 * time.Second

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

	checked atomic.Int64 // when the change log was last read (Unix ns)
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
	if !ok || now.After(e.expires) || !c.trusted(now) {
		return cachedIdentity{}, false
	}
	return e, true
}

// trusted reports whether the change log was read recently enough at now
// for cached entries to be used.
func (c *identityCache) trusted(now time.Time) bool {
	return now.UnixNano()-c.checked.Load() < int64(trustFor)
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
