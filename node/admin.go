package node

import (
	"slices"
	"strconv"
	"time"

	"github.com/pushd/pushd/contract"
)

// The admin view of a node (pushctl, over the admin protocol): its sessions,
// kicks and counters, in the contract's vocabulary.

// SessionInfos returns one page of the sessions matching f, ordered by
// session ID, the cursor of the next page ("" on the last page) and how many
// sessions match in all.
func (n *Node) SessionInfos(f contract.SessionFilter) (infos []contract.SessionInfo, next string, total int) {
	limit := f.PageSize()
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
	infos = make([]contract.SessionInfo, len(list))
	for i, s := range list {
		infos[i] = n.info(s)
	}
	return infos, next, total
}

// SessionInfo returns the session with ID sid if this node holds it.
func (n *Node) SessionInfo(sid string) (contract.SessionInfo, bool) {
	s := n.lookup(sid)
	if s == nil {
		return contract.SessionInfo{}, false
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
func (n *Node) Stats() contract.Stats {
	m := n.metrics
	return contract.Stats{
		At:             time.Now().UTC(),
		Connections:    n.Sessions(),
		Users:          n.Users(),
		Docs:           n.Docs(),
		Accepted:       m.accepted.load(),
		Closed:         m.closed.sum(),
		Kicked:         m.closed.get(string(ReasonKicked)),
		PushesReceived: m.pushes.sum(),
		FramesWritten:  m.framesWritten.load(),
		BytesWritten:   m.bytesWritten.load(),
		SlowConsumers:  m.slowConsumers.load(),
		Upstream:       m.upstream.load(),
	}
}

func (n *Node) lookup(sid string) *session {
	id, err := strconv.ParseInt(sid, 10, 64)
	if err != nil {
		return nil
	}
	return n.hub.session(id)
}

func (n *Node) info(s *session) contract.SessionInfo {
	s.mu.Lock()
	docs := slices.Clone(s.docs)
	depth, qbytes := len(s.out), s.outBytes
	s.mu.Unlock()
	info := contract.SessionInfo{
		SID:         s.sid,
		User:        s.user,
		Node:        n.cfg.NodeID,
		Transport:   s.t.name(),
		Remote:      s.remote,
		Docs:        docs,
		ConnectedAt: s.since.UTC(),
		LastSeen:    time.Unix(0, s.lastSeen.Load()).UTC(),
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
		t := time.Unix(0, at).UTC()
		info.LastHeartbeat = &t
	}
	return info
}
