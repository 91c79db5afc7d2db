// Package testnode runs pushd nodes in process for tests: a router on a real
// NATS server, the node on it, and an httptest server in front, wired the
// way cmd/pushd wires them. Tests of node behaviour use it instead of the
// whole binary.
package testnode

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushd/pushd/cluster"
	"github.com/pushd/pushd/history"
	"github.com/pushd/pushd/node"
	"github.com/pushd/pushd/presence"
	"github.com/pushd/pushd/router"
)

// Node is one node under test.
type Node struct {
	*node.Node
	// Router is the node's router, on its own NATS connection.
	Router *router.Router
	// History is the node's history; nil without Options.History.
	History *history.History
	// Server serves the node's WebSocket endpoint at /ws and its HTTP
	// transports under /http/.
	Server *httptest.Server
	// Forwarder carries requests for HTTP sessions between nodes.
	Forwarder *router.Forwarder
	// Registry holds the node's and the router's metrics.
	Registry *prometheus.Registry
	// Presence and Cluster are set with Options.Presence: the node's
	// presence tracker, on its own NATS connection, and its heartbeats.
	Presence *presence.Tracker
	Cluster  *cluster.Cluster

	nc, pc  *nats.Conn
	stopped bool
}

// drainTimeout is short: stopping a node at cleanup spreads its closes over
// it.
const drainTimeout = 300 * time.Millisecond

// Options are what a test node runs with besides its node.Config.
type Options struct {
	// History, when set, runs the node with history on this config (Conn,
	// NodeID, Logger and Registerer are filled in): the NATS server must
	// have JetStream for it to be available.
	History *history.Config
	// Presence, when set, runs the node with presence on this config (Conn,
	// Node, Instance, GoneAfter, Logger and Registerer are filled in), and
	// node heartbeats every ClusterInterval (zero: 100ms) so that nodes
	// that stop are noticed.
	Presence        *presence.Config
	ClusterInterval time.Duration
}

