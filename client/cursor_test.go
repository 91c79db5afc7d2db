package client

import (
	"math"
	"slices"
	"testing"
)

// The cursor's rules, as client/js/test/unit/cursor.test.ts checks them for
// the TypeScript SDK, plus the queued state of a Go client's handlers.

func (c *cursor) state() (since uint64, known bool, done, pending, queued []uint64) {
	keys := func(m map[uint64]struct{}) []uint64 {
		var out []uint64
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	gens := func(m map[uint64]uint64) []uint64 {
		var out []uint64
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	return c.base, c.known, keys(c.done), gens(c.pending), gens(c.queued)
}

// take queues and handles a push, as the client does for one handled at once.
func (c *cursor) take(seq uint64, needsAck bool, gen uint64) {
	c.queue(seq, gen)
	c.handled(seq, needsAck)
}

func TestCursorAdvancesOverHandledSeqs(t *testing.T) {
	c := newCursor(ptr(10))
	if !c.seen(10) || !c.seen(3) || c.seen(12) {
		t.Fatal("seen: want <= 10 seen, 12 not")
	}
	c.take(12, false, 1)
	c.take(15, false, 1)
	if s, ok := c.since(); !ok || s != 15 || !c.seen(12) || !c.seen(15) || c.seen(16) {
		t.Fatalf("since %d %v", s, ok)
	}
}

func TestCursorUnknownUntilAPosition(t *testing.T) {
	c := newCursor(nil)
	if _, ok := c.since(); ok || c.seen(0) || c.seen(1) {
		t.Fatal("a new cursor knows nothing")
	}
	c.take(7, false, 1)
	if s, ok := c.since(); !ok || s != 7 {
		t.Fatalf("since %d %v, want 7", s, ok)
	}
	// Zero is a position: the history of a brand-new cluster.
	z := newCursor(ptr(0))
	if s, ok := z.since(); !ok || s != 0 || !z.seen(0) || z.seen(1) {
		t.Fatalf("since 0: %d %v", s, ok)
	}
}

func TestCursorHeldBelowAnUnacknowledgedPush(t *testing.T) {
	c := newCursor(ptr(10))
	c.take(11, false, 1)
	c.take(12, true, 1) // asks for a receipt
	c.take(14, false, 1)
	c.take(20, false, 1)
	since, _, done, pending, _ := c.state()
	if since != 11 || !slices.Equal(done, []uint64{14, 20}) || !slices.Equal(pending, []uint64{12}) {
		t.Fatalf("since %d done %v pending %v", since, done, pending)
	}
	if c.seen(12) {
		t.Fatal("the unacknowledged push must be delivered again when replayed")
	}
	if !c.seen(14) || !c.seen(20) {
		t.Fatal("pushes handled after it are dropped when replayed")
	}
	c.ackSent(12)
	if since, _, done, pending, _ := c.state(); since != 20 || len(done) != 0 || len(pending) != 0 {
		t.Fatalf("after the receipt: since %d done %v pending %v", since, done, pending)
	}
}

func TestCursorHeldBelowQueuedPushes(t *testing.T) {
	c := newCursor(ptr(10))
	c.queue(11, 1)
	c.queue(12, 1)
	if !c.seen(11) || !c.seen(12) {
		t.Fatal("a queued push is seen: a replay of it is dropped")
	}
	if s, _ := c.since(); s != 10 {
		t.Fatalf("since %d while 11 and 12 wait for the handlers, want 10", s)
	}
	c.handled(11, false)
	if s, _ := c.since(); s != 11 {
		t.Fatalf("since %d, want 11", s)
	}
	c.owedOn(12, 2) // replayed on connection 2 while queued
	c.handled(12, true)
	if c.deliveredOn(12) != 2 || !c.awaits(12) {
		t.Fatalf("pending on %d, want the replay's connection 2", c.deliveredOn(12))
	}
	if c.handled(99, false) {
		t.Fatal("handled a push that was never queued")
	}
}

func TestCursorReceiptLater(t *testing.T) {
	c := newCursor(ptr(1))
	c.take(2, true, 7)
	if c.deliveredOn(2) != 7 {
		t.Fatalf("delivered on %d", c.deliveredOn(2))
	}
	c.ackLater(2)
	if !c.acked(2) || !c.awaits(2) {
		t.Fatal("a receipt given later is kept until sent")
	}
	if s, _ := c.since(); s != 1 {
		t.Fatalf("since %d, still held below the push", s)
	}
	c.ackSent(2)
	if c.acked(2) || c.awaits(2) {
		t.Fatal("sent")
	}
	if s, _ := c.since(); s != 2 {
		t.Fatalf("since %d, want 2", s)
	}
	// A receipt given while the push waits for the handlers.
	c.queue(3, 8)
	c.ackWhenHandled(3)
	c.handled(3, true)
	if !c.acked(3) || !c.awaits(3) {
		t.Fatal("a receipt given while queued waits for the handlers, then for sending")
	}
}

func TestCursorBigSeqs(t *testing.T) {
	c := newCursor(ptr(math.MaxUint64 - 5))
	if !c.seen(math.MaxUint64-5) || c.seen(math.MaxUint64-4) {
		t.Fatal("seen near the top")
	}
	c.take(math.MaxUint64-4, false, 1)
	if s, _ := c.since(); s != math.MaxUint64-4 {
		t.Fatalf("since %d", s)
	}
}

func TestCursorReset(t *testing.T) {
	c := newCursor(ptr(100))
	c.take(101, true, 1)
	c.queue(102, 1)
	c.reset(5, true)
	since, known, done, pending, queued := c.state()
	if since != 5 || !known || len(done)+len(pending)+len(queued) != 0 || c.seen(6) {
		t.Fatalf("after reset: since %d done %v pending %v queued %v", since, done, pending, queued)
	}
	c.reset(0, false)
	if _, ok := c.since(); ok {
		t.Fatal("reset to nowhere")
	}
}

func TestCursorBounded(t *testing.T) {
	c := newCursor(ptr(0))
	for s := uint64(1); s <= maxPending+10; s++ {
		c.take(s, true, 1) // never acknowledged
	}
	if len(c.pending) != maxPending {
		t.Fatalf("%d pending, want at most %d", len(c.pending), maxPending)
	}
	if s, _ := c.since(); s != 10 {
		t.Fatalf("since %d: the 10 oldest unacknowledged pushes are given up", s)
	}
	for s := uint64(1000); s < 1000+maxDone+5; s++ {
		c.take(s, false, 1)
	}
	if len(c.done) > maxDone {
		t.Fatalf("%d handled seqs held above the cursor, want at most %d", len(c.done), maxDone)
	}
}

func TestParseSeq(t *testing.T) {
	for in, want := range map[string]bool{"42": true, "0": true, "18446744073709551615": true,
		"18446744073709551616": false, "": false, "-1": false, "+1": false, "4e2": false, " 1": false, "0x10": false} {
		if _, ok := parseSeq(in); ok != want {
			t.Errorf("parseSeq(%q) ok=%v, want %v", in, ok, want)
		}
	}
}

func ptr(n uint64) *uint64 { return &n }
