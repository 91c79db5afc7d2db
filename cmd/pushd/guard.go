package main

import (
	"log/slog"
	"sync"

	"github.com/pushd/pushd/node"
	"github.com/pushd/pushd/registry"
)

// numberGuard decides what vouches for the node's number (node.Guard) from
// its two sources of truth, and tells the node, logging every change
// (docs/OPERATIONS.md, "What vouches for a node number"):
//
//  1. Consul: while the lease is held, it vouches. When Consul answers that
//     another session holds the key, nothing may override that.
//  2. NATS: while the lease is lost without such an answer (Consul
//     unreachable or frozen, or the node's own key in its lock delay), the
//     node vouches for itself as long as it has been hearing every node's
//     heartbeats without a gap (cluster.Watching): a live node using its
//     number would be seen (and a starting one is refused by the claim the
//     node answers). A duplicate that does show up is the cluster's
//     OnDuplicate: the younger node yields.
//
// The NATS check only ever extends a number the node once held from
// Consul; it never grants one.
type numberGuard struct {
	log    *slog.Logger
	consul bool // the number is leased from Consul

	mu       sync.Mutex
	state    registry.State // Consul's last word; StateNone until the first
	watching bool
	nodeID   int64
	node     *node.Node
	guard    node.Guard
}

func newNumberGuard(log *slog.Logger, consul bool) *numberGuard {
	return &numberGuard{log: log, consul: consul, guard: decideGuard(consul, registry.StateNone, false)}
}

// decideGuard is the rule above.
func decideGuard(consul bool, st registry.State, watching bool) node.Guard {
	switch {
	case !consul:
		return node.GuardStatic
	case st == registry.StateHeld:
		return node.GuardConsul
	case st == registry.StateLost && watching:
		return node.GuardNATS
	}
	return node.GuardNone
}

// setConsul is the registry's OnState callback.
func (g *numberGuard) setConsul(st registry.State) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.state = st
	g.applyLocked()
}

// seedConsul takes the registry's state once Start returned, unless a
// callback already told a newer one.
func (g *numberGuard) seedConsul(st registry.State, nodeID int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.nodeID = nodeID
	if g.state == registry.StateNone {
		g.state = st
		g.applyLocked()
	}
}

// setWatching is the cluster's OnWatching callback.
func (g *numberGuard) setWatching(w bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.watching = w
	g.applyLocked()
}

// setNode hands the node its guard, and every later change.
func (g *numberGuard) setNode(n *node.Node) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.node, g.nodeID = n, n.ID()
	n.SetNumberGuard(g.guard)
}

// consulState is Consul's last word for /readyz: "off" without Consul.
func (g *numberGuard) consulState() string {
	if !g.consul {
		return "off"
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state.String()
}

func (g *numberGuard) applyLocked() {
	next := decideGuard(g.consul, g.state, g.watching)
	if g.node != nil {
		g.node.SetNumberGuard(next)
	}
	if next == g.guard {
		return
	}
	prev := g.guard
	g.guard = next
	attrs := []any{"node_id", g.nodeID, "guard", next.String(), "was", prev.String(), "consul", g.state.String(), "nats_watching", g.watching}
	switch next {
	case node.GuardConsul:
		g.log.Info("node number vouched for by the Consul lease; accepting new sessions", attrs...)
	case node.GuardNATS:
		g.log.Warn("Consul lease lost, but no live node on NATS uses this node's number: accepting new sessions on the NATS check", attrs...)
	case node.GuardNone:
		why := "the NATS check is not passed (not hearing every node's heartbeats)"
		if g.state == registry.StateTaken {
			why = "Consul says another session holds this node's ID"
		}
		g.log.Error("nothing vouches for this node's number: refusing new sessions (existing ones carry on): "+why, attrs...)
	}
}
