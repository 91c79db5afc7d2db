package registry_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/registry"
)

// stateEvents records OnState calls.
type stateEvents struct {
	mu  sync.Mutex
	evs []registry.State
}

func (s *stateEvents) record(st registry.State) {
	s.mu.Lock()
	s.evs = append(s.evs, st)
	s.mu.Unlock()
}

// waitFor waits until the last recorded state is want and returns them all.
func (s *stateEvents) waitFor(t testing.TB, want registry.State, timeout time.Duration) []registry.State {
	t.Helper()
	var got []registry.State
	pushtest.Eventually(t, timeout, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		got = slices.Clone(s.evs)
		if len(got) == 0 || got[len(got)-1] != want {
			return fmt.Errorf("states %v, want the last to be %s", got, want)
		}
		return nil
	})
	return got
}

// TestStateSaysWhoHoldsTheKey: a lost lease is StateLost while Consul does
// not name another holder (the key in its lock delay), StateTaken once
// another session holds the key, and StateHeld again when the node gets it
// back. Only StateHeld calls OnLease(true).
func TestStateSaysWhoHoldsTheKey(t *testing.T) {
	t.Parallel()
	c := pushtest.RunConsul(t)
	var states stateEvents
	var leases leaseEvents
	cfg := testConfig(t, c, "contested")
	cfg.OnState = states.record
	cfg.OnLease = leases.record
	r := newRegistry(t, cfg)
	id := start(t, r)
	states.waitFor(t, registry.StateHeld, 5*time.Second)
	if r.State() != registry.StateHeld {
		t.Fatalf("State() = %s after Start", r.State())
	}

	// Invalidate the node's session and take its key as soon as the lock
	// delay allows: the node finds it held by another session.
	kvc := c.Client().KV()
	key := registry.DefaultKeyPrefix + itoa(id)
	kv, _, err := kvc.Get(key, nil)
	if err != nil || kv == nil || kv.Session == "" {
		t.Fatalf("key %s: %+v, %v", key, kv, err)
	}
	if _, err := c.Client().Session().Destroy(kv.Session, nil); err != nil {
		t.Fatal(err)
	}
	thief, _, err := c.Client().Session().Create(&api.SessionEntry{Name: "thief", TTL: "60s", LockDelay: time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.Client().Session().Destroy(thief, nil) })
	pushtest.Eventually(t, cfg.LockDelay+5*time.Second, func() error {
		ok, _, err := kvc.Acquire(&api.KVPair{Key: key, Session: thief, Value: []byte(`{"node_name":"thief"}`)}, nil)
		if err != nil || !ok {
			return fmt.Errorf("thief's acquire: %v, %v", ok, err)
		}
		return nil
	})
	got := states.waitFor(t, registry.StateTaken, cfg.SessionTTL+10*time.Second)
	if r.State() != registry.StateTaken || r.Leased() {
		t.Fatalf("State() %s, Leased() %v with the key held by another session", r.State(), r.Leased())
	}
	if got[1] != registry.StateLost && got[1] != registry.StateTaken {
		t.Fatalf("states %v: the loss must be reported first", got)
	}

	// The other session lets go (a release: no lock delay); the node gets
	// its ID back.
	if ok, _, err := kvc.Release(&api.KVPair{Key: key, Session: thief}, nil); err != nil || !ok {
		t.Fatalf("release: %v, %v", ok, err)
	}
	states.waitFor(t, registry.StateHeld, 20*time.Second)
	if r.NodeID() != id || !r.Leased() {
		t.Fatalf("NodeID() %d, Leased() %v after the key came back", r.NodeID(), r.Leased())
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	leases.mu.Lock()
	defer leases.mu.Unlock()
	if len(leases.evs) != 3 || !leases.evs[0].held || leases.evs[1].held || !leases.evs[2].held {
		t.Fatalf("OnLease calls %v, want true, false, true", leases.evs)
	}
}
