// Package chaos is pushd's chaos scenario: a real cluster (three pushd
// processes, a three-server JetStream cluster, one Consul agent) with
// Toxiproxy on every link, Go SDK clients joined to docs with history on,
// and a backend publishing doc pushes at a steady rate, put through network
// drops, kill -9 of a node and of a NATS server, a cut between a node and
// NATS, a Consul freeze and a rolling drain, after which rebalancing
// spreads the sessions again. It measures what docs/RELIABILITY.md
// promises: every stored push delivered exactly once per client (after the
// SDK's dedupe by seq, sessions moving included), the duplicates that
// dedupe dropped, the time until every client is served again after each
// fault, the sessions per node after the drain and the time until they are
// within the rebalancing band, and the nodes' memory and goroutines before
// and after.
//
// TestChaos runs it at CI size; `pushbench chaos` at a larger one, through
// a Harness.
package chaos

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/rebalance"
)

// Config sizes the scenario. A zero field means its default (the CI size).
type Config struct {
	// PushdBin is the pushd binary. Required.
	PushdBin string
	// Clients is the number of Go SDK clients. Default 30.
	Clients int
	// Docs is the number of docs. Default 6.
	Docs int
	// DocsPerClient is how many docs each client joins. Default 2.
	DocsPerClient int
	// Rate is doc pushes published per second, in all. Default 40.
	Rate float64
	// Publishers is how many pushes may wait for JetStream's answer at
	// once. Default 8.
	Publishers int
	// DropFraction is the fraction of clients each network drop cuts.
	// Default 0.1.
	DropFraction float64
	// Drops is how many network drops of clients there are. Default 3.
	Drops int
	// DropFor is how long a drop lasts. Default 2s.
	DropFor time.Duration
	// ConsulFreeze is how long Consul is frozen (SIGSTOP). Default 5s.
	ConsulFreeze time.Duration
	// DrainTimeout is the nodes' --drain-timeout. Default 1s.
	DrainTimeout time.Duration
	// HistoryPerDoc is the nodes' --history-doc-max-msgs. Default 10,000.
	HistoryPerDoc int
	// Backoff is the clients' (client.Config.Backoff); zero is the SDK's
	// defaults.
	Backoff client.Backoff
	// ServeWithin bounds the wait until every client is served again after
	// a fault. Default 60s.
	ServeWithin time.Duration
	// Rebalance is the nodes' rebalancing (their --rebalance-* flags); zero
	// fields keep pushd's defaults.
	Rebalance Rebalance
	// BalanceWithin bounds the wait, after the rolling drain, until the
	// nodes hold the sessions within the rebalancing band. Default 5m.
	BalanceWithin time.Duration
}

// Rebalance are the nodes' rebalancing flags (docs/OPERATIONS.md,
// "Rebalancing"), as rebalance.Config reads them: a zero field means
// pushd's default, a negative MinExcess means none (0 on the command line).
type Rebalance struct {
	Ratio     float64 // --rebalance-ratio (rebalance.DefaultRatio)
	MinExcess int     // --rebalance-min-excess (rebalance.DefaultMinExcess)
	Fraction  float64 // --rebalance-fraction (rebalance.DefaultFraction)
	Rate      float64 // --rebalance-rate (rebalance.DefaultRate)
}

// args are the pushd flags for r.
func (r Rebalance) args() []string {
	var a []string
	if r.Ratio > 0 {
		a = append(a, "--rebalance-ratio", strconv.FormatFloat(r.Ratio, 'g', -1, 64))
	}
	if r.MinExcess != 0 {
		a = append(a, "--rebalance-min-excess", strconv.Itoa(max(0, r.MinExcess)))
	}
	if r.Fraction > 0 {
		a = append(a, "--rebalance-fraction", strconv.FormatFloat(r.Fraction, 'g', -1, 64))
	}
	if r.Rate > 0 {
		a = append(a, "--rebalance-rate", strconv.FormatFloat(r.Rate, 'g', -1, 64))
	}
	return a
}

