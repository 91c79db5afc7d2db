package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
)

// TestRestartedNodeGetsItsShare: pushd as main wires it, with the
// rebalancing flags. Every Go SDK client is on node 1; node 2 starts
// empty (a restarted node); node 1 sheds down to the average, the clients
// reconnect to node 2, and node 2 sheds nothing back.
func TestRestartedNodeGetsItsShare(t *testing.T) {
	js := pushtest.RunJetStream(t)
	flags := []string{"--dev", "--cluster-heartbeat", "100ms", "--history-storage", "memory",
		"--rebalance-min-excess", "2", "--rebalance-fraction", "1", "--rebalance-rate", "20", "--max-sessions-per-user", "0"}
	n1 := startPushd(t, js.URL(), append([]string{"--node-id", "1"}, flags...)...)
	var second atomic.Pointer[string]
	const clients = 20
	for i := range clients {
		c := client.New(client.Config{
			URLFunc: func(_ context.Context, attempt int) (string, error) {
				if u := second.Load(); u != nil && attempt%2 == 1 {
					return *u, nil
				}
				return n1.wsURL(), nil
			},
			User:    "u" + strconv.Itoa(i),
			Backoff: client.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, Restart: 50 * time.Millisecond},
		})
		if err := c.Connect(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	eventually(t, func() error {
		if got := metric(t, n1, "pushd_connections"); got != clients {
			return fmt.Errorf("node 1 holds %v", got)
		}
		return nil
	})
	n2 := startPushd(t, js.URL(), append([]string{"--node-id", "2"}, flags...)...)
	u := n2.wsURL()
	second.Store(&u)
	eventually(t, func() error {
		a, b := metric(t, n1, "pushd_connections"), metric(t, n2, "pushd_connections")
		if a+b != clients || a > clients/2 || b < clients/2 {
			return fmt.Errorf("node 1 holds %v, node 2 %v", a, b)
		}
		if avg := metric(t, n2, "pushd_cluster_average_sessions"); avg != clients/2 {
			return fmt.Errorf("node 2 sees an average of %v", avg)
		}
		return nil
	})
	if shed := metric(t, n1, `pushd_rebalance_closed_total{trigger="auto"}`); shed < clients/2 {
		t.Fatalf("node 1 shed %v on its own, want %d at least", shed, clients/2)
	}
	if got := metric(t, n1, `pushd_connections_closed_total{reason="rebalance"}`); got < clients/2 {
		t.Fatalf("node 1 counts %v sessions closed for rebalance", got)
	}
	if shed := metric(t, n2, `pushd_rebalance_closed_total{trigger="auto"}`); shed != 0 {
		t.Fatalf("node 2 shed %v back", shed)
	}
}

// TestRebalanceFlagsAreChecked: values that would shed everyone, or
// nothing ever, are refused at start with one line saying what is wanted.
func TestRebalanceFlagsAreChecked(t *testing.T) {
	ns := pushtest.RunNATS(t)
	for _, args := range [][]string{
		{"--rebalance-ratio", "1"}, {"--rebalance-fraction", "0"}, {"--rebalance-fraction", "2"},
		{"--rebalance-rate", "0"}, {"--rebalance-min-excess", "-1"},
	} {
		err := startFails(t, ns.URL(), append([]string{"--dev", "--node-id", "9"}, args...)...)
		if !strings.Contains(err.Error(), "--rebalance-ratio must be above 1") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%v: %q", args, err)
		}
	}
}
