package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/pushd/pushd/contract"
)

// Defaults for Config fields left at zero.
const (
	defaultInterval     = time.Second
	defaultClaimTimeout = 500 * time.Millisecond
	// missedBeats heartbeats missed in a row make a node count as gone.
	missedBeats = 3
)

// ErrNumberTaken is returned by Claim when a live node already uses the node
// number.
var ErrNumberTaken = errors.New("pushd: node number is used by a live node")

// Member is one live node as its heartbeats describe it.
type Member struct {
	// Node is the node number.
	Node int64 `json:"node"`
	// Instance is unique per process: two instances with one Node are a
	// duplicate.
	Instance string `json:"instance"`
	// StartedAt is when the process started.
	StartedAt time.Time `json:"started_at"`
	// Address is the node's public listener.
	Address string `json:"address,omitempty"`
	// Version is the node's pushd version.
	Version string `json:"version,omitempty"`
	// Load is what the node holds, as of its last heartbeat; nil from a
	// node that does not report it (an older version, or one without
	// Config.Load).
	Load *Load `json:"load,omitempty"`
	// LastSeen is when its last heartbeat arrived (local clock).
	LastSeen time.Time `json:"-"`
}

// Load is a node's share of the cluster's sessions, sent in every
// heartbeat so every node knows the cluster's load without asking anyone
// (rebalancing, docs/OPERATIONS.md).
type Load struct {
	// Sessions is the number of open sessions.
	Sessions int `json:"sessions"`
	// Accepting says whether the node takes new sessions (ready: not
	// draining, leased, connected): only such a node is somewhere to send
	// sessions to.
	Accepting bool `json:"accepting"`
}

// Config configures a Cluster.
type Config struct {
	// Conn is the node's NATS connection. Required.
	Conn *nats.Conn
	// Prefix is the subject prefix; empty means "push".
	Prefix string
	// Self describes this node; Instance and StartedAt are filled in when
	// empty, Node by Start.
	Self Member
	// Interval is the heartbeat period. Zero means 1s; a node is gone after
	// three missed heartbeats.
	Interval time.Duration
	// ClaimTimeout is how long Claim waits for a holder's answer when NATS
	// does not say at once that nobody listens. Zero means 500ms.
	ClaimTimeout time.Duration
	// OnDuplicate is called, from the Cluster's goroutine, when another live
	// instance starts or stops using this node's number: other is that
	// instance (zero once it is gone), and yield says whether this node is
	// the one that must give way: the younger one, by start time (then by
	// instance). Nil means only logging.
	OnDuplicate func(other Member, yield bool)
	// OnWatching is called, from the Cluster's goroutine, when Watching
	// changes (checked every Interval). Nil means only logging.
	OnWatching func(watching bool)
	// Load, when set, is sampled for every heartbeat and sent in it (and
	// in this node's Member from Members). It must be quick. Nil means the
	// heartbeats carry no load.
	Load func() Load
	// Logger receives the cluster's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Cluster is one node's view of the live nodes. Create it with New, Claim
// the number, Start it, and Close it at shutdown.
type Cluster struct {
	cfg      Config
	log      *slog.Logger
	nc       *nats.Conn
	subjects contract.Subjects
	echo     echoes // our own heartbeats coming back (watching.go); under mu
	census   census // users' sessions on other nodes (census.go)

	mu        sync.Mutex
	members   map[string]Member // by instance, others only
	duplicate Member            // the other instance using our number, if any
	subs      []*nats.Subscription
	started   time.Time // when Start subscribed to the heartbeats
	watchers  []func(m Member, alive bool)

	stop chan struct{}
	done sync.WaitGroup
}

// New returns a Cluster for cfg; it does nothing on NATS until Claim or
// Start.
func New(cfg Config) (*Cluster, error) {
	if cfg.Conn == nil {
		return nil, errors.New("pushd: cluster needs a NATS connection")
	}
	if cfg.Conn.Opts.NoEcho {
		return nil, errors.New("pushd: cluster needs a NATS connection without NoEcho: a node hears its own heartbeats back (Watching)")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = defaultInterval
	}
	if cfg.ClaimTimeout <= 0 {
		cfg.ClaimTimeout = defaultClaimTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Self.Instance == "" {
		cfg.Self.Instance = nuid.Next()
	}
	if cfg.Self.StartedAt.IsZero() {
		cfg.Self.StartedAt = time.Now()
	}
	cfg.Self.StartedAt = cfg.Self.StartedAt.UTC()
	return &Cluster{
		cfg:      cfg,
		log:      cfg.Logger,
		nc:       cfg.Conn,
		subjects: contract.NewSubjects(cfg.Prefix),
		members:  make(map[string]Member),
		stop:     make(chan struct{}),
	}, nil
}

// Self is this node as the others see it.
func (c *Cluster) Self() Member { return c.cfg.Self }

// Claim asks whether a live node already uses node number n. It returns an
// error wrapping ErrNumberTaken, naming the holder, when one answers within
// ClaimTimeout, and nil when NATS says nobody listens for the number or no
// holder answered in time (something else subscribed to the subject, say a
// `nats sub '>'`, must not block a start; a holder too slow to answer is
// still caught by its heartbeats, see OnDuplicate). Call it before Start.
func (c *Cluster) Claim(ctx context.Context, n int64) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ClaimTimeout)
	defer cancel()
	inbox, err := c.nc.SubscribeSync(c.nc.NewInbox())
	if err != nil {
		return fmt.Errorf("pushd: claim node number %d: %w", n, err)
	}
	defer func() { _ = inbox.Unsubscribe() }()
	body, _ := json.Marshal(c.cfg.Self)
	if err := c.nc.PublishRequest(c.subjects.NodeClaim(n), inbox.Subject, body); err != nil {
		return fmt.Errorf("pushd: claim node number %d: %w", n, err)
	}
	for {
		m, err := inbox.NextMsgWithContext(ctx)
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return nil
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			if cerr := context.Cause(ctx); ctx.Err() != nil && !errors.Is(cerr, context.DeadlineExceeded) {
				return cerr // the caller gave up
			}
			return nil
		case err != nil:
			return fmt.Errorf("pushd: claim node number %d: %w", n, err)
		}
		var holder Member
		if json.Unmarshal(m.Data, &holder) != nil || holder.Instance == "" {
			continue // not a pushd node's answer
		}
		return fmt.Errorf("%w: node %d is held by instance %s at %s, started %s", ErrNumberTaken, n,
			holder.Instance, orUnknown(holder.Address), holder.StartedAt.Format(time.RFC3339))
	}
}