// Start runs a node with cfg on the NATS server at natsURL until the test
// ends. cfg.Bus and cfg.Registerer are filled in; a nil cfg.Logger discards
// logs; a zero DrainTimeout is 300ms.
func Start(t testing.TB, natsURL string, cfg node.Config) *Node {
	t.Helper()
	return StartWith(t, natsURL, cfg, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, natsURL string, cfg node.Config, opts Options) *Node {
	t.Helper()
	tn, err := Run(natsURL, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tn.Stop)
	return tn
}

// Run is StartWith for code without a testing.TB (a TestMain, examples): the
// caller stops the node with Stop.
func Run(natsURL string, cfg node.Config, opts Options) (*Node, error) {
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("testnode: connect to NATS: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = drainTimeout
	}
	reg := prometheus.NewRegistry()
	var hist *history.History
	if opts.History != nil {
		hc := *opts.History
		hc.Conn, hc.NodeID, hc.Logger, hc.Registerer = nc, cfg.NodeID, cfg.Logger, reg
		if hc.Interval == 0 {
			hc.Interval = 100 * time.Millisecond // tests see an outage in 300ms
		}
		if hist, err = history.New(hc); err == nil {
			err = hist.Start(context.Background())
		}
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("testnode: history: %w", err)
		}
	}
	rt, err := router.New(router.Config{Conn: nc, NodeID: cfg.NodeID, History: hist, Logger: cfg.Logger, Registerer: reg})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("testnode: router: %w", err)
	}
	fwd, err := router.NewForwarder(router.ForwarderConfig{Conn: nc, NodeID: cfg.NodeID, Logger: cfg.Logger})
	if err != nil {
		_ = rt.Close()
		nc.Close()
		return nil, fmt.Errorf("testnode: forwarder: %w", err)
	}
	cfg.Bus, cfg.Registerer, cfg.Forwarder = rt, reg, fwd
	tn := &Node{Router: rt, Forwarder: fwd, History: hist, Registry: reg, nc: nc}
	if opts.Presence != nil {
		if err := tn.startPresence(natsURL, &cfg, opts); err != nil {
			_ = rt.Close()
			nc.Close()
			return nil, fmt.Errorf("testnode: presence: %w", err)
		}
	}
	n, err := node.New(cfg)
	if err != nil {
		_ = rt.Close()
		nc.Close()
		return nil, fmt.Errorf("testnode: node: %w", err)
	}
	tn.Node = n
	n.Start()
	if err := rt.Start(n); err != nil {
		_ = n.Close()
		_ = rt.Close()
		nc.Close()
		return nil, fmt.Errorf("testnode: router start: %w", err)
	}
	if err := fwd.Serve(n.ServeForwarded, n.ForwardBusy); err != nil {
		_ = n.Close()
		_ = rt.Close()
		nc.Close()
		return nil, fmt.Errorf("testnode: forwarder: %w", err)
	}
	if tn.Presence != nil {
		err := tn.Presence.Start(n)
		if err == nil {
			err = tn.Cluster.Start(cfg.NodeID)
		}
		if err != nil {
			return nil, fmt.Errorf("testnode: presence start: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", n)
	mux.HandleFunc("/http/", n.ServeHTTPSessions)
	tn.Server = httptest.NewServer(mux)
	return tn, nil
}

// startPresence makes the node's cluster membership and presence tracker,
// as cmd/pushd does.
func (n *Node) startPresence(natsURL string, cfg *node.Config, opts Options) error {
	interval := opts.ClusterInterval
	if interval == 0 {
		interval = 100 * time.Millisecond
	}
	cl, err := cluster.New(cluster.Config{Conn: n.nc, Interval: interval, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	pc, err := nats.Connect(natsURL, nats.NoEcho(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return err
	}
	p := *opts.Presence
	p.Conn, p.Node, p.Instance, p.GoneAfter, p.Logger, p.Registerer = pc, cfg.NodeID, cl.Self().Instance, cl.GoneAfter(), cfg.Logger, n.Registry
	tr, err := presence.New(p)
	if err != nil {
		pc.Close()
		return err
	}
	cl.Watch(func(m cluster.Member, alive bool) { tr.Peer(m.Node, m.Instance, alive) })
	n.Presence, n.Cluster, n.pc = tr, cl, pc
	cfg.Presence = tr
	return nil
}

// Crash stops the node the way kill -9 does, as far as the rest of the
// cluster can tell: its NATS connections drop without a word (no leave, no
// unsubscribe) and its heartbeats stop. Its clients' sockets are cut.
func (n *Node) Crash() {
	if n.stopped {
		return
	}
	n.stopped = true
	if n.pc != nil {
		n.pc.Close()
	}
	n.nc.Close()
	if n.Cluster != nil {
		_ = n.Cluster.Close()
	}
	n.Server.CloseClientConnections()
	n.Server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.Drain(ctx)
	_ = n.Forwarder.Close()
	_ = n.Router.Close()
	if n.Presence != nil {
		_ = n.Presence.Close()
	}
	if n.History != nil {
		_ = n.History.Close()
	}
	_ = n.Close()
}

// Stop drains the node and shuts it down, as SIGTERM does; cleanup calls it
// too, and a second call does nothing.
func (n *Node) Stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.Drain(ctx)
	if n.Presence != nil {
		_ = n.Presence.Close()
		_ = n.Cluster.Close()
		n.pc.Close()
	}
	_ = n.Forwarder.Close()
	_ = n.Router.Close()
	if n.History != nil {
		_ = n.History.Close()
	}
	_ = n.nc.Drain()
	n.nc.Close()
	n.Server.Close()
	_ = n.Close()
}

// Addr is the node's listener, host:port.
func (n *Node) Addr() string { return strings.TrimPrefix(n.Server.URL, "http://") }

// URL is the node's base URL, http://host:port.
func (n *Node) URL() string { return n.Server.URL }

// WSURL is the node's WebSocket endpoint.
func (n *Node) WSURL() string { return "ws://" + n.Addr() + "/ws" }

// Metric is the value of one series, named as on /metrics:
// `pushd_connections` or `pushd_connections_closed_total{reason="client"}`.
// A series that does not exist fails the test.
func (n *Node) Metric(t testing.TB, series string) float64 {
	t.Helper()
	name, labels, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
	families, err := n.Registry.Gather()
	if err != nil {
		t.Fatalf("testnode: gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelString(m) == labels {
				return value(m)
			}
		}
	}
	t.Fatalf("testnode: no series %s", series)
	return 0
}

func labelString(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	return strings.Join(parts, ",")
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}
