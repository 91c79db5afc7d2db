package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/snowflake"
	"github.com/lxzan/gws"

	"github.com/pushd/pushd/contract"
)

// Bus is what the node needs from the message bus. The router implements it
// over NATS. Subscribe and Unsubscribe for one (kind, key) are never called
// concurrently and always alternate.
type Bus interface {
	// Subscribe starts receiving pushes to target (TargetUser or TargetDoc)
	// for key. Broadcasts and pushes to the node's sessions need no per-key
	// subscription.
	Subscribe(target contract.Target, key string) error
	// Unsubscribe stops receiving them.
	Unsubscribe(target contract.Target, key string) error
	// Sync returns once every subscription made so far is active on the
	// server, so a client told "hello" or "joined" is reachable.
	Sync(ctx context.Context) error
	// PublishEvent publishes a connect or disconnect event body.
	PublishEvent(kind string, body []byte) error
	// PublishUpstream forwards a client's publish frame for doc.
	PublishUpstream(doc, sid, user, event string, data []byte) error
}

// ErrNotAccepting is returned when the node refuses new sessions.
var ErrNotAccepting = errors.New("pushd: node is not accepting connections")

// Node holds client sessions and delivers pushes to them.
type Node struct {
	cfg      Config
	log      *slog.Logger
	bus      Bus
	ids      *snowflake.Node
	hub      *hub
	metrics  *metrics
	upgrader *gws.Upgrader
	// ipLimiter (nil when off) and admit enforce the handshake limits
	// (limits.go).
	ipLimiter *ipLimiter
	admit     admission

	draining atomic.Bool
	leased   atomic.Bool
	// conflict is set while another live node uses this node's number and
	// this node must give way (SetConflict).
	conflict atomic.Bool
	// gate orders session opens against Drain/Close: opens take it shared and
	// re-check draining, Drain takes it exclusively to flip draining, so no
	// reader is added once the node waits for readers.
	gate sync.RWMutex

	readers sync.WaitGroup // one per session read side, parked or not
	writers sync.WaitGroup // one per running writeLoop

	// refusals logs refused handshakes and pushes, rate-limited.
	refusals rateLog
	// pending are upgraded connections waiting for their connect frame.
	pending pendingSessions

	// poller watches parked sessions (park.go); nil when parking is off.
	poller         *poller
	parkedSessions atomic.Int64

	stop     chan struct{}
	stopOnce sync.Once
	sweeper  sync.WaitGroup
	// background runs the node's own session closes (SetConflict); Close
	// waits for it.
	background sync.WaitGroup
}

// New creates a node. Call Start to run its heartbeat sweeper.
func New(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if cfg.Bus == nil {
		return nil, errors.New("pushd: node needs a Bus")
	}
	if cfg.Auth == nil && !cfg.Dev {
		return nil, errors.New("pushd: no token key configured (set a JWT secret or public key, or use dev mode)")
	}
	ids, err := snowflake.NewNode(cfg.NodeID)
	if err != nil {
		return nil, fmt.Errorf("pushd: node id %d: %w", cfg.NodeID, err)
	}
	n := &Node{
		cfg:  cfg,
		log:  cfg.Logger,
		bus:  cfg.Bus,
		ids:  ids,
		hub:  newHub(),
		stop: make(chan struct{}),
	}
	n.metrics = newMetrics(cfg.Registerer, func() float64 { return float64(n.parkedSessions.Load()) })
	n.refusals.out = n.log
	n.leased.Store(true)
	n.ipLimiter = newIPLimiter(cfg.HandshakeRatePerIP, cfg.HandshakeBurstPerIP)
	n.admit = admission{maxConns: cfg.MaxConnections, maxPerUser: cfg.MaxSessionsPerUser, users: make(map[string]int)}
	n.upgrader = gws.NewUpgrader(&handler{n: n}, &gws.ServerOption{
		ReadBufferSize:     cfg.ReadBufferSize,
		ReadMaxPayloadSize: cfg.MaxFrameSize,
		CheckUtf8Enabled:   true,
		HandshakeTimeout:   cfg.HandshakeTimeout,
		NewSession:         func() gws.SessionStorage { return &slot{} },
		Recovery:           gws.Recovery,
		Logger:             gwsLogger{n.log},
	})
	return n, nil
}

