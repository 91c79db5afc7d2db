package node

import (
	"slices"
	"time"
)

// Shedding: closing some sessions with 1012 so their clients reconnect to
// other nodes, to even the cluster's load (package rebalance decides how
// many and when; docs/OPERATIONS.md, "Rebalancing"). The close reason names
// this node as a drain's does ("rebalance: node <n>; ..."), so a client
// skips it on its next attempt.

// shedMaxRate bounds how fast Shed closes a large batch: at most this many
// sessions a second, so the other nodes do not take a reconnect wave.
const shedMaxRate = 1000

// rebalanceReason is the close reason of a shed session.
func (n *Node) rebalanceReason() string {
	return "rebalance: " + n.elsewhere("this node holds more than its share, reconnect elsewhere")
}

// Shed picks up to count sessions to move to other nodes and, unless
// dryRun, closes them with 1012 and the rebalance reason after what is
// already queued for them. It returns their session IDs at once; a batch
// larger than a second's worth at 1,000 a second is closed in the
// background, spread evenly, and whatever is left of it when the node
// closes is closed then.
//
// It prefers, first, sessions that resumed with since at least once (their
// client keeps a cursor and loses nothing by moving) and, among those
// alike, the oldest (a session that just arrived, perhaps moved here by
// another node's rebalancing, is the last to be moved again). Sessions
// closing, waiting for their connect frame or in the middle of a resume
// are never picked.
func (n *Node) Shed(count int, dryRun bool) []string {
	if count <= 0 || n.draining.Load() {
		return []string{}
	}
	picked := n.pickShed(count)
	sids := make([]string, len(picked))
	for i, s := range picked {
		sids[i] = s.sid
	}
	if dryRun || len(picked) == 0 {
		return sids
	}
	reason := n.rebalanceReason()
	n.log.Info("rebalancing: asking sessions to reconnect elsewhere", "sessions", len(picked))
	if len(picked) <= shedMaxRate/10 {
		for _, s := range picked {
			s.closeWith(CloseServiceRestart, reason, ReasonRebalance)
		}
		return sids
	}
	over := time.Duration(len(picked)) * time.Second / shedMaxRate
	n.background.Add(1)
	go func() {
		defer n.background.Done()
		n.closeSpreadOver(picked, over, CloseServiceRestart, reason, ReasonRebalance, n.stop)
	}()
	return sids
}

// shedCandidate is a session and its rank for Shed: lower goes first.
type shedCandidate struct {
	s       *session
	resumed bool
	since   time.Time
}

func (a shedCandidate) before(b shedCandidate) bool {
	if a.resumed != b.resumed {
		return a.resumed
	}
	if !a.since.Equal(b.since) {
		return a.since.Before(b.since)
	}
	return a.s.id < b.s.id
}

// pickShed returns the count best sessions to shed, best first: one pass
// over the sessions keeping the count best in order (count is small).
func (n *Node) pickShed(count int) []*session {
	best := make([]shedCandidate, 0, min(count, 1024))
	n.hub.each(func(s *session) bool {
		if s.closing.Load() || s.pending.Load() {
			return true
		}
		s.mu.Lock()
		busy := s.dead || s.resumingLocked()
		s.mu.Unlock()
		if busy {
			return true
		}
		c := shedCandidate{s: s, resumed: s.resumed.Load(), since: s.since}
		if len(best) == count && !c.before(best[len(best)-1]) {
			return true
		}
		i, _ := slices.BinarySearchFunc(best, c, func(x, y shedCandidate) int {
			if x.before(y) {
				return -1
			}
			return 1
		})
		if len(best) == count {
			best = best[:count-1]
		}
		best = slices.Insert(best, i, c)
		return true
	})
	out := make([]*session, len(best))
	for i, c := range best {
		out[i] = c.s
	}
	return out
}

// resumingLocked reports whether s is in the middle of a resume (live
// pushes held back until its replay is queued). Lock: s.mu.
func (s *session) resumingLocked() bool {
	for _, h := range s.holding {
		if !h.released {
			return true
		}
	}
	return false
}
