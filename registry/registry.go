// Package registry registers a pushd node in Consul and leases the
// cluster-unique node number (0..1023) that seeds its snowflake socket IDs.
//
// Safety comes first: snowflake IDs are only unique while no two live nodes
// share a number, so the lease is held by a Consul session on the KV key
// "<KeyPrefix><id>", and the registry declares the lease lost (OnLease(false))
// as soon as SessionTTL has passed without a successful renew, before Consul
// itself could hand the key to anyone else (Consul waits 2*TTL plus LockDelay).
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"
)

// Sentinel errors; match with errors.Is, the returned errors carry details.
var (
	// ErrNodeIDTaken means an explicitly requested node ID is held by
	// another live node, or was released less than LockDelay ago.
	ErrNodeIDTaken = errors.New("pushd: node ID is taken")
	// ErrNoFreeNodeID means every ID in 0..MaxNodeID is held or in lock delay.
	ErrNoFreeNodeID = errors.New("pushd: no free node ID")
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("pushd: registry closed")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("pushd: registry already started")
)

// Backoff bounds for Start and for re-acquiring a lost lease.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 10 * time.Second
	// cleanupTimeout bounds each Consul call made by Close (and by Start's
	// error path) so that shutdown never hangs on an unreachable agent.
	cleanupTimeout = 5 * time.Second
)

// Registry registers one pushd node in Consul and holds its node-ID lease.
// Create it with New, call Start once, and Close when shutting down. All
// methods are safe for concurrent use.
type Registry struct {
	cfg       Config
	log       *slog.Logger
	client    *api.Client
	transport *http.Transport
	addr      string // resolved Consul address, for logs
	startTime time.Time

	// stopCtx is cancelled by Close; it ends Start, the background loop and
	// Watch calls.
	stopCtx context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup // Start in progress and the background loop

	nodeID atomic.Int64
	leased atomic.Bool
	state  atomic.Int32 // a State; owned by Start, then by run

	mu       sync.Mutex
	started  bool
	closed   bool
	cleaned  bool
	session  string // session holding the key; owned by Start, then by run
	regDone  bool   // service registered (so Close deregisters)
	closeErr error
}

// New validates cfg, applies defaults and creates a Consul client. It does
// not contact Consul.
func New(cfg Config) (*Registry, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	client, transport, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		cfg:       cfg,
		log:       cfg.Logger,
		client:    client,
		transport: transport,
		addr:      cfg.Addr,
	}
	if r.addr == "" {
		r.addr = api.DefaultConfig().Address
	}
	r.stopCtx, r.stop = context.WithCancel(context.Background())
	r.nodeID.Store(-1)
	return r, nil
}

// newClient builds a Consul client with its own transport so that Close can
// drop its idle connections (and their goroutines).
func newClient(cfg Config) (*api.Client, *http.Transport, error) {
	ac := api.DefaultConfig() // honours CONSUL_HTTP_* environment variables
	if cfg.Addr != "" {
		ac.Address = cfg.Addr
	}
	if cfg.Token != "" {
		ac.Token = cfg.Token
	}
	if cfg.Datacenter != "" {
		ac.Datacenter = cfg.Datacenter
	}
	ac.Transport = cleanhttp.DefaultPooledTransport()
	ac.HttpClient = nil
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, nil, fmt.Errorf("pushd: registry: consul client: %w", err)
	}
	return client, ac.Transport, nil
}

// NodeID returns the leased node ID, or -1 before Start succeeds. It does
// not change after that: a lost lease is only ever re-acquired for the same ID.
func (r *Registry) NodeID() int { return int(r.nodeID.Load()) }

// Leased reports whether the node-ID lease is currently held. It is true
// when Start returns nil and false after Close.
func (r *Registry) Leased() bool { return r.leased.Load() }

// State is what Consul last said about the lease: StateHeld from Start's
// success on, StateLost or StateTaken after a loss (see State). It is
// StateNone before Start succeeds; Close does not change it.
func (r *Registry) State() State { return State(r.state.Load()) }

