package node

import (
	"context"
	"time"

	"github.com/pushd/pushd/contract"
)

// Opening and closing sessions: a transport's connection becomes a session
// (newSession), gets an identity and an ID and is registered (activate), and
// leaves every index when its read side ends (closed).

// newWSSession wraps a freshly upgraded WebSocket, which holds a
// connection slot, in a session; see enter.
func (n *Node) newWSSession(t *wsTransport, pending bool) *session {
	s := n.newSession(t, t.conn.RemoteAddr().String(), t.startReading)
	t.s = s
	t.conn.Session().(*slot).s = s
	if !n.enter(s, pending) {
		return nil
	}
	return s
}

// newSession makes a session of a connection that holds a connection slot.
// The session has no identity yet: activate gives it one. startReading
// starts the transport's read side.
func (n *Node) newSession(t transport, remote string, startReading func()) *session {
	now := time.Now()
	s := &session{
		node:         n,
		t:            t,
		remote:       remote,
		since:        now,
		connSlot:     true,
		startReading: startReading,
	}
	s.lastSeen.Store(now.UnixNano())
	s.lastBeat = now.UnixNano()
	s.interval.Store(int64(n.cfg.PingInterval))
	return s
}

// enter makes s, fully built, one of the node's: its read side is counted,
// and a pending one (waiting for its connect frame, handshake.go) is found
// by Drain, Close and the auth deadline. It reports false once the node is
// draining.
func (n *Node) enter(s *session, pending bool) bool {
	// Under the gate, so Drain, once it holds it, finds every session.
	n.gate.RLock()
	defer n.gate.RUnlock()
	if n.draining.Load() {
		return false
	}
	n.readers.Add(1) // released by the read side's end (readLoop)
	if pending {
		n.pending.add(s)
	}
	return true
}

// activate makes s, authenticated as who and holding a session slot of
// who.user, a session: it mints its ID, registers it, waits for its
// subscriptions and writes hello (echoing id, the connect frame's), with the
// user's position. A client that connects with since (the position of the
// last user push it processed) gets the user pushes it missed right after
// hello (recover.go). Unless reading (a session that connected with its
// first frame runs on its read side already), it then starts the read side.
func (n *Node) activate(s *session, who identity, id string, reading bool, since Position) {
	num := n.ids.Generate().Int64()
	s.id, s.sid, s.user = num, newSID(num), who.user
	s.grants, s.userSlot = who.grants, true
	if who.info != nil {
		s.rare().info = who.info
	}
	s.unrestricted = who.unrestricted || n.cfg.Auth == nil || n.cfg.JoinAuthorization == JoinOff
	s.expires.Store(who.expires)
	// Corked until hello: pushes that reach the session once it is
	// registered queue up but are not written, and hello goes in front of
	// them (PROTOCOL.md promises hello first).
	s.cork()
	resuming := since.Set && !since.Invalid
	if resuming {
		s.holdLive(subjectKey(contract.TargetUser, who.user))
	}
	start := func() {
		if !reading {
			s.startReading()
		}
	}
	n.gate.RLock()
	if n.draining.Load() {
		n.gate.RUnlock()
		s.abort(CloseServiceRestart, n.drainReason(), ReasonDrain)
		start()
		return
	}
	err := n.register(s)
	n.gate.RUnlock()
	if err != nil {
		n.log.Error("session not registered", "sid", s.sid, "user", s.user, "err", err)
		s.abort(1011, "subscription failed", ReasonError)
		start()
		return
	}
	if !resuming && !reading {
		// Hello waits for the subscription to reach the server, but no
		// goroutine waits with it: the bus greets the session once the
		// round trip it shares with every handshake of the moment is done.
		// (A session activated from its read side, or over HTTP, whose
		// caller answers once hello is queued, waits in place.)
		n.bus.AfterSync(func(err error) {
			if err != nil {
				n.log.Warn("subscriptions not confirmed before hello", "sid", s.sid, "err", err)
			}
			n.greet(s, id, since, nil, start)
		})
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.HandshakeTimeout)
	if err := n.bus.Sync(ctx); err != nil {
		n.log.Warn("subscriptions not confirmed before hello", "sid", s.sid, "err", err)
	}
	cancel()
	if !resuming {
		// Nothing to replay: a session without since reads no history.
		n.greet(s, id, since, nil, start)
		return
	}
	n.greet(s, id, since, func(hello func(resumed) *frame) error {
		replay, at, err := n.resume(s, contract.TargetUser, s.user, since.N)
		if err != nil { // a since ahead of the history: no replay
			at = resumed{}
			at.position, at.known = n.bus.Position(contract.TargetUser)
		}
		n.release(s, contract.TargetUser, s.user, hello, replay, at, true)
		return err
	}, start)
}

