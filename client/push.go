package client

import "encoding/json"

// Push is a message a backend published to the user, a doc, everyone, or
// this session.
type Push struct {
	// Target is what the backend published to: "user", "doc", "all" or
	// "session".
	Target string
	// Doc is the doc, for doc pushes.
	Doc string
	// Event is the event name ("message" unless the backend set one).
	Event string
	// ID is the backend's Push-Id, when it set one.
	ID string
	// Seq is the position in the user's or doc's history (durable
	// delivery); 0 when the push has none (broadcasts, session pushes, no
	// history).
	Seq uint64
	// Data is the payload: any JSON value (null when the push had none).
	Data json.RawMessage
	// NeedsAck says whether the backend asked for a receipt.
	NeedsAck bool

	c     *Client
	sub   *Subscription // doc pushes
	cur   *cursor       // user and doc pushes with a seq
	acked bool          // Ack was called (guarded by c.mu)
}

// Ack sends the push's receipt, once; later calls, and calls on pushes
// that asked for none, do nothing. Without Config.ManualAck the client calls
// it when the handlers returned nil. It may be called from any goroutine, at
// any time: a receipt the current session cannot take (the push came on an
// earlier one) is sent when the resume replays the push, which is then not
// handled again.
func (p *Push) Ack() {
	if !p.NeedsAck || p.c == nil {
		return
	}
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.acked {
		return
	}
	p.acked = true
	if p.cur.isQueued(p.Seq) {
		// The handlers of this copy, or of a replayed one, have not
		// returned yet: the receipt goes when they do.
		p.cur.ackWhenHandled(p.Seq)
		return
	}
	c.sendAck(p.sub, p.cur, p.Seq)
}