// band is the band the nodes shed by, as package rebalance computes it.
func (r Rebalance) band() rebalance.Band {
	b := rebalance.Band{Ratio: rebalance.DefaultRatio, MinExcess: rebalance.DefaultMinExcess}
	if r.Ratio > 0 {
		b.Ratio = math.Max(r.Ratio, 1.01) // as rebalance.New clamps it
	}
	if r.MinExcess != 0 {
		b.MinExcess = max(0, r.MinExcess)
	}
	return b
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Clients, 30)
	def(&c.Docs, 6)
	def(&c.DocsPerClient, 2)
	c.DocsPerClient = min(c.DocsPerClient, c.Docs)
	def(&c.Publishers, 8)
	def(&c.Drops, 3)
	def(&c.HistoryPerDoc, 10_000)
	if c.Rate <= 0 {
		c.Rate = 40
	}
	if c.DropFraction <= 0 || c.DropFraction > 1 {
		c.DropFraction = 0.1
	}
	defDur(&c.DropFor, 2*time.Second)
	defDur(&c.ConsulFreeze, 5*time.Second)
	defDur(&c.DrainTimeout, time.Second)
	defDur(&c.ServeWithin, 60*time.Second)
	defDur(&c.BalanceWithin, 5*time.Minute)
}

// groups is how many client groups there are: a drop cuts one.
func (c *Config) groups() int { return max(1, int(1/c.DropFraction+0.5)) }

// Fault is one fault and how the clients came through it.
type Fault struct {
	Name string `json:"name"`
	// Lasted is how long the fault itself lasted (0: an instant, a kill).
	Lasted time.Duration `json:"lasted_ns"`
	// Served is the time from the fault's end (its start, for a kill or a
	// drain) until every client had received, on every doc it joined, a
	// push published after that moment.
	Served time.Duration `json:"served_ns"`
	// Waiting is how many clients were still not served when the wait
	// gave up (0 when all were).
	Waiting int `json:"waiting"`
}

// Report is what a run measured.
type Report struct {
	Clients   int     `json:"clients"`
	Docs      int     `json:"docs"`
	Rate      float64 `json:"rate"`
	Published int     `json:"published"` // pushes taken by the publisher
	// PublishedFor is how long the publisher ran: Published/PublishedFor
	// is the rate achieved, below Rate when JetStream answered too slowly.
	PublishedFor time.Duration `json:"published_for_ns"`
	Stored       int           `json:"stored"`  // of them, stored by JetStream (answered)
	Failed       int           `json:"failed"`  // given up on: never answered
	Retries      int           `json:"retries"` // publishes made again
	// Expected is the deliveries owed: every stored push, to every client
	// joined to its doc. Delivered of them arrived; Missing did not.
	Expected  int `json:"expected"`
	Delivered int `json:"delivered"`
	Missing   int `json:"missing"`
	// DuplicatesBeforeDedupe are the copies the SDK dropped by seq (a
	// resume replays from the cursor); DuplicatesAfterDedupe the copies
	// handed to the application twice (must be 0).
	DuplicatesBeforeDedupe uint64 `json:"duplicates_before_dedupe"`
	DuplicatesAfterDedupe  int    `json:"duplicates_after_dedupe"`
	WithoutSeq             int    `json:"without_seq"` // pushes delivered without a position
	// Gaps are the rejoins the SDK was told were not recovered (the server
	// could not replay all that was missed); MissingClients the clients
	// missing a delivery, and MissingSample which, for a few.
	Gaps           int      `json:"gaps"`
	MissingClients int      `json:"missing_clients"`
	MissingSample  []string `json:"missing_sample,omitempty"`
	// NodeCounters are the nodes' resume counters (pushd_resumes_total,
	// pushd_history_replays_total), summed over every node process of the
	// run; NodeWarnings the warnings and errors they logged, by message.
	NodeCounters  map[string]float64 `json:"node_counters"`
	NodeWarnings  map[string]int     `json:"node_warnings"`
	Sessions      int                `json:"sessions"` // sessions over all clients (hellos)
	Faults        []Fault
	Before, After []NodeSample
	// Rebalancing after the rolling drain. Drained are the nodes as the
	// node drained last came back (empty); Balanced is the time from then
	// until every client was connected, no node held more than Ceiling
	// (the band's at the average: the clients over the nodes) and none
	// was shedding; Unbalanced when the wait gave up. Moves are the
	// sessions rebalancing closed (1012 "rebalance") over the run,
	// MovesToBalance those of them from Drained until Balanced.
	Drained        []NodeSample  `json:"drained"`
	Ceiling        float64       `json:"ceiling"`
	Balanced       time.Duration `json:"balanced_ns"`
	Unbalanced     bool          `json:"unbalanced"`
	Moves          int           `json:"moves"`
	MovesToBalance int           `json:"moves_to_balance"`
	ClientErrors   []string      `json:"client_errors,omitempty"`
	Took           time.Duration
}

