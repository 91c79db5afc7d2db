package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/snowflake"
	"github.com/lxzan/gws"

	"github.com/pushd/pushd/auth"
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

// ServeHTTP upgrades a request to a WebSocket session. It answers 503 when
// the node is not accepting or full, 429 past the per-IP handshake rate or
// the per-user session limit, 403 for a browser origin not allowed, 401 for a
// missing, expired or invalid token and 400 for a user ID that cannot be used
// (docs/PROTOCOL.md).
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ok, why := n.Ready(); !ok {
		n.refuse(w, http.StatusServiceUnavailable, why, "node is not accepting connections: "+why)
		return
	}
	if !n.ipLimiter.allow(r.RemoteAddr, time.Now().UnixNano()) {
		n.refuseLimit(w, "rate_limited")
		return
	}
	if !n.originAllowed(r) {
		n.refuse(w, http.StatusForbidden, "forbidden_origin", "origin "+r.Header.Get("Origin")+" is not allowed")
		return
	}
	id, err := n.authenticate(r)
	if err != nil {
		switch {
		case errors.Is(err, auth.ErrTokenMissing):
			n.refuse(w, http.StatusUnauthorized, "token_missing", err.Error())
		case errors.Is(err, auth.ErrTokenExpired):
			n.refuse(w, http.StatusUnauthorized, "token_expired", err.Error())
		case errors.Is(err, contract.ErrInvalidID):
			n.refuse(w, http.StatusBadRequest, "invalid_user", "user id: "+err.Error())
		default:
			n.refuse(w, http.StatusUnauthorized, "token_invalid", err.Error())
		}
		return
	}
	if code := n.admit.reserve(id.user); code != "" {
		n.refuseLimit(w, code)
		return
	}
	conn, pc, err := n.upgrade(w, r)
	if err != nil {
		n.admit.release(id.user)
		n.metrics.handshakeFailures.WithLabelValues("upgrade").Inc()
		return
	}
	n.open(conn, pc, id)
}

func (n *Node) refuse(w http.ResponseWriter, status int, code, msg string) {
	reason := code
	switch status {
	case http.StatusUnauthorized:
		reason = "unauthorized"
	case http.StatusBadRequest:
		reason = "bad_request"
	}
	n.metrics.handshakeFailures.WithLabelValues(reason).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(appendString(append(appendString([]byte(`{"error":`), code), `,"message":`...), msg))
	_, _ = w.Write([]byte("}\n"))
}

// identity is who a handshake authenticated as.
type identity struct {
	user         string
	grants       []string // the token's "docs" claim
	expires      int64    // the token's exp in UnixNano; 0 for dev sessions
	unrestricted bool     // may join any doc (dev ?user=, or no keys)
}

// authenticate returns the identity of a handshake request.
func (n *Node) authenticate(r *http.Request) (identity, error) {
	token := r.URL.Query().Get("token")
	if token == "" {
		if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			token = strings.TrimSpace(h[7:])
		}
	}
	var id identity
	switch {
	case token == "" && n.cfg.Dev && r.URL.Query().Has("user"):
		id = identity{user: r.URL.Query().Get("user"), unrestricted: true}
	case n.cfg.Auth == nil && token != "":
		return id, fmt.Errorf("%w: this dev node has no key to verify tokens; use ?user=", auth.ErrTokenInvalid)
	case n.cfg.Auth == nil:
		return id, auth.ErrTokenMissing
	default:
		claims, err := n.cfg.Auth.Verify(token)
		if err != nil {
			return id, err
		}
		id = identity{user: claims.Subject, grants: claims.Docs, expires: unixNano(claims.Expiry())}
	}
	if err := contract.ValidateID(id.user); err != nil {
		return id, err
	}
	return id, nil
}

// open registers a freshly upgraded connection, which holds an admission
// slot for who.user, and starts its read side. pc is the connection gws reads
// from when the session may park, else nil.
func (n *Node) open(conn *gws.Conn, pc *parkConn, who identity) {
	user := who.user
	id := n.ids.Generate().Int64()
	now := time.Now()
	s := &session{
		node:         n,
		id:           id,
		sid:          newSID(id),
		user:         user,
		conn:         conn,
		pc:           pc,
		netConn:      conn.NetConn(),
		remote:       conn.RemoteAddr().String(),
		since:        now,
		grants:       who.grants,
		unrestricted: who.unrestricted || n.cfg.Auth == nil || n.cfg.JoinAuthorization == JoinOff,
		admitted:     true,
	}
	s.expires.Store(who.expires)
	s.lastSeen.Store(now.UnixNano())
	s.lastBeat = now.UnixNano()
	s.interval.Store(int64(n.cfg.PingInterval))
	if pc != nil {
		pc.s = s
		s.netConn = pc.Conn // writes go straight to the socket
	}
	conn.Session().(*slot).s = s
	// Corked until hello: pushes that reach the session once it is
	// registered queue up but are not written, and hello goes in front of
	// them (PROTOCOL.md promises hello first).
	s.writing = true

	n.gate.RLock()
	if n.draining.Load() {
		n.gate.RUnlock()
		s.abort(CloseServiceRestart, "service restart: reconnect", ReasonDrain)
		return
	}
	n.readers.Add(1)
	n.gate.RUnlock()
	if err := n.register(s); err != nil {
		n.log.Error("session not registered", "sid", s.sid, "user", user, "err", err)
		s.abort(1011, "subscription failed", ReasonError)
		s.startReading()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.HandshakeTimeout)
	if err := n.bus.Sync(ctx); err != nil {
		n.log.Warn("subscriptions not confirmed before hello", "sid", s.sid, "err", err)
	}
	cancel()
	n.metrics.accepted.Inc()
	n.metrics.connections.Inc()
	hello := encodeHello(s.sid, n.cfg.NodeID, user, ms(n.cfg.PingInterval), ms(n.cfg.PingInterval+n.cfg.PingGrace))
	s.uncork(hello)
	hello.release()
	n.publishEvent("connect", s, "", time.Time{})
	n.log.Debug("session open", "sid", s.sid, "user", user, "remote", s.remote)
	s.startReading()
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
	if s.admitted {
		s.admitted = false
		n.admit.release(s.user)
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
	if n.hub.session(s.id) == nil {
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
	sessions := n.hub.all()
	if len(sessions) > 0 {
		n.log.Info("draining sessions", "sessions", len(sessions), "over", n.cfg.DrainTimeout)
		n.closeSpread(sessions, CloseServiceRestart, "service restart: reconnect", ReasonDrain, ctx.Done())
	}
	done := make(chan struct{})
	go func() { n.readers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, s := range n.hub.all() {
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
	for _, s := range n.hub.all() {
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
