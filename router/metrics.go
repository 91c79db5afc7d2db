package router

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	subscriptions prometheus.Gauge
	connected     prometheus.Gauge
	reconnects    prometheus.Counter
	dropped       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushd_nats_subscriptions", Help: "NATS subscriptions this node holds."}),
		connected:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushd_nats_connected", Help: "1 while the NATS connection is up."}),
		reconnects:    prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_nats_reconnects_total", Help: "NATS reconnections."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_nats_dropped_total",
			Help: "NATS messages dropped because the dispatch queue was full."}),
	}
	if reg != nil {
		reg.MustRegister(m.subscriptions, m.connected, m.reconnects, m.dropped)
	}
	return m
}
