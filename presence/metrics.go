package presence

import "github.com/prometheus/client_golang/prometheus"

// metrics are the tracker's Prometheus collector (docs/METRICS.md).
type metrics struct {
	deltas       *prometheus.CounterVec
	syncs        *prometheus.CounterVec
	syncTimeouts prometheus.Counter
	holds        prometheus.Counter
	queries      prometheus.Counter
	batches      prometheus.Counter
	changes      prometheus.Counter
	nodesLost    prometheus.Counter
	membersLost  prometheus.Counter
	invalid      prometheus.Counter
	dropped      prometheus.Counter
	all          []prometheus.Collector
}

func newMetrics(t *Tracker) *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &metrics{
		deltas: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushd_presence_deltas_total",
			Help: "Presence deltas (one member joining or leaving) this node published for its sessions, or received from other holders."}, []string{"direction"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushd_presence_syncs_total",
			Help: "Requests for other nodes' members of a doc: hold (this node started holding it), resync (after a NATS reconnect), fetch (a gap, a large snapshot, a holder that did not answer a sync, or a node back after being declared gone)."}, []string{"kind"}),
		syncTimeouts: counter("pushd_presence_sync_timeouts_total", "Syncs of a newly held doc that ended by the sync timeout instead of every holder answering."),
		holds:        counter("pushd_presence_holds_total", "Times this node started holding a doc's presence."),
		queries:      counter("pushd_presence_queries_total", "Presence queries this node answered over NATS for backends, pushctl and other nodes."),
		batches:      counter("pushd_presence_event_batches_total", "Coalesced batches of presence changes handed to this node's sessions (one frame per listening session each)."),
		changes:      counter("pushd_presence_event_changes_total", "Joins and leaves carried by those batches."),
		nodesLost:    counter("pushd_presence_nodes_lost_total", "Node instances declared gone whose members this node dropped."),
		membersLost:  counter("pushd_presence_members_lost_total", "Members dropped because their node was declared gone (leave reason node_lost)."),
		invalid:      counter("pushd_presence_invalid_total", "Presence messages from NATS that did not parse; ignored."),
		dropped:      counter("pushd_presence_dropped_total", "Presence messages dropped because the tracker's queue was full (repaired by a fetch)."),
	}
	for _, d := range []string{"published", "received"} {
		m.deltas.WithLabelValues(d)
	}
	for _, k := range []string{"hold", "resync", "fetch"} {
		m.syncs.WithLabelValues(k)
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.all = []prometheus.Collector{m.deltas, m.syncs, m.syncTimeouts, m.holds, m.queries, m.batches, m.changes,
		m.nodesLost, m.membersLost, m.invalid, m.dropped,
		gauge("pushd_presence_docs", "Docs whose presence this node holds (one of its sessions joined them).", func() float64 {
			docs, _, _ := t.sizes()
			return float64(docs)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushd_presence_members", Help: "Members in this node's copy of the docs it holds: its own sessions (local) and other nodes' (remote).",
			ConstLabels: prometheus.Labels{"origin": "local"}}, func() float64 {
			_, l, _ := t.sizes()
			return float64(l)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushd_presence_members", Help: "Members in this node's copy of the docs it holds: its own sessions (local) and other nodes' (remote).",
			ConstLabels: prometheus.Labels{"origin": "remote"}}, func() float64 {
			_, _, r := t.sizes()
			return float64(r)
		}),
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all {
		c.Collect(ch)
	}
}

// sizes counts the docs held and their local and remote members.
func (t *Tracker) sizes() (docs, local, remote int) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, d := range sh.docs {
			d.mu.Lock()
			docs++
			local += len(d.local)
			remote += d.count - len(d.local)
			d.mu.Unlock()
		}
		sh.mu.RUnlock()
	}
	return docs, local, remote
}
