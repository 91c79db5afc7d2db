package main

import (
	"fmt"
	"time"
)

// presenceDoc is the doc of the presence scenario.
const presenceDoc = "presence-bench"

// runPresence measures what presence costs under churn: --conns sessions
// are members of one doc and listen for its presence events; --churners
// more sessions join and leave it, --churn-rate joins and as many leaves a
// second, for --duration. It reports the presence frames and events the
// members received and the server CPU (and, for reference, the CPU of the
// same members without churn), with coalescing on (the node's
// defaults), off (--presence-window=0: a frame per change), or both, one
// after the other on fresh nodes.
func runPresence(b *bench) error {
	modes := map[string][]string{"on": nil, "off": {"--presence-window=0"}}
	order := []string{b.o.coalesce}
	switch b.o.coalesce {
	case "both":
		order = []string{"on", "off"}
	case "on", "off":
	default:
		return fmt.Errorf("--coalesce %q: want on, off or both", b.o.coalesce)
	}
	if b.o.churners < 2 || b.o.churnRate <= 0 {
		return fmt.Errorf("--churners (at least 2) and --churn-rate must be positive")
	}
	base := b.o.pushdArgs
	defer func() { b.o.pushdArgs = base }()
	for _, mode := range order {
		b.o.pushdArgs = append(append([]string(nil), base...), modes[mode]...)
		if err := b.presencePhase(mode + "_"); err != nil {
			return err
		}
		b.close()
		b.workers, b.cl = nil, nil
	}
	if len(order) == 2 {
		b.rep.ratio("ratio_frames_per_sec", "on_presence_frames_per_sec", "off_presence_frames_per_sec")
		b.rep.ratio("ratio_server_cpu", "on_server_cpu_cores", "off_server_cpu_cores")
	}
	return nil
}

func (b *bench) presencePhase(prefix string) error {
	members := b.o.conns
	b.presenceDoc, b.churners, b.phase = presenceDoc, b.o.churners, prefix
	b.o.conns = members + b.o.churners
	defer func() { b.o.conns = members }()
	if err := b.setup(); err != nil {
		return err
	}
	if _, err := b.connectChecked(b.cl.targets(), ""); err != nil {
		return err
	}
	// Let the joins of the ramp go out before measuring.
	select {
	case <-time.After(b.o.settle):
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
	// The members' own cost, heartbeats included, without churn.
	idle := min(b.o.duration, 10*time.Second)
	i0 := b.cl.sample(false)
	select {
	case <-time.After(idle):
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
	i1 := b.cl.sample(false)
	b.rep.add(prefix+"server_cpu_idle_cores", float64(i1.CPUNanos-i0.CPUNanos)/1e9/idle.Seconds(), "cores")
	if err := b.reset(0); err != nil {
		return err
	}
	s0 := b.cl.sample(false)
	m0 := b.cl.scrapeSum("pushd_presence_frames_total")
	start := time.Now()
	rate := 2 * b.o.churnRate // joins and leaves
	nw := len(b.workers)
	if _, err := all(b.ctx, b.workers, b.o.duration+time.Minute, func(i int) command {
		share := float64(b.churnersOf(i, nw)) / float64(b.churners)
		return command{Op: "flap", Flap: &flapSpec{PerSecond: rate * share, DurationNs: int64(b.o.duration)}}
	}); err != nil {
		return err
	}
	// The last window's frames, then the counters.
	select {
	case <-time.After(3 * time.Second):
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
	secs := time.Since(start).Seconds()
	t, err := b.stats(false)
	if err != nil {
		return err
	}
	s1 := b.cl.sample(false)
	m1 := b.cl.scrapeSum("pushd_presence_frames_total")
	cpu := float64(s1.CPUNanos-s0.CPUNanos) / 1e9
	b.rep.add(prefix+"members", float64(members), "")
	b.rep.add(prefix+"churn_per_sec", float64(t.flaps)/b.o.duration.Seconds(), "joins+leaves/s")
	b.rep.add(prefix+"presence_frames_per_sec", float64(t.presenceFrames)/b.o.duration.Seconds(), "1/s")
	b.rep.add(prefix+"presence_events_per_sec", float64(t.presenceEvents)/b.o.duration.Seconds(), "1/s")
	b.rep.add(prefix+"server_frames_per_sec", (m1-m0)/b.o.duration.Seconds(), "1/s")
	b.rep.add(prefix+"server_cpu_cores", cpu/secs, "cores")
	b.rep.add(prefix+"server_cpu_per_change", cpu*1e6/float64(max(t.flaps, 1)), "µs")
	b.rep.add(prefix+"client_bytes_in_per_sec", float64(t.bytesIn)/secs, "B/s")
	b.rep.check(prefix+"no member cut off", t.dropped == 0 && t.open == b.o.conns, fmt.Sprintf("open %d of %d, dropped %d", t.open, b.o.conns, t.dropped))
	b.rep.check(prefix+"churn at the asked rate", float64(t.flaps) >= 0.9*rate*b.o.duration.Seconds(),
		fmt.Sprintf("%d joins+leaves in %s, asked %.0f/s", t.flaps, b.o.duration, rate))
	return nil
}

// scrapeSum adds up one unlabelled metric over every node's admin /metrics.
func (c *cluster) scrapeSum(name string) float64 {
	v := 0.0
	for _, sp := range c.servers {
		if sp.admin != "" {
			v += scrape(sp.admin + "/metrics")[name]
		}
	}
	return v
}
