package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pushd/pushd/admin"
)

// statsOutput is the JSON document of `pushctl stats -o json` (one per
// refresh with --watch).
type statsOutput struct {
	At time.Time `json:"at"`
	// Interval is the time between the two samples, as measured by the
	// nodes' clocks: about --interval.
	Interval float64      `json:"interval_seconds"`
	Total    admin.Rate   `json:"total"`
	Nodes    []admin.Rate `json:"nodes"`
}

func newStatsCmd(g *globals) *cobra.Command {
	var interval time.Duration
	var watch bool
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Cluster totals and per-node rates",
		Long: `Sample every node's counters twice, --interval apart, and print per-node and
cluster rates: connections open, connects per second, pushes received from
NATS per second, frames written to sockets per second, and sessions cut off
as slow consumers in the interval. Users and docs are summed over nodes (a
user connected to two nodes counts twice).

--watch keeps sampling and redraws in place until interrupted (Ctrl-C); with
-o json it prints one JSON document per line instead.`,
		Example: `  pushctl stats
  pushctl stats --watch --interval 5s
  pushctl stats -o json | jq .total.pushes_in_per_sec`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			if interval <= 0 {
				return usageErrorf("--interval must be positive")
			}
			return g.run(func(c *conn) error { return runStats(g, c, interval, watch) })
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "time between the two samples rates are computed from")
	cmd.Flags().BoolVar(&watch, "watch", false, "refresh every --interval until interrupted")
	return cmd
}

// runStats samples on a fixed cadence: a sample is due every interval from
// the first, however long gathering the answers took, and rates are over the
// time the samples were really taken, which is what the output says.
func runStats(g *globals, c *conn, interval time.Duration, watch bool) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	prev, err := c.client.Stats(g.ctx)
	if err != nil {
		if watch && g.ctx.Err() != nil {
			return nil // interrupted
		}
		return err
	}
	for {
		select {
		case <-g.ctx.Done():
			if watch {
				return nil
			}
			return g.ctx.Err()
		case <-tick.C:
		}
		cur, err := c.client.Stats(g.ctx)
		switch {
		case err != nil && watch && g.ctx.Err() != nil:
			return nil // interrupted
		case err != nil && watch:
			// Keep watching through a bad sample; the baseline stays.
			fmt.Fprintln(g.err, errorLine(classify(err)))
			continue
		case err != nil:
			return err
		}
		rates := admin.Rates(prev, cur)
		total := admin.Total(rates)
		out := statsOutput{At: time.Now().UTC(), Interval: total.Seconds, Total: total, Nodes: rates}
		if err := printStats(g, out, watch); err != nil {
			return err
		}
		if !watch {
			return nil
		}
		prev = cur
	}
}

func printStats(g *globals, s statsOutput, watch bool) error {
	if g.output == outJSON {
		if watch {
			return encodeLine(g, s)
		}
		return printJSON(g.out, s)
	}
	if watch {
		fmt.Fprint(g.out, "\033[H\033[2J")
	}
	fmt.Fprintf(g.out, "rates over %s, sampled %s\n", time.Duration(s.Interval*float64(time.Second)).Round(time.Millisecond), s.At.Local().Format(time.TimeOnly))
	header := []string{"NODE", "CONNECTIONS", "USERS", "DOCS", "CONNECTS/S", "PUSHES IN/S", "FRAMES OUT/S", "SLOW CONSUMERS"}
	if g.output == outWide {
		header = append(header, "DISCONNECTS/S", "BYTES OUT/S")
	}
	t := newTable(g.out, header...)
	row := func(name string, r admin.Rate) {
		cols := []string{name, itoa(r.Connections), itoa(r.Users), itoa(r.Docs), rate(r.ConnectsPerSec), rate(r.PushesInPerSec),
			rate(r.FramesOutPerSec), itoa(r.SlowConsumers)}
		if g.output == outWide {
			cols = append(cols, rate(r.DisconnectsPerSec), bytesHuman(uint64(r.BytesOutPerSec))+"/s")
		}
		t.row(cols...)
	}
	for _, r := range s.Nodes {
		row(itoa(r.Node), r)
	}
	row("TOTAL", s.Total)
	return t.flush()
}

// encodeLine writes v as one compact JSON line.
func encodeLine(g *globals, v any) error {
	b, err := jsonMarshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(g.out, "%s\n", b)
	return err
}
