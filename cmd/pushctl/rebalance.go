package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pushd/pushd/admin"
)

func newRebalanceCmd(g *globals) *cobra.Command {
	var q admin.RebalanceQuery
	var nodeID int64
	cmd := &cobra.Command{
		Use:   "rebalance [--node N] (--count K | --to-average) [--dry-run]",
		Short: "Ask nodes to move some of their sessions to other nodes now",
		Long: `Ask nodes to shed sessions now: each closes the sessions it picks with 1012 and
the reason "rebalance: node <n>; ...", so their clients reconnect to another node
and resume (SDK clients lose nothing). A node picks sessions that resumed with
since first, then the oldest, and closes a large batch at 1,000 a second.

--count K sheds K sessions from each node asked (usually with --node);
--to-average sheds what each node holds above the cluster's average (as its
heartbeats tell it; a node that cannot tell says why). --dry-run shows what would
be shed and closes nothing. Prints, per node, the sessions it held, the average,
and how many it shed. Nodes shed on their own too (--rebalance, on by default);
this is for an operator who wants it now. Exit 1 when a node could not do it.`,
		Example: `  # even out the cluster now
  pushctl rebalance --to-average

  # move 500 sessions off node 3, and see which first
  pushctl rebalance --node 3 --count 500 --dry-run -o json
  pushctl rebalance --node 3 --count 500`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case q.Count < 0:
				return usageErrorf("--count %d: want a positive number of sessions", q.Count)
			case q.Count > 0 && q.ToAverage:
				return usageErrorf("rebalance takes --count or --to-average, not both")
			case q.Count == 0 && !q.ToAverage:
				return usageErrorf("rebalance needs --count K or --to-average")
			}
			if cmd.Flags().Changed("node") {
				if nodeID < 0 || nodeID > 1023 {
					return usageErrorf("--node %d: want a node ID 0..1023", nodeID)
				}
				q.Node = &nodeID
			}
			return g.run(func(c *conn) error { return runRebalance(g, c, q) })
		},
	}
	fl := cmd.Flags()
	fl.Int64Var(&nodeID, "node", 0, "ask only this node")
	fl.IntVar(&q.Count, "count", 0, "sessions each node asked sheds")
	fl.BoolVar(&q.ToAverage, "to-average", false, "each node sheds what it holds above the cluster's average")
	fl.BoolVar(&q.DryRun, "dry-run", false, "show what would be shed; close nothing")
	return cmd
}

func runRebalance(g *globals, c *conn, q admin.RebalanceQuery) error {
	res, err := c.client.Rebalance(g.ctx, q)
	if err != nil {
		return err
	}
	if g.output == outJSON {
		if err := printJSON(g.out, res); err != nil {
			return err
		}
	} else {
		shed := "SHED"
		if q.DryRun {
			shed = "WOULD SHED"
		}
		tb := newTable(g.out, "NODE", "SESSIONS", "AVERAGE", shed, "NOTE")
		for _, n := range res.Nodes {
			avg := fmt.Sprintf("%.1f", n.Average)
			note := n.Error
			if note == "" && !n.Known {
				note = "average unknown: " + n.Why
				if n.Accepting == 0 {
					avg = "-"
				}
			}
			if note == "" {
				note = "-"
			}
			tb.row(itoa(n.Node), itoa(n.Sessions), avg, itoa(n.Shed), note)
		}
		if err := tb.flush(); err != nil {
			return err
		}
	}
	var failed []string
	for _, n := range res.Nodes {
		if n.Error != "" {
			failed = append(failed, fmt.Sprintf("node %d: %s", n.Node, n.Error))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return nil
}