// Start retries with capped exponential backoff until Consul answers, then
// leases a node ID and registers the service. It returns ErrNodeIDTaken at
// once when an explicit Config.NodeID is held by another node, and ctx's
// error (wrapping the last Consul error) when ctx ends first. After Start
// returns nil, a goroutine owned by the Registry renews the session, passes
// the TTL check, re-acquires the lease after loss and calls OnLease, until
// Close.
func (r *Registry) Start(ctx context.Context) (int, error) {
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return -1, ErrClosed
	case r.started:
		r.mu.Unlock()
		return -1, ErrStarted
	}
	r.started = true
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.stopCtx, cancel)()

	r.startTime = time.Now().UTC()
	bo := backoff{min: minBackoff, max: maxBackoff}
	for attempt := 1; ; attempt++ {
		l, err := r.acquireInitial(ctx)
		if err == nil {
			if err = r.register(ctx, l.id); err != nil {
				_ = r.releaseLease(ctx, l)
			}
		}
		if err == nil {
			return r.startLoop(l)
		}
		if errors.Is(err, ErrNodeIDTaken) {
			r.resetStarted()
			return -1, err
		}
		if ctx.Err() != nil {
			r.resetStarted()
			if r.stopCtx.Err() != nil {
				return -1, ErrClosed
			}
			return -1, fmt.Errorf("pushd: registry start: %w (last error: %v)", context.Cause(ctx), err)
		}
		d := bo.next()
		r.log.Warn("pushd: consul registry not ready, retrying",
			"attempt", attempt, "retry_in", d.Round(time.Millisecond), "consul", r.addr, "err", err.Error())
		if !sleepCtx(ctx, d) {
			continue // the ctx check above reports it
		}
	}
}

func (r *Registry) resetStarted() {
	r.mu.Lock()
	r.started = false
	r.mu.Unlock()
}

// startLoop publishes the lease and hands it to the background goroutine,
// unless Close raced with Start, in which case Close cleans it up.
func (r *Registry) startLoop(l lease) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.session = l.session
	r.regDone = true
	r.nodeID.Store(int64(l.id))
	if r.closed {
		return -1, ErrClosed
	}
	r.leased.Store(true)
	r.state.Store(int32(StateHeld))
	r.log.Info("pushd: node ID leased and service registered",
		"node_id", l.id, "node_name", r.cfg.NodeName, "service_id", r.serviceID(l.id), "session", l.session)
	r.wg.Add(1)
	go r.run(r.stopCtx, l)
	return l.id, nil
}

// Close stops the background goroutine, deregisters the service, releases
// the node-ID key (without lock delay, since this node is done with it) and
// destroys the session. ctx bounds the Consul calls; Close is idempotent and
// returns the first call's result.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stop()
	r.wg.Wait()

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cleaned {
		return r.closeErr
	}
	r.cleaned = true
	wasLeased := r.leased.Swap(false)
	var errs []error
	if id := r.NodeID(); id >= 0 {
		if r.regDone {
			cctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
			if err := r.deregister(cctx, id); err != nil {
				errs = append(errs, err)
			}
			cancel()
		}
		if r.session != "" {
			if err := r.releaseLease(ctx, lease{id: id, session: r.session}); err != nil {
				errs = append(errs, err)
			}
			r.session = ""
		}
	}
	r.transport.CloseIdleConnections()
	r.closeErr = errors.Join(errs...)
	if wasLeased {
		r.log.Info("pushd: registry closed", "node_id", r.NodeID(), "err", r.closeErr)
	}
	return r.closeErr
}

