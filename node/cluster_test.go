package node_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// Nodes on NATS: several nodes on a NATS cluster deliver as one, and a node
// whose NATS server restarts gets every subscription back.

// TestClusterOverNATSCluster runs three nodes, each on its own server of
// a three-server NATS cluster, and publishes through a fourth connection to
// the third server.
func TestClusterOverNATSCluster(t *testing.T) {
	t.Parallel() // it waits for interest to cross the NATS routes, not working
	servers := pushtest.RunNATSCluster(t, 3)
	nodes := []*testnode.Node{
		testnode.Start(t, servers[0].URL(), node.Config{Dev: true, NodeID: 10}),
		testnode.Start(t, servers[1].URL(), node.Config{Dev: true, NodeID: 11}),
		testnode.Start(t, servers[2].URL(), node.Config{Dev: true, NodeID: 12}),
	}
	pub := servers[2].Connect(t)

	// alice on nodes 0 and 1; bob on node 2; carol on node 0.
	a0, a1 := dial(t, nodes[0], "alice"), dial(t, nodes[1], "alice")
	b2, c0 := dial(t, nodes[2], "bob"), dial(t, nodes[0], "carol")
	all := []*client.Conn{a0, a1, b2, c0}
	sids := map[string]bool{}
	for _, c := range all {
		if sids[c.SID()] {
			t.Fatalf("duplicate sid %s", c.SID())
		}
		sids[c.SID()] = true
	}
	for _, c := range []*client.Conn{a1, b2, c0} {
		if err := c.Join(ctxT(t), "shared"); err != nil {
			t.Fatal(err)
		}
	}
	// Interest crosses routes asynchronously; wait until every node's
	// subscriptions are visible on the publishing server.
	waitInterest(t, pub, "push.user.alice", 2)
	waitInterest(t, pub, "push.doc.shared", 3)
	for _, c := range all {
		flushProbes(t, pub, c)
	}

	rs := publish(t, pub, "push.user.alice", nil, `"u"`, 2)
	if delivered(rs) != 2 {
		t.Fatalf("user push reports %+v, want 2 deliveries on 2 nodes", rs)
	}
	expectPush(t, a0, "message", `"u"`)
	expectPush(t, a1, "message", `"u"`)
	marker(t, pub, a0)
	marker(t, pub, a1)

	rs = publish(t, pub, "push.doc.shared", nil, `"d"`, 3)
	if delivered(rs) != 3 {
		t.Fatalf("doc push reports %+v, want 3", rs)
	}
	for _, c := range []*client.Conn{a1, b2, c0} {
		expectPush(t, c, "message", `"d"`)
	}
	marker(t, pub, a0)

	rs = publish(t, pub, "push.all", nil, `"b"`, 3)
	if delivered(rs) != 4 {
		t.Fatalf("broadcast reports %+v, want 4 sessions on 3 nodes", rs)
	}
	for _, c := range all {
		expectPush(t, c, "message", `"b"`)
		marker(t, pub, c)
	}
}

// waitInterest publishes requests until want nodes answer, which proves the
// subscriptions have propagated across the cluster's routes.
func waitInterest(t *testing.T, nc *nats.Conn, subject string, want int) {
	t.Helper()
	eventually(t, func() error {
		// The probe is a real push; flushProbes removes it from the clients.
		got, err := answers(nc, subject, hdr("Push-Event", "probe"), 300*time.Millisecond)
		if err != nil {
			return err
		}
		if got < want {
			return fmt.Errorf("%s: %d nodes answered, want %d", subject, got, want)
		}
		return nil
	})
}

// flushProbes reads c's pushes up to a fresh marker, dropping probes.
func flushProbes(t *testing.T, nc *nats.Conn, c *client.Conn) {
	t.Helper()
	ev := "flush-" + c.SID()
	publish(t, nc, sessionSubject(c.SID()), hdr("Push-Event", ev), `{}`, 1)
	for {
		f, err := c.Next(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		switch f.Event {
		case ev:
			return
		case "probe":
		default:
			t.Fatalf("unexpected push %+v while flushing probes", f)
		}
	}
}

func TestNATSRestartRestoresSubscriptions(t *testing.T) {
	t.Parallel() // it waits for the node to reconnect, not working
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true})
	a := dial(t, n, "alice")
	if err := a.Join(ctxT(t), "doc"); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	ns.Restart(t)
	nc := ns.Connect(t)

	// Until the node has reconnected and re-subscribed, nobody answers.
	var recovered time.Duration
	eventually(t, func() error {
		got, err := answers(nc, sessionSubject(a.SID()), hdr("Push-Event", "probe"), 200*time.Millisecond)
		if err != nil {
			return err
		}
		if got == 0 {
			return errors.New("node not re-subscribed yet")
		}
		recovered = time.Since(restarted)
		return nil
	})
	t.Logf("NATS restart: pushes delivered again %s after the server restarted", recovered.Round(time.Millisecond))
	expectPush(t, a, "probe", "")

	// Every subscription is back: user, doc, session and broadcast.
	for _, subj := range []string{"push.user.alice", "push.doc.doc", "push.all"} {
		if got := delivered(publish(t, nc, subj, nil, `"after"`, 1)); got != 1 {
			t.Fatalf("%s after restart delivered %d, want 1", subj, got)
		}
		expectPush(t, a, "message", `"after"`)
	}
	if got := n.Metric(t, "pushd_nats_reconnects_total"); got < 1 {
		t.Fatalf("pushd_nats_reconnects_total = %v, want >= 1", got)
	}
	if ok, why := n.Ready(); !ok {
		t.Fatalf("not ready after recovery: %s", why)
	}
}

// answers publishes a push with a reply subject and counts the delivery
// reports that arrive within wait.
func answers(nc *nats.Conn, subject string, h nats.Header, wait time.Duration) (int, error) {
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishMsg(&nats.Msg{Subject: subject, Reply: inbox, Header: h}); err != nil {
		return 0, err
	}
	got := 0
	for {
		m, err := sub.NextMsg(wait)
		if err != nil || len(m.Data) == 0 { // timeout, or NATS's "no responders" status
			return got, nil
		}
		got++
	}
}
