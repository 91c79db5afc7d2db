package presence

import (
	"time"

	"github.com/pushd/pushd/contract"
)

// maintainEvery is how often sync deadlines, unconfirmed instances and
// tombstones are looked at.
const maintainEvery = 100 * time.Millisecond

// roundLinger is how long after its deadline a sync round's late answers
// are still taken.
const roundLinger = 10 * time.Second

// flushLoop hands due event batches to the sink and does the tracker's
// housekeeping, until Close. It is the only caller of the sink, so a doc's
// batches arrive in order.
func (t *Tracker) flushLoop() {
	defer t.done.Done()
	tick := maintainEvery
	if w := t.cfg.Window; w > 0 {
		tick = min(tick, max(w/4, 5*time.Millisecond))
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	var last time.Time
	for {
		select {
		case <-t.stop:
			return
		case <-t.kick:
		case <-ticker.C:
		}
		now := time.Now()
		t.flushDue(now)
		if now.Sub(last) >= maintainEvery {
			last = now
			t.endRounds(now)
			t.maintain(now)
		}
	}
}

// flushDue hands out the batches of every doc whose window has passed.
func (t *Tracker) flushDue(now time.Time) {
	t.dirtyMu.Lock()
	if len(t.dirtyM) == 0 {
		t.dirtyMu.Unlock()
		return
	}
	docs := make([]*docState, 0, len(t.dirtyM))
	for d := range t.dirtyM {
		docs = append(docs, d)
	}
	t.dirtyMu.Unlock()
	for _, d := range docs {
		d.mu.Lock()
		if !d.closed && now.Before(d.due) && len(d.pending) > 0 {
			d.mu.Unlock()
			continue
		}
		var batches []*contract.PresenceEvents
		if !d.closed {
			batches = d.takeEvents(now)
		}
		t.dirtyMu.Lock()
		delete(t.dirtyM, d)
		t.dirtyMu.Unlock()
		d.mu.Unlock()
		for _, b := range batches {
			t.metrics.batches.Inc()
			t.metrics.changes.Add(float64(len(b.Changes) + b.Joined + b.Left))
			t.sink.PresenceEvents(b)
		}
	}
}

// endRounds makes the docs whose sync ran out of time ready, and fetches
// the members of the holders that were expected but did not answer (one
// that no longer holds the doc is dropped that way).
func (t *Tracker) endRounds(now time.Time) {
	t.roundsMu.Lock()
	var late []*docState
	for _, d := range t.rounds {
		late = append(late, d)
	}
	t.roundsMu.Unlock()
	for _, d := range late {
		d.mu.Lock()
		r := d.round
		switch {
		case r == nil || d.closed || now.Before(r.deadline):
		case now.After(r.deadline.Add(roundLinger)):
			t.endRound(r.reply)
			d.round = nil
		case !r.expired:
			r.expired = true
			for inst, h := range r.expected {
				if !r.answered[inst] && !t.gone(inst) {
					rm := d.remoteOf(h.Node, inst)
					rm.synced = false
					t.fetch(d, rm, nil)
				}
			}
			if !d.isReady {
				t.metrics.syncTimeouts.Inc()
				d.setReady()
			}
		}
		d.mu.Unlock()
	}
}
