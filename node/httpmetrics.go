package node

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the HTTP transports, and sessions by transport
// (docs/METRICS.md). The per-transport series of WebSocket sessions are the
// node's totals less the HTTP ones, so the WebSocket path counts nothing
// more.

// transports are the values of the transport label.
var transports = []string{"ws", transportSSE, transportPoll}

// httpMetrics count the HTTP transports' requests.
type httpMetrics struct {
	requests  *counterSet // by endpoint
	errors    *counterSet // by error code
	forwarded *counterSet // by op, sent to the node holding the session
	served    *counterSet // by op, forwarded here by another node
}

func newHTTPMetrics() *httpMetrics {
	ops := []string{reqPull, reqSend, reqClose}
	return &httpMetrics{
		requests: newCounterSet("pushd_http_requests_total", "Requests to the HTTP transports, by endpoint.", "endpoint",
			"connect", "sse", "poll", "send", "close"),
		errors: newCounterSet("pushd_http_errors_total", "HTTP transport requests answered with an error status, by error code.", "error",
			httpErrorCodes...),
		forwarded: newCounterSet("pushd_http_forwarded_total", "HTTP session requests this node forwarded over NATS to the node holding the session, by operation.", "op", ops...),
		served:    newCounterSet("pushd_http_forward_served_total", "HTTP session requests other nodes forwarded to this one, by operation.", "op", ops...),
	}
}

// httpCollector exports the HTTP metrics and the per-transport series.
type httpCollector struct {
	n                      *Node
	live, accepted, closed *prometheus.Desc
	streams, polls         *prometheus.Desc
}

func newHTTPCollector(n *Node) *httpCollector {
	label := []string{"transport"}
	return &httpCollector{
		n:        n,
		live:     prometheus.NewDesc("pushd_transport_sessions", "Sessions open now, by transport (ws, sse, poll).", label, nil),
		accepted: prometheus.NewDesc("pushd_transport_sessions_accepted_total", "Sessions that completed the handshake, by transport.", label, nil),
		closed:   prometheus.NewDesc("pushd_transport_sessions_closed_total", "Sessions closed, by transport.", label, nil),
		streams:  prometheus.NewDesc("pushd_http_streams", "SSE streams open on this node, for its sessions or relayed for other nodes'.", nil, nil),
		polls:    prometheus.NewDesc("pushd_http_polls_held", "Long-polls held waiting for frames.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *httpCollector) Describe(ch chan<- *prometheus.Desc) {
	m := c.n.http.metrics
	for _, cs := range []*counterSet{m.requests, m.errors, m.forwarded, m.served} {
		cs.describe(ch)
	}
	for _, d := range []*prometheus.Desc{c.live, c.accepted, c.closed, c.streams, c.polls} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *httpCollector) Collect(ch chan<- prometheus.Metric) {
	n, h := c.n, c.n.http
	for _, cs := range []*counterSet{h.metrics.requests, h.metrics.errors, h.metrics.forwarded, h.metrics.served} {
		cs.collect(ch)
	}
	live := [3]float64{float64(n.Sessions())}
	accepted := [3]float64{float64(n.metrics.accepted.load())}
	closed := [3]float64{float64(n.metrics.closed.sum())}
	for i := range 2 {
		live[i+1] = float64(h.live[i].Load())
		accepted[i+1] = float64(h.accepted[i].Load())
		closed[i+1] = float64(h.closed[i].Load())
		live[0] -= live[i+1]
		accepted[0] -= accepted[i+1]
		closed[0] -= closed[i+1]
	}
	for i, t := range transports {
		ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, max(live[i], 0), t)
		ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, max(accepted[i], 0), t)
		ch <- prometheus.MustNewConstMetric(c.closed, prometheus.CounterValue, max(closed[i], 0), t)
	}
	ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(h.streams.Load()))
	ch <- prometheus.MustNewConstMetric(c.polls, prometheus.GaugeValue, float64(h.polls.Load()))
}
