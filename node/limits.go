package node

import (
	"net"
	"strings"
	"sync"
	"time"
)

// maxTrackedIPs is how many per-IP handshake buckets are kept at most.
const maxTrackedIPs = 100_000

// JoinAuthorization says whether joining a doc needs a grant.
type JoinAuthorization string

// Join authorization modes.
const (
	// JoinRequired: a join needs a "docs" grant in the connection token or a
	// join token for the doc. Sessions opened without a token (dev ?user=)
	// and nodes without keys are not restricted.
	JoinRequired JoinAuthorization = "required"
	// JoinOff: any session may join any valid doc ID.
	JoinOff JoinAuthorization = "off"
)

// bucket is a token bucket touched by one goroutine at a time. Time is in
// UnixNano so it costs two words per session.
type bucket struct {
	tokens float64
	last   int64
}

// take spends cost tokens from a bucket refilled at rate per second up to
// burst, and reports whether there were enough.
func (b *bucket) take(now int64, rate, burst, cost float64) bool {
	if b.last == 0 {
		b.tokens = burst
	} else if dt := now - b.last; dt > 0 {
		b.tokens = min(burst, b.tokens+float64(dt)*rate/1e9)
	}
	b.last = now
	if b.tokens < cost {
		return false
	}
	b.tokens -= cost
	return true
}

// full reports whether the bucket would be back at burst by now (so it can
// be forgotten).
func (b *bucket) full(now int64, rate, burst float64) bool {
	return b.tokens+float64(now-b.last)*rate/1e9 >= burst
}

// ipLimiter bounds handshakes per second per source IP.
type ipLimiter struct {
	rate, burst float64
	mu          sync.Mutex
	ips         map[string]*bucket
}

func newIPLimiter(rate float64, burst int) *ipLimiter {
	if rate <= 0 {
		return nil
	}
	return &ipLimiter{rate: rate, burst: float64(burst), ips: make(map[string]*bucket)}
}

// allow reports whether remote (host:port) may make one more handshake.
func (l *ipLimiter) allow(remote string, now int64) bool {
	if l == nil {
		return true
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.ips[host]
	if b == nil {
		if len(l.ips) >= maxTrackedIPs {
			l.pruneLocked(now)
			if len(l.ips) >= maxTrackedIPs { // all busy: forget an arbitrary one
				for k := range l.ips {
					delete(l.ips, k)
					break
				}
			}
		}
		b = &bucket{}
		l.ips[host] = b
	}
	return b.take(now, l.rate, l.burst, 1)
}

// prune forgets IPs whose bucket refilled; the sweeper calls it.
func (l *ipLimiter) prune(now int64) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.pruneLocked(now)
	l.mu.Unlock()
}

func (l *ipLimiter) pruneLocked(now int64) {
	for k, b := range l.ips {
		if b.full(now, l.rate, l.burst) {
			delete(l.ips, k)
		}
	}
}

// admission counts connections per node and sessions per user, reserved
// before the upgrade (or, for a session that authenticates with its first
// frame, before it becomes one) so concurrent handshakes cannot overshoot
// the limits.
type admission struct {
	maxConns, maxPerUser int
	// maxPerUserCluster and census bound a user's sessions cluster-wide
	// (userlimits.go); heavyAt is ClusterReportAt, heavy the users with at
	// least that many sessions here (what the census reports).
	maxPerUserCluster int
	census            Census
	heavyAt           int
	mu                sync.Mutex
	conns             int
	users             map[string]int
	heavy             map[string]struct{}
}

// reserveConn takes a connection slot; false means the node is full.
func (a *admission) reserveConn() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.maxConns > 0 && a.conns >= a.maxConns {
		return false
	}
	a.conns++
	return true
}

// reserveUser takes a session slot of user; false means the user has its
// limit of sessions here, or in the cluster.
func (a *admission) reserveUser(user string) bool {
	ok, _ := a.reserveUserWhy(user)
	return ok
}

// reserveUserWhy is reserveUser that also says, when it refuses, whether
// the cluster-wide limit is the one reached.
func (a *admission) reserveUserWhy(user string) (ok, cluster bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	here := a.users[user]
	if a.maxPerUser > 0 && here >= a.maxPerUser {
		return false, false
	}
	if a.maxPerUserCluster > 0 && a.census != nil && here+a.census.Elsewhere(user) >= a.maxPerUserCluster {
		return false, true
	}
	a.users[user] = here + 1
	if a.heavyAt > 0 && here+1 == a.heavyAt {
		a.heavy[user] = struct{}{}
	}
	return true, false
}

// heavyUsers is what HeavyUsers returns.
func (a *admission) heavyUsers() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.heavy) == 0 {
		return nil
	}
	out := make(map[string]int, len(a.heavy))
	for u := range a.heavy {
		out[u] = a.users[u]
	}
	return out
}

func (a *admission) releaseConn() {
	a.mu.Lock()
	a.conns--
	a.mu.Unlock()
}

func (a *admission) releaseUser(user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.users[user]--; a.users[user] <= 0 {
		delete(a.users, user)
	}
	if a.heavyAt > 0 && a.users[user] == a.heavyAt-1 {
		delete(a.heavy, user)
	}
}

// granted reports whether one of the token's doc patterns covers doc: an
// exact ID, or a prefix ending in "*" ("team-7/*"; "*" alone is every doc).
func granted(patterns []string, doc string) bool {
	for _, p := range patterns {
		if p == doc {
			return true
		}
		if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(doc, prefix) {
			return true
		}
	}
	return false
}

// admitFrame applies the per-session upstream rate limits to one inbound
// frame of size bytes. It returns false when the frame must be dropped.
//
// Dropped frames are strikes: a strike bucket as deep as the burst refills
// at a tenth of the frame rate (at least one per second), and the strike
// that empties it closes the session with 4029. A run of drops as long as
// the burst does that at once; a client that slows down after a burst is
// forgiven; one that keeps sending over its limit, even steadily and only a
// little over, runs out of strikes too.
//
// The first dropped frame of a run is answered with a rate_limited error
// carrying the frame's id (and doc), so a client waiting for that request's
// reply gets one instead of a timeout; b is the frame (nil for a WebSocket
// ping).
func (n *Node) admitFrame(s *session, now int64, b []byte) bool {
	cfg := &n.cfg
	ok := (cfg.UpstreamRate <= 0 || s.frames.take(now, cfg.UpstreamRate, float64(cfg.UpstreamBurst), 1)) &&
		(cfg.UpstreamBytesRate <= 0 || s.bytes.take(now, float64(cfg.UpstreamBytesRate), float64(cfg.upstreamBytesBurst), float64(len(b))))
	if ok {
		s.limited = 0
		return true
	}
	s.limited++
	n.metrics.rateLimited.inc()
	if s.limited == 1 {
		s.reply(encodeError(errRateLimited, "too many frames: slow down (frames or bytes per second over the limit)", frameRef(b)))
	}
	n.strike(s, now, 1)
	return false
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