// Start runs the heartbeat sweeper and the poller of parked sessions until
// Close. Call it before serving any request.
func (n *Node) Start() {
	if !n.cfg.NoParking {
		p, err := newPoller()
		if err != nil {
			n.log.Warn("idle sessions will keep a read goroutine: no poller", "err", err)
		}
		n.poller = p
	}
	n.sweeper.Add(1)
	go func() {
		defer n.sweeper.Done()
		n.sweep()
	}()
}

// ID is the node's snowflake node number.
func (n *Node) ID() int64 { return n.cfg.NodeID }

// SetLeased tells the node whether it holds its node-ID lease. Without it the
// node refuses new sessions, because it could mint duplicate session IDs;
// existing sessions carry on.
func (n *Node) SetLeased(held bool) {
	n.leased.Store(held)
	n.metrics.leaseHeld.Set(b2f(held))
}

// SetConflict tells the node whether another live node uses its number and
// this node must give way (the cluster decides which one does). While set,
// the node refuses new sessions, like without its lease; and since session
// IDs minted by both may collide, which would let a push to one session
// reach another user's, it closes its sessions with 1012 over the drain
// timeout so they reconnect to other nodes.
func (n *Node) SetConflict(yield bool) {
	if !n.conflict.CompareAndSwap(!yield, yield) || !yield {
		return
	}
	sessions := n.hub.all()
	n.log.Error("closing every session: another live node uses this node's number", "sessions", len(sessions))
	n.background.Add(1)
	go func() {
		defer n.background.Done()
		n.closeSpread(sessions, CloseServiceRestart, "node number conflict: reconnect", ReasonDrain, n.stop)
	}()
}

// Ready reports whether the node accepts new sessions, and why not.
func (n *Node) Ready() (bool, string) {
	switch {
	case n.draining.Load():
		return false, "draining"
	case n.conflict.Load():
		return false, "duplicate_node_id"
	case !n.leased.Load():
		return false, "not_leased"
	}
	return true, ""
}

// Sessions is the number of open sessions.
func (n *Node) Sessions() int { return n.hub.count() }

// Users is the number of distinct users with a session here.
func (n *Node) Users() int { return n.hub.users.len() }

// Docs is the number of distinct docs joined here.
func (n *Node) Docs() int { return n.hub.docs.len() }

// newSession wraps a freshly upgraded connection, which holds a connection
// slot. pc is the connection gws reads from when the session may park, else
// nil. The session has no identity yet: activate gives it one; a pending one
// waits for its connect frame (handshake.go). It returns nil once the node
// is draining.
func (n *Node) newSession(conn *gws.Conn, pc *parkConn, pending bool) *session {
	now := time.Now()
	s := &session{
		node:     n,
		conn:     conn,
		pc:       pc,
		netConn:  conn.NetConn(),
		remote:   conn.RemoteAddr().String(),
		since:    now,
		connSlot: true,
	}
	s.lastSeen.Store(now.UnixNano())
	s.lastBeat = now.UnixNano()
	s.interval.Store(int64(n.cfg.PingInterval))
	if pc != nil {
		pc.s = s
		s.netConn = pc.Conn // writes go straight to the socket
	}
	conn.Session().(*slot).s = s
	// Under the gate, so Drain, once it holds it, finds every session.
	n.gate.RLock()
	defer n.gate.RUnlock()
	if n.draining.Load() {
		return nil
	}
	n.readers.Add(1) // released by the read side's end (readLoop)
	if pending {
		n.pending.add(s)
	}
	return s
}

// activate makes s, authenticated as who and holding a session slot of
// who.user, a session: it mints its ID, registers it, waits for its
// subscriptions and writes hello (echoing id, the connect frame's). Unless
// reading (a session that connected with its first frame runs on its read
// side already), it then starts the read side.
func (n *Node) activate(s *session, who identity, id string, reading bool) {
	num := n.ids.Generate().Int64()
	s.id, s.sid, s.user = num, newSID(num), who.user
	s.grants, s.userSlot = who.grants, true
	s.unrestricted = who.unrestricted || n.cfg.Auth == nil || n.cfg.JoinAuthorization == JoinOff
	s.expires.Store(who.expires)
	// Corked until hello: pushes that reach the session once it is
	// registered queue up but are not written, and hello goes in front of
	// them (PROTOCOL.md promises hello first).
	s.cork()
	start := func() {
		if !reading {
			s.startReading()
		}
	}
	n.gate.RLock()
	if n.draining.Load() {
		n.gate.RUnlock()
		s.abort(CloseServiceRestart, "service restart: reconnect"+n.drainHint(), ReasonDrain)
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
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.HandshakeTimeout)
	if err := n.bus.Sync(ctx); err != nil {
		n.log.Warn("subscriptions not confirmed before hello", "sid", s.sid, "err", err)
	}
	cancel()
	n.metrics.accepted.Inc()
	n.metrics.connections.Inc()
	hello := encodeHello(s.sid, n.cfg.NodeID, s.user, ms(n.cfg.PingInterval), ms(n.cfg.PingInterval+n.cfg.PingGrace), id)
	s.uncork(hello)
	hello.release()
	n.publishEvent("connect", s, "", time.Time{})
	n.log.Debug("session open", "sid", s.sid, "user", s.user, "remote", s.remote)
	start()
}

