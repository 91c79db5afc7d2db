package history

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	replays  *prometheus.CounterVec
	replayed prometheus.Counter
	reads    prometheus.Counter
	echo     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, h *History) *metrics {
	m := &metrics{
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushd_history_replays_total",
			Help: "Client resumes answered from history, by result: recovered, not_recovered, future, unavailable, error."}, []string{"result"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_history_replayed_pushes_total",
			Help: "Pushes replayed to resuming clients."}),
		reads: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushd_history_reads_total",
			Help: "Requests to the history streams (direct gets and stream info): NATS round trips for replays and gap fills."}),
		echo: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushd_history_lag_seconds",
			Help: "From this node's last history heartbeat being stored to its republished echo arriving: the stream's own delay."}),
	}
	for _, r := range []string{"recovered", "not_recovered", "future", "unavailable", "error"} {
		m.replays.WithLabelValues(r)
	}
	available := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushd_history_available",
		Help: "1 while the history streams store and republish pushes (this node's heartbeat comes back)."},
		func() float64 {
			if h.Available() {
				return 1
			}
			return 0
		})
	if reg != nil {
		reg.MustRegister(m.replays, m.replayed, m.reads, m.echo, available)
	}
	return m
}
