package node

import (
	"testing"

	"github.com/pushd/pushd/contract"
)

// TestBatchHoldsWritesUntilFlush checks that pushes delivered into a Batch
// wait in each session's queue, with no writer, until Flush, and then go out
// together.
func TestBatchHoldsWritesUntilFlush(t *testing.T) {
	n, _ := benchNode(t, 50)
	b := n.NewBatch().(*Batch)
	for i := 0; i < 3; i++ {
		if got := b.Deliver(&contract.Push{Target: contract.TargetAll, Event: "e", Data: []byte(`1`)}); got.Delivered != 50 {
			t.Fatalf("delivered %+v, want 50", got)
		}
	}
	for _, s := range n.hub.all() {
		s.mu.Lock()
		queued := len(s.out)
		s.mu.Unlock()
		if queued != 3 {
			t.Fatalf("before Flush a session has %d frames queued, want 3", queued)
		}
		if s.msgsOut.Load() != 0 {
			t.Fatal("a frame was written before Flush")
		}
	}
	if len(b.held) != 50 {
		t.Fatalf("%d sessions held, want 50 (one writer each)", len(b.held))
	}
	b.Flush()
	n.writers.Wait()
	for _, s := range n.hub.all() {
		if got := s.msgsOut.Load(); got != 3 {
			t.Fatalf("after Flush a session wrote %d frames, want 3", got)
		}
	}
	if len(b.held) != 0 {
		t.Fatalf("%d sessions still held after Flush", len(b.held))
	}
}
