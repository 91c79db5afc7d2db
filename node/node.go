package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/snowflake"
	"github.com/lxzan/gws"

	"github.com/pushd/pushd/contract"
)

// Bus is what the node needs from the message bus. The router implements it
// over NATS. Subscribe and Unsubscribe for one (target, key) are never
// called concurrently and always alternate.
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
	// AfterSync calls fn once every subscription made so far is active (or
	// the bus gave up, with the error), from a goroutine of the bus's; fn
	// must not block.
	AfterSync(fn func(error))
	// Connected reports whether the bus is up; a node without it is not
	// ready for new sessions.
	Connected() bool
	// PublishEvent publishes a connect or disconnect event body.
	PublishEvent(kind string, body []byte) error
	// PublishUpstream forwards a client's publish frame for doc.
	PublishUpstream(doc, sid, user, event string, data []byte) error
	// PublishReceipt publishes a session's receipt for a push on subject.
	PublishReceipt(subject string, body []byte) error

	// Position is where target's history stands for a client joining now;
	// ok is false without history.
	Position(target contract.Target) (position uint64, ok bool)
	// Replay returns what a session resuming target and key from since
	// missed. It is called once the session's subscription is in place.
	// contract.ErrNoHistory: no history now; contract.ErrAheadOfHistory: a
	// since from the future.
	Replay(ctx context.Context, target contract.Target, key string, since uint64) (contract.Replay, error)
	// Range returns the pushes to target and key with after < seq <= through.
	Range(ctx context.Context, target contract.Target, key string, after, through uint64) ([]contract.Push, error)
}

// Node holds client sessions and delivers pushes to them. Its jobs are in
// files by concern: the lifecycle here, the WebSocket handshake in
// handshake.go, opening and closing sessions in open.go, the session
// registry in hub.go, fan-out in deliver.go, client frames in frames.go,
// events for backends in events.go, and the admin view in admin.go.
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
	// userDocs bounds the distinct docs of a user's sessions (nil: no limit).
	userDocs *userDocs
	// xffWarned is the UnixNano of the last warning about an untrusted
	// proxy (clientip.go).
	xffWarned atomic.Int64

	draining atomic.Bool
	// leased is set while a Guard vouches for the node's number (guard.go).
	leased atomic.Bool
	guard  atomic.Int32 // a Guard
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

	// http are the HTTP sessions (SSE and long-polling, httpsession.go).
	http *httpSessions

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
		http: newHTTPSessions(),
		stop: make(chan struct{}),
	}
	n.metrics = newMetrics(n)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(n.metrics); err != nil {
			return nil, fmt.Errorf("pushd: node metrics: %w", err)
		}
		if err := cfg.Registerer.Register(newHTTPCollector(n)); err != nil {
			return nil, fmt.Errorf("pushd: node metrics: %w", err)
		}
	}
	n.refusals.out = n.log
	n.SetNumberGuard(GuardStatic)
	n.ipLimiter = newIPLimiter(cfg.HandshakeRatePerIP, cfg.HandshakeBurstPerIP)
	n.admit = admission{maxConns: cfg.MaxConnections, maxPerUser: cfg.MaxSessionsPerUser, users: make(map[string]int),
		maxPerUserCluster: cfg.MaxClusterSessionsPerUser, census: cfg.Census, heavyAt: cfg.ClusterReportAt(), heavy: make(map[string]struct{})}
	n.userDocs = newUserDocs(cfg.MaxDocsPerUser)
	n.upgrader = gws.NewUpgrader(&wsEvents{n: n}, &gws.ServerOption{
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

// Version is the version the node was configured with.
func (n *Node) Version() string { return n.cfg.Version }

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
		n.closeSpread(sessions, CloseServiceRestart, "duplicate_node_id: "+n.elsewhere("another live node uses this node's number, reconnect elsewhere"), ReasonDrain, n.stop)
	}()
}

// Ready reports whether the node accepts new sessions, and why not:
// "draining", "duplicate_node_id", "not_leased" or "nats_disconnected".
func (n *Node) Ready() (bool, string) {
	switch {
	case n.draining.Load():
		return false, "draining"
	case n.conflict.Load():
		return false, "duplicate_node_id"
	case !n.leased.Load():
		return false, "not_leased"
	case !n.bus.Connected():
		return false, "nats_disconnected"
	}
	return true, ""
}

// Sessions is the number of open sessions.
func (n *Node) Sessions() int { return n.hub.count() }

// Users is the number of distinct users with a session here.
func (n *Node) Users() int { return n.hub.users.len() }

// Docs is the number of distinct docs joined here.
func (n *Node) Docs() int { return n.hub.docs.len() }

// Drain stops accepting sessions and closes the open ones with 1012 (service
// restart), spread evenly over the drain timeout so clients reconnect
// elsewhere without a stampede. It returns when every session is closed or ctx
// ends, whichever is first; sessions left then are cut off.
func (n *Node) Drain(ctx context.Context) error {
	n.stopAccepting()
	for _, s := range n.pending.all() {
		s.closeWith(CloseServiceRestart, n.drainReason(), ReasonDrain)
	}
	sessions := n.hub.all()
	if len(sessions) > 0 {
		n.log.Info("draining sessions", "sessions", len(sessions), "over", n.cfg.DrainTimeout)
		n.closeSpread(sessions, CloseServiceRestart, n.drainReason(), ReasonDrain, ctx.Done())
	}
	done := make(chan struct{})
	go func() { n.readers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, s := range append(n.hub.all(), n.pending.all()...) {
			s.t.close()
		}
		<-done
		return ctx.Err()
	}
}

// closeSpread closes sessions with code, spread evenly over the drain
// timeout so their clients reconnect without a stampede; once stop is
// closed the rest are closed at once.
func (n *Node) closeSpread(sessions []*session, code CloseCode, reason string, why Reason, stop <-chan struct{}) {
	n.closeSpreadOver(sessions, n.cfg.DrainTimeout, code, reason, why, stop)
}

// closeSpreadOver closes sessions with code, spread evenly over d; once
// stop is closed the rest are closed at once.
func (n *Node) closeSpreadOver(sessions []*session, d time.Duration, code CloseCode, reason string, why Reason, stop <-chan struct{}) {
	step := d / time.Duration(max(len(sessions), 1))
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
		s.t.close()
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
	n.http.stop() // SSE streams relayed for other nodes' sessions end
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
