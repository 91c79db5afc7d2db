package cluster

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushtest"
)

// TestHeartbeatsCarryLoad: every node learns the others' session counts and
// whether they accept from their heartbeats, and the latest value wins; a
// node without Config.Load reports none.
func TestHeartbeatsCarryLoad(t *testing.T) {
	ns := pushtest.RunNATS(t)
	var sessions atomic.Int64
	sessions.Store(7)
	loaded, err := New(Config{Conn: ns.Connect(t), Interval: 50 * time.Millisecond,
		Load: func() Load { return Load{Sessions: int(sessions.Load()), Accepting: true} }})
	if err != nil {
		t.Fatal(err)
	}
	if err := loaded.Start(1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loaded.Close() })
	bare := start(t, ns, Member{Node: 2}, nil)

	load := func(c *Cluster, node int64) (*Load, error) {
		for _, m := range c.Members() {
			if m.Node == node {
				return m.Load, nil
			}
		}
		return nil, fmt.Errorf("node %d not a member", node)
	}
	pushtest.Eventually(t, 5*time.Second, func() error {
		l, err := load(bare, 1)
		if err != nil || l == nil || l.Sessions != 7 || !l.Accepting {
			return fmt.Errorf("node 1's load as node 2 sees it: %+v %v", l, err)
		}
		return nil
	})
	sessions.Store(42)
	pushtest.Eventually(t, 5*time.Second, func() error {
		if l, err := load(bare, 1); err != nil || l == nil || l.Sessions != 42 {
			return fmt.Errorf("node 1's load after a change: %+v %v", l, err)
		}
		return nil
	})
	if l, _ := load(loaded, 1); l == nil || l.Sessions != 42 {
		t.Fatalf("a node's own member has load %+v, want its current one", l)
	}
	if l, err := load(loaded, 2); err != nil || l != nil {
		t.Fatalf("a node without Config.Load reports %+v, %v; want no load", l, err)
	}
}
