package contract

import "strconv"

// Target is what a push is addressed to; it is also the kind token of its
// subject (docs/NATS.md).
type Target string

// Push targets.
const (
	TargetUser    Target = "user"    // every session of a user
	TargetDoc     Target = "doc"     // every session that joined a doc
	TargetAll     Target = "all"     // every session
	TargetSession Target = "session" // one session
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

// Push is one message to deliver: routing from its subject and headers, the
// body untouched. The router decodes it from NATS and hands it to the node,
// which encodes it once for every session it targets.
type Push struct {
	Target Target
	// Key is the user ID, doc ID or session ID; empty for TargetAll.
	Key string
	// Event is the Push-Event header, DefaultEvent when absent.
	Event string
	// ID is the Push-Id header.
	ID string
	// ExcludeSession is a session ID that must not receive the push.
	ExcludeSession string
	// TraceID is the Push-Trace-Id header, logged with the delivery.
	TraceID string
	// SentUnixNano is the Push-Timestamp header, zero when absent.
	SentUnixNano int64
	// Data is the NATS body; the node never decodes it.
	Data []byte
}

// ParseTimestamp reads a Push-Timestamp: a Unix time in nanoseconds,
// microseconds or milliseconds (told apart by magnitude). It returns 0 for
// anything unreadable.
func ParseTimestamp(v string) int64 {
	if v == "" {
		return 0
	}
	t, err := strconv.ParseInt(v, 10, 64)
	if err != nil || t <= 0 {
		return 0
	}
	switch {
	case t < 1e14:
		return t * 1e6
	case t < 1e17:
		return t * 1e3
	}
	return t
}
