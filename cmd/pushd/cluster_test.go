package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
)

// TestClusterOverNATSCluster runs three pushd nodes, each on its own server of
// a three-server NATS cluster, and publishes through a fourth connection to
// the third server.
func TestClusterOverNATSCluster(t *testing.T) {
	servers := pushtest.RunNATSCluster(t, 3)
	nodes := []*testNode{
		startPushd(t, servers[0].URL(), "--dev", "--node-id", "10"),
		startPushd(t, servers[1].URL(), "--dev", "--node-id", "11"),
		startPushd(t, servers[2].URL(), "--dev", "--node-id", "12"),
	}
	pub := servers[2].Connect(t)

	// alice on nodes 0 and 1; bob on node 2; carol on node 0.
	a0, a1 := dial(t, nodes[0], "alice"), dial(t, nodes[1], "alice")
	b2, c0 := dial(t, nodes[2], "bob"), dial(t, nodes[0], "carol")
	all := []*client.Client{a0, a1, b2, c0}
	sids := map[string]bool{}
	for _, c := range all {
		if sids[c.SID()] {
			t.Fatalf("duplicate sid %s", c.SID())
		}
		sids[c.SID()] = true
	}
	for _, c := range []*client.Client{a1, b2, c0} {
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
	for _, c := range []*client.Client{a1, b2, c0} {
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
func flushProbes(t *testing.T, nc *nats.Conn, c *client.Client) {
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
	ns := pushtest.RunNATS(t)
	n := startPushd(t, ns.URL(), "--dev")
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
	if got := metric(t, n, "pushd_nats_reconnects_total"); got < 1 {
		t.Fatalf("pushd_nats_reconnects_total = %v, want >= 1", got)
	}
	if status, body := httpGet(t, n.httpURL("/readyz")); status != 200 {
		t.Fatalf("readyz after recovery: %d %s", status, body)
	}
}

// TestNodeNumbersAreNeverShared: two live nodes minting session IDs from one
// node number would collide, and a push to one session could reach another
// user's. Every source of the number is checked against the live nodes on
// NATS, at start and while running.
func TestNodeNumbersAreNeverShared(t *testing.T) {
	ns := pushtest.RunNATS(t)
	// No Consul, no --node-id, not dev: there is no number to use.
	err := startFails(t, ns.URL(), "--jwt-secret", testSecret)
	if !strings.Contains(err.Error(), "no node number: set --consul-addr to lease one, or --node-id") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("start without a number: %q, want one line saying what to set", err)
	}
	// A number a live node holds is refused at start.
	a := startPushd(t, ns.URL(), "--dev", "--node-id", "3")
	err = startFails(t, ns.URL(), "--dev", "--node-id", "3")
	if !strings.Contains(err.Error(), "node number is used by a live node: node 3") || !strings.Contains(err.Error(), a.Listen) {
		t.Fatalf("second node 3: %v", err)
	}
	// Dev nodes without a number take the lowest free ones.
	d0, d1 := startPushd(t, ns.URL(), "--dev"), startPushd(t, ns.URL(), "--dev")
	if d0.NodeID != 0 || d1.NodeID != 1 {
		t.Fatalf("dev nodes got numbers %d and %d, want 0 and 1", d0.NodeID, d1.NodeID)
	}
}

// TestDuplicateNumberAfterAPartitionHeals: two nodes took number 7 on two
// halves of a partitioned NATS cluster, where neither could see the other.
// When the partition heals, the younger one stops taking sessions and closes
// its own, so they reconnect to nodes whose IDs cannot collide; the older
// one carries on.
func TestDuplicateNumberAfterAPartitionHeals(t *testing.T) {
	a, b := pushtest.RunNATSSplit(t)
	older := startPushd(t, a.URL(), "--dev", "--node-id", "7")
	younger := startPushd(t, b.URL(), "--dev", "--node-id", "7", "--drain-timeout", "100ms")
	kept, moved := dial(t, older, "alice"), dial(t, younger, "bob")

	pushtest.Heal(t, a, b)
	// pushctl marks the shared number loudly.
	pc := ctl{t: t, bin: buildPushctl(t), env: []string{"PUSHCTL_NATS_URL=" + a.URL(), "PUSHCTL_TIMEOUT=1s"}}
	eventually(t, func() error {
		r := pc.run("nodes")
		if r.code != 0 || strings.Count(r.stdout, "DUPLICATE-NUMBER") != 2 ||
			!strings.Contains(r.stderr, "WARNING: more than one live node uses node number 7") {
			return fmt.Errorf("pushctl nodes: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		return nil
	})
	select {
	case <-moved.Done():
		if code := closeCode(moved.Err()); code != 1012 {
			t.Fatalf("younger node's session closed with %v, want 1012", moved.Err())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the younger node kept its session after the duplicate showed up")
	}
	if status, body := httpGet(t, younger.httpURL("/readyz")); status != 503 || !strings.Contains(body, "duplicate_node_id") {
		t.Fatalf("younger /readyz %d %q, want 503 duplicate_node_id", status, body)
	}
	if _, err := client.Dial(ctxT(t), younger.wsURL(), client.Options{User: "new"}); err == nil {
		t.Fatal("the younger node accepted a session while its number is duplicated")
	}
	if status, _ := httpGet(t, older.httpURL("/readyz")); status != 200 {
		t.Fatalf("older /readyz %d, want 200", status)
	}
	if _, err := kept.Ping(ctxT(t)); err != nil {
		t.Fatalf("older node's session: %v", err)
	}
}
