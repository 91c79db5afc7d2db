package client_test

import (
	"testing"
	"time"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/node"
)

// TestDrainHintSkipsTheDrainingNode: two URLs lead to node 1 (two proxies in
// front of it) and one to node 2. Once the client has seen, from hellos,
// where each leads, node 1 drains while the client is on the first of its
// URLs: the 1012 names node 1, so the next session is on node 2 at the first
// try, not a 503 draining from node 1's other URL. Without the hint the
// client would take the next URL in turn, which leads to the draining node.
func TestDrainHintSkipsTheDrainingNode(t *testing.T) {
	t.Parallel()
	js := pushtest.RunJetStream(t)
	a, b := historyNode(t, js, 1, node.Config{}), historyNode(t, js, 2, node.Config{})
	a1, a2, pb := pushtest.RunProxy(t, a.Addr()), pushtest.RunProxy(t, a.Addr()), pushtest.RunProxy(t, b.Addr())
	ws := func(p *pushtest.Proxy) string { return "ws://" + p.Addr() + "/ws" }
	urls := []string{ws(a1), ws(a2), ws(pb)}
	c, e := start(t, client.Config{URLs: urls, GetToken: tokens("hint", time.Hour, nil)})
	connect(t, c)

	// Learn where each URL leads: cut the one in use, in turn, until the
	// client is back on the first.
	want := []struct {
		proxy *pushtest.Proxy
		node  int64
	}{{a1, 1}, {a2, 1}, {pb, 2}, {a1, 1}}
	for i, w := range want {
		h := recv(t, e.hellos, "hello")
		if h.URL != ws(w.proxy) || h.Node != w.node {
			t.Fatalf("hello %d on %s node %d, want %s node %d", i, h.URL, h.Node, ws(w.proxy), w.node)
		}
		if i == len(want)-1 {
			break
		}
		w.proxy.Cut()
		if d := recv(t, e.disconnects, "disconnect"); d.Code != 1006 || d.AvoidNode != -1 {
			t.Fatalf("cut: %+v, want 1006 naming no node", d)
		}
		w.proxy.Restore()
	}

	drained := make(chan error, 1)
	go func() { drained <- a.Drain(pushtest.Ctx(t)) }()
	d := recv(t, e.disconnects, "disconnect")
	if d.Code != 1012 || d.AvoidNode != 1 || d.URL != urls[0] {
		t.Fatalf("drain: %+v, want 1012 from %s naming node 1", d, urls[0])
	}
	select {
	case d := <-e.disconnects:
		t.Fatalf("the client went to the draining node again: %+v", d)
	case h := <-e.hellos:
		if h.Node != 2 || h.URL != urls[2] || !h.Recovered {
			t.Fatalf("hello after the drain %+v, want node 2 via %s, recovered", h, urls[2])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no hello within 10s of the drain")
	}
	if err := recv(t, drained, "drain"); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Sessions != 5 || s.Duplicates != 0 {
		t.Fatalf("stats %+v, want 5 sessions and no duplicate (no push was sent)", s)
	}
}
