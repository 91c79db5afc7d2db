package contract

import (
	"errors"
	"strconv"
)

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
	// HeaderReport names the subject delivery reports go to. A NATS reply
	// subject works too for pushes kept out of history (broadcast, session,
	// or history off); for a stored push JetStream answers the reply with
	// its PubAck.
	HeaderReport = "Push-Report"
	// HeaderReceipt asks every session that gets the push to acknowledge it
	// and names the subject the receipts go to (docs/NATS.md).
	HeaderReceipt = "Push-Receipt"
)

// JetStream's headers on a stored push republished to the nodes.
const (
	HeaderStreamSequence = "Nats-Sequence"      // the push's position in its stream
	HeaderLastSequence   = "Nats-Last-Sequence" // the position of the previous push on the same subject, 0 if none
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
	// Seq is the push's position in its subject's history (a JetStream
	// stream sequence: increasing per subject, not contiguous); zero for a
	// push kept out of history.
	Seq uint64
	// PrevSeq is the position of the push before it on the same subject,
	// zero when none is known: a node that delivered PrevSeq last missed
	// nothing in between.
	PrevSeq uint64
	// Receipt is the subject receipts go to when the publisher asked for
	// them (Push-Receipt); empty otherwise.
	Receipt string
	// Data is the NATS body; the node never decodes it.
	Data []byte
}

// Errors of a resume; match them with errors.Is.
var (
	// ErrNoHistory means history is off or unavailable: no positions, no
	// replay (clients are told recovered:false).
	ErrNoHistory = errors.New("pushd: history is unavailable")
	// ErrAheadOfHistory means a position is ahead of everything the history
	// holds: a client's "since" from the future.
	ErrAheadOfHistory = errors.New("pushd: position is ahead of the history")
)

// Replay is what a subject's history holds after a position.
type Replay struct {
	// Pushes are the pushes after the position, in order.
	Pushes []Push
	// Recovered says the pushes are all of them: history reached back to
	// the position. False means some may be missing (trimmed, expired, a
	// reset stream, or more than a replay may carry): the client must
	// refetch its state.
	Recovered bool
	// Position is the subject's position once the pushes are delivered.
	Position uint64
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
