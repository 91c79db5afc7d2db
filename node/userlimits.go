package node

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
)

// Limits on what one user, or one steady abuser, can make the node and the
// cluster hold (docs/SECURITY.md): sessions across the cluster, distinct
// docs across a user's sessions on a node, and joins and leaves per second.

// Defaults of the limits in this file.
const (
	DefaultHandshakeRatePerIP        = 500 // handshakes per second per client IP
	DefaultJoinRate                  = 10  // joins and leaves per second per session
	DefaultMaxDocsPerUser            = 200
	DefaultMaxClusterSessionsPerUser = 64
)

// Census is the cluster's best-effort view of the sessions users hold on
// other nodes.
type Census interface {
	// Elsewhere is how many sessions user holds on the other live nodes, as
	// they last reported: only users with at least ClusterReportAt sessions
	// on a node are reported, at most a report interval ago.
	Elsewhere(user string) int
}

// ClusterReportAt is the session count from which a node reports a user to
// the others: an eighth of the cluster limit, at least 2, so a user is
// under-counted by at most ClusterReportAt-1 sessions per other node while
// nodes report nobody but heavy users (none, normally). 0 when the cluster
// limit is off.
func (c *Config) ClusterReportAt() int {
	if c.MaxClusterSessionsPerUser <= 0 {
		return 0
	}
	return max(2, c.MaxClusterSessionsPerUser/8)
}

func (c *Config) setUserLimitDefaults() {
	if c.HandshakeRatePerIP == 0 {
		c.HandshakeRatePerIP = DefaultHandshakeRatePerIP
	}
	if c.HandshakeBurstPerIP <= 0 {
		c.HandshakeBurstPerIP = max(1, int(10*c.HandshakeRatePerIP))
	}
	if c.JoinRate == 0 {
		c.JoinRate = DefaultJoinRate
	}
	if c.JoinBurst <= 0 {
		c.JoinBurst = max(c.MaxDocsPerSession, int(2*c.JoinRate), 1)
	}
	if c.MaxDocsPerUser == 0 {
		c.MaxDocsPerUser = max(DefaultMaxDocsPerUser, c.MaxDocsPerSession)
	}
	c.MaxClusterSessionsPerUser = limitDefault(c.MaxClusterSessionsPerUser, DefaultMaxClusterSessionsPerUser)
}

// userDocs counts, per user, the sessions on this node that joined each
// doc, so the distinct docs of a user's sessions together stay within
// MaxDocsPerUser. Sharded by user; a user's docs are a short slice (at most
// the limit), scanned on join and leave, which the join rate bounds.
type userDocs struct {
	limit  int
	shards [shardCount]struct {
		mu sync.Mutex
		m  map[string][]docRef
	}
}

// docRef is a doc and how many of the user's sessions joined it.
type docRef struct {
	doc string
	n   int
}

// newUserDocs returns nil for limit <= 0: no limit, no bookkeeping.
func newUserDocs(limit int) *userDocs {
	if limit <= 0 {
		return nil
	}
	u := &userDocs{limit: limit}
	for i := range u.shards {
		u.shards[i].m = make(map[string][]docRef)
	}
	return u
}

// add counts one more session of user in doc; it reports false, counting
// nothing, when doc is new to user and user already has limit docs.
func (u *userDocs) add(user, doc string) bool {
	if u == nil {
		return true
	}
	sh := &u.shards[shardOf(user)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	refs := sh.m[user]
	for i := range refs {
		if refs[i].doc == doc {
			refs[i].n++
			return true
		}
	}
	if len(refs) >= u.limit {
		return false
	}
	sh.m[user] = append(refs, docRef{doc, 1})
	return true
}

// remove counts one session of user less in doc.
func (u *userDocs) remove(user, doc string) {
	if u == nil {
		return
	}
	sh := &u.shards[shardOf(user)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	refs := sh.m[user]
	i := slices.IndexFunc(refs, func(r docRef) bool { return r.doc == doc })
	if i < 0 {
		return
	}
	if refs[i].n--; refs[i].n > 0 {
		return
	}
	refs[i] = refs[len(refs)-1]
	refs = refs[:len(refs)-1]
	if len(refs) == 0 {
		delete(sh.m, user)
		return
	}
	sh.m[user] = refs
}

// admitJoin applies the session's join and leave rate to one join or leave
// frame (already admitted by the frame rate). One over it is answered
// rate_limited with r, and weighs as many strikes as the frames it stands
// for (UpstreamRate/JoinRate), so steady churn over the join rate ends in
// 4029 as steady frames over the frame rate do. Read side only.
func (n *Node) admitJoin(s *session, now int64, r ref) bool {
	cfg := &n.cfg
	if cfg.JoinRate < 0 || s.joins.take(now, cfg.JoinRate, float64(cfg.JoinBurst), 1) {
		return true
	}
	n.metrics.joinsRefused.inc(reasonJoinRate)
	s.reply(encodeError(errRateLimited, "too many joins and leaves: at most "+strconv.FormatFloat(cfg.JoinRate, 'f', -1, 64)+" a second", r))
	weight := 1.0
	if cfg.UpstreamRate > 0 {
		weight = max(1, cfg.UpstreamRate/cfg.JoinRate)
	}
	n.strike(s, now, weight)
	return false
}

// strike spends cost from the session's strike bucket (admitFrame); the
// strike that empties it closes the session with 4029.
func (n *Node) strike(s *session, now int64, cost float64) {
	cfg := &n.cfg
	burst := float64(max(cfg.UpstreamBurst, 1))
	if st := &s.rare().strikes; !st.take(now, max(cfg.UpstreamRate/10, 1), burst, cost) || st.tokens < 1 {
		s.closeWith(CloseRateLimited, "rate limited", ReasonRateLimited)
	}
}

// frameRef is the id and doc of a client frame, for an error about a frame
// the node did not otherwise read; ref{} when b is not a frame.
func frameRef(b []byte) ref {
	if len(b) == 0 {
		return ref{}
	}
	f, err := DecodeClientFrame(b)
	if err != nil {
		return ref{}
	}
	return ref{id: f.ID, doc: f.Doc}
}

// Metric reasons of pushd_joins_refused_total beyond the error codes.
const (
	reasonJoinRate     = "rate_limited"
	reasonTooManyUDocs = "too_many_user_docs"
)

// HeavyUsers returns the users with at least ClusterReportAt sessions on
// this node and their counts, for the cluster's census; nil when none (the
// usual case) or when the cluster limit is off.
func (n *Node) HeavyUsers() map[string]int { return n.admit.heavyUsers() }

// refuseTooManyClusterSessions is too_many_sessions for the cluster-wide
// limit; only its metric reason differs.
var refuseTooManyClusterSessions = refusal{"too_many_sessions", http.StatusTooManyRequests, CloseTooManySessions, "too_many_sessions_cluster", false}

func tooManySessions(cluster bool) refusal {
	if cluster {
		return refuseTooManyClusterSessions
	}
	return refuseTooManySessions
}

func (n *Node) tooManySessionsMessage(cluster bool) string {
	if cluster {
		return "too many sessions for this user in the cluster (" + strconv.Itoa(n.cfg.MaxClusterSessionsPerUser) + ")"
	}
	return "too many sessions for this user on this node"
}
