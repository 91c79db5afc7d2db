package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/pushd/pushd/cluster"
	"github.com/pushd/pushd/node"
	"github.com/pushd/pushd/presence"
)

// presenceConfig are the presence flags (docs/OPERATIONS.md, "Presence").
type presenceConfig struct {
	On               bool
	Window           time.Duration
	LargeDoc         int
	Events           []string
	Rate             float64
	MaxInfo          int
	ClusterHeartbeat time.Duration
}

func presenceFlags(f *pflag.FlagSet, c *presenceConfig) {
	f.BoolVar(&c.On, "presence", true, "keep who is in each doc across the cluster, answer presence requests and send join/leave events (docs/PROTOCOL.md)")
	f.DurationVar(&c.Window, "presence-window", presence.DefaultWindow, "presence events of a doc are coalesced over this window: one frame per listening session per window (0: no coalescing, a frame per change)")
	f.IntVar(&c.LargeDoc, "presence-large-doc", presence.DefaultLargeDoc, "a doc with more members sends counts-only presence events, and stretches its window in proportion (up to 10 windows)")
	f.StringSliceVar(&c.Events, "presence-events", nil, "doc patterns (as in the docs claim: room-1, room/*, *) whose every join gets presence events, as if it asked with \"presence\":true")
	f.Float64Var(&c.Rate, "presence-rate", node.DefaultPresenceRate, "presence requests per second per session (burst twice); more are refused rate_limited (0: no limit)")
	f.IntVar(&c.MaxInfo, "presence-max-info", node.DefaultMaxPresenceInfo, "bytes of a token's info claim (shown in presence); a token with more is refused")
	f.DurationVar(&c.ClusterHeartbeat, "cluster-heartbeat", time.Second, "node heartbeat period on NATS; a node silent for 3 periods is gone (its presence members dropped within 4 periods): the same on every node")
}

func (c *presenceConfig) validate() error {
	if c.Window < 0 || c.LargeDoc < 1 || c.Rate < 0 || c.MaxInfo < 1 {
		return errors.New("--presence-window, --presence-rate must not be negative; --presence-large-doc and --presence-max-info must be positive")
	}
	if c.ClusterHeartbeat < 10*time.Millisecond {
		return fmt.Errorf("--cluster-heartbeat %s: want at least 10ms", c.ClusterHeartbeat)
	}
	return nil
}

// nodeConfig copies the presence flags into a node config; the tracker is
// set separately.
func (c *presenceConfig) nodeConfig(nc *node.Config) {
	nc.PresenceRate = c.Rate
	if nc.PresenceRate == 0 {
		nc.PresenceRate = -1
	}
	nc.MaxPresenceInfo = c.MaxInfo
	for _, p := range c.Events {
		if p = strings.TrimSpace(p); p != "" {
			nc.PresenceEvents = append(nc.PresenceEvents, p)
		}
	}
}

// startPresence connects the tracker's own NATS connection (without echo:
// a holder must not count as a responder to its own sync request) and
// makes the tracker, fed by the cluster's view of the live nodes. Nil, nil
// with --presence=false. The caller starts it once the node exists.
func startPresence(cfg config, natsURL string, natsOpts []nats.Option, nodeID int64, cl *cluster.Cluster, log *slog.Logger, reg prometheus.Registerer) (*presence.Tracker, *nats.Conn, error) {
	pc := cfg.Presence
	if !pc.On {
		return nil, nil, nil
	}
	opts := append(append([]nats.Option(nil), natsOpts...), nats.NoEcho(), nats.Name("pushd presence "+cfg.NodeName))
	nc, err := nats.Connect(natsURL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s (presence): %w", natsURL, err)
	}
	window := pc.Window
	if window == 0 {
		window = -1 // the flag's 0 is "off"; the tracker's zero is its default
	}
	tr, err := presence.New(presence.Config{
		Conn:       nc,
		Prefix:     cfg.SubjectPrefix,
		Node:       nodeID,
		Instance:   cl.Self().Instance,
		Window:     window,
		LargeDoc:   pc.LargeDoc,
		GoneAfter:  cl.GoneAfter(),
		Logger:     log.With("component", "presence"),
		Registerer: reg,
	})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	cl.Watch(func(m cluster.Member, alive bool) { tr.Peer(m.Node, m.Instance, alive) })
	return tr, nc, nil
}

// The node and the presence tracker meet here too.
var (
	_ node.Presence = (*presence.Tracker)(nil)
	_ presence.Sink = (*node.Node)(nil)
)
