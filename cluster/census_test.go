package cluster

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushd/pushd/internal/pushtest"
)

// heavy is a census source the test changes.
type heavy struct {
	mu    sync.Mutex
	users map[string]int
}

func (h *heavy) set(users map[string]int) {
	h.mu.Lock()
	h.users = users
	h.mu.Unlock()
}

func (h *heavy) get() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.users
}

// TestCensusCountsOtherNodesHeavyUsers: a node learns within an interval
// how many sessions another node reports for a user, forgets them when that
// node reports nobody, and when the node goes away.
func TestCensusCountsOtherNodesHeavyUsers(t *testing.T) {
	ns := pushtest.RunNATS(t)
	var ha, hb heavy
	a := start(t, ns, Member{Node: 1}, nil)
	b := start(t, ns, Member{Node: 2}, nil)
	reg := prometheus.NewRegistry()
	if err := a.StartCensus(ha.get, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.StartCensus(hb.get, reg); err != nil {
		t.Fatal(err)
	}
	if err := b.StartCensus(hb.get, nil); err == nil {
		t.Fatal("a second StartCensus was accepted")
	}
	elsewhere := func(c *Cluster, user string, want int) {
		t.Helper()
		pushtest.Eventually(t, 5*time.Second, func() error {
			if got := c.Elsewhere(user); got != want {
				return fmt.Errorf("Elsewhere(%s) = %d, want %d", user, got, want)
			}
			return nil
		})
	}
	ha.set(map[string]int{"alice": 5, "bob": 9})
	hb.set(map[string]int{"alice": 2})
	elsewhere(b, "alice", 5)
	elsewhere(b, "bob", 9)
	elsewhere(a, "alice", 2)
	if got := a.Elsewhere("carol"); got != 0 {
		t.Fatalf("Elsewhere(carol) = %d", got)
	}
	ha.set(nil) // nobody heavy on a any more: one empty report clears it
	elsewhere(b, "alice", 0)
	ha.set(map[string]int{"alice": 3})
	elsewhere(b, "alice", 3)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	elsewhere(b, "alice", 0) // a's report is forgotten three intervals after the last
	if n, err := reg.Gather(); err != nil || len(n) != 2 {
		t.Fatalf("census metrics: %v, %v", n, err)
	}
}

func TestHeaviestKeepsTheBiggest(t *testing.T) {
	got := heaviest(map[string]int{"a": 1, "b": 7, "c": 3, "d": 9}, 2)
	if len(got) != 2 || got["b"] != 7 || got["d"] != 9 {
		t.Fatalf("heaviest = %v", got)
	}
	if m := map[string]int{"a": 1}; len(heaviest(m, 2)) != 1 {
		t.Fatal("a small report is kept whole")
	}
}
