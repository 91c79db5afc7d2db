package node

import (
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// session is one client WebSocket connection.
type session struct {
	node    *Node
	id      int64
	sid     string
	user    string
	conn    *gws.Conn
	pc      *parkConn // the connection gws reads, when the session may park
	netConn net.Conn  // the socket, for writes
	remote  string
	since   time.Time

	// lastSeen is the UnixNano of the last frame of any kind from the client.
	lastSeen atomic.Int64
	// interval is the heartbeat interval (ns) currently granted; the sweeper
	// reads it, the read goroutine writes it.
	interval atomic.Int64
	// lastBeat and healthy are touched only by the read goroutine.
	lastBeat   int64
	healthy    int
	badFrames  int
	closing    atomic.Bool
	reason     atomic.Pointer[Reason]
	msgsIn     atomic.Uint64
	bytesIn    atomic.Uint64
	msgsOut    atomic.Uint64
	bytesOut   atomic.Uint64
	lastBeatAt atomic.Int64
	// writeStarted is the UnixNano at which the socket write in flight
	// began, 0 when none is; the sweeper cuts off writes older than
	// WriteTimeout.
	writeStarted atomic.Int64

	// expires is the UnixNano at which the session's token expires (0: never,
	// for dev sessions); refresh moves it, the sweeper enforces it.
	expires atomic.Int64
	// grants are the doc patterns of the current token; unrestricted sessions
	// (dev ?user=, or a node without keys) may join any doc. Both, and the
	// rate-limit state below, are touched only by the read goroutine.
	grants       []string
	unrestricted bool
	frames       bucket
	bytes        bucket
	strikes      bucket // dropped frames; see admitFrame
	limited      int    // frames dropped in a row
	// connSlot and userSlot are set while the session holds the admission
	// slots it must release (limits.go). Touched by the read goroutine only.
	connSlot, userSlot bool
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
	// lastWrite is the UnixNano of the last socket write, for WriteCoalesce;
	// only the (single) running writer touches it.
	lastWrite int64
	// closeAfter is a close frame to write once out is flushed.
	closeAfter *frame
	dead       bool
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

func (s *session) endReason() Reason {
	if r := s.reason.Load(); r != nil {
		return *r
	}
	return ReasonClient
}
