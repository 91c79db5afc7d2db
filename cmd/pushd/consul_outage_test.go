package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/node"
	"github.com/pushd/pushd/registry"
)

// readiness is /readyz's JSON body.
type readiness struct {
	Ready   bool   `json:"ready"`
	Reason  string `json:"reason"`
	Node    *int64 `json:"node"`
	Guard   string `json:"guard"`
	Consul  string `json:"consul"`
	History string `json:"history"`
	status  int
}

func readyz(t *testing.T, n *testNode) readiness {
	t.Helper()
	status, body := httpGet(t, n.httpURL("/readyz"))
	var r readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/readyz %d %q: %v", status, body, err)
	}
	r.status = status
	return r
}

// waitReadyz waits until n's /readyz says ready, guard and consul.
func waitReadyz(t *testing.T, n *testNode, timeout time.Duration, ready bool, guard, consul string) readiness {
	t.Helper()
	var r readiness
	pushtest.Eventually(t, timeout, func() error {
		r = readyz(t, n)
		if r.Ready != ready || r.Guard != guard || r.Consul != consul || (r.status == 200) != ready {
			return fmt.Errorf("/readyz %d %+v, want ready %v, guard %s, consul %s", r.status, r, ready, guard, consul)
		}
		return nil
	})
	return r
}

// reconnector keeps opening and closing real WebSocket sessions on nodes,
// round robin, as clients reconnecting after a network change would,
// recording every handshake a node refused, and apart the ones that failed
// otherwise (a dial timing out on a starved CI machine is not a refusal).
type reconnector struct {
	ok       atomic.Int64
	mu       sync.Mutex
	failures []string // refused by a node
	errors   []string // failed otherwise
	stop     chan struct{}
	done     chan struct{}
}

func reconnect(t *testing.T, nodes ...*testNode) *reconnector {
	r := &reconnector{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(20 * time.Millisecond) // the pace of reconnects, not a wait for an event
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-r.stop:
				return
			case <-tick.C:
			}
			n := nodes[i%len(nodes)]
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := client.Dial(ctx, n.wsURL(), client.Options{User: fmt.Sprintf("roamer-%d", i%50)})
			cancel()
			if err != nil {
				line := fmt.Sprintf("%s node %d: %v", time.Now().Format("15:04:05.000"), n.NodeID, err)
				var refused *client.HandshakeError
				r.mu.Lock()
				if errors.As(err, &refused) {
					r.failures = append(r.failures, line)
				} else {
					r.errors = append(r.errors, line)
				}
				r.mu.Unlock()
				continue
			}
			r.ok.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(r.finish)
	return r
}

// more waits until k more handshakes than now have succeeded.
func (r *reconnector) more(t *testing.T, k int64) {
	t.Helper()
	want := r.ok.Load() + k
	pushtest.Eventually(t, 10*time.Second, func() error {
		if got := r.ok.Load(); got < want {
			return fmt.Errorf("%d handshakes succeeded, want %d", got, want)
		}
		return nil
	})
}

func (r *reconnector) finish() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

