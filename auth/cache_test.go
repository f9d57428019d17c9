package auth

import (
	"testing"
	"time"
)

func TestCacheRefusesLookupsOlderThanAnInvalidation(t *testing.T) {
	c := newIdentityCache()
	c.checked.Store(time.Now().UnixNano()) // the change log was just read
	alice := cachedIdentity{id: Identity{User: User{ID: 1, Name: "alice"}}, expires: time.Now().Add(time.Minute)}
	bob := cachedIdentity{id: Identity{User: User{ID: 2, Name: "bob"}}, expires: time.Now().Add(time.Minute)}

	// A lookup reads the database, a ban of alice commits, then the
	// lookup tries to cache what it read: refused.
	before := c.epoch()
	c.forgetUser(1)
	c.put(credential{cookie: true, value: "alice"}, alice, before)
	if _, ok := c.get(credential{cookie: true, value: "alice"}, time.Now()); ok {
		t.Fatal("an identity read before the invalidation was cached")
	}
	// Other users are unaffected, and later lookups cache again.
	c.put(credential{cookie: true, value: "bob"}, bob, before)
	if _, ok := c.get(credential{cookie: true, value: "bob"}, time.Now()); !ok {
		t.Fatal("an unrelated user was not cached")
	}
	c.put(credential{cookie: true, value: "alice"}, alice, c.epoch())
	if _, ok := c.get(credential{cookie: true, value: "alice"}, time.Now()); !ok {
		t.Fatal("a lookup after the invalidation was not cached")
	}
	// Forgetting drops what is cached, and entries expire.
	c.forgetUser(2)
	if _, ok := c.get(credential{cookie: true, value: "bob"}, time.Now()); ok {
		t.Fatal("forgetUser left an entry")
	}
	if _, ok := c.get(credential{cookie: true, value: "alice"}, time.Now().Add(2*time.Minute)); ok {
		t.Fatal("an expired entry was returned")
	}
	// Without a recent read of the change log, nothing cached is used.
	c.checked.Store(time.Now().Add(-trustFor).UnixNano())
	if _, ok := c.get(credential{cookie: true, value: "alice"}, time.Now()); ok {
		t.Fatal("an entry was used although the change log was not read for trustFor")
	}
}
