package chaos

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
)

var bins = pushtest.NewBinaries()

func TestMain(m *testing.M) { pushtest.ExitAfter(m.Run(), bins.Remove) }

// TestChaos is the chaos scenario at CI size (30 clients, 6 docs, 40
// pushes/s; see Run for the faults): every stored push reaches every client
// joined to its doc exactly once (after the SDK's dedupe by seq), every
// client is served again after every fault, the rolling drain's imbalance
// is rebalanced (sessions moving while pushes flow) until every node holds
// no more than the band allows, and the nodes end with no more goroutines
// than the sessions they hold explain.
func TestChaos(t *testing.T) {
	r := Run(t, Config{
		PushdBin: bins.Path(t, "pushd"),
		Backoff:  client.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second, Restart: 300 * time.Millisecond},
		// A band small enough for 30 clients (pushd's margin of 100 would
		// keep them still): a node sheds above 1.2 times the average (12),
		// down to it (10), up to 10 a second.
		Rebalance:     Rebalance{Ratio: 1.2, MinExcess: -1, Fraction: 1, Rate: 10},
		BalanceWithin: 20 * time.Second,
	})
	t.Logf("chaos report:\n%s", r)
	if r.Expected == 0 || r.Stored < int(r.Rate) {
		t.Fatalf("hardly anything published: %d stored, %d deliveries expected", r.Stored, r.Expected)
	}
	if r.Missing != 0 || r.DuplicatesAfterDedupe != 0 {
		t.Errorf("delivered %d of %d (%.3f%%), %d duplicates after dedupe: want 100%% exactly once",
			r.Delivered, r.Expected, r.DeliveredPct(), r.DuplicatesAfterDedupe)
	}
	if r.Failed != 0 {
		t.Errorf("%d pushes were never stored (no JetStream answer for %s)", r.Failed, publishGiveUp)
	}
	for _, f := range r.Faults {
		if f.Waiting != 0 {
			t.Errorf("%s: %d clients not served again within %s", f.Name, f.Waiting, f.Served)
		}
	}
	// docs/RELIABILITY.md describes every fault the run injects, by the
	// report's name for it.
	doc, err := os.ReadFile("../../docs/RELIABILITY.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Faults {
		if !strings.Contains(string(doc), "`"+f.Name+"`") {
			t.Errorf("docs/RELIABILITY.md does not describe the fault %q", f.Name)
		}
	}
	var before, after, sessions float64
	for i := range r.Before {
		before += r.Before[i].Goroutines
		after += r.After[i].Goroutines
		sessions += r.After[i].Sessions
	}
	if sessions != float64(r.Clients) {
		t.Errorf("the nodes hold %.0f sessions after the run, want %d", sessions, r.Clients)
	}
	// Rebalancing: the node drained last came back empty, so others held
	// more than the band allows; they shed until every node held at
	// most the ceiling, and the sessions stayed spread so to the end.
	if r.Unbalanced {
		t.Errorf("not rebalanced within %s of the rolling drain: %s sessions, want each at most %.0f, none shedding",
			r.Balanced.Round(time.Millisecond), Spread(r.Drained), r.Ceiling)
	}
	most := 0.0
	for _, n := range r.Drained {
		most = max(most, n.Sessions)
	}
	if most <= r.Ceiling || r.MovesToBalance == 0 {
		t.Errorf("the rolling drain left %s sessions and rebalancing moved %d: want a node above %.0f, and moves",
			Spread(r.Drained), r.MovesToBalance, r.Ceiling)
	}
	for i, n := range r.After {
		if n.Sessions > r.Ceiling || n.Sessions == 0 {
			t.Errorf("node %d holds %.0f sessions at the end (%s), want 1 to %.0f", i+1, n.Sessions, Spread(r.After), r.Ceiling)
		}
	}
	// Every node was restarted by the drain: a leak would show as goroutines
	// beyond what the same sessions needed before.
	if after > before*1.5+100 {
		t.Errorf("goroutines over the nodes: %.0f after, %.0f before", after, before)
	}
}
