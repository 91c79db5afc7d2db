package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/admin"
	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
)

// TestPushctlRebalance: pushctl rebalance moves K sessions off a node (1012
// naming it), a dry run closes nothing, --to-average sheds the node's
// excess over the average its heartbeats tell, and bad flag combinations
// are usage errors.
func TestPushctlRebalance(t *testing.T) {
	bin := bins.Path(t, "pushctl")
	ns := pushtest.RunNATS(t)
	fast := []string{"--cluster-heartbeat", "100ms", "--ping-interval", "10m", "--ping-grace", "10m"}
	n1 := startPushd(t, ns.URL(), 1, fast...)
	n2 := startPushd(t, ns.URL(), 2, fast...)
	pc := ctl{t: t, bin: bin, env: []string{"PUSHCTL_NATS_URL=" + ns.URL(), "PUSHCTL_TIMEOUT=1s"}}

	var conns []*client.Conn
	for i := range 6 {
		conns = append(conns, dial(t, n1, fmt.Sprintf("u%d", i)))
	}

	pc.fails(2, "needs --count K or --to-average", "rebalance")
	pc.fails(2, "not both", "rebalance", "--count", "2", "--to-average")
	pc.fails(2, "--node 5000", "rebalance", "--node", "5000", "--count", "1")

	dry := decode[admin.RebalanceResult](t, pc.ok("rebalance", "--node", "1", "--count", "2", "--dry-run", "-o", "json"))
	if !dry.DryRun || dry.Shed != 2 || len(dry.Nodes) != 1 || dry.Nodes[0].Node != 1 || dry.Nodes[0].Sessions != 6 ||
		!slices.Equal(dry.Nodes[0].SIDs, []string{conns[0].SID(), conns[1].SID()}) {
		t.Fatalf("dry run: %+v, want the two oldest of node 1's six", dry)
	}
	for _, c := range conns {
		if _, err := c.Ping(pushtest.Ctx(t)); err != nil {
			t.Fatalf("a dry run closed a session: %v", err)
		}
	}

	out := pc.ok("rebalance", "--node", "1", "--count", "2")
	columnsAligned(t, out)
	rs := rows(out)
	if want := []string{"NODE", "SESSIONS", "AVERAGE", "SHED", "NOTE"}; !slices.Equal(rs[0], want) || len(rs) != 2 || rs[1][0] != "1" || rs[1][1] != "6" || rs[1][3] != "2" {
		t.Fatalf("rebalance table:\n%s", out)
	}
	for _, c := range conns[:2] {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a shed session stayed open")
		}
		var ce *client.CloseError
		if !errors.As(c.Err(), &ce) || ce.Code != 1012 || ce.Reason != "rebalance: node 1; this node holds more than its share, reconnect elsewhere" {
			t.Fatalf("shed session closed with %v", c.Err())
		}
	}

	// Node 1 holds 4, node 2 none: the average is 2, node 1 sheds 2 more
	// once both have heard each other's heartbeats for a while.
	var res admin.RebalanceResult
	// Until then each says why it cannot tell, and pushctl exits 1.
	pushtest.Eventually(t, 10*time.Second, func() error {
		r := pc.run("rebalance", "--to-average", "--dry-run", "-o", "json")
		res = decode[admin.RebalanceResult](t, r.stdout)
		if r.code != 0 || len(res.Nodes) != 2 || !res.Nodes[0].Known || !res.Nodes[1].Known {
			if r.code == 0 || res.Nodes[0].Why == "" {
				t.Fatalf("exit %d with %+v: a node that cannot tell must say why, and pushctl exit 1", r.code, res)
			}
			return fmt.Errorf("exit %d: %+v", r.code, res)
		}
		return nil
	})
	if res.Nodes[0].Average != 2 || res.Nodes[0].Shed != 2 || res.Nodes[1].Shed != 0 {
		t.Fatalf("to-average dry run: %+v, want node 1 to shed 2 of its 4 over an average of 2", res)
	}
	res = decode[admin.RebalanceResult](t, pc.ok("rebalance", "--to-average", "-o", "json"))
	if res.Shed != 2 || res.Nodes[0].Shed != 2 {
		t.Fatalf("to-average: %+v", res)
	}
	pushtest.Eventually(t, 5*time.Second, func() error {
		if got := n1.Metric(t, `pushd_rebalance_closed_total{trigger="admin"}`); got != 4 {
			return fmt.Errorf("node 1 counts %v sessions shed by an admin, want 4", got)
		}
		if got := n1.Metric(t, "pushd_connections"); got != 2 {
			return fmt.Errorf("node 1 holds %v sessions, want 2", got)
		}
		return nil
	})
	if got := n2.Metric(t, `pushd_rebalance_closed_total{trigger="auto"}`); got != 0 {
		t.Fatalf("node 2 shed %v on its own", got)
	}
}

// TestRebalanceDocExample: the JSON example of docs/PUSHCTL.md is what
// pushctl rebalance -o json prints, field for field.
func TestRebalanceDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/PUSHCTL.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "### `pushctl rebalance")
	if !ok {
		t.Fatal("docs/PUSHCTL.md has no pushctl rebalance section")
	}
	section, _, _ = strings.Cut(section, "\n### ")
	_, example, ok := strings.Cut(section, "```json\n")
	if !ok {
		t.Fatal("the pushctl rebalance section has no JSON example")
	}
	example, _, _ = strings.Cut(example, "```")
	res := decode[admin.RebalanceResult](t, example)
	if len(res.Nodes) != 2 || res.Shed != 2 || !res.DryRun || len(res.Nodes[0].SIDs) != res.Nodes[0].Shed {
		t.Fatalf("the example decodes to %+v", res)
	}
}
