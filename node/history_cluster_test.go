package node_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushd/pushd/history"
	"github.com/pushd/pushd/internal/pushtest"
)

// TestNoPushLostWhenTheNodesNATSServerDies: a node's NATS server is killed
// while a backend keeps publishing to a three-server JetStream cluster
// (streams with three replicas). The node reconnects to another server, reads
// what was stored while it was away and delivers it before the live pushes:
// its client gets every stored push once, in order, without reconnecting.
func TestNoPushLostWhenTheNodesNATSServerDies(t *testing.T) {
	servers := pushtest.RunJetStreamCluster(t, 3)
	n := withHistory(t, servers[0].URL(), 1, history.Config{Replicas: 3, User: history.Limits{MaxMsgsPerSubject: 10_000},
		Interval: 500 * time.Millisecond}) // replicated echoes take longer than testnode's 100ms allows on a busy box
	c := pushtest.Dial(t, n.WSURL(), "ursula")

	nc, err := nats.Connect(servers[2].URL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const total = 400
	var mu sync.Mutex
	var stored []uint64
	killed := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := range total {
			if i == 100 {
				close(killed)
			}
			seq, err := publishUntilStored(js, "push.user.ursula", strconv.Itoa(i))
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			if len(stored) == 0 || stored[len(stored)-1] != seq { // a retry's duplicate acknowledges the same seq
				stored = append(stored, seq)
			}
			mu.Unlock()
		}
		done <- nil
	}()
	<-killed
	servers[0].Kill()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	want := append([]uint64(nil), stored...)
	mu.Unlock()
	for i, seq := range want {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		f, err := c.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("push %d of %d (seq %d): %v", i, len(want), seq, err)
		}
		if got := seqOf(t, f.Seq); got != seq || string(f.Data) != strconv.Itoa(i) {
			t.Fatalf("push %d: seq %d data %s, want seq %d data %d (a gap or a duplicate)", i, got, f.Data, seq, i)
		}
	}
	// Whether the kill cost the node pushes (a gap fill) depends on how
	// fast it reconnected; TestNoPushLostWhileTheNodeIsCutOffFromNATS makes
	// sure of a gap. Here the promise is the same either way.
	pushtest.Marker(t, nc, c)
}

// TestNoPushLostWhenTheNodeIsAwayLongerThanTheHistoryHeartbeat: a node cut
// off from NATS for longer than three history heartbeats (what makes it
// take the streams for gone when it is connected) keeps history on: echoes
// missed while it was away say nothing of the streams. Back, it reads what
// was stored meanwhile, and its client gets every push once, in order, each
// with its position. Taking the streams for gone would deliver live pushes
// without positions and, switching back at the streams' newest position,
// never read the pushes stored while it was away.
func TestNoPushLostWhenTheNodeIsAwayLongerThanTheHistoryHeartbeat(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	proxy := pushtest.RunProxy(t, ns.Addr().String())
	const interval = 500 * time.Millisecond
	n := withHistory(t, "nats://"+proxy.Addr(), 1, history.Config{Interval: interval})
	var gone atomic.Int32
	n.History.Notify(func(ok bool) {
		if !ok {
			gone.Add(1)
		}
	})
	c := pushtest.Dial(t, n.WSURL(), "vera")
	nc := ns.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			ack, err := js.Publish(pushtest.Ctx(t), "push.user.vera", []byte(strconv.Itoa(i)))
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, ack.Sequence)
		}
	}
	publish(0, 5)

	proxy.Cut()
	pushtest.Eventually(t, 5*time.Second, func() error {
		if n.Router.Connected() {
			return fmt.Errorf("node still connected")
		}
		return nil
	})
	publish(5, 25)
	time.Sleep(5 * interval) // the fault itself: longer than three heartbeats without an echo
	proxy.Restore()
	publish(25, 35) // live, or read with the others if the node is not back yet

	for i, seq := range seqs {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		f, err := c.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("push %d of %d: %v", i, len(seqs), err)
		}
		if f.Seq == "" || seqOf(t, f.Seq) != seq || string(f.Data) != strconv.Itoa(i) {
			t.Fatalf("push %d: seq %q data %s, want seq %d data %d", i, f.Seq, f.Data, seq, i)
		}
	}
	if g := gone.Load(); g != 0 {
		t.Fatalf("history was taken for unavailable %d times while the node was away from NATS", g)
	}
	if n.Metric(t, "pushd_history_gap_fills_total") == 0 {
		t.Fatal("delivered without a gap fill: the pushes reached the node some other way")
	}
	pushtest.Marker(t, nc, c)
}

// publishUntilStored publishes data with a message ID, retrying (the
// stream's duplicate window makes a retry safe) until JetStream stores it,
// as a backend that must not lose a push does through a leader election.
func publishUntilStored(js jetstream.JetStream, subject, data string) (uint64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ack, err := js.Publish(ctx, subject, []byte(data), jetstream.WithMsgID(subject+"-"+data))
		cancel()
		if err == nil {
			return ack.Sequence, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("push %s not stored in 30s: %w", data, err)
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) {
			time.Sleep(50 * time.Millisecond) // an election in progress answers with an error: retry soon, not hot
		}
	}
}

// TestNoPushLostWhileTheNodeIsCutOffFromNATS: the network between a node
// and its NATS server fails (a real TCP proxy in between is cut) while a
// backend stores pushes for the node's client, on a subject that gets no
// push after them. When the network is back the node reads what it missed
// and the client gets every push once, in order, without reconnecting.
func TestNoPushLostWhileTheNodeIsCutOffFromNATS(t *testing.T) {
	ns := pushtest.RunJetStream(t)
	proxy := pushtest.RunProxy(t, ns.Addr().String())
	n := withHistory(t, "nats://"+proxy.Addr(), 1, history.Config{Interval: 500 * time.Millisecond})
	c := pushtest.Dial(t, n.WSURL(), "rita")

	proxy.Cut()
	pushtest.Eventually(t, 5*time.Second, func() error {
		if n.Router.Connected() {
			return fmt.Errorf("node still connected")
		}
		return nil
	})
	nc := ns.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for i := range 50 {
		ack, err := js.Publish(pushtest.Ctx(t), "push.user.rita", []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	proxy.Restore()
	for i, seq := range seqs {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		f, err := c.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("push %d of %d: %v", i, len(seqs), err)
		}
		if seqOf(t, f.Seq) != seq || string(f.Data) != strconv.Itoa(i) {
			t.Fatalf("push %d: seq %s data %s, want seq %d", i, f.Seq, f.Data, seq)
		}
	}
	if n.Metric(t, "pushd_history_gap_fills_total") == 0 {
		t.Fatal("delivered without a gap fill: the pushes reached the node some other way")
	}
	pushtest.Marker(t, nc, c)
}
