package router

import "strings"

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

// Session is the subject of pushes to one session.
func (s Subjects) Session(sid string) string { return s.prefix + ".session." + sid }

// For returns the subject of kind and key.
func (s Subjects) For(kind, key string) string {
	if kind == KindAll {
		return s.All()
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
	case KindUser, KindDoc, KindSession:
		return kind, key, true
	}
	return "", "", false
}
