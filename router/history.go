package router

import (
	"context"
	"errors"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/contract"
	"github.com/pushd/pushd/history"
)

// History on the router's side: while the history streams work, the router
// subscribes to the pushes they republish (<prefix>.seq.<kind>.<key>), whose
// headers carry each push's position and the position of the one before it
// on the same subject. For every subject it holds, the router keeps:
//
//   - the chain: the last position it delivered. A push whose predecessor is
//     later than that reveals pushes this node missed (a NATS reconnect, a
//     dropped message); the router reads them from the stream and delivers
//     them first (a gap fill).
//   - a tail, while clients resume on that subject: the pushes it delivered
//     lately, contiguous by the chain, plus what resume reads brought in. A
//     client resuming from a position the tail covers is served from memory,
//     so a reconnect storm on one doc costs one read, not one per client.
//
// A read is shared among the clients resuming from one position only if it
// started after the node subscribed to the subject: from then on every push
// arrives live, so read and live pushes together miss nothing.

// tailIdle is how long a tail is kept after the last resume that used it.
const (
	tailIdle     = 30 * time.Second
	tailMaxBytes = 256 << 10
	gapTimeout   = 2 * time.Second
)

// subjectState is the router's history state of one subscribed subject.
type subjectState struct {
	target contract.Target
	key    string

	mu sync.Mutex
	// last is the position the node delivered last (0: none yet).
	last uint64
	// tail covers positions (tailFrom, last] while tracking; oldest first.
	tracking  bool
	tail      []contract.Push
	tailFrom  uint64
	tailBytes int
	hot       time.Time // the last resume that used the tail
	// activeAt is when the subscription was known active (a resume came,
	// which the node makes only after its Sync): reads from then on see
	// what live delivery does not.
	activeAt time.Time
	flights  map[uint64]*flight
}

type flight struct {
	start time.Time
	done  chan struct{}
	r     history.Replay
	err   error
}

// states holds the subject states, sharded like the node's hub.
type states struct {
	seed   maphash.Seed
	shards [64]struct {
		mu sync.RWMutex
		m  map[string]*subjectState
	}
}

func (s *states) init() {
	s.seed = maphash.MakeSeed()
	for i := range s.shards {
		s.shards[i].m = make(map[string]*subjectState)
	}
}

func (s *states) shard(subject string) int { return int(maphash.String(s.seed, subject) % 64) }

func (s *states) get(subject string) *subjectState {
	sh := &s.shards[s.shard(subject)]
	sh.mu.RLock()
	st := sh.m[subject]
	sh.mu.RUnlock()
	return st
}

// reset gives subject a fresh state (a new subscription starts a new chain).
func (s *states) reset(subject string, t contract.Target, key string) {
	sh := &s.shards[s.shard(subject)]
	sh.mu.Lock()
	sh.m[subject] = &subjectState{target: t, key: key}
	sh.mu.Unlock()
}

func (s *states) remove(subject string) {
	sh := &s.shards[s.shard(subject)]
	sh.mu.Lock()
	delete(sh.m, subject)
	sh.mu.Unlock()
}

func (s *states) each(fn func(string, *subjectState)) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for k, st := range sh.m {
			fn(k, st)
		}
		sh.mu.RUnlock()
	}
}

// historyOn reports whether the router subscribes to republished pushes.
// Lock r.mu must be held.
func (r *Router) historyOnLocked() bool { return r.hist != nil && r.histOn }

// actual is the subject a node subscription for target and key uses now.
// Lock r.mu must be held.
func (r *Router) actual(t contract.Target, key string) string {
	if r.historyOnLocked() && (t == contract.TargetUser || t == contract.TargetDoc) {
		return r.subjects.Seq(t, key)
	}
	return r.subjects.For(t, key)
}

// setHistory switches every user and doc subscription between the
// republished subjects (history available) and the plain ones (not), so
// live delivery goes on while JetStream is down. Each new subscription is
// made before the old one is dropped: a push published during the switch may
// arrive twice, once without a position, rather than not at all.
func (r *Router) setHistory(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.histOn == on {
		return
	}
	r.histOn = on
	r.metrics.historyMode.Set(b2f(on))
	for logical, sub := range r.subs {
		t, key, ok := r.subjects.Parse(logical)
		if !ok || (t != contract.TargetUser && t != contract.TargetDoc) {
			continue
		}
		next, err := r.nc.ChanSubscribe(r.actual(t, key), r.queue(logical))
		if err != nil {
			r.log.Warn("resubscribe failed", "subject", logical, "err", err)
			continue
		}
		if on {
			r.states.reset(next.Subject, t, key)
		} else {
			r.states.remove(sub.Subject)
		}
		_ = sub.Unsubscribe()
		r.subs[logical] = next
	}
}