// register indexes s and subscribes to its user's subject when s is the
// user's first session here. Its session subject needs nothing: the node's
// one subscription to its sessions covers it.
func (n *Node) register(s *session) error {
	if first, err := n.hub.users.add(s.user, s, func() error { return n.bus.Subscribe(contract.TargetUser, s.user) }); err != nil {
		return err
	} else if first {
		n.metrics.users.Inc()
	}
	n.hub.addSession(s)
	return nil
}

func (n *Node) unindexUser(s *session) {
	if n.hub.users.remove(s.user, s, func() { n.unsubscribe(contract.TargetUser, s.user) }) {
		n.metrics.users.Dec()
	}
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
	if s.pc != nil {
		n.poller.forget(s.pc)
	}
	if s.sid == "" || n.hub.session(s.id) != s {
		return // never registered
	}
	n.hub.removeSession(s)
	n.unindexUser(s)
	for _, d := range docs {
		if n.hub.docs.remove(d, s, func() { n.unsubscribe(contract.TargetDoc, d) }) {
			n.metrics.docs.Dec()
		}
	}
	reason := s.endReason()
	n.metrics.connections.Dec()
	n.metrics.closed.WithLabelValues(string(reason)).Inc()
	n.publishEvent("disconnect", s, reason, time.Now())
	n.log.Debug("session closed", "sid", s.sid, "user", s.user, "reason", reason)
}

func (n *Node) slowConsumer(s *session) {
	if s.closing.Load() {
		return
	}
	n.metrics.slowConsumers.Inc()
	n.log.Info("slow consumer cut off", "sid", s.sid, "user", s.user)
	// Off the caller's goroutine: fan-out calls this under a hub read lock,
	// and the courtesy close frame may wait for its (short) write deadline.
	n.writers.Add(1)
	go func() {
		defer n.writers.Done()
		s.abort(CloseSlowConsumer, "slow consumer: outbound queue full", ReasonSlowConsumer)
	}()
}

func (n *Node) startWriter(s *session) {
	n.writers.Add(1)
	go func() {
		defer n.writers.Done()
		s.writeLoop()
	}()
}

// Deliver writes p to every local session it targets and reports how many
// it matched and was queued for. The frame is encoded once. A push whose body
// is larger than MaxPushSize is refused whole: no session gets it and none is
// cut off for it.
func (n *Node) Deliver(p *contract.Push) contract.Report { return n.deliver(p, nil) }

// deliver is Deliver; with held not nil, writers are left for the caller to
// start (see enqueueHeld).
func (n *Node) deliver(p *contract.Push, held *[]*session) contract.Report {
	n.metrics.pushes.WithLabelValues(string(p.Target)).Inc()
	var rep contract.Report
	exclude := p.ExcludeSession
	if len(p.Data) > n.cfg.MaxPushSize {
		n.each(p, func(s *session) {
			if exclude == "" || s.sid != exclude {
				rep.Matched++
			}
		})
		rep.Refused = contract.RefusedTooLarge
		n.metrics.pushesRefused.WithLabelValues(contract.RefusedTooLarge).Inc()
		n.refusals.log("push refused: body larger than the maximum push size", "target", p.Target, "key", p.Key,
			"id", p.ID, "bytes", len(p.Data), "max_push_size", n.cfg.MaxPushSize, "matched", rep.Matched)
		return rep
	}
	f := encodePush(p)
	f.sent = p.SentUnixNano
	n.each(p, func(s *session) {
		if exclude != "" && s.sid == exclude {
			return
		}
		rep.Matched++
		switch s.enqueueHeld(f, held) {
		case queued:
			rep.Delivered++
		case cutOff:
			rep.CutOff++
		}
	})
	f.release()
	if p.TraceID != "" {
		n.log.Debug("push delivered", "trace_id", p.TraceID, "target", p.Target, "key", p.Key, "delivered", rep.Delivered)
	}
	return rep
}

