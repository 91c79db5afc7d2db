package node_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// TestShedPrefersResumingThenOldest: Shed picks the sessions that resumed
// with since first, then the oldest; a dry run closes nothing; a shed
// session gets 1012 with a reason naming the node as a drain's does, and
// counts as closed for "rebalance".
func TestShedPrefersResumingThenOldest(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 3})
	oldest := pushtest.Dial(t, n.WSURL(), "u1")
	middle := pushtest.Dial(t, n.WSURL(), "u2")
	newest := pushtest.Dial(t, n.WSURL(), "u3")
	resumer, err := client.Dial(pushtest.Ctx(t), n.WSURL(), client.Options{User: "u4", Since: "0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resumer.Close() })

	if got, want := n.Shed(3, true), []string{resumer.SID(), oldest.SID(), middle.SID()}; !slices.Equal(got, want) {
		t.Fatalf("dry run picked %v, want the resumer, then the oldest: %v", got, want)
	}
	if got := n.Sessions(); got != 4 {
		t.Fatalf("%d sessions after a dry run, want 4", got)
	}
	if got := n.Shed(0, false); len(got) != 0 {
		t.Fatalf("Shed(0) closed %v", got)
	}

	got := n.Shed(2, false)
	if want := []string{resumer.SID(), oldest.SID()}; !slices.Equal(got, want) {
		t.Fatalf("Shed(2) = %v, want %v", got, want)
	}
	for _, c := range []*client.Conn{resumer, oldest} {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("session %s not closed", c.SID())
		}
		var ce *client.CloseError
		if !errors.As(c.Err(), &ce) || ce.Code != 1012 || ce.Reason != "rebalance: node 3; this node holds more than its share, reconnect elsewhere" {
			t.Fatalf("shed session closed with %v", c.Err())
		}
		if m := avoidPattern.FindStringSubmatch(ce.Reason); m == nil || m[1] != "rebalance" || m[2] != "3" {
			t.Fatalf("close reason %q does not parse as <error>: node <n>; ...", ce.Reason)
		}
	}
	pushtest.Eventually(t, 5*time.Second, func() error {
		if n.Sessions() != 2 {
			return errors.New("shed sessions still counted")
		}
		return nil
	})
	if got := n.Metric(t, `pushd_connections_closed_total{reason="rebalance"}`); got != 2 {
		t.Fatalf("pushd_connections_closed_total{reason=\"rebalance\"} = %v, want 2", got)
	}
	if _, err := middle.Ping(pushtest.Ctx(t)); err != nil {
		t.Fatalf("a session not picked was disturbed: %v", err)
	}
	_ = newest

	// A draining node sheds nothing: the drain moves everyone.
	go func() { _ = n.Drain(context.Background()) }()
	pushtest.Eventually(t, 5*time.Second, func() error {
		if ok, _ := n.Ready(); ok {
			return errors.New("not draining yet")
		}
		return nil
	})
	if got := n.Shed(5, true); len(got) != 0 {
		t.Fatalf("a draining node would shed %v", got)
	}
}

// TestShedSpreadsALargeBatch: more than a tenth of a second's worth of
// sessions are closed in the background, over time, and all of them go.
func TestShedSpreadsALargeBatch(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 4, MaxSessionsPerUser: -1})
	const total = 150
	conns := make([]*client.Conn, total)
	for i := range conns {
		conns[i] = pushtest.Dial(t, n.WSURL(), "bulk")
	}
	start := time.Now()
	sids := n.Shed(total, false)
	if len(sids) != total {
		t.Fatalf("Shed picked %d, want %d", len(sids), total)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("Shed took %s: a large batch must be closed in the background", took)
	}
	for _, c := range conns {
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("a shed session was never closed")
		}
	}
	// 150 at 1,000 a second take 150ms at least (the first goes at once).
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("150 sessions closed in %s: not spread", took)
	}
}
