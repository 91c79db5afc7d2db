package cluster

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/internal/pushtest"
)

// TestWatchingFollowsTheNATSConnection: a node is Watching only once it has
// heard its own heartbeats back for three intervals, stops the moment they
// stop (its NATS server went away), and watches again three intervals
// after it reconnected; OnWatching reports each change.
func TestWatchingFollowsTheNATSConnection(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc, err := nats.Connect(ns.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var mu sync.Mutex
	var changes []bool
	const interval = 50 * time.Millisecond
	c, err := New(Config{Conn: nc, Self: Member{Node: 4}, Interval: interval, OnWatching: func(w bool) {
		mu.Lock()
		changes = append(changes, w)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Watching() {
		t.Fatal("Watching before Start")
	}
	started := time.Now()
	if err := c.Start(4); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	want := func(w bool, calls ...bool) {
		t.Helper()
		pushtest.Eventually(t, 5*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if c.Watching() != w || !slices.Equal(changes, calls) {
				return errors.New("not yet")
			}
			return nil
		})
	}
	want(true, true)
	if d := time.Since(started); d < missedBeats*interval {
		t.Fatalf("watching %s after Start, before three intervals", d)
	}

	ns.Kill() // the connection drops for longer than two intervals
	want(false, true, false)
	ns.Restart(t) // and comes back
	want(true, true, false, true)
}

// TestWatchingNeedsEcho: a connection that does not hear its own messages
// could never tell, so it is refused.
func TestWatchingNeedsEcho(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc, err := nats.Connect(ns.URL(), nats.NoEcho())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := New(Config{Conn: nc}); err == nil {
		t.Fatal("New accepted a NoEcho connection")
	}
}
