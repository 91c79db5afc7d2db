package router

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	subscriptions prometheus.Gauge
	connected     prometheus.Gauge
	reconnects    prometheus.Counter
	dropped       prometheus.Counter
	historyMode   prometheus.Gauge
	duplicates    prometheus.Counter
	gapFills      prometheus.Counter
	gapPushes     prometheus.Counter
	tailReplays   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushd_nats_subscriptions", Help: "NATS subscriptions this node holds."}),
		connected:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushd_nats_connected", Help: "1 while the NATS connection is up."}),
		reconnects:    prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_nats_reconnects_total", Help: "NATS reconnections."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_nats_dropped_total",
			Help: "NATS messages dropped because the dispatch queue was full."}),
	}
	m.historyMode = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushd_history_subscribed",
		Help: "1 while the node takes user and doc pushes from the history stream (with positions), 0 while from the plain subjects."})
	m.duplicates = prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_history_duplicates_total",
		Help: "Stored pushes that arrived again after the node had delivered them; dropped."})
	m.gapFills = prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_history_gap_fills_total",
		Help: "Reads of pushes the node missed on a subject (revealed by the chain of positions, or checked after a NATS reconnect)."})
	m.gapPushes = prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_history_gap_pushes_total",
		Help: "Pushes the node missed and delivered after reading them from the stream."})
	m.tailReplays = prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_history_tail_replays_total",
		Help: "Client resumes answered from the node's memory of a subject's recent pushes, without a read."})
	if reg != nil {
		reg.MustRegister(m.subscriptions, m.connected, m.reconnects, m.dropped, m.historyMode, m.duplicates, m.gapFills, m.gapPushes, m.tailReplays)
	}
	return m
}
