package node

import (
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// DefaultSessionLimit is the page size of SessionInfos when the filter sets
// none.
const DefaultSessionLimit = 100

// SessionInfo is what an admin sees of one session.
type SessionInfo struct {
	SID           string
	User          string
	Node          int64
	Remote        string
	Docs          []string
	ConnectedAt   time.Time
	LastHeartbeat time.Time // zero when the client never sent a heartbeat
	LastSeen      time.Time // last frame of any kind from the client
	MsgsIn        uint64
	BytesIn       uint64
	MsgsOut       uint64
	BytesOut      uint64
	QueueDepth    int // frames queued and not yet written
	QueueBytes    int // bytes queued and not yet written
}

// SessionFilter selects sessions for SessionInfos. User and Doc filters are
// answered from the node's indexes; with neither set every session is
// scanned, a page at a time.
type SessionFilter struct {
	User   string // only this user's sessions
	Doc    string // only sessions that joined this doc
	Limit  int    // page size; zero means DefaultSessionLimit
	Cursor string // return sessions with a session ID greater than this one
}

// Stats are a node's counters and gauges at one instant, for rates.
type Stats struct {
	At             time.Time
	Connections    int
	Users          int
	Docs           int
	Accepted       uint64 // sessions that completed the handshake
	Closed         uint64 // sessions closed, any reason
	Kicked         uint64 // sessions closed by an admin
	PushesReceived uint64 // NATS messages received for delivery
	FramesWritten  uint64 // push frames handed to sockets
	BytesWritten   uint64
	SlowConsumers  uint64 // sessions cut off as slow consumers
	Upstream       uint64 // client publish frames forwarded to NATS
}

// Version is the version the node was configured with.
func (n *Node) Version() string { return n.cfg.Version }

// SessionInfos returns one page of the sessions matching f, ordered by
// session ID, the cursor of the next page ("" on the last page) and how many
// sessions match in all.
func (n *Node) SessionInfos(f SessionFilter) (infos []SessionInfo, next string, total int) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultSessionLimit
	}
	var after int64 = -1
	if f.Cursor != "" {
		if c, err := strconv.ParseInt(f.Cursor, 10, 64); err == nil {
			after = c
		}
	}
	var list []*session
	switch {
	case f.User != "":
		list = n.hub.users.sessions(f.User)
		if f.Doc != "" {
			list = slices.DeleteFunc(list, func(s *session) bool { return !s.joined(f.Doc) })
		}
	case f.Doc != "":
		list = n.hub.docs.sessions(f.Doc)
	default:
		n.hub.each(func(s *session) bool { list = append(list, s); return true })
	}
	total = len(list)
	list = slices.DeleteFunc(list, func(s *session) bool { return s.id <= after })
	slices.SortFunc(list, func(a, b *session) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	if len(list) > limit {
		list = list[:limit]
		next = list[limit-1].sid
	}
	infos = make([]SessionInfo, len(list))
	for i, s := range list {
		infos[i] = n.info(s)
	}
	return infos, next, total
}

// SessionInfo returns the session with ID sid if this node holds it.
func (n *Node) SessionInfo(sid string) (SessionInfo, bool) {
	s := n.lookup(sid)
	if s == nil {
		return SessionInfo{}, false
	}
	return n.info(s), true
}

// Kick closes the session sid, or every session of user when sid is empty,
// with close code 4010 (CloseKicked) and reason, after what is already queued
// for them. It returns the session IDs it closed.
func (n *Node) Kick(sid, user, reason string) []string {
	var list []*session
	switch {
	case sid != "":
		if s := n.lookup(sid); s != nil && (user == "" || s.user == user) {
			list = []*session{s}
		}
	case user != "":
		list = n.hub.users.sessions(user)
	}
	if reason == "" {
		reason = "kicked by an admin"
	}
	closed := make([]string, 0, len(list))
	for _, s := range list {
		if s.closing.Load() {
			continue
		}
		n.log.Info("session kicked", "sid", s.sid, "user", s.user, "reason", reason)
		s.closeWith(CloseKicked, reason, ReasonKicked)
		closed = append(closed, s.sid)
	}
	return closed
}

// Stats samples the node's counters.
func (n *Node) Stats() Stats {
	m := n.metrics
	return Stats{
		At:             time.Now(),
		Connections:    n.Sessions(),
		Users:          n.Users(),
		Docs:           n.Docs(),
		Accepted:       sum(m.accepted),
		Closed:         sum(m.closed),
		Kicked:         uint64(value(m.closed.WithLabelValues(string(ReasonKicked)))),
		PushesReceived: sum(m.pushes),
		FramesWritten:  sum(m.framesWritten),
		BytesWritten:   sum(m.bytesWritten),
		SlowConsumers:  sum(m.slowConsumers),
		Upstream:       sum(m.upstream),
	}
}

func (n *Node) lookup(sid string) *session {
	id, err := strconv.ParseInt(sid, 10, 64)
	if err != nil {
		return nil
	}
	return n.hub.session(id)
}

func (n *Node) info(s *session) SessionInfo {
	s.mu.Lock()
	docs := slices.Clone(s.docs)
	depth, qbytes := len(s.out), s.outBytes
	s.mu.Unlock()
	info := SessionInfo{
		SID:         s.sid,
		User:        s.user,
		Node:        n.cfg.NodeID,
		Remote:      s.remote,
		Docs:        docs,
		ConnectedAt: s.since,
		LastSeen:    time.Unix(0, s.lastSeen.Load()),
		MsgsIn:      s.msgsIn.Load(),
		BytesIn:     s.bytesIn.Load(),
		MsgsOut:     s.msgsOut.Load(),
		BytesOut:    s.bytesOut.Load(),
		QueueDepth:  depth,
		QueueBytes:  qbytes,
	}
	if info.Docs == nil {
		info.Docs = []string{}
	}
	if at := s.lastBeatAt.Load(); at != 0 {
		info.LastHeartbeat = time.Unix(0, at)
	}
	return info
}

// sum adds up every sample of a counter, gauge or vector of them.
func sum(c prometheus.Collector) uint64 {
	ch := make(chan prometheus.Metric, 16)
	go func() { c.Collect(ch); close(ch) }()
	var total float64
	for m := range ch {
		total += value(m)
	}
	return uint64(total)
}

func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return 0
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	return 0
}