// TestConsulFreezeKeepsNodesAccepting: the Consul agent is frozen
// (SIGSTOP) under two nodes while clients keep reconnecting to them. The
// nodes' leases lapse after the session TTL; since Consul gave their keys to
// nobody and each node hears every node's heartbeats over NATS, they keep
// accepting on the NATS check. After the agent thaws they renew their
// sessions; then their sessions are invalidated and their keys sit in the
// lock delay (Consul does this itself at the thaw when a freeze outlasts
// twice the TTL; the test destroys the sessions to get there without
// waiting 20 s): they still accept, and get the same IDs back once the
// delay is over. No handshake fails throughout,
// and the sessions opened before the freeze keep receiving pushes.
func TestConsulFreezeKeepsNodesAccepting(t *testing.T) {
	t.Parallel()
	consul := pushtest.RunConsul(t)
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	const lockDelay = 5 * time.Second // longer than a renew period, so the window is seen
	nodes := []*testNode{
		startPushd(t, ns.URL(), consulArgs(consul, "--node-name", "frozen-a", "--consul-lock-delay", lockDelay.String())...),
		startPushd(t, ns.URL(), consulArgs(consul, "--node-name", "frozen-b", "--consul-lock-delay", lockDelay.String())...),
	}
	var old []*client.Conn
	for i, n := range nodes {
		waitReadyz(t, n, 10*time.Second, true, "consul", "held")
		old = append(old, dial(t, n, fmt.Sprintf("old-%d", i)))
	}
	clients := reconnect(t, nodes...)
	clients.more(t, 10)

	consul.Freeze()
	frozen := time.Now()
	for _, n := range nodes {
		r := waitReadyz(t, n, 15*time.Second, true, "nats", "lost")
		if r.Node == nil || *r.Node != n.NodeID {
			t.Fatalf("/readyz node %v, want %d", r.Node, n.NodeID)
		}
		if got := metric(t, n, "pushd_registry_lease_held"); got != 0 {
			t.Fatalf("pushd_registry_lease_held = %v with Consul frozen", got)
		}
		if got := metric(t, n, `pushd_node_number_guard{guard="nats"}`); got != 1 {
			t.Fatalf(`pushd_node_number_guard{guard="nats"} = %v`, got)
		}
	}
	t.Logf("leases lost %s after the freeze; accepting on the NATS check", time.Since(frozen).Round(time.Millisecond))
	clients.more(t, 20) // handshakes to both nodes with no lease

	consul.Thaw()
	thawed := time.Now()
	for _, n := range nodes { // the freeze was shorter than 2×TTL: the old sessions live on
		waitReadyz(t, n, 15*time.Second, true, "consul", "held")
	}
	clients.more(t, 10)
	// What Consul does at the thaw of a freeze longer than 2×TTL: the
	// sessions are invalidated and the keys enter their lock delay.
	sessions, _, err := consul.Client().Session().List(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if strings.HasPrefix(s.Name, "pushd node frozen-") {
			if _, err := consul.Client().Session().Destroy(s.ID, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	invalidated := time.Now()
	for _, n := range nodes {
		waitReadyz(t, n, 10*time.Second, true, "nats", "lost") // the old session is gone, the key in its lock delay
	}
	clients.more(t, 10)
	for _, n := range nodes {
		waitReadyz(t, n, 30*time.Second, true, "consul", "held")
	}
	if d := time.Since(invalidated); d < lockDelay {
		t.Fatalf("keys re-acquired %s after their sessions were invalidated, inside the %s lock delay", d, lockDelay)
	}
	clients.more(t, 10)
	clients.finish()
	if len(clients.failures) > 0 {
		t.Fatalf("%d of %d handshakes refused through the outage:\n%s", len(clients.failures), int64(len(clients.failures))+clients.ok.Load(),
			strings.Join(clients.failures, "\n"))
	}
	if len(clients.errors) > 0 {
		t.Logf("%d handshakes failed without a refusal (a loaded machine):\n%s", len(clients.errors), strings.Join(clients.errors, "\n"))
		if int64(len(clients.errors))*50 > clients.ok.Load() {
			t.Fatalf("%d of %d handshakes failed", len(clients.errors), int64(len(clients.errors))+clients.ok.Load())
		}
	}
	t.Logf("%d handshakes, none refused, through a %s freeze and a %s lock delay", clients.ok.Load(), thawed.Sub(frozen).Round(100*time.Millisecond), lockDelay)
	for i, n := range nodes {
		c := dial(t, n, "after")
		if c.Hello().Node != n.NodeID {
			t.Fatalf("hello node %d after the outage, want the same ID %d", c.Hello().Node, n.NodeID)
		}
		publish(t, nc, fmt.Sprintf("push.user.old-%d", i), nil, `"still"`, 1)
		expectPush(t, old[i], "message", `"still"`)
	}
}

// TestDuplicateNumberYieldsOnTheNATSCheck: a node accepting on the NATS
// check alone (its Consul agent frozen) still gives way when another live
// node turns out to use its number: here the other one started earlier on
// the other half of a partitioned NATS, and the partition heals.
func TestDuplicateNumberYieldsOnTheNATSCheck(t *testing.T) {
	t.Parallel()
	consul := pushtest.RunConsul(t)
	a, b := pushtest.RunNATSSplit(t)
	older := startPushd(t, b.URL(), "--dev", "--node-id", "9")
	younger := startPushd(t, a.URL(), consulArgs(consul, "--node-id", "9", "--drain-timeout", "100ms")...)
	kept, moved := dial(t, older, "alice"), dial(t, younger, "bob")

	consul.Freeze()
	t.Cleanup(consul.Thaw) // before the nodes stop: their deregistration waits for Consul
	waitReadyz(t, younger, 15*time.Second, true, "nats", "lost")
	pushtest.Heal(t, a, b)
	select {
	case <-moved.Done():
		var ce *client.CloseError
		if !errors.As(moved.Err(), &ce) || ce.Code != 1012 || ce.Reason != "duplicate_node_id: node 9; another live node uses this node's number, reconnect elsewhere" {
			t.Fatalf("younger node's session closed with %v, want 1012 naming node 9", moved.Err())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the younger node kept its session after the duplicate showed up")
	}
	if r := readyz(t, younger); r.status != 503 || r.Reason != "duplicate_node_id" {
		t.Fatalf("younger /readyz %d %+v, want 503 duplicate_node_id", r.status, r)
	}
	if r := readyz(t, older); r.status != 200 || r.Guard != "static" {
		t.Fatalf("older /readyz %d %+v, want 200 on its static number", r.status, r)
	}
	if _, err := kept.Ping(ctxT(t)); err != nil {
		t.Fatalf("older node's session: %v", err)
	}
}

// TestNumberGuardRule: what vouches for a node's number, by Consul's last
// word and the NATS check.
func TestNumberGuardRule(t *testing.T) {
	for _, c := range []struct {
		consul   bool
		state    registry.State
		watching bool
		want     node.Guard
	}{
		{false, registry.StateNone, false, node.GuardStatic},
		{true, registry.StateNone, true, node.GuardNone}, // never held: the NATS check grants nothing
		{true, registry.StateHeld, false, node.GuardConsul},
		{true, registry.StateHeld, true, node.GuardConsul},
		{true, registry.StateLost, true, node.GuardNATS},
		{true, registry.StateLost, false, node.GuardNone}, // not hearing everyone: cannot tell
		{true, registry.StateTaken, true, node.GuardNone}, // Consul gave the key to another session
	} {
		if got := decideGuard(c.consul, c.state, c.watching); got != c.want {
			t.Errorf("consul %v, state %s, watching %v: %s, want %s", c.consul, c.state, c.watching, got, c.want)
		}
	}
}