// each calls fn for every local session p targets, under the hub's read
// locks: fn must not block.
func (n *Node) each(p *contract.Push, fn func(*session)) {
	switch p.Target {
	case contract.TargetUser:
		n.hub.users.each(p.Key, fn)
	case contract.TargetDoc:
		n.hub.docs.each(p.Key, fn)
	case contract.TargetSession:
		if id, err := strconv.ParseInt(p.Key, 10, 64); err == nil {
			if s := n.hub.session(id); s != nil {
				fn(s)
			}
		}
	case contract.TargetAll:
		n.hub.each(func(s *session) bool { fn(s); return true })
	}
}

// Drain stops accepting sessions and closes the open ones with 1012 (service
// restart), spread evenly over the drain timeout so clients reconnect
// elsewhere without a stampede. It returns when every session is closed or ctx
// ends, whichever is first; sessions left then are cut off.
func (n *Node) Drain(ctx context.Context) error {
	n.stopAccepting()
	n.metrics.draining.Set(1)
	for _, s := range n.pending.all() {
		s.closeWith(CloseServiceRestart, "service restart: reconnect"+n.drainHint(), ReasonDrain)
	}
	sessions := n.hub.all()
	if len(sessions) > 0 {
		n.log.Info("draining sessions", "sessions", len(sessions), "over", n.cfg.DrainTimeout)
		n.closeSpread(sessions, CloseServiceRestart, "service restart: reconnect"+n.drainHint(), ReasonDrain, ctx.Done())
	}
	done := make(chan struct{})
	go func() { n.readers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, s := range append(n.hub.all(), n.pending.all()...) {
			s.closeConn()
		}
		<-done
		return ctx.Err()
	}
}

// closeSpread closes sessions with code, spread evenly over the drain
// timeout so their clients reconnect without a stampede; once stop is
// closed the rest are closed at once.
func (n *Node) closeSpread(sessions []*session, code CloseCode, reason string, why Reason, stop <-chan struct{}) {
	step := n.cfg.DrainTimeout / time.Duration(max(len(sessions), 1))
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for i, s := range sessions {
		if wait := time.Until(start.Add(time.Duration(i) * step)); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-stop:
			}
		}
		s.closeWith(code, reason, why)
	}
}

// Close stops the sweeper, cuts off any session left and waits for every
// goroutine the node started. Deliver must not be called after Close.
func (n *Node) Close() error {
	n.stopAccepting()
	n.stopOnce.Do(func() { close(n.stop) })
	n.sweeper.Wait()
	n.background.Wait()
	for _, s := range append(n.hub.all(), n.pending.all()...) {
		s.setReason(ReasonDrain)
		s.closeConn()
	}
	n.readers.Wait()
	n.writers.Wait()
	n.poller.close()
	return nil
}

func (n *Node) stopAccepting() {
	n.gate.Lock()
	n.draining.Store(true)
	n.gate.Unlock()
}

// publishEvent sends a connect or disconnect event for backends.
func (n *Node) publishEvent(kind string, s *session, reason Reason, at time.Time) {
	b := make([]byte, 0, 256)
	b = append(b, `{"type":`...)
	b = appendString(b, kind)
	b = append(b, `,"sid":"`...)
	b = append(b, s.sid...)
	b = append(b, `","user":`...)
	b = appendString(b, s.user)
	b = append(b, `,"node":`...)
	b = strconv.AppendInt(b, n.cfg.NodeID, 10)
	b = append(b, `,"remote":`...)
	b = appendString(b, s.remote)
	b = append(b, `,"connected_at":"`...)
	b = s.since.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if kind == "disconnect" {
		b = append(b, `,"reason":`...)
		b = appendString(b, string(reason))
		b = append(b, `,"disconnected_at":"`...)
		b = at.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","duration_ms":`...)
		b = strconv.AppendInt(b, at.Sub(s.since).Milliseconds(), 10)
	}
	b = append(b, '}')
	if err := n.bus.PublishEvent(kind, b); err != nil {
		n.log.Warn("event not published", "kind", kind, "sid", s.sid, "err", err)
	}
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
