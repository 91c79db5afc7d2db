package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/pushd/pushd/cluster"
	"github.com/pushd/pushd/node"
	"github.com/pushd/pushd/rebalance"
)

// rebalanceConfig are the rebalancing flags (docs/OPERATIONS.md,
// "Rebalancing").
type rebalanceConfig struct {
	On        bool
	Ratio     float64
	MinExcess int
	Fraction  float64
	Rate      float64
}

func rebalanceFlags(f *pflag.FlagSet, c *rebalanceConfig) {
	f.BoolVar(&c.On, "rebalance", true, "shed sessions while this node holds well above the cluster's average, so their clients reconnect to other nodes (1012, resumed without loss); pushctl rebalance works either way")
	f.Float64Var(&c.Ratio, "rebalance-ratio", rebalance.DefaultRatio, "a node sheds once it holds more than this times the cluster's average (and more than --rebalance-min-excess above it), down to the average")
	f.IntVar(&c.MinExcess, "rebalance-min-excess", rebalance.DefaultMinExcess, "a node sheds only once it holds more than this many sessions above the cluster's average")
	f.Float64Var(&c.Fraction, "rebalance-fraction", rebalance.DefaultFraction, "the largest share of the node's sessions shed a second (0.01: 1%)")
	f.Float64Var(&c.Rate, "rebalance-rate", rebalance.DefaultRate, "the most sessions shed a second")
}

func (c *rebalanceConfig) validate() error {
	if c.Ratio <= 1 || c.MinExcess < 0 || c.Fraction <= 0 || c.Fraction > 1 || c.Rate <= 0 {
		return errors.New("--rebalance-ratio must be above 1, --rebalance-min-excess not negative, --rebalance-fraction in (0, 1] and --rebalance-rate positive")
	}
	return nil
}

// load is what the node's heartbeats say it holds (the rebalancing of every
// node reads it); nothing is accepted before the node runs.
func load(fr *front) func() cluster.Load {
	return func() cluster.Load {
		n := fr.node.Load()
		if n == nil {
			return cluster.Load{}
		}
		ok, _ := n.Ready()
		return cluster.Load{Sessions: n.Sessions(), Accepting: ok}
	}
}

// startRebalancer makes the node's rebalancer and, with --rebalance, starts
// it; it looks once a cluster heartbeat.
func startRebalancer(c rebalanceConfig, n *node.Node, cl *cluster.Cluster, interval time.Duration, log *slog.Logger, reg prometheus.Registerer) (*rebalance.Rebalancer, error) {
	minExcess := c.MinExcess
	if minExcess == 0 {
		minExcess = -1 // 0 on the command line means none
	}
	rb, err := rebalance.New(rebalance.Config{
		Node:       n,
		Cluster:    cl,
		Off:        !c.On,
		Ratio:      c.Ratio,
		MinExcess:  minExcess,
		Fraction:   c.Fraction,
		Rate:       c.Rate,
		Interval:   interval,
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	rb.Start()
	return rb, nil
}
