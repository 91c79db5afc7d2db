package node_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
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
	n := withHistory(t, servers[0].URL(), 1, history.Config{Replicas: 3, User: history.Limits{MaxMsgsPerSubject: 10_000}})
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
	if n.Metric(t, "pushd_history_gap_fills_total") == 0 {
		t.Fatal("the node filled no gap: the kill did not cost it any push, so the test proved nothing")
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