// FirstFree claims the lowest node number from 0 to maxID that no live node
// uses. A node without Consul and without a configured number (dev mode)
// uses it.
func (c *Cluster) FirstFree(ctx context.Context, maxID int64) (int64, error) {
	for n := int64(0); n <= maxID; n++ {
		err := c.Claim(ctx, n)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, ErrNumberTaken) {
			return -1, err
		}
	}
	return -1, fmt.Errorf("%w: all of 0..%d", ErrNumberTaken, maxID)
}

// Start takes node as this node's number: it answers claims for it, follows
// every node's heartbeats and publishes this node's, until Close.
func (c *Cluster) Start(node int64) error {
	c.cfg.Self.Node = node
	self := c.cfg.Self
	claim, err := c.nc.Subscribe(c.subjects.NodeClaim(self.Node), c.answerClaim)
	if err != nil {
		return fmt.Errorf("pushd: cluster: %w", err)
	}
	beats, err := c.nc.Subscribe(c.subjects.NodeHeartbeats(), c.heartbeat)
	if err != nil {
		_ = claim.Unsubscribe()
		return fmt.Errorf("pushd: cluster: %w", err)
	}
	c.mu.Lock()
	c.subs = []*nats.Subscription{claim, beats}
	c.started = time.Now()
	c.mu.Unlock()
	// Claims made once Start returns must find us.
	if err := c.nc.FlushTimeout(c.cfg.ClaimTimeout); err != nil {
		c.log.Warn("claim subscription not confirmed", "err", err)
	}
	c.done.Add(1)
	go c.run()
	return nil
}

// run publishes heartbeats and forgets silent nodes until Close.
func (c *Cluster) run() {
	defer c.done.Done()
	subject := c.subjects.NodeHeartbeat(c.cfg.Self.Node)
	body, _ := json.Marshal(c.cfg.Self)
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		if c.cfg.Load != nil {
			self := c.cfg.Self
			load := c.cfg.Load()
			self.Load = &load
			body, _ = json.Marshal(self)
		}
		if err := c.nc.Publish(subject, body); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			c.log.Debug("heartbeat not published", "err", err)
		}
		select {
		case <-c.stop:
			return
		case now := <-t.C:
			c.expire(now)
			c.checkWatching(now)
			c.tickCensus(now)
		}
	}
}

