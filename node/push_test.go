package node_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// Delivery: what a backend publishes on NATS reaches exactly the sessions it
// targets, and what a client publishes reaches the backends.

func TestUserPushReachesEverySessionOfTheUserAndNobodyElse(t *testing.T) {
	t.Parallel() // it waits for its node to drain at cleanup, not working
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 4})
	a1, a2, b := dial(t, n, "alice"), dial(t, n, "alice"), dial(t, n, "bob")

	rs := publish(t, nc, "push.user.alice", hdr("Push-Event", "greet", "Push-Id", "m-1"), `{"hi":1}`, 1)
	if rs[0].Delivered != 2 || rs[0].Node != n.ID() {
		t.Fatalf("delivery report %+v, want node %d delivered 2", rs[0], n.ID())
	}
	for _, c := range []*client.Conn{a1, a2} {
		f := expectPush(t, c, "greet", `{"hi":1}`)
		if f.Target != "user" || f.ID != "m-1" {
			t.Fatalf("push frame %+v: want target user, id m-1", f)
		}
	}
	marker(t, nc, b)
}

func TestDocPushReachesJoinedSessionsAndStopsAfterLeave(t *testing.T) {
	t.Parallel() // it waits for its node to drain at cleanup, not working
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true})
	a, b, c := dial(t, n, "alice"), dial(t, n, "bob"), dial(t, n, "carol")
	for _, cl := range []*client.Conn{a, b} {
		if err := cl.Join(ctxT(t), "doc-1"); err != nil {
			t.Fatal(err)
		}
	}
	if got := delivered(publish(t, nc, "push.doc.doc-1", nil, `"v1"`, 1)); got != 2 {
		t.Fatalf("delivered %d, want 2", got)
	}
	for _, cl := range []*client.Conn{a, b} {
		f := expectPush(t, cl, "message", `"v1"`)
		if f.Target != "doc" || f.Doc != "doc-1" {
			t.Fatalf("push frame %+v: want target doc, doc doc-1", f)
		}
	}
	marker(t, nc, c)

	if err := a.Leave(ctxT(t), "doc-1"); err != nil {
		t.Fatal(err)
	}
	if got := delivered(publish(t, nc, "push.doc.doc-1", nil, `"v2"`, 1)); got != 1 {
		t.Fatalf("after leave delivered %d, want 1", got)
	}
	expectPush(t, b, "message", `"v2"`)
	marker(t, nc, a)
}

func TestBroadcastSessionPushAndExclude(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true})
	a1, a2, b := dial(t, n, "alice"), dial(t, n, "alice"), dial(t, n, "bob")
	all := []*client.Conn{a1, a2, b}

	if got := delivered(publish(t, nc, "push.all", hdr("Push-Event", "news"), `[1,2]`, 1)); got != 3 {
		t.Fatalf("broadcast delivered %d, want 3", got)
	}
	for _, c := range all {
		if f := expectPush(t, c, "news", `[1,2]`); f.Target != "all" {
			t.Fatalf("target %q, want all", f.Target)
		}
	}

	if got := delivered(publish(t, nc, sessionSubject(a2.SID()), nil, `7`, 1)); got != 1 {
		t.Fatalf("session push delivered %d, want 1", got)
	}
	if f := expectPush(t, a2, "message", `7`); f.Target != "session" {
		t.Fatalf("target %q, want session", f.Target)
	}
	marker(t, nc, a1)

	// The sender's own session is excluded.
	if got := delivered(publish(t, nc, "push.user.alice", hdr("Push-Exclude-Session", a1.SID()), `"x"`, 1)); got != 1 {
		t.Fatalf("excluded push delivered %d, want 1", got)
	}
	expectPush(t, a2, "message", `"x"`)
	marker(t, nc, a1)

	// A push nobody holds gets no report.
	publish(t, nc, "push.user.nobody", nil, `1`, 0)
}

func TestBodyThatIsNotJSONArrivesAsString(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true})
	a := dial(t, n, "alice")
	for body, want := range map[string]string{
		"plain text":     `"plain text"`,
		"":               `null`,
		"{\"half\":":     `"{\"half\":"`,
		"\xff\xfe bytes": `"\ufffd\ufffd bytes"`,
	} {
		publish(t, nc, "push.user.alice", nil, body, 1)
		expectPush(t, a, "message", want)
	}
}

