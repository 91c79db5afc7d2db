package node

import (
	"strconv"

	"github.com/pushd/pushd/contract"
)

// Fan-out: a push is encoded once and the same frame is queued on every
// session it targets.

// Deliver writes p to every local session it targets and reports how many
// it matched and was queued for. The frame is encoded once. A push whose body
// is larger than MaxPushSize is refused whole: no session gets it and none is
// cut off for it.
func (n *Node) Deliver(p *contract.Push) contract.Report { return n.deliver(p, nil) }

// deliver is Deliver; with held not nil, writers are left for the caller to
// start (see enqueueHeld).
func (n *Node) deliver(p *contract.Push, held *[]*session) contract.Report {
	n.metrics.pushes.incAt(targetIndex(p.Target))
	var rep contract.Report
	exclude := p.ExcludeSession
	if len(p.Data) > n.cfg.MaxPushSize {
		n.each(p, func(s *session) {
			if exclude == "" || s.sid != exclude {
				rep.Matched++
			}
		})
		rep.Refused = contract.RefusedTooLarge
		n.metrics.pushesRefused.inc(contract.RefusedTooLarge)
		n.refusals.log("push refused: body larger than the maximum push size", "target", p.Target, "key", p.Key,
			"id", p.ID, "bytes", len(p.Data), "max_push_size", n.cfg.MaxPushSize, "matched", rep.Matched)
		return rep
	}
	f := encodePush(p)
	f.sent = p.SentUnixNano
	n.each(p, func(s *session) {
		if exclude != "" && s.sid == exclude {
			return
		}
		rep.Matched++
		switch s.enqueueHeld(f, held) {
		case queued:
			rep.Delivered++
		case cutOff:
			rep.CutOff++
		}
	})
	f.release()
	if p.TraceID != "" {
		n.log.Debug("push delivered", "trace_id", p.TraceID, "target", p.Target, "key", p.Key, "delivered", rep.Delivered)
	}
	return rep
}

// each calls fn for every local session p targets, under the hub's read
// locks: fn must not block.
func (n *Node) each(p *contract.Push, fn func(*session)) {
	switch p.Target {
	case contract.TargetUser:
		n.hub.users.each(p.Key, fn)
	case contract.TargetDoc:
		n.hub.docs.each(p.Key, fn)
	case contract.TargetSession:
		if id, err := strconv.ParseInt(p.Key, 10, 64); err == nil {
			if s := n.hub.session(id); s != nil {
				fn(s)
			}
		}
	case contract.TargetAll:
		n.hub.each(func(s *session) bool { fn(s); return true })
	}
}

// A Batch delivers a run of pushes and holds their writes back until Flush,
// so a session that several of them target gets them in one write. The
// router fills one per worker from the messages waiting in its queue and
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
