package client

// cursor is the resume cursor of one subject (the user's, or one doc's):
// where to resume from after a reconnect, and which pushes were already
// taken. Seqs are JetStream stream sequences: increasing per subject, not
// contiguous. It is the TypeScript SDK's cursor.ts, plus one state for pushes
// waiting for the handlers (handlers run on their own goroutine, so a push
// is taken some time after it arrived).
//
// base is the resume point: every push at or below it was handled (and
// acknowledged when it asked for a receipt). A push still queued for the
// handlers, or one that asked for a receipt not given yet, holds base below
// it, so a resume replays it; pushes handled above base meanwhile are kept in
// done and dropped when replayed.
//
// The client's mutex guards it.
type cursor struct {
	base  uint64
	known bool // base is a position (0 is one: an empty history)
	// queued are pushes handed to the handlers, not handled yet, with the
	// connection (generation) whose session owes their receipt.
	queued map[uint64]uint64
	// pending await their receipt, with the connection that delivered them.
	pending map[uint64]uint64
	done    map[uint64]struct{}
	// unsent are receipts the app gave that the server could not take yet:
	// a node takes receipts only for pushes it delivered on the current
	// session, so each is sent when the resume replays its push (or, for a
	// push given while queued, when its handlers return).
	unsent map[uint64]struct{}
}

// maxPending bounds the pushes awaiting a receipt, as a session bounds the
// receipts it owes (docs/PROTOCOL.md): past it the oldest is given up (the
// cursor may pass it). maxDone bounds the pushes kept above a held base.
const (
	maxPending = 256
	maxDone    = 4096
)

func newCursor(since *uint64) *cursor {
	c := &cursor{queued: map[uint64]uint64{}, pending: map[uint64]uint64{}, done: map[uint64]struct{}{}, unsent: map[uint64]struct{}{}}
	if since != nil {
		c.base, c.known = *since, true
	}
	return c
}

// since is the seq to resume from; ok is false when nothing is known yet.
func (c *cursor) since() (seq uint64, ok bool) { return c.base, c.known }

// seen says whether a push with seq was taken already: at or below base,
// handled, or queued for the handlers. A push awaiting its receipt is not
// seen: a replay delivers it again.
func (c *cursor) seen(seq uint64) bool {
	if c.known && seq <= c.base {
		return true
	}
	if _, ok := c.done[seq]; ok {
		return true
	}
	_, ok := c.queued[seq]
	return ok
}

// isQueued says whether the push with seq waits for the handlers.
func (c *cursor) isQueued(seq uint64) bool { _, ok := c.queued[seq]; return ok }

// queue records that the push with seq, delivered on connection gen, goes
// to the handlers; a push awaiting its receipt is delivered again.
func (c *cursor) queue(seq, gen uint64) {
	delete(c.pending, seq)
	c.queued[seq] = gen
}

// owedOn moves the receipt of a queued or pending push to connection gen: a
// replay on it delivered the push again, so that session owes the receipt.
func (c *cursor) owedOn(seq, gen uint64) {
	if _, ok := c.queued[seq]; ok {
		c.queued[seq] = gen
	}
	if _, ok := c.pending[seq]; ok {
		c.pending[seq] = gen
	}
}

// handled records that the handlers are done with the push with seq; one
// that asked for a receipt now awaits it. ok is false when the push was not
// queued (the cursor was reset meanwhile).
func (c *cursor) handled(seq uint64, needsAck bool) (ok bool) {
	gen, ok := c.queued[seq]
	if !ok {
		return false
	}
	delete(c.queued, seq)
	if needsAck {
		c.pending[seq] = gen
	} else {
		c.done[seq] = struct{}{}
	}
	c.compact()
	return true
}

// awaits says whether the push with seq awaits its receipt.
func (c *cursor) awaits(seq uint64) bool { _, ok := c.pending[seq]; return ok }

// deliveredOn is the connection that delivered a push awaiting its receipt.
func (c *cursor) deliveredOn(seq uint64) uint64 { return c.pending[seq] }

// ackSent records that the receipt of a pending push was sent: the cursor
// may pass it.
func (c *cursor) ackSent(seq uint64) {
	if _, ok := c.pending[seq]; !ok {
		return
	}
	delete(c.pending, seq)
	delete(c.unsent, seq)
	c.done[seq] = struct{}{}
	c.compact()
}

// ackLater records a receipt the server cannot take now (see unsent).
func (c *cursor) ackLater(seq uint64) {
	if _, ok := c.pending[seq]; ok {
		c.unsent[seq] = struct{}{}
	}
}

// ackWhenHandled records a receipt given while the push waits for the
// handlers: it is sent once they return.
func (c *cursor) ackWhenHandled(seq uint64) {
	if _, ok := c.queued[seq]; ok {
		c.unsent[seq] = struct{}{}
	}
}

// acked says whether the app acknowledged this push already, waiting for a
// replay (or the handlers) to send it.
func (c *cursor) acked(seq uint64) bool { _, ok := c.unsent[seq]; return ok }

// reset starts over at seq (known false: nowhere): the server's position,
// when history did not reach back to since.
func (c *cursor) reset(seq uint64, known bool) {
	c.base, c.known = seq, known
	clear(c.queued)
	clear(c.pending)
	clear(c.done)
	clear(c.unsent)
}

// compact moves base up over handled seqs below every queued and pending
// one, and gives up the oldest pending push when too many are held.
func (c *cursor) compact() {
	for len(c.pending) > maxPending || (len(c.done) > maxDone && len(c.pending) > 0) {
		oldest, _ := lowest(c.pending)
		delete(c.pending, oldest)
		delete(c.unsent, oldest)
		c.done[oldest] = struct{}{}
	}
	hold, held := lowest(c.pending)
	if q, ok := lowest(c.queued); ok && (!held || q < hold) {
		hold, held = q, true
	}
	for seq := range c.done {
		if held && seq > hold {
			continue
		}
		delete(c.done, seq)
		if !c.known || seq > c.base {
			c.base, c.known = seq, true
		}
	}
}

// lowest is the smallest key of m.
func lowest[V any](m map[uint64]V) (low uint64, ok bool) {
	for k := range m {
		if !ok || k < low {
			low, ok = k, true
		}
	}
	return low, ok
}