func TestUpstreamPublishReachesBackends(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true})
	up, err := nc.SubscribeSync("push.up.doc.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	a := dial(t, n, "alice")

	// Not joined: refused with an error frame, nothing published.
	if err := a.Publish("doc-9", "edit", map[string]int{"x": 1}); err != nil {
		t.Fatal(err)
	}
	f, err := a.Reply(ctxT(t))
	if err != nil || f.Type != "error" || f.Code != "not_joined" {
		t.Fatalf("publish without join: got %+v, %v; want error not_joined", f, err)
	}

	if err := a.Join(ctxT(t), "doc-9"); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish("doc-9", "edit", map[string]int{"x": 1}); err != nil {
		t.Fatal(err)
	}
	m, err := up.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "push.up.doc.doc-9" || string(m.Data) != `{"x":1}` ||
		m.Header.Get("Push-Session") != a.SID() || m.Header.Get("Push-User") != "alice" || m.Header.Get("Push-Event") != "edit" {
		t.Fatalf("upstream message %s %q headers %v", m.Subject, m.Data, m.Header)
	}
	if _, err := up.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatal("the unjoined publish reached NATS")
	}
}

type event struct {
	Type           string `json:"type"`
	SID            string `json:"sid"`
	User           string `json:"user"`
	Node           int64  `json:"node"`
	Remote         string `json:"remote"`
	Reason         string `json:"reason"`
	ConnectedAt    string `json:"connected_at"`
	DisconnectedAt string `json:"disconnected_at"`
}

func nextEvent(t *testing.T, sub *nats.Subscription) (string, event) {
	t.Helper()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("waiting for event: %v", err)
	}
	var e event
	if err := json.Unmarshal(m.Data, &e); err != nil {
		t.Fatalf("event %q: %v", m.Data, err)
	}
	return m.Subject, e
}

func TestConnectAndDisconnectEvents(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 7})
	events, err := nc.SubscribeSync("push.events.*")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctxT(t), n.WSURL(), client.Options{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	subj, e := nextEvent(t, events)
	if subj != "push.events.connect" || e.Type != "connect" || e.SID != c.SID() || e.User != "alice" || e.Node != 7 ||
		!strings.HasPrefix(e.Remote, "127.0.0.1:") || e.ConnectedAt == "" {
		t.Fatalf("connect event %s %+v", subj, e)
	}
	_ = c.Close()
	subj, e = nextEvent(t, events)
	if subj != "push.events.disconnect" || e.SID != c.SID() || e.Reason != "client" || e.DisconnectedAt == "" {
		t.Fatalf("disconnect event %s %+v", subj, e)
	}
}

func TestSubscriptionsFollowWhatTheNodeHolds(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true})
	subs := func() int { return int(ns.NumSubscriptions()) }
	base := subs() // push.all, push.session.<node>.* and the node's own inbox machinery
	want := func(d int) {
		t.Helper()
		eventually(t, func() error {
			if got := subs(); got != base+d {
				return fmt.Errorf("NATS server has %d subscriptions, want %d", got, base+d)
			}
			return nil
		})
	}
	a1 := dial(t, n, "alice")
	want(1) // push.user.alice; sessions need no subscription of their own
	a2 := dial(t, n, "alice")
	want(1) // the user subject is shared
	if err := a1.Join(ctxT(t), "d"); err != nil {
		t.Fatal(err)
	}
	if err := a2.Join(ctxT(t), "d"); err != nil {
		t.Fatal(err)
	}
	want(2)
	if err := a1.Leave(ctxT(t), "d"); err != nil {
		t.Fatal(err)
	}
	want(2) // a2 still holds d
	_ = a2.Close()
	want(1) // d is gone; push.user.alice remains for a1
	_ = a1.Close()
	want(0)
	if got := n.Metric(t, "pushd_nats_subscriptions"); got != 2 {
		t.Fatalf("pushd_nats_subscriptions = %v, want 2 (push.all and the node's sessions)", got)
	}
}