// run is the background loop: while the lease is held it renews the session
// every SessionTTL/3 and passes the check every CheckTTL/3; when the lease is
// lost it retries acquiring the same ID with backoff. It owns r.session
// until it returns.
func (r *Registry) run(ctx context.Context, l lease) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		r.session = l.session
		r.mu.Unlock()
	}()
	r.announce(StateHeld, StateNone) // startLoop stored it

	held := true
	renewEvery := r.cfg.SessionTTL / 3
	checkEvery := r.cfg.CheckTTL / 3
	nextRenew := time.Now().Add(renewEvery)
	nextCheck := time.Now().Add(checkEvery)
	bo := backoff{min: minBackoff, max: min(maxBackoff, renewEvery)}
	var nextRetry time.Time

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		var wake time.Time
		if held {
			wake = minTime(nextRenew, nextCheck, l.deadline(r.cfg.SessionTTL))
		} else {
			wake = nextRetry
		}
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		if !held {
			if err := r.reacquire(ctx, &l); err != nil {
				if ctx.Err() != nil {
					return
				}
				r.lostBecause(l.id, err)
				d := bo.next()
				nextRetry = time.Now().Add(d)
				r.log.Warn("pushd: node ID lease still lost, retrying",
					"node_id", l.id, "retry_in", d.Round(time.Millisecond), "err", err.Error())
				continue
			}
			bo.reset()
			held = true
			r.leased.Store(true)
			r.log.Info("pushd: node ID lease re-acquired", "node_id", l.id, "session", l.session)
			r.notify(StateHeld)
			nextRenew, nextCheck = time.Now().Add(renewEvery), time.Now()
			continue
		}
		if !now.Before(l.deadline(r.cfg.SessionTTL)) {
			held = r.lose(ctx, l, fmt.Errorf("no successful session renew for %s", r.cfg.SessionTTL))
			nextRetry = time.Now()
			continue
		}
		if !now.Before(nextRenew) {
			nextRenew = now.Add(renewEvery)
			if err := r.renew(ctx, &l); err != nil {
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, errLeaseGone) {
					held = r.lose(ctx, l, err)
					nextRetry = time.Now()
					continue
				}
				r.log.Warn("pushd: session renew failed",
					"node_id", l.id, "lease_left", time.Until(l.deadline(r.cfg.SessionTTL)).Round(time.Millisecond), "err", err.Error())
			}
		}
		if !now.Before(nextCheck) {
			nextCheck = now.Add(checkEvery)
			if err := r.passCheck(ctx, l.id); err != nil && ctx.Err() == nil {
				r.log.Warn("pushd: passing TTL check failed", "node_id", l.id, "err", err.Error())
			}
		}
	}
}

// lose records the loss of the lease, tells the owner at once and marks the
// service critical (best effort) so routers stop sending new clients here.
// It returns the new held state (false) for the caller's convenience.
func (r *Registry) lose(ctx context.Context, l lease, why error) bool {
	r.leased.Store(false)
	state := StateLost
	if errors.Is(why, errHeldByOther) {
		state = StateTaken
	}
	r.log.Error("pushd: node ID lease lost", "node_id", l.id, "state", state.String(), "reason", why.Error())
	r.notify(state)
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CheckTTL/3+time.Second)
	defer cancel()
	_ = r.failCheck(cctx, l.id, "pushd: node ID lease lost: "+why.Error())
	return false
}

// lostBecause moves a lost lease between StateLost and StateTaken by what
// Consul answered a re-acquisition: another session holds the key
// (StateTaken), or the key is free but in its lock delay (StateLost). An
// error that is not Consul's answer (unreachable) changes nothing.
func (r *Registry) lostBecause(id int, err error) {
	switch {
	case errors.Is(err, errHeldByOther):
		if r.State() != StateTaken {
			r.log.Error("pushd: Consul says another session holds this node's ID", "node_id", id, "err", err.Error())
			r.notify(StateTaken)
		}
	case errors.Is(err, ErrNodeIDTaken):
		if r.State() == StateTaken {
			r.log.Info("pushd: this node's ID is no longer held by another session; waiting for its lock delay", "node_id", id)
			r.notify(StateLost)
		}
	}
}

// notify records a new state and, when it changed, tells the owner.
func (r *Registry) notify(s State) {
	if old := State(r.state.Swap(int32(s))); old != s {
		r.announce(s, old)
	}
}

// announce calls OnState, and OnLease when held-ness changed.
func (r *Registry) announce(s, old State) {
	if r.cfg.OnState != nil {
		r.cfg.OnState(s)
	}
	if (old == StateHeld) != (s == StateHeld) && r.cfg.OnLease != nil {
		r.cfg.OnLease(s == StateHeld)
	}
}

// backoff is capped exponential backoff with jitter. Not safe for
// concurrent use; each loop owns its own.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	// Full jitter on the upper half keeps restarting nodes from marching
	// in lockstep against a recovering Consul.
	return b.cur/2 + rand.N(b.cur/2+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleepCtx waits for d or until ctx ends; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func minTime(ts ...time.Time) time.Time {
	m := ts[0]
	for _, t := range ts[1:] {
		if t.Before(m) {
			m = t
		}
	}
	return m
}
