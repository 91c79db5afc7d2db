package node

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// session is one client, whatever carries its frames. It owns its outbound
// queue (queue.go), its heartbeat and token-expiry state (the sweeper reads
// it), its joins and its rate limits; its transport only writes frames and
// ends the connection (transport.go).
type session struct {
	node   *Node
	t      transport
	remote string
	since  time.Time
	// startReading starts the transport's read side, once.
	startReading func()

	// id, sid and user are set when the session is activated (open.go) and
	// never change after; a pending session has none yet.
	id   int64
	sid  string
	user string

	// lastSeen is the UnixNano of the last frame of any kind from the client.
	lastSeen atomic.Int64
	// interval is the heartbeat interval (ns) currently granted; the sweeper
	// reads it, the read side writes it.
	interval atomic.Int64
	// lastBeat and healthy are the adaptive heartbeat's state; read side only.
	lastBeat  int64
	healthy   int
	badFrames int
	closing   atomic.Bool
	// resumed is set once the client resumed a subject with since: it
	// keeps a cursor, so moving it to another node loses nothing (Shed).
	resumed    atomic.Bool
	reason     atomic.Pointer[Reason]
	msgsIn     atomic.Uint64
	bytesIn    atomic.Uint64
	msgsOut    atomic.Uint64
	bytesOut   atomic.Uint64
	lastBeatAt atomic.Int64
	// backlog and backlogFrames are what the transport holds that its
	// client has not confirmed yet (an HTTP session's log; always 0 on a
	// WebSocket): they count against the queue limits with the queue.
	backlog       atomic.Int64
	backlogFrames atomic.Int64
	// writeStarted is the UnixNano at which the transport write in flight
	// began, 0 when none is; the sweeper cuts off writes older than
	// WriteTimeout.
	writeStarted atomic.Int64
	// joins bounds joins and leaves (admitJoin); read side only.
	joins bucket

	// expires is the UnixNano at which the session's token expires (0: never,
	// for dev sessions); refresh moves it, the sweeper enforces it.
	expires atomic.Int64
	// grants are the doc patterns of the current token; unrestricted sessions
	// (dev users, or a node without keys) may join any doc. Both, and the
	// rate-limit state below, are touched by the read side only.
	grants       []string
	unrestricted bool
	// rare holds what few sessions use (rare.go).
	rareP   atomic.Pointer[sessionRare]
	frames  bucket
	bytes   bucket
	limited int // frames dropped in a row
	// connSlot and userSlot are set while the session holds the admission
	// slots it must release (limits.go); read side only.
	connSlot, userSlot bool
	// sink, while set, takes the replies to the frame being read instead of
	// the queue: an HTTP session answers a POSTed frame in the POST's
	// response (httpsession.go). Read side only.
	sink *[]*frame
	// pending is set while an upgraded connection waits for its connect
	// frame (handshake.go): it has no user, no ID and no index entry.
	pending atomic.Bool

	mu sync.Mutex // guards the fields below
	// docs the session joined.
	docs []string
	// out holds frames not yet written; spare is the other half of a double
	// buffer the writer swaps with out.
	out      []*frame
	spare    []*frame
	outBytes int
	writing  bool // a writer runs, or a Batch will start one
	corked   bool // frames queue but are not written (see cork)
	// lastWrite is the UnixNano of the last write, for WriteCoalesce; only
	// the (single) running writer touches it.
	lastWrite int64
	// ending is set once a close is queued: the writer ends the transport
	// with endCode and endReason after what is already queued.
	ending    bool
	endCode   CloseCode
	endReason string
	dead      bool
	// holding are the subjects the session resumes, with the live pushes
	// held back meanwhile (recover.go); nil when it resumes none.
	holding map[string]*held
	// listening are the docs whose presence events the session asked for,
	// each with the number of its own join: it gets the changes after it.
	listening map[string]uint64
}

func newSID(id int64) string { return strconv.FormatInt(id, 10) }

// joined reports whether the session joined doc.
func (s *session) joined(doc string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.docs, doc)
}

// docCount is the number of docs joined.
func (s *session) docCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.docs)
}

// setReason records why the session ends; the first reason wins.
func (s *session) setReason(r Reason) {
	s.reason.CompareAndSwap(nil, &r)
}

func (s *session) endReasonOr(def Reason) Reason {
	if r := s.reason.Load(); r != nil {
		return *r
	}
	return def
}