// answerClaim tells a starting node that this one holds the number.
func (c *Cluster) answerClaim(m *nats.Msg) {
	var asker Member
	if json.Unmarshal(m.Data, &asker) == nil && asker.Instance == c.cfg.Self.Instance {
		return // our own claim (we answer only once started; kept for safety)
	}
	body, _ := json.Marshal(c.cfg.Self)
	if err := m.Respond(body); err != nil {
		c.log.Debug("claim answer not sent", "err", err)
	}
}

// heartbeat records another node's heartbeat and notices a duplicate.
func (c *Cluster) heartbeat(m *nats.Msg) {
	var b Member
	if err := json.Unmarshal(m.Data, &b); err != nil {
		return
	}
	if b.Instance == c.cfg.Self.Instance {
		c.mu.Lock()
		c.echo.seen(time.Now(), c.cfg.Interval)
		c.mu.Unlock()
		return
	}
	b.LastSeen = time.Now()
	c.mu.Lock()
	if _, known := c.members[b.Instance]; !known {
		c.notifyLocked(b, true)
	}
	c.members[b.Instance] = b
	fresh := b.Node == c.cfg.Self.Node && c.duplicate.Instance != b.Instance
	if fresh {
		c.duplicate = b
	}
	c.mu.Unlock()
	if fresh {
		yield := c.younger(b)
		c.log.Error("another live node uses this node's number: session IDs may collide",
			"node", b.Node, "other_instance", b.Instance, "other_address", b.Address, "other_started_at", b.StartedAt,
			"this_node_yields", yield)
		if c.cfg.OnDuplicate != nil {
			c.cfg.OnDuplicate(b, yield)
		}
	}
}

// younger reports whether this node started after other (ties broken by
// instance), so it is the one to give way.
func (c *Cluster) younger(other Member) bool {
	self := c.cfg.Self
	if !self.StartedAt.Equal(other.StartedAt) {
		return self.StartedAt.After(other.StartedAt)
	}
	return self.Instance > other.Instance
}

// expire forgets nodes silent for missedBeats intervals, and a duplicate
// among them.
func (c *Cluster) expire(now time.Time) {
	limit := now.Add(-missedBeats * c.cfg.Interval)
	c.mu.Lock()
	cleared := false
	for k, m := range c.members {
		if m.LastSeen.Before(limit) {
			delete(c.members, k)
			c.notifyLocked(m, false)
			if k == c.duplicate.Instance {
				c.duplicate = Member{}
				cleared = true
			}
		}
	}
	c.mu.Unlock()
	if cleared {
		c.log.Info("the other node with this node's number is gone", "node", c.cfg.Self.Node)
		if c.cfg.OnDuplicate != nil {
			c.cfg.OnDuplicate(Member{}, false)
		}
	}
}

// Members returns the live nodes, this one included, ordered by node number.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	out := make([]Member, 0, len(c.members)+1)
	for _, m := range c.members {
		out = append(out, m)
	}
	c.mu.Unlock()
	self := c.cfg.Self
	self.LastSeen = time.Now()
	if c.cfg.Load != nil {
		load := c.cfg.Load()
		self.Load = &load
	}
	out = append(out, self)
	slices.SortFunc(out, func(a, b Member) int {
		if a.Node != b.Node {
			return int(a.Node - b.Node)
		}
		return a.StartedAt.Compare(b.StartedAt)
	})
	return out
}

// Nodes returns the numbers of the live nodes, this one included, sorted
// and without repeats; nil while this node may not have heard every live
// node yet (for two heartbeat intervals after Start), meaning "unknown".
func (c *Cluster) Nodes() []int64 {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if started.IsZero() || time.Since(started) < 2*c.cfg.Interval {
		return nil
	}
	ms := c.Members()
	out := make([]int64, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Node)
	}
	return slices.Compact(out)
}

// Duplicate returns the other live instance using this node's number, if
// any.
func (c *Cluster) Duplicate() (Member, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.duplicate, c.duplicate.Instance != ""
}

// Close stops heartbeats and claim answers.
func (c *Cluster) Close() error {
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	if subs == nil {
		return nil
	}
	close(c.stop)
	c.done.Wait()
	var errs []error
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	// The number is free once Close returns: a claim must not reach us.
	if err := c.nc.FlushTimeout(c.cfg.ClaimTimeout); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown address"
	}
	return s
}
