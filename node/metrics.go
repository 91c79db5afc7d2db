package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushd/pushd/contract"
)

// metrics are the node's Prometheus collectors (docs/METRICS.md).
type metrics struct {
	connections       prometheus.Gauge
	accepted          prometheus.Counter
	closed            *prometheus.CounterVec
	handshakeFailures *prometheus.CounterVec
	users             prometheus.Gauge
	docs              prometheus.Gauge
	pushes            *prometheus.CounterVec
	pushesRefused     *prometheus.CounterVec
	framesWritten     prometheus.Counter
	bytesWritten      prometheus.Counter
	slowConsumers     prometheus.Counter
	upstream          prometheus.Counter
	heartbeat         prometheus.Histogram
	latency           prometheus.Histogram
	draining          prometheus.Gauge
	leaseHeld         prometheus.Gauge
	rateLimited       prometheus.Counter
	joinsRefused      *prometheus.CounterVec
	refreshes         *prometheus.CounterVec
	parked            prometheus.GaugeFunc
}

// newMetrics makes the node's collectors; parked reads the parked-session count.
func newMetrics(reg prometheus.Registerer, parked func() float64) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushd_connections", Help: "WebSocket sessions open now."}),
		accepted:    prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_connections_accepted_total", Help: "Sessions that completed the handshake."}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushd_connections_closed_total",
			Help: "Sessions closed, by reason."}, []string{"reason"}),
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushd_handshake_failures_total",
			Help: "Upgrades refused, by reason."}, []string{"reason"}),
		users: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushd_users", Help: "Distinct users with a session on this node."}),
		docs:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushd_docs", Help: "Distinct docs joined by a session on this node."}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushd_pushes_received_total",
			Help: "NATS messages received for delivery, by target kind."}, []string{"target"}),
		framesWritten: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_frames_written_total", Help: "Push frames handed to sockets."}),
		bytesWritten:  prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_bytes_written_total", Help: "Bytes of push frames written to sockets."}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_slow_consumers_total",
			Help: "Sessions cut off because their outbound queue overflowed or a write timed out."}),
		upstream: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_upstream_messages_total", Help: "Client publish frames forwarded to NATS."}),
		heartbeat: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pushd_heartbeat_interval_seconds",
			Help: "Heartbeat interval returned to clients in pong.", Buckets: []float64{1, 5, 10, 20, 40, 60, 90, 120, 300}}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pushd_delivery_latency_seconds",
			Help:    "From the publisher's Push-Timestamp header to the socket write.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		draining:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushd_draining", Help: "1 while the node drains for shutdown."}),
		leaseHeld: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushd_registry_lease_held", Help: "1 while the node holds its node-ID lease."}),
	}
	m.pushesRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushd_pushes_refused_total",
		Help: "Pushes delivered to no session on purpose, by reason (too_large)."}, []string{"reason"})
	m.pushesRefused.WithLabelValues(contract.RefusedTooLarge)
	m.rateLimited = prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_upstream_rate_limited_total",
		Help: "Client frames dropped because the session was over its frames or bytes per second limit."})
	m.joinsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushd_joins_refused_total",
		Help: "Join frames refused, by reason."}, []string{"reason"})
	m.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushd_token_refreshes_total",
		Help: "Refresh frames, by result."}, []string{"result"})
	for _, r := range []string{errForbidden, errTooManyDocs, errInvalidDoc, errTokenExpired, errTokenInvalid} {
		m.joinsRefused.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "error"} {
		m.refreshes.WithLabelValues(r)
	}
	for _, r := range []Reason{ReasonClient, ReasonHeartbeatTimeout, ReasonSlowConsumer, ReasonKicked, ReasonDrain, ReasonProtocolError, ReasonTokenExpired, ReasonRateLimited, ReasonError} {
		m.closed.WithLabelValues(string(r))
	}
	for _, t := range []contract.Target{contract.TargetUser, contract.TargetDoc, contract.TargetAll, contract.TargetSession} {
		m.pushes.WithLabelValues(string(t))
	}
	// Every reason exists from the start, so dashboards and alerts see zeros
	// rather than missing series.
	for _, r := range []string{"unauthorized", "bad_request", "draining", "not_leased", "duplicate_node_id", "over_capacity",
		"too_many_sessions", "forbidden_origin", "rate_limited", "upgrade"} {
		m.handshakeFailures.WithLabelValues(r)
	}
	m.parked = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushd_sessions_parked",
		Help: "Sessions idle between frames whose socket the poller watches, with no read goroutine."}, parked)
	m.leaseHeld.Set(1)
	if reg != nil {
		reg.MustRegister(m.connections, m.accepted, m.closed, m.handshakeFailures, m.users, m.docs, m.pushes, m.pushesRefused,
			m.framesWritten, m.bytesWritten, m.slowConsumers, m.upstream, m.heartbeat, m.latency, m.draining, m.leaseHeld,
			m.rateLimited, m.joinsRefused, m.refreshes, m.parked)
	}
	return m
}
