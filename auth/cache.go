package auth

import (
	"crypto/sha256"
	"sync"
)

// DefaultCacheSize is the number of verified tokens a Verifier remembers when
// Config.CacheSize is zero.
const DefaultCacheSize = 16384

// tokenCache remembers tokens that verified, so that a reconnect storm (every
// client of a failed node coming back with the token it had) costs a hash
// and a map lookup per handshake instead of a signature check and a JSON
// decode. It is keyed by the SHA-256 of the whole token: the signature is
// part of it, so a hit is a token that verified before, and a collision
// would need a second preimage. Each key set has its own cache (load), so a
// reload that drops a key forgets every token it verified. Expiry is checked
// on every hit; failures are never cached (a flood of bad tokens is the
// per-IP handshake limit's business). Full, it evicts an arbitrary entry
// (Go's map iteration starts at random): no bookkeeping per hit.
type tokenCache struct {
	max int

	mu sync.Mutex
	m  map[[sha256.Size]byte]*Claims
}

func newTokenCache(max int) *tokenCache {
	if max <= 0 {
		return nil
	}
	return &tokenCache{max: max, m: make(map[[sha256.Size]byte]*Claims)}
}

func (c *tokenCache) get(k [sha256.Size]byte) *Claims {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *tokenCache) put(k [sha256.Size]byte, cl *Claims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = cl
}

func (c *tokenCache) forget(k [sha256.Size]byte) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// CacheStats are the verified-token cache's counters since the Verifier was
// made (reloads keep counting).
type CacheStats struct {
	Hits, Misses uint64
	// Entries is how many tokens the current key set's cache holds.
	Entries int
}

// CacheStats reports the verified-token cache's hits and misses; all zero
// when the cache is off.
func (v *Verifier) CacheStats() CacheStats {
	s := CacheStats{Hits: v.hits.Load(), Misses: v.misses.Load()}
	if c := v.keys.Load().cache; c != nil {
		s.Entries = c.len()
	}
	return s
}