// chain handles a republished push p on subject: it drops one delivered
// already, fills the gap before it if the node missed any, and delivers it.
// It returns p's delivery report and the sessions matched by the pushes of
// the gap. It runs on subject's worker, so pushes of one subject pass
// through it one at a time, in order.
func (r *Router) chain(subject string, p *contract.Push, b contract.Batch) (rep contract.Report, gap int) {
	st := r.states.get(subject)
	if st == nil {
		return rep, 0 // unsubscribed meanwhile
	}
	r.hist.See(p.Target, p.Seq)
	st.mu.Lock()
	if p.Seq <= st.last {
		st.mu.Unlock()
		r.metrics.duplicates.Inc()
		return rep, 0
	}
	from := st.last
	st.mu.Unlock()
	if from != 0 && p.PrevSeq > from {
		gap = r.fill(st, from, p.PrevSeq, b)
	}
	st.advance(p)
	return b.Deliver(p), gap
}

// fill reads the pushes after from up to through that this node missed and
// delivers them, in order.
func (r *Router) fill(st *subjectState, from, through uint64, b contract.Batch) int {
	ctx, cancel := context.WithTimeout(context.Background(), gapTimeout)
	defer cancel()
	msgs, err := r.hist.Range(ctx, st.target, st.key, from, through)
	r.metrics.gapFills.Inc()
	if err != nil {
		r.log.Warn("gap in a subject's pushes not filled", "target", st.target, "key", st.key, "after", from, "through", through, "err", err)
		return 0
	}
	matched := 0
	for i := range msgs {
		var p contract.Push
		r.decode(&p, st.target, st.key, msgs[i].Header, msgs[i].Data)
		p.Seq = msgs[i].Seq
		p.PrevSeq = from
		if i > 0 {
			p.PrevSeq = msgs[i-1].Seq
		}
		st.advance(&p)
		matched += b.Deliver(&p).Matched
		r.metrics.gapPushes.Inc()
	}
	return matched
}

// advance records p as delivered, in the tail too while tracking.
func (st *subjectState) advance(p *contract.Push) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if p.Seq <= st.last {
		return
	}
	first := st.last == 0
	st.last = p.Seq
	if !st.tracking {
		return
	}
	if time.Since(st.hot) > tailIdle {
		st.tracking, st.tail, st.tailBytes = false, nil, 0
		return
	}
	if first {
		// Tracking began before the node delivered anything here (a
		// resume still reading, or whose read failed): the tail covers
		// from this push's predecessor on the subject, not from 0.
		st.tail, st.tailBytes, st.tailFrom = nil, 0, p.PrevSeq
		if p.PrevSeq == 0 { // no predecessor known: from the push itself
			st.tailFrom = p.Seq - 1
		}
	}
	st.appendTail(*p)
}

// appendTail adds p at the end of the tail and keeps the tail within its
// bounds. Lock must be held.
func (st *subjectState) appendTail(p contract.Push) {
	st.tail = append(st.tail, p)
	st.tailBytes += len(p.Data)
	for len(st.tail) > history.DefaultReplayMaxMsgs || st.tailBytes > tailMaxBytes {
		st.tailFrom = st.tail[0].Seq
		st.tailBytes -= len(st.tail[0].Data)
		st.tail[0] = contract.Push{}
		st.tail = st.tail[1:]
	}
}

// Replay returns what a session resuming target and key from position
// since missed: from the subject's tail when it reaches back that far, else
// from a read of the stream (shared with other sessions resuming from the
// same position, and merged into the tail). Call it only once the session's
// subscription is in place (after Sync): pushes arriving from then on reach
// the session live, and the node checks the seam between the two.
func (r *Router) Replay(ctx context.Context, t contract.Target, key string, since uint64) (contract.Replay, error) {
	r.mu.Lock()
	on := r.historyOnLocked()
	subject := r.actual(t, key)
	r.mu.Unlock()
	if !on {
		return contract.Replay{}, history.ErrUnavailable
	}
	st := r.states.get(subject)
	if st == nil {
		return contract.Replay{}, errors.New("pushd: replay of a subject the node does not hold: " + subject)
	}
	now := time.Now()
	st.mu.Lock()
	st.hot = now
	if !st.tracking {
		st.tracking, st.tail, st.tailBytes, st.tailFrom = true, nil, 0, st.last
	}
	if st.activeAt.IsZero() {
		st.activeAt = now
	}
	if st.last != 0 && since >= st.tailFrom && since <= st.last {
		out := contract.Replay{Recovered: true, Position: st.last, Pushes: st.after(since)}
		st.mu.Unlock()
		r.metrics.tailReplays.Inc()
		return out, nil
	}
	f := st.flights[since]
	lead := f == nil || f.start.Before(st.activeAt)
	if lead {
		f = &flight{start: now, done: make(chan struct{})}
		if st.flights == nil {
			st.flights = make(map[uint64]*flight)
		}
		st.flights[since] = f
	}
	st.mu.Unlock()
	if lead {
		f.r, f.err = r.hist.Replay(ctx, t, key, since)
		st.mu.Lock()
		if st.flights[since] == f {
			delete(st.flights, since)
		}
		if f.err == nil && f.r.Recovered {
			st.merge(t, key, since, f.r, r)
		}
		st.mu.Unlock()
		close(f.done)
	} else {
		select {
		case <-f.done:
		case <-ctx.Done():
			return contract.Replay{}, ctx.Err()
		}
	}
	if f.err != nil {
		return contract.Replay{}, f.err
	}
	out := contract.Replay{Recovered: f.r.Recovered, Position: f.r.Position, Pushes: make([]contract.Push, 0, len(f.r.Msgs))}
	prev := since
	for _, m := range f.r.Msgs {
		var p contract.Push
		r.decode(&p, t, key, m.Header, m.Data)
		p.Seq, p.PrevSeq = m.Seq, prev
		prev = m.Seq
		out.Pushes = append(out.Pushes, p)
	}
	if out.Recovered { // and what the node delivered since the read, from the tail
		st.mu.Lock()
		if st.last > out.Position && out.Position >= st.tailFrom {
			out.Pushes = append(out.Pushes, st.after(out.Position)...)
			out.Position = st.last
		}
		st.mu.Unlock()
	}
	return out, nil
}