// DeliveredPct is the share of Expected delivered, in percent.
func (r *Report) DeliveredPct() float64 {
	if r.Expected == 0 {
		return 0
	}
	return 100 * float64(r.Delivered) / float64(r.Expected)
}

// AchievedRate is the pushes published per second, as achieved.
func (r *Report) AchievedRate() float64 {
	if r.PublishedFor <= 0 {
		return 0
	}
	return float64(r.Published) / r.PublishedFor.Seconds()
}

// Run runs the scenario on t (a test, or a Harness) and returns its report;
// it fails t only when the cluster cannot be set up, so that the caller
// decides what the figures must be.
func Run(t testing.TB, cfg Config) *Report {
	t.Helper()
	cfg.setDefaults()
	if cfg.PushdBin == "" {
		t.Fatal("chaos: Config.PushdBin is required")
	}
	began := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := startCluster(t, &cfg)
	docs := make([]string, cfg.Docs)
	for i := range docs {
		docs[i] = "chaos-doc-" + strconv.Itoa(i)
	}
	f, err := startFleet(ctx, c, &cfg, docs)
	if err != nil {
		t.Fatalf("chaos: clients: %v", err)
	}
	defer f.close()
	pub, err := newPublisher(c.natsURLs(), docs, strconv.FormatInt(time.Now().UnixNano(), 36))
	if err != nil {
		t.Fatalf("chaos: publisher: %v", err)
	}
	defer pub.close()
	r := &Report{Clients: cfg.Clients, Docs: cfg.Docs, Rate: cfg.Rate}
	pub.start(cfg.Rate, cfg.Publishers)
	pubStart := time.Now()
	published := false
	defer func() {
		if !published {
			pub.finish()
		}
	}()

	// Everyone served before the first fault: the baseline.
	if d, w := f.waitServed(ctx, pub.snapshot(), time.Now(), cfg.ServeWithin); w > 0 {
		t.Fatalf("chaos: %d clients not served within %s of the start", w, d)
	}
	if r.Before, err = c.sample(); err != nil {
		t.Fatalf("chaos: metrics: %v", err)
	}

	// measure waits until every client is served with a push taken after
	// the moment the call is made, and records the fault.
	measure := func(name string, lasted time.Duration, from time.Time, snap []int64) {
		d, w := f.waitServed(ctx, snap, from, cfg.ServeWithin)
		r.Faults = append(r.Faults, Fault{Name: name, Lasted: lasted, Served: d, Waiting: w})
		t.Logf("chaos: %-34s served again after %6.0f ms%s", name, float64(d)/1e6, map[bool]string{true: fmt.Sprintf(" (%d clients NOT served)", w)}[w > 0])
	}

	// 1. Network drops: each cuts a tenth of the clients (a group) off
	// from every node for DropFor.
	for i := range cfg.Drops {
		g := i % len(c.groups)
		start := time.Now()
		if err := drop(c.groups[g], cfg.DropFor.Milliseconds()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(cfg.DropFor) // the fault itself
		heal(c.groups[g])
		measure(fmt.Sprintf("drop %.0f%% of clients %s", 100*cfg.DropFraction, cfg.DropFor), time.Since(start), time.Now(), pub.snapshot())
	}

	// 2. kill -9 of a node; restarted once its clients are served elsewhere.
	{
		snap, start := pub.snapshot(), time.Now()
		c.tally(0)
		c.nodes[0].Kill()
		measure("kill -9 node 1 of 3", 0, start, snap)
		c.restartNode(0)
	}

	// 3. kill -9 of a NATS server of three (in process: shut down with no
	// goodbye); restarted after the clients are served.
	{
		snap, start := pub.snapshot(), time.Now()
		c.nats[1].Kill()
		measure("kill NATS server 2 of 3", 0, start, snap)
		c.nats[1].Restart(t)
	}

	// 4. A node cut off from NATS for DropFor (every link of it).
	{
		start := time.Now()
		if err := drop(c.links[1], cfg.DropFor.Milliseconds()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(cfg.DropFor) // the fault itself
		heal(c.links[1])
		measure(fmt.Sprintf("node 2 cut from NATS %s", cfg.DropFor), time.Since(start), time.Now(), pub.snapshot())
	}

	// 5. Consul frozen (SIGSTOP) for ConsulFreeze, with a drop of clients
	// in it so that some reconnect meanwhile; then resumed.
	{
		start := time.Now()
		c.consul.Freeze()
		g := cfg.Drops % len(c.groups)
		if err := drop(c.groups[g], cfg.DropFor.Milliseconds()); err != nil {
			c.consul.Thaw()
			t.Fatal(err)
		}
		time.Sleep(cfg.DropFor) // the fault itself
		heal(c.groups[g])
		time.Sleep(max(0, cfg.ConsulFreeze-cfg.DropFor)) // the fault itself
		c.consul.Thaw()
		measure(fmt.Sprintf("Consul frozen %s (+ a drop)", cfg.ConsulFreeze), time.Since(start), time.Now(), pub.snapshot())
	}

	// 6. A rolling drain: each node in turn drains (SIGTERM, 1012 to its
	// sessions) and exits, and is started again.
	for i := range c.nodes {
		snap, start := pub.snapshot(), time.Now()
		stopped := make(chan error, 1)
		p := c.nodes[i]
		c.tally(i)
		go func() { stopped <- p.Stop() }()
		measure(fmt.Sprintf("drain node %d of 3", i+1), 0, start, snap)
		if err := <-stopped; err != nil {
			t.Errorf("chaos: drained node %d: %v", i+1, err)
		}
		c.restartNode(i)
	}

	// 7. Rebalancing: the rolling drain left the node drained last empty
	// and the others above the average; they shed (1012 "rebalance") until
	// each holds no more than the band allows, while pushes go on.
	{
		moves := f.moves.Load()
		if r.Drained, err = c.sample(); err != nil {
			t.Errorf("chaos: metrics: %v", err)
		}
		r.Ceiling = cfg.Rebalance.band().Ceiling(float64(cfg.Clients) / nodeCount)
		d, ok := c.waitBalanced(ctx, cfg.Clients, r.Ceiling, cfg.BalanceWithin)
		r.Balanced, r.Unbalanced = d, !ok
		r.MovesToBalance = int(f.moves.Load() - moves)
		t.Logf("chaos: %-34s %s after %6.0f ms, %d moves%s", "rebalance after the drain", Spread(r.Drained),
			float64(d)/1e6, r.MovesToBalance, map[bool]string{true: fmt.Sprintf(" (NOT within %.0f per node)", r.Ceiling)}[!ok])
	}

	// The end: stop publishing, wait for the last deliveries, count.
	pub.finish()
	published = true
	r.PublishedFor = time.Since(pubStart)
	deadline := time.Now().Add(cfg.ServeWithin)
	for {
		miss, _ := f.missing(pub)
		if miss == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
	if r.After, err = c.sample(); err != nil {
		t.Errorf("chaos: metrics: %v", err)
	}
	for i := range c.nodes {
		c.tally(i)
	}
	r.NodeCounters, r.NodeWarnings = c.counts, c.warnings()
	r.Published = int(pub.next.Load())
	pub.mu.Lock()
	r.Failed, r.Retries = pub.failed, pub.retries
	pub.mu.Unlock()
	r.Stored = r.Published - r.Failed
	r.Missing, r.Expected = f.missing(pub)
	r.Delivered = r.Expected - r.Missing
	if r.Missing > 0 {
		r.MissingClients, r.MissingSample = f.missingIn(pub, docs, 10)
	}
	for _, m := range f.members {
		s := m.c.Stats()
		r.DuplicatesBeforeDedupe += s.Duplicates
		r.Sessions += s.Sessions
		m.mu.Lock()
		r.DuplicatesAfterDedupe += m.twice
		r.DuplicatesBeforeDedupe += uint64(m.twice)
		r.WithoutSeq += m.noSeq
		r.Gaps += m.gaps
		for _, e := range m.errs {
			if len(r.ClientErrors) < 20 {
				r.ClientErrors = append(r.ClientErrors, e)
			}
		}
		m.mu.Unlock()
	}
	r.Moves = int(f.moves.Load())
	r.Took = time.Since(began)
	return r
}

// Spread is the nodes' sessions, "1000/2000/0".
func Spread(s []NodeSample) string {
	var parts []string
	for _, n := range s {
		parts = append(parts, strconv.FormatFloat(n.Sessions, 'f', 0, 64))
	}
	return strings.Join(parts, "/")
}

// String is the report as a table.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "clients %d, docs %d, %.0f pushes/s asked, %.0f/s achieved; published %d in %s (stored %d, failed %d, retried %d); sessions %d; took %s\n",
		r.Clients, r.Docs, r.Rate, r.AchievedRate(), r.Published, r.PublishedFor.Round(time.Second), r.Stored, r.Failed, r.Retries, r.Sessions, r.Took.Round(time.Second))
	fmt.Fprintf(&b, "delivered %d of %d (%.3f%%), missing %d; duplicates before dedupe %d, after %d; without seq %d\n",
		r.Delivered, r.Expected, r.DeliveredPct(), r.Missing, r.DuplicatesBeforeDedupe, r.DuplicatesAfterDedupe, r.WithoutSeq)
	if r.Missing > 0 || r.Gaps > 0 {
		fmt.Fprintf(&b, "missing at %d clients; rejoins not recovered (gaps) %d\n", r.MissingClients, r.Gaps)
		for _, m := range r.MissingSample {
			fmt.Fprintf(&b, "  %s\n", m)
		}
	}
	fmt.Fprintf(&b, "%-36s %10s %12s\n", "fault", "lasted", "served after")
	for _, f := range r.Faults {
		w := ""
		if f.Waiting > 0 {
			w = fmt.Sprintf("  (%d not served)", f.Waiting)
		}
		fmt.Fprintf(&b, "%-36s %10s %12s%s\n", f.Name, f.Lasted.Round(10*time.Millisecond), f.Served.Round(time.Millisecond), w)
	}
	fmt.Fprintf(&b, "%-6s %14s %14s %14s %14s %10s %10s\n", "node", "RSS before", "RSS after", "goroutines b", "goroutines a", "sessions b", "sessions a")
	for i := range r.Before {
		var a NodeSample
		if i < len(r.After) {
			a = r.After[i]
		}
		fmt.Fprintf(&b, "%-6d %12.1fMB %12.1fMB %14.0f %14.0f %10.0f %10.0f\n", i+1, r.Before[i].RSS/1e6, a.RSS/1e6,
			r.Before[i].Goroutines, a.Goroutines, r.Before[i].Sessions, a.Sessions)
	}
	balanced := fmt.Sprintf("balanced (every node at most %.0f, none shedding) after %s", r.Ceiling, r.Balanced.Round(time.Millisecond))
	if r.Unbalanced {
		balanced = fmt.Sprintf("NOT balanced (every node at most %.0f, none shedding) within %s", r.Ceiling, r.Balanced.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "rebalancing: sessions %s as the last drained node came back; %s with %d moves; %s at the end; %d moves over the run\n",
		Spread(r.Drained), balanced, r.MovesToBalance, Spread(r.After), r.Moves)
	for _, k := range slices.Sorted(maps.Keys(r.NodeCounters)) {
		fmt.Fprintf(&b, "nodes: %s %.0f\n", k, r.NodeCounters[k])
	}
	for _, k := range slices.Sorted(maps.Keys(r.NodeWarnings)) {
		fmt.Fprintf(&b, "nodes logged %dx: %s\n", r.NodeWarnings[k], k)
	}
	for _, e := range r.ClientErrors {
		fmt.Fprintf(&b, "client error: %s\n", e)
	}
	return b.String()
}
