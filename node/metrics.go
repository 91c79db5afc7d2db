package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushd/pushd/contract"
)

// targets index counters by push target on the delivery path.
var targets = []string{string(contract.TargetUser), string(contract.TargetDoc), string(contract.TargetAll), string(contract.TargetSession)}

func targetIndex(t contract.Target) int {
	switch t {
	case contract.TargetUser:
		return 0
	case contract.TargetDoc:
		return 1
	case contract.TargetAll:
		return 2
	}
	return 3
}

// metrics are the node's counters and its Prometheus collector
// (docs/METRICS.md). Counters are atomics the node increments and Stats
// reads; gauges are read from the node at scrape time; the two histograms
// are Prometheus histograms, observed on their paths.
type metrics struct {
	accepted          *counter
	closed            *counterSet // by Reason
	handshakeFailures *counterSet
	pushes            *counterSet // by target
	pushesRefused     *counterSet
	framesWritten     *counter
	bytesWritten      *counter
	slowConsumers     *counter
	upstream          *counter
	rateLimited       *counter
	joinsRefused      *counterSet
	refreshes         *counterSet
	resumes           *counterSet
	replayed          *counter
	seamReads         *counter
	receipts          *counterSet
	presence          *counterSet // presence requests by result
	presenceFrames    *counter

	heartbeat prometheus.Histogram
	latency   prometheus.Histogram

	counters []interface {
		describe(chan<- *prometheus.Desc)
		collect(chan<- prometheus.Metric)
	}
	gauges []prometheus.Collector
}

// newMetrics makes the node's metrics; the gauges read n at scrape time.
func newMetrics(n *Node) *metrics {
	m := &metrics{
		accepted: newCounter("pushd_connections_accepted_total", "Sessions that completed the handshake."),
		closed: newCounterSet("pushd_connections_closed_total", "Sessions closed, by reason.", "reason",
			string(ReasonClient), string(ReasonHeartbeatTimeout), string(ReasonSlowConsumer), string(ReasonWriteTimeout), string(ReasonKicked),
			string(ReasonDrain), string(ReasonRebalance), string(ReasonProtocolError), string(ReasonTokenExpired), string(ReasonRateLimited), string(ReasonError)),
		handshakeFailures: newCounterSet("pushd_handshake_failures_total", "Upgrades refused, and upgraded connections whose connect frame was refused or never came, by reason.", "reason",
			"unauthorized", "bad_request", "draining", "not_leased", "duplicate_node_id", "over_capacity",
			"too_many_sessions", "too_many_sessions_cluster", "forbidden_origin", "rate_limited", "starting", "upgrade"),
		pushes:        newCounterSet("pushd_pushes_received_total", "NATS messages received for delivery, by target kind.", "target", targets...),
		pushesRefused: newCounterSet("pushd_pushes_refused_total", "Pushes delivered to no session on purpose, by reason (too_large).", "reason", contract.RefusedTooLarge),
		framesWritten: newCounter("pushd_frames_written_total", "Push frames handed to sockets."),
		bytesWritten:  newCounter("pushd_bytes_written_total", "Bytes of push frames written to sockets."),
		slowConsumers: newCounter("pushd_slow_consumers_total", "Sessions cut off because their outbound queue overflowed or a write timed out."),
		upstream:      newCounter("pushd_upstream_messages_total", "Client publish frames forwarded to NATS."),
		rateLimited:   newCounter("pushd_upstream_rate_limited_total", "Client frames dropped because the session was over its frames or bytes per second limit."),
		joinsRefused: newCounterSet("pushd_joins_refused_total", "Join frames refused, by reason.", "reason",
			errForbidden, errTooManyDocs, errInvalidDoc, errTokenExpired, errTokenInvalid, reasonTooManyUDocs, reasonJoinRate),
		refreshes: newCounterSet("pushd_token_refreshes_total", "Refresh frames, by result.", "result", "ok", "error"),
		resumes: newCounterSet("pushd_resumes_total", "Sessions resuming a subject (since on connect or join), by result.", "result",
			"recovered", "not_recovered", "bad_since", "seam_not_closed"),
		replayed:  newCounter("pushd_resume_pushes_total", "Pushes replayed to resuming sessions."),
		seamReads: newCounter("pushd_resume_seam_reads_total", "Reads of pushes that fell between a resuming session's replay and its first live push."),
		receipts: newCounterSet("pushd_receipts_total", "Receipts: acked (published to the publisher's subject) or dropped (owed by a session past its bound of 256).", "result",
			"acked", "dropped"),
		presence: newCounterSet("pushd_presence_requests_total", "Client presence and presence_stats requests, by result.", "result",
			"ok", errForbidden, errTokenExpired, errTokenInvalid, errInvalidDoc, errBadCursor, errRateLimited, errUnavailable),
		presenceFrames: newCounter("pushd_presence_frames_total", "presence_diff frames queued to sessions that asked for presence events."),
		heartbeat: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pushd_heartbeat_interval_seconds",
			Help: "Heartbeat interval returned to clients in pong.", Buckets: []float64{1, 5, 10, 20, 40, 60, 90, 120, 300}}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pushd_delivery_latency_seconds",
			Help:    "From the publisher's Push-Timestamp header to the socket write.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
	}
	m.counters = append(m.counters, m.accepted, m.closed, m.handshakeFailures, m.pushes, m.pushesRefused, m.framesWritten,
		m.bytesWritten, m.slowConsumers, m.upstream, m.rateLimited, m.joinsRefused, m.refreshes, m.resumes, m.replayed, m.seamReads, m.receipts,
		m.presence, m.presenceFrames)
	gauge := func(name, help string, f func() float64) {
		m.gauges = append(m.gauges, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("pushd_connections", "Sessions open now.", func() float64 { return float64(n.Sessions()) })
	gauge("pushd_users", "Distinct users with a session on this node.", func() float64 { return float64(n.Users()) })
	gauge("pushd_docs", "Distinct docs joined by a session on this node.", func() float64 { return float64(n.Docs()) })
	gauge("pushd_sessions_parked", "Sessions idle between frames whose socket the poller watches, with no read goroutine.",
		func() float64 { return float64(n.parkedSessions.Load()) })
	gauge("pushd_draining", "1 while the node drains for shutdown.", func() float64 { return b2f(n.draining.Load()) })
	gauge("pushd_registry_lease_held", "1 while the node holds its Consul node-ID lease (always 1 without Consul).", func() float64 {
		g := n.NumberGuard()
		return b2f(g == GuardConsul || g == GuardStatic)
	})
	m.gauges = append(m.gauges, guardGauge(n))
	m.gauges = append(m.gauges, m.heartbeat, m.latency)
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.counters {
		c.describe(ch)
	}
	for _, g := range m.gauges {
		g.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.counters {
		c.collect(ch)
	}
	for _, g := range m.gauges {
		g.Collect(ch)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
