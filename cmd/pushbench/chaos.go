package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/chaos"
)

// runChaos is internal/chaos's scenario (the one TestChaos runs at CI size)
// at the size the flags give: --conns Go SDK clients (through Toxiproxy),
// --docs docs (two per client), --rate doc pushes per second, on three
// pushd processes it starts from --pushd-bin, three JetStream servers and a
// Consul agent; the faults are chaos.Run's, and after the rolling drain the
// time until rebalancing spread the sessions within its band. The SDK's own
// backoff defaults apply, as do pushd's rebalancing defaults, as in
// production.
func runChaos(b *bench) error {
	o := b.o
	if len(o.targets) > 0 || o.pushdBin == "" {
		return errors.New("chaos starts and kills its own nodes: give --pushd-bin, not --target")
	}
	cfg := chaos.Config{PushdBin: o.pushdBin, Clients: o.conns, Docs: o.docs, Rate: o.rate,
		Publishers: max(8, int(o.rate/20))}
	h := chaos.NewHarness(func(format string, args ...any) {
		fmt.Fprintf(b.stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	})
	var r *chaos.Report
	err := h.Run(func(t testing.TB) { r = chaos.Run(t, cfg) })
	if r == nil {
		if err == nil {
			err = errors.New("chaos: no report")
		}
		return err
	}
	rep := b.rep
	rep.Params["nodes"], rep.Params["docs"] = 3, r.Docs
	rep.add("published", float64(r.Published), "pushes")
	rep.add("publish_rate", r.AchievedRate(), "pushes/s")
	rep.add("stored", float64(r.Stored), "pushes")
	rep.add("publish_retries", float64(r.Retries), "publishes")
	rep.add("deliveries_expected", float64(r.Expected), "deliveries")
	rep.add("delivered", r.DeliveredPct(), "%")
	rep.add("missing", float64(r.Missing), "deliveries")
	rep.add("duplicates_before_dedupe", float64(r.DuplicatesBeforeDedupe), "pushes")
	rep.add("duplicates_after_dedupe", float64(r.DuplicatesAfterDedupe), "pushes")
	rep.add("without_seq", float64(r.WithoutSeq), "pushes")
	rep.add("sessions", float64(r.Sessions), "hellos")
	rep.add("rejoins_not_recovered", float64(r.Gaps), "rejoins")
	rep.add("clients_missing_pushes", float64(r.MissingClients), "clients")
	for i, f := range r.Faults {
		rep.add(fmt.Sprintf("served_after_%02d_%s", i+1, slug(f.Name)), float64(f.Served.Milliseconds()), "ms")
		rep.check("every client served again after "+f.Name, f.Waiting == 0, fmt.Sprintf("%d waiting after %s", f.Waiting, f.Served.Round(time.Millisecond)))
	}
	var rb, ra, gb, ga float64
	for i := range r.Before {
		rb, gb = rb+r.Before[i].RSS, gb+r.Before[i].Goroutines
	}
	for i := range r.After {
		ra, ga = ra+r.After[i].RSS, ga+r.After[i].Goroutines
	}
	rep.add("nodes_rss_before", rb/1e6, "MB")
	rep.add("nodes_rss_after", ra/1e6, "MB")
	rep.add("nodes_goroutines_before", gb, "")
	rep.add("nodes_goroutines_after", ga, "")
	// Rebalancing after the rolling drain (the nodes' own defaults: a node
	// sheds above 1.2 times the average and 100 over it, at most 1% of
	// its sessions a second).
	for i := range r.Drained {
		rep.add(fmt.Sprintf("node%d_sessions_drained", i+1), r.Drained[i].Sessions, "sessions")
	}
	for i := range r.After {
		rep.add(fmt.Sprintf("node%d_sessions_end", i+1), r.After[i].Sessions, "sessions")
	}
	rep.add("balance_ceiling", r.Ceiling, "sessions")
	rep.add("balanced_after", float64(r.Balanced.Milliseconds()), "ms")
	rep.add("rebalance_moves_to_balance", float64(r.MovesToBalance), "sessions")
	rep.add("rebalance_moves", float64(r.Moves), "sessions")
	rep.check("sessions rebalanced after the rolling drain", !r.Unbalanced,
		fmt.Sprintf("%s sessions %s after the drain, want each at most %.0f", chaos.Spread(r.After), r.Balanced.Round(time.Second), r.Ceiling))
	rep.check("every stored push delivered exactly once per client", r.Missing == 0 && r.DuplicatesAfterDedupe == 0,
		fmt.Sprintf("%d of %d, %d twice", r.Delivered, r.Expected, r.DuplicatesAfterDedupe))
	rep.check("every push stored", r.Failed == 0, fmt.Sprintf("%d never answered", r.Failed))
	rep.setRaw("chaos", r)
	for _, line := range strings.Split(strings.TrimRight(r.String(), "\n"), "\n") {
		rep.note(line)
	}
	return err
}

// slug makes a fault's name a metric name.
func slug(s string) string {
	var b strings.Builder
	under := false
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			under = false
		} else if !under {
			b.WriteByte('_')
			under = true
		}
	}
	return strings.Trim(b.String(), "_")
}
