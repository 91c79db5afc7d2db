package node

import "github.com/prometheus/client_golang/prometheus"

// Guard is what vouches, right now, that no other live node uses this
// node's number, so session IDs it mints cannot collide with theirs
// (docs/OPERATIONS.md, "What vouches for a node number"). The wiring
// (cmd/pushd) decides it from the Consul lease and the cluster's view over
// NATS and tells the node with SetNumberGuard.
type Guard int32

// Guards.
const (
	// GuardNone: nothing vouches for the number; the node refuses new
	// sessions (503 not_leased) and keeps the ones it has.
	GuardNone Guard = iota
	// GuardConsul: the node holds its Consul node-ID lease.
	GuardConsul
	// GuardNATS: the Consul lease is lost but Consul has not given the key
	// to anyone else (it is unreachable, or the key is in its lock delay),
	// and the node has been hearing every node's heartbeats over NATS
	// without a gap: no live node it can reach uses the number.
	GuardNATS
	// GuardStatic: the number came from --node-id (or --dev) without
	// Consul; it was claimed over NATS at start and heartbeats watch it.
	GuardStatic
)

// guards are the Guard names, as in /readyz and metrics.
var guards = [...]string{GuardNone: "none", GuardConsul: "consul", GuardNATS: "nats", GuardStatic: "static"}

// String is the guard's name: "none", "consul", "nats" or "static".
func (g Guard) String() string {
	if g < 0 || int(g) >= len(guards) {
		return "none"
	}
	return guards[g]
}

// SetNumberGuard tells the node what vouches for its number now. With
// GuardNone it refuses new sessions, because it could mint duplicate
// session IDs; existing sessions carry on. A new node accepts as with
// GuardStatic until told otherwise.
func (n *Node) SetNumberGuard(g Guard) {
	n.guard.Store(int32(g))
	n.leased.Store(g != GuardNone)
}

// NumberGuard is what vouches for the node's number now.
func (n *Node) NumberGuard() Guard { return Guard(n.guard.Load()) }

// guardGauge is pushd_node_number_guard: 1 for the guard in force, 0 for
// the others.
func guardGauge(n *Node) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pushd_node_number_guard",
		Help: "1 for what vouches for the node's number now (consul, nats, static), or none while the node refuses new sessions for want of it."},
		[]string{"guard"})
	return collectFunc{g, func() {
		now := n.NumberGuard()
		for i, name := range guards {
			g.WithLabelValues(name).Set(b2f(Guard(i) == now))
		}
	}}
}

// collectFunc is a collector that updates c just before each scrape.
type collectFunc struct {
	c      prometheus.Collector
	update func()
}

func (f collectFunc) Describe(ch chan<- *prometheus.Desc) { f.c.Describe(ch) }

func (f collectFunc) Collect(ch chan<- prometheus.Metric) {
	f.update()
	f.c.Collect(ch)
}
