package node

import (
	"strconv"
	"time"

	"github.com/pushd/pushd/contract"
)

// Receipts: a publisher that sets Push-Receipt asks every session that gets
// the push to acknowledge it. The push frame carries "ack":true; the client
// answers {"type":"ack","seq":"<n>"} (a user push) or with "doc" (a doc
// push), or {"type":"ack","push_id":"<id>"} for a push without a position
// (a broadcast or a session push, which must carry a Push-Id); the node
// then publishes a receipt on the subject the publisher named. A stored
// push a client does not acknowledge is replayed when it resumes (its SDK
// never resumes past an unacknowledged push); the others are gone.
// docs/NATS.md has the semantics.

// maxPendingReceipts bounds the receipts a session may owe; past it the
// oldest is forgotten (its ack is then ignored), so a client that never
// acks cannot grow the node.
const maxPendingReceipts = 256

// receipt is what a receipt reports of its push.
type receipt struct {
	subject string // where receipts go
	id      string // the push's Push-Id
	target  contract.Target
	key     string
}

// owed is one receipt a session owes.
type owed struct {
	subject string // the push's subjectKey
	seq     uint64
	r       *receipt
}

// oweLocked records that s owes a receipt for f. Lock must be held.
func (s *session) oweLocked(f *frame) {
	r := s.rare()
	if len(r.owes) == maxPendingReceipts {
		copy(r.owes, r.owes[1:])
		r.owes = r.owes[:len(r.owes)-1]
		s.node.metrics.receipts.inc("dropped")
	}
	r.owes = append(r.owes, owed{subject: f.subject, seq: f.seq, r: f.receipt})
}

// ack handles a client's ack frame: the receipt of the push at f.Seq on the
// user's or f.Doc's subject is published. An ack for a push the session does
// not owe (acked already, or forgotten) is ignored.
func (n *Node) ack(s *session, f *ClientFrame) {
	byID := f.PushID != "" && !f.Seq.Set
	if !byID && (!f.Seq.Set || f.Seq.Invalid) {
		n.bad(s, ref{id: f.ID, doc: f.Doc}, errBadSeq, `ack needs the push's seq, a decimal string, or for a push without one its "id" as push_id`)
		return
	}
	subject := subjectKey(contract.TargetUser, s.user)
	if f.Doc != "" {
		subject = subjectKey(contract.TargetDoc, f.Doc)
	}
	s.mu.Lock()
	var o owed
	if r := s.rareP.Load(); r != nil {
		for i := range r.owes {
			w := &r.owes[i]
			if (byID && w.seq == 0 && w.r.id == f.PushID) || (!byID && w.seq == f.Seq.N && w.subject == subject) {
				o = *w
				r.owes = append(r.owes[:i], r.owes[i+1:]...)
				break
			}
		}
	}
	s.mu.Unlock()
	if o.r == nil {
		return
	}
	b := make([]byte, 0, 256)
	b = appendString(append(b, `{"target":`...), string(o.r.target))
	if o.seq != 0 {
		b = strconv.AppendUint(append(b, `,"seq":"`...), o.seq, 10)
		b = append(b, '"')
	}
	if o.r.key != "" {
		b = appendString(append(b, `,"key":`...), o.r.key)
	}
	if o.r.id != "" {
		b = appendString(append(b, `,"id":`...), o.r.id)
	}
	b = append(append(b, `,"sid":"`...), s.sid...)
	b = appendString(append(b, `","user":`...), s.user)
	b = strconv.AppendInt(append(b, `,"node":`...), n.cfg.NodeID, 10)
	b = time.Now().UTC().AppendFormat(append(b, `,"acked_at":"`...), time.RFC3339Nano)
	b = append(b, `"}`...)
	if err := n.bus.PublishReceipt(o.r.subject, b); err != nil {
		n.log.Warn("receipt not published", "sid", s.sid, "seq", o.seq, "err", err)
		return
	}
	n.metrics.receipts.inc("acked")
}
