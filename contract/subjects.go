package contract

import (
	"strconv"
	"strings"
)

// Subjects builds every subject pushd uses under one prefix. It is the only
// place subject strings are made.
type Subjects struct {
	prefix string
}

// NewSubjects returns the scheme for prefix; empty means "push".
func NewSubjects(prefix string) Subjects {
	if prefix == "" {
		prefix = "push"
	}
	return Subjects{prefix: prefix}
}

// Prefix is the subject prefix.
func (s Subjects) Prefix() string { return s.prefix }

// User is the subject of pushes to a user.
func (s Subjects) User(uid string) string { return s.prefix + ".user." + uid }

// Doc is the subject of pushes to a document.
func (s Subjects) Doc(doc string) string { return s.prefix + ".doc." + doc }

// All is the broadcast subject.
func (s Subjects) All() string { return s.prefix + ".all" }

// Session is the subject of pushes to one session:
// <prefix>.session.<node>.<sid>, where node is the number of the node that
// holds the session. The node is in the sid itself (a snowflake ID), and in
// hello, the connect event and upstream's Push-Node, so a node takes all its
// sessions' pushes with one subscription instead of one per session. A sid
// that is not a session ID gets node "-1", which no node subscribes to.
func (s Subjects) Session(sid string) string {
	return s.prefix + ".session." + strconv.FormatInt(SessionNode(sid), 10) + "." + sid
}

// NodeSessions is the subscription that takes the pushes to every session of
// node.
func (s Subjects) NodeSessions(node int64) string {
	return s.prefix + ".session." + strconv.FormatInt(node, 10) + ".*"
}

// SessionNode is the number of the node that minted session ID sid, or -1
// when sid is not a session ID.
func SessionNode(sid string) int64 {
	id, err := strconv.ParseInt(sid, 10, 64)
	if err != nil || id <= 0 {
		return -1
	}
	// The layout is snowflake's default (10 node bits above 12 step bits),
	// decoded here rather than with snowflake.ID.Node, which reads package
	// variables that every snowflake.NewNode rewrites.
	return (id >> SessionStepBits) & (1<<SessionNodeBits - 1)
}

// The session ID layout: github.com/bwmarrin/snowflake's defaults, which the
// node does not change.
const (
	SessionNodeBits = 10
	SessionStepBits = 12
)

// For returns the subject of pushes to target and key.
func (s Subjects) For(target Target, key string) string {
	switch target {
	case TargetAll:
		return s.All()
	case TargetSession:
		return s.Session(key)
	}
	return s.prefix + "." + string(target) + "." + key
}

// Event is the subject of connect/disconnect events.
func (s Subjects) Event(kind string) string { return s.prefix + ".events." + kind }

// Upstream is the subject clients' publish frames for doc go to.
func (s Subjects) Upstream(doc string) string { return s.prefix + ".up.doc." + doc }

// Seq is where the history stream republishes a stored push to target and
// key, with its position in headers (docs/NATS.md); nodes subscribe there
// instead of For(target, key) while history is available.
func (s Subjects) Seq(target Target, key string) string {
	return s.prefix + ".seq." + string(target) + "." + key
}

// HistoryBeat is the subject node publishes its history heartbeat for one
// stream on (target TargetUser or TargetDoc); the stream stores it and
// republishes it under Seq, which proves the stream alive.
func (s Subjects) HistoryBeat(target Target, node int64) string {
	return s.prefix + ".history." + string(target) + "." + strconv.FormatInt(node, 10)
}

// HistoryBeats is the subscription that takes node's republished history
// heartbeats of both streams.
func (s Subjects) HistoryBeats(node int64) string {
	return s.prefix + ".seq.history.*." + strconv.FormatInt(node, 10)
}

// NodeHeartbeat is where node publishes its heartbeat.
func (s Subjects) NodeHeartbeat(node int64) string {
	return s.prefix + ".nodes.heartbeat." + strconv.FormatInt(node, 10)
}

// NodeHeartbeats is the subscription that takes every node's heartbeat.
func (s Subjects) NodeHeartbeats() string { return s.prefix + ".nodes.heartbeat.*" }

// NodeClaim is the subject a starting node asks whether node number node is
// in use; its live holder answers.
func (s Subjects) NodeClaim(node int64) string {
	return s.prefix + ".nodes.claim." + strconv.FormatInt(node, 10)
}

// NodeCensus is where node reports the users holding many sessions on it,
// for the cluster-wide per-user session limit.
func (s Subjects) NodeCensus(node int64) string {
	return s.prefix + ".nodes.census." + strconv.FormatInt(node, 10)
}

// NodeCensuses is the subscription that takes every node's census report.
func (s Subjects) NodeCensuses() string { return s.prefix + ".nodes.census.*" }

// Admin is the subject of an admin verb; every node answers it.
func (s Subjects) Admin(verb string) string { return s.prefix + ".admin." + verb }

// Parse splits a push subject into target and key; a dotted user or doc ID
// is the whole rest of the subject. ok is false for anything that is not a
// push subject under this prefix.
func (s Subjects) Parse(subject string) (target Target, key string, ok bool) {
	rest, found := strings.CutPrefix(subject, s.prefix)
	if !found || len(rest) == 0 || rest[0] != '.' {
		return "", "", false
	}
	rest = rest[1:]
	if rest == string(TargetAll) {
		return TargetAll, "", true
	}
	// A push republished by the history stream: <prefix>.seq.<kind>.<key>.
	if r, ok := strings.CutPrefix(rest, "seq."); ok && (strings.HasPrefix(r, "user.") || strings.HasPrefix(r, "doc.")) {
		rest = r
	}
	kind, key, found := strings.Cut(rest, ".")
	if !found || key == "" {
		return "", "", false
	}
	switch t := Target(kind); t {
	case TargetUser, TargetDoc:
		return t, key, true
	case TargetSession: // <node>.<sid>: the key is the sid
		if _, sid, ok := strings.Cut(key, "."); ok && sid != "" {
			return t, sid, true
		}
	}
	return "", "", false
}
