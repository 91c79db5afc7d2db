package router

import (
	"strconv"
	"strings"

	"github.com/bwmarrin/snowflake"
)

// Subject kinds a node subscribes to.
const (
	KindUser    = "user"
	KindDoc     = "doc"
	KindAll     = "all"
	KindSession = "session"
)

// Header names of the NATS contract (docs/NATS.md).
const (
	HeaderEvent          = "Push-Event"
	HeaderID             = "Push-Id"
	HeaderExcludeSession = "Push-Exclude-Session"
	HeaderTimestamp      = "Push-Timestamp"
	HeaderTraceID        = "Push-Trace-Id"
	HeaderSession        = "Push-Session"
	HeaderUser           = "Push-User"
	HeaderNode           = "Push-Node"
)

// DefaultEvent is the event name of a push without a Push-Event header.
const DefaultEvent = "message"

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
	return snowflake.ID(id).Node()
}

// For returns the subject of kind and key.
func (s Subjects) For(kind, key string) string {
	switch kind {
	case KindAll:
		return s.All()
	case KindSession:
		return s.Session(key)
	}
	return s.prefix + "." + kind + "." + key
}

// Event is the subject of connect/disconnect events.
func (s Subjects) Event(kind string) string { return s.prefix + ".events." + kind }

// Upstream is the subject clients' publish frames for doc go to.
func (s Subjects) Upstream(doc string) string { return s.prefix + ".up.doc." + doc }

// Admin is the subject of an admin verb; every node answers it.
func (s Subjects) Admin(verb string) string { return s.prefix + ".admin." + verb }

// Parse splits a push subject into kind and key. ok is false for anything
// that is not a push subject under this prefix.
func (s Subjects) Parse(subject string) (kind, key string, ok bool) {
	rest, found := strings.CutPrefix(subject, s.prefix)
	if !found || len(rest) == 0 || rest[0] != '.' {
		return "", "", false
	}
	rest = rest[1:]
	if rest == KindAll {
		return KindAll, "", true
	}
	kind, key, found = strings.Cut(rest, ".")
	if !found || key == "" {
		return "", "", false
	}
	switch kind {
	case KindUser, KindDoc:
		return kind, key, true
	case KindSession: // <node>.<sid>: the key is the sid
		if _, sid, ok := strings.Cut(key, "."); ok && sid != "" {
			return kind, sid, true
		}
	}
	return "", "", false
}
