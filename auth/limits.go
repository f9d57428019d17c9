package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Failed-login budgets: an account may fail 5 times in a burst and then
// once a minute; an address 20 times in a burst and then once every 6 s.
// Successful logins cost nothing.
var (
	accountLimit = rate.Every(time.Minute)
	accountBurst = 5
	addrLimit    = rate.Every(6 * time.Second)
	addrBurst    = 20
)

// maxTracked bounds the memory of the limiter: past it, entries that have
// refilled are dropped, and if none have, the oldest half goes.
const maxTracked = 100_000

type loginLimits struct {
	mu       sync.Mutex
	accounts map[string]*limitEntry
	addrs    map[string]*limitEntry
}

type limitEntry struct {
	lim  *rate.Limiter
	used time.Time
}

func newLoginLimits() *loginLimits {
	return &loginLimits{accounts: make(map[string]*limitEntry), addrs: make(map[string]*limitEntry)}
}

// blocked returns how long the account or the address must wait before
// another attempt, or 0 when both may try now.
func (l *loginLimits) blocked(account, addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	var wait time.Duration
	for _, e := range []*limitEntry{l.accounts[account], l.addrs[addr]} {
		if e == nil {
			continue
		}
		if e.lim.TokensAt(now) < 1 {
			r := e.lim.ReserveN(now, 1)
			wait = max(wait, r.DelayFrom(now))
			r.CancelAt(now)
		}
	}
	return wait
}

// failed charges a failed attempt to the account and the address.
func (l *loginLimits) failed(account, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	charge(l.accounts, account, accountLimit, accountBurst, now)
	charge(l.addrs, addr, addrLimit, addrBurst, now)
}

func charge(m map[string]*limitEntry, key string, every rate.Limit, burst int, now time.Time) {
	e := m[key]
	if e == nil {
		if len(m) >= maxTracked {
			prune(m, now, burst)
		}
		e = &limitEntry{lim: rate.NewLimiter(every, burst)}
		m[key] = e
	}
	e.used = now
	e.lim.AllowN(now, 1)
}

func prune(m map[string]*limitEntry, now time.Time, burst int) {
	for k, e := range m {
		if e.lim.TokensAt(now) >= float64(burst) {
			delete(m, k)
		}
	}
	if len(m) < maxTracked {
		return
	}
	var cut time.Time
	n := 0
	for _, e := range m {
		if n == 0 || e.used.Before(cut) {
			cut = e.used
		}
		n++
	}
	// Drop entries older than the midpoint between the oldest and now.
	mid := cut.Add(now.Sub(cut) / 2)
	for k, e := range m {
		if e.used.Before(mid) {
			delete(m, k)
		}
	}
}
