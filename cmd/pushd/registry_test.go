package main

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/pushd/pushd/internal/pushtest"
)

func consulArgs(c *pushtest.Consul, extra ...string) []string {
	return append([]string{"--dev", "--consul-addr", c.Addr(), "--consul-lock-delay", "1s"}, extra...)
}

func pushdServices(t *testing.T, c *pushtest.Consul) map[string]*api.AgentService {
	t.Helper()
	svcs, err := c.Client().Agent().ServicesWithFilter(`Service == "pushd"`)
	if err != nil {
		t.Fatal(err)
	}
	return svcs
}

func TestNodesRegisterWithLeasedIDsAndDeregisterOnStop(t *testing.T) {
	consul := pushtest.RunConsul(t)
	ns := pushtest.RunNATS(t)
	n1 := startPushd(t, ns.URL(), consulArgs(consul, "--node-name", "pod-a")...)
	n2 := startPushd(t, ns.URL(), consulArgs(consul, "--node-name", "pod-b")...)
	if n1.NodeID == n2.NodeID {
		t.Fatalf("both nodes leased ID %d", n1.NodeID)
	}
	svcs := pushdServices(t, consul)
	for _, n := range []*testNode{n1, n2} {
		svc, ok := svcs["pushd-"+strconv.FormatInt(n.NodeID, 10)]
		if !ok {
			t.Fatalf("service pushd-%d not registered; have %v", n.NodeID, svcs)
		}
		port := n.Listen[strings.LastIndex(n.Listen, ":")+1:]
		if strconv.Itoa(svc.Port) != port || svc.Meta["node_id"] != strconv.FormatInt(n.NodeID, 10) || svc.Meta["version"] == "" || svc.Meta["admin_addr"] != n.AdminListen {
			t.Fatalf("service %+v meta %v: want port %s, node_id %d, version, admin_addr %s", svc, svc.Meta, port, n.NodeID, n.AdminListen)
		}
	}
	// The session ID carries the leased node number.
	c := dial(t, n2, "alice")
	if c.Hello().Node != n2.NodeID {
		t.Fatalf("hello node %d, want %d", c.Hello().Node, n2.NodeID)
	}
	_ = c.Close()

	// A graceful stop deregisters, and the same name gets the same ID back.
	id := n1.NodeID
	if err := n1.stop(t); err != nil {
		t.Fatal(err)
	}
	if _, ok := pushdServices(t, consul)["pushd-"+strconv.FormatInt(id, 10)]; ok {
		t.Fatal("stopped node still registered")
	}
	again := startPushd(t, ns.URL(), consulArgs(consul, "--node-name", "pod-a")...)
	if again.NodeID != id {
		t.Fatalf("restarted pod-a got ID %d, want its previous %d", again.NodeID, id)
	}

	// An explicit ID held by a live node is refused with a clear error.
	cmd := newRootCmd(context.Background(), io.Discard, io.Discard, func(string) (string, bool) { return "", false }, nil)
	cmd.SetArgs(append(consulArgs(consul, "--node-id", strconv.FormatInt(n2.NodeID, 10)),
		"--listen", "127.0.0.1:0", "--admin-listen", "", "--nats-url", ns.URL()))
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "taken") {
		t.Fatalf("explicit taken --node-id: %v, want a 'taken' error", err)
	}
}

func TestPushdWaitsForConsulAtStart(t *testing.T) {
	consul := pushtest.RunConsul(t)
	consul.Stop()
	ns := pushtest.RunNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan started, 1)
	done := make(chan error, 1)
	cmd := newRootCmd(ctx, io.Discard, io.Discard, func(string) (string, bool) { return "", false }, func(s started) { ready <- s })
	cmd.SetArgs(append(consulArgs(consul), "--listen", "127.0.0.1:0", "--admin-listen", "", "--nats-url", ns.URL(), "--log-level", "error"))
	go func() { done <- cmd.Execute() }()
	consul.Restart()
	select {
	case s := <-ready:
		if s.NodeID < 0 {
			t.Fatalf("node id %d", s.NodeID)
		}
	case err := <-done:
		t.Fatalf("pushd gave up while Consul was down: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("pushd did not start after Consul came up")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestConsulStoppedNodeKeepsServing: with the Consul agent gone, the
// node's lease lapses after the session TTL, but Consul gave its key to
// nobody and the node hears every node's heartbeats over NATS, so it keeps
// accepting new sessions on the NATS check (docs/OPERATIONS.md) while its
// existing sessions keep receiving pushes. When the agent returns (empty: a
// dev agent keeps its state in memory), the node leases the same ID again.
func TestConsulStoppedNodeKeepsServing(t *testing.T) {
	t.Parallel() // it waits for Consul, not working
	consul := pushtest.RunConsul(t)
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := startPushd(t, ns.URL(), consulArgs(consul)...)
	old := dial(t, n, "old")

	consul.Stop()
	lost := time.Now()
	waitReadyz(t, n, 30*time.Second, true, "nats", "lost")
	t.Logf("lease declared lost %s after Consul stopped", time.Since(lost).Round(time.Millisecond))
	c := dial(t, n, "new") // accepted on the NATS check
	if c.Hello().Node != n.NodeID {
		t.Fatalf("hello node %d, want %d", c.Hello().Node, n.NodeID)
	}
	if got := metric(t, n, "pushd_registry_lease_held"); got != 0 {
		t.Fatalf("pushd_registry_lease_held = %v, want 0", got)
	}
	publish(t, nc, "push.user.old", nil, `"still"`, 1)
	expectPush(t, old, "message", `"still"`)

	consul.Restart()
	waitReadyz(t, n, 60*time.Second, true, "consul", "held")
	if got := metric(t, n, "pushd_registry_lease_held"); got != 1 {
		t.Fatalf("pushd_registry_lease_held = %v after Consul returned", got)
	}
	c = dial(t, n, "later")
	if c.Hello().Node != n.NodeID {
		t.Fatalf("after re-lease hello node %d, want the same ID %d", c.Hello().Node, n.NodeID)
	}
}