// after copies the tail's pushes after position since. Lock must be held.
func (st *subjectState) after(since uint64) []contract.Push {
	i := 0
	for i < len(st.tail) && st.tail[i].Seq <= since {
		i++
	}
	return append([]contract.Push(nil), st.tail[i:]...)
}

// merge puts what a recovered read of (since, rep.Position] holds into the
// tail. Lock must be held.
func (st *subjectState) merge(t contract.Target, key string, since uint64, rep history.Replay, r *Router) {
	if st.last == 0 { // nothing live yet: the read is all the node knows
		st.last = rep.Position
		st.tail, st.tailBytes, st.tailFrom = nil, 0, since
		prev := since
		for _, m := range rep.Msgs {
			var p contract.Push
			r.decode(&p, t, key, m.Header, m.Data)
			p.Seq, p.PrevSeq = m.Seq, prev
			prev = m.Seq
			st.appendTail(p)
		}
		return
	}
	if since >= st.tailFrom || rep.Position < st.tailFrom {
		return // nothing to add, or not contiguous with the tail
	}
	var front []contract.Push
	prev := since
	for _, m := range rep.Msgs {
		if m.Seq > st.tailFrom {
			break
		}
		var p contract.Push
		r.decode(&p, t, key, m.Header, m.Data)
		p.Seq, p.PrevSeq = m.Seq, prev
		prev = m.Seq
		front = append(front, p)
	}
	rest := st.tail
	st.tail, st.tailBytes, st.tailFrom = nil, 0, since
	for _, p := range append(front, rest...) {
		st.appendTail(p)
	}
}

// Position is where target's history stands for a client joining now (see
// history.Position); ok is false without history.
func (r *Router) Position(t contract.Target) (uint64, bool) {
	r.mu.Lock()
	on := r.historyOnLocked()
	r.mu.Unlock()
	if !on {
		return 0, false
	}
	return r.hist.Position(t)
}

// Range returns the pushes to target and key with after < seq <= through,
// from the stream: the node fills a gap at a resuming session's seam with it.
func (r *Router) Range(ctx context.Context, t contract.Target, key string, after, through uint64) ([]contract.Push, error) {
	if r.hist == nil {
		return nil, history.ErrUnavailable
	}
	msgs, err := r.hist.Range(ctx, t, key, after, through)
	out := make([]contract.Push, 0, len(msgs))
	prev := after
	for _, m := range msgs {
		var p contract.Push
		r.decode(&p, t, key, m.Header, m.Data)
		p.Seq, p.PrevSeq = m.Seq, prev
		prev = m.Seq
		out = append(out, p)
	}
	return out, err
}

// checkPositions asks every subject's worker, after a NATS reconnect, to
// read what was stored while the node was away: the gap a next push would
// reveal, filled without waiting for one.
func (r *Router) checkPositions() {
	r.states.each(func(subject string, st *subjectState) {
		st.mu.Lock()
		known := st.last != 0
		st.mu.Unlock()
		if !known {
			return
		}
		select {
		case r.queue(r.subjects.For(st.target, st.key)) <- &nats.Msg{Subject: subject, Header: nats.Header{checkHeader: {"1"}}}:
		default: // a full queue has work enough; the next push reveals the gap
		}
	})
}

// checkHeader marks the router's own position-check messages in a worker
// queue; NATS never delivers a message without a subscription.
const checkHeader = "Pushd-Check"

// check fills, on the subject's worker, whatever was stored after the last
// push the node delivered.
func (r *Router) check(subject string, b contract.Batch) int {
	st := r.states.get(subject)
	if st == nil {
		return 0
	}
	st.mu.Lock()
	from := st.last
	st.mu.Unlock()
	return r.fill(st, from, ^uint64(0), b)
}

func parseSeq(v string) uint64 {
	n, _ := strconv.ParseUint(v, 10, 64)
	return n
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
