package node

import "github.com/pushd/pushd/contract"

// A Batch delivers a run of pushes and holds their socket writes back until
// Flush, so a session that several of them target gets them in one write.
// The router fills one per worker from the messages waiting in its queue and
// flushes it as soon as the queue is empty, so nothing waits when there is no
// backlog. A Batch is used by one goroutine; Flush must follow every run.
type Batch struct {
	n    *Node
	held []*session // sessions that need a writer started
}

// NewBatch returns an empty batch for n.
func (n *Node) NewBatch() contract.Batch { return &Batch{n: n} }

var _ contract.Deliverer = (*Node)(nil)

// Deliver queues p like Node.Deliver, without starting any write.
func (b *Batch) Deliver(p *contract.Push) contract.Report { return b.n.deliver(p, &b.held) }

// Flush starts the writes of everything delivered since the last Flush.
func (b *Batch) Flush() {
	for i, s := range b.held {
		b.n.startWriter(s)
		b.held[i] = nil
	}
	b.held = b.held[:0]
}