func TestTwoNodesDeliverOncePerSession(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n1 := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1})
	n2 := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 2})
	a1, a2 := dial(t, n1, "alice"), dial(t, n2, "alice")
	if a1.SID() == a2.SID() {
		t.Fatal("two nodes issued the same sid")
	}
	rs := publish(t, nc, "push.user.alice", nil, `"once"`, 2)
	nodes := map[int64]int{}
	for _, r := range rs {
		nodes[r.Node] = r.Delivered
	}
	if nodes[1] != 1 || nodes[2] != 1 {
		t.Fatalf("reports %+v, want node 1 and node 2 each delivered 1", rs)
	}
	for _, c := range []*client.Conn{a1, a2} {
		expectPush(t, c, "message", `"once"`)
		marker(t, nc, c)
	}
	// A session push reaches only the node holding the session.
	rs = publish(t, nc, sessionSubject(a2.SID()), nil, `1`, 1)
	if rs[0].Node != 2 {
		t.Fatalf("session push answered by node %d, want 2", rs[0].Node)
	}
	expectPush(t, a2, "message", `1`)
}

// TestDottedIDs: user and doc IDs are application data (emails, file names,
// dotted namespaces). A dotted ID is a multi-token subject; pushes, joins,
// upstream publishes and tokens all work with it, and a push to one dotted
// ID reaches no other.
func TestDottedIDs(t *testing.T) {
	t.Parallel() // it waits for its node to drain at cleanup, not working
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, Auth: hs256(t)})
	alice, err := client.Dial(ctxT(t), n.WSURL(), client.Options{Token: signed(t, jwt.MapClaims{
		"sub": "alice@example.com", "exp": time.Now().Add(time.Hour).Unix(), "docs": []string{"reports/*", "acme.team.7"}})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alice.Close() })
	if alice.Hello().User != "alice@example.com" {
		t.Fatalf("hello %+v", alice.Hello())
	}
	// Users whose IDs are prefixes or extensions of alice's, as subjects.
	near := []*client.Conn{dial(t, n, "alice@example"), dial(t, n, "alice@example.com.evil"), dial(t, n, "café.ユーザー")}
	up, err := nc.SubscribeSync("push.up.doc.>")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{"reports/q3.pdf", "acme.team.7"} {
		if err := alice.Join(ctxT(t), doc); err != nil {
			t.Fatalf("join %s: %v", doc, err)
		}
	}
	if err := near[2].Join(ctxT(t), "acme.team"); err != nil {
		t.Fatal(err)
	}

	if got := delivered(publish(t, nc, "push.user.alice@example.com", nil, `"u"`, 1)); got != 1 {
		t.Fatalf("user push delivered %d, want 1", got)
	}
	expectPush(t, alice, "message", `"u"`)
	if got := delivered(publish(t, nc, "push.doc.acme.team.7", nil, `"d"`, 1)); got != 1 {
		t.Fatalf("doc push delivered %d, want 1", got)
	}
	if f := expectPush(t, alice, "message", `"d"`); f.Doc != "acme.team.7" {
		t.Fatalf("doc push frame %+v", f)
	}
	if got := delivered(publish(t, nc, "push.user.café.ユーザー", nil, `"n"`, 1)); got != 1 {
		t.Fatalf("non-ASCII user push delivered %d, want 1", got)
	}
	expectPush(t, near[2], "message", `"n"`)
	for _, c := range append(near[:2], alice) {
		marker(t, nc, c)
	}

	if err := alice.Publish("reports/q3.pdf", "edit", 1); err != nil {
		t.Fatal(err)
	}
	m, err := up.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "push.up.doc.reports/q3.pdf" || m.Header.Get("Push-User") != "alice@example.com" {
		t.Fatalf("upstream %s %v", m.Subject, m.Header)
	}
}

// TestHelloComesFirstUnderAPushFlood: a session is reachable by user and
// broadcast pushes as soon as it is registered, before its subscription
// round trip ends; none of them may be written before hello.
func TestHelloComesFirstUnderAPushFlood(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, MaxSessionsPerUser: -1})
	stop := make(chan struct{})
	flooded := make(chan error, 1)
	go func() { // about 20,000 pushes a second: a flood, not a queue overflow
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				flooded <- nil
				return
			case <-tick.C:
			}
			for range 10 {
				if err := nc.Publish("push.all", []byte(`"flood"`)); err != nil {
					flooded <- err
					return
				}
				if err := nc.Publish("push.user.early", []byte(`"flood"`)); err != nil {
					flooded <- err
					return
				}
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-flooded; err != nil {
			t.Error(err)
		}
	}()
	for i := range 60 {
		c := pushtest.RawDial(t, n.Addr(), "?user=early", nil)
		if first := c.TextFrame(t); !strings.HasPrefix(first, `{"type":"hello"`) {
			t.Fatalf("session %d: first frame %s, want hello", i, first)
		}
		_ = c.Close()
	}
}
