package contract

// Deliverer is the one seam between the bus and the sessions: the router
// decodes each push from NATS and hands it to a Deliverer (the node), which
// writes it to the sessions it targets and reports how many matched.
//
// The router's workers each deliver through their own Batch: a worker
// delivers the messages already waiting in its queue into the batch and
// flushes it when the queue is empty or the batch is full. Under a backlog, a
// session that several pushes target gets them in one socket write; with no
// backlog every push is flushed at once.
type Deliverer interface {
	// Deliver writes p to the sessions it targets now.
	Deliver(p *Push) Report
	// NewBatch returns a batch for one worker's use only.
	NewBatch() Batch
}

// Batch is one worker's run of deliveries, used by that worker only.
type Batch interface {
	// Deliver queues p for the sessions it targets, without writing.
	Deliver(p *Push) Report
	// Flush starts the writes queued since the last Flush.
	Flush()
}