// greet sends s its hello, with the replay of what it missed when resume is
// given (a since), and the bad_since error for a since it could not use;
// then it tells the backends and starts the session's read side.
func (n *Node) greet(s *session, id string, since Position, resume func(hello func(resumed) *frame) error, start func()) {
	n.metrics.accepted.inc()
	hello := func(at resumed) *frame {
		return encodeHello(s.sid, n.cfg.NodeID, s.user, ms(n.cfg.PingInterval), ms(n.cfg.PingInterval+n.cfg.PingGrace), id, at)
	}
	var bad error
	if resume != nil {
		bad = resume(hello)
	} else {
		var at resumed
		at.position, at.known = n.bus.Position(contract.TargetUser)
		f := hello(at)
		s.uncork(f)
		f.release()
	}
	if since.Invalid || bad != nil {
		s.reply(encodeError(errBadSince, sinceMessage(since, bad), ref{id: id}))
	}
	n.publishEvent("connect", s, "", time.Time{})
	n.log.Debug("session open", "sid", s.sid, "user", s.user, "remote", s.remote)
	start()
}

// register indexes s and subscribes to its user's subject when s is the
// user's first session here. Its session subject needs nothing: the node's
// one subscription to its sessions covers it.
func (n *Node) register(s *session) error {
	if _, err := n.hub.users.add(s.user, s, func() error { return n.bus.Subscribe(contract.TargetUser, s.user) }); err != nil {
		return err
	}
	n.hub.addSession(s)
	return nil
}

func (n *Node) unindexUser(s *session) {
	n.hub.users.remove(s.user, s, func() { n.unsubscribe(contract.TargetUser, s.user) })
}

func (n *Node) unsubscribe(target contract.Target, key string) {
	if err := n.bus.Unsubscribe(target, key); err != nil {
		n.log.Warn("unsubscribe failed", "target", target, "key", key, "err", err)
	}
}

// closed unregisters s after its read loop ended.
func (n *Node) closed(s *session) {
	n.pending.remove(s)
	if s.userSlot {
		s.userSlot = false
		n.admit.releaseUser(s.user)
	}
	if s.connSlot {
		s.connSlot = false
		n.admit.releaseConn()
	}
	s.mu.Lock()
	s.dead = true
	s.dropQueueLocked()
	docs := s.docs
	s.docs = nil
	s.mu.Unlock()
	if w, ok := s.t.(*wsTransport); ok && w.pc != nil {
		n.poller.forget(w.pc)
	}
	if s.sid == "" || n.hub.session(s.id) != s {
		return // never registered
	}
	n.hub.removeSession(s)
	n.unindexUser(s)
	for _, d := range docs {
		n.userDocs.remove(s.user, d)
		n.hub.docs.remove(d, s, func() { n.unsubscribe(contract.TargetDoc, d) })
		n.untrack(s, d, contract.LeaveDisconnected)
	}
	reason := s.endReasonOr(ReasonClient)
	n.metrics.closed.inc(string(reason))
	n.publishEvent("disconnect", s, reason, time.Now())
	n.log.Debug("session closed", "sid", s.sid, "user", s.user, "reason", reason)
}
