package node_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, pushtest.IgnoredLeaks()...) }

// TestNodeServesThroughItsHandler: the node's own http.Handler upgrades a
// real WebSocket, registers the session and delivers a push from NATS, with
// no binary around it.
func TestNodeServesThroughItsHandler(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 5})
	c := pushtest.Dial(t, n.WSURL(), "alice")
	if h := c.Hello(); h.Node != 5 || h.User != "alice" {
		t.Fatalf("hello %+v", h)
	}
	if rs := pushtest.Publish(t, nc, "push.user.alice", nil, `"hi"`, 1); rs[0].Delivered != 1 {
		t.Fatalf("report %+v", rs[0])
	}
	pushtest.ExpectPush(t, c, "message", `"hi"`)
	if got := n.Metric(t, "pushd_connections"); got != 1 {
		t.Fatalf("pushd_connections = %v", got)
	}
}
