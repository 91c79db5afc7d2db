package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// The worker's side of resuming (docs/PROTOCOL.md, "Positions and
// resuming"), as an application would do it: each client keeps the last
// position it processed on its user subject and on its doc, drops a push at
// or before it (a duplicate), and comes back with since. Push bodies carry
// the publisher's index k of their kind; user push k goes to user k%Users and
// doc push k to doc k%Docs, so each client also knows which index comes next
// and counts what it skipped (gaps) apart from what it got twice.

// stateOf is client idx's resume state, nil without Resume.
func (w *worker) stateOf(idx int) *clientState {
	if w.state == nil {
		return nil
	}
	return &w.state[idx-w.spec.First]
}

// resetResume clears the counters and what each client got, not the
// positions: a reset starts a measurement, not a new client.
func (w *worker) resetResume() {
	for _, a := range []*atomic.Uint64{&w.dups, &w.gaps, &w.reordered, &w.noSeq, &w.recovered, &w.notRecovered,
		&w.closes1012, &w.closesOther, &w.reconnects, &w.reconnErrs, &w.reconnF} {
		a.Store(0)
	}
	w.lastPushAt.Store(0)
	w.samplesMu.Lock()
	w.samples = nil
	w.samplesMu.Unlock()
	w.reconn.Reset()
	w.reconnHS.Reset()
	for i := range w.state {
		st := &w.state[i]
		st.userGot.Store(0)
		st.docGot.Store(0)
		st.userS.Store(-1)
		st.docS.Store(-1)
	}
}

// position handles hello (user) or joined (doc): a client that has no
// position yet starts from the reply's; one whose resume was not recovered
// continues from it (what it missed is lost, and counted so).
func (c *benchClient) position(b []byte, pos *atomic.Uint64) {
	switch {
	case bytes.Contains(b, keyRecT):
		c.w.recovered.Add(1)
		return
	case bytes.Contains(b, keyRecF):
		c.w.notRecovered.Add(1)
	case pos.Load() != 0:
		return
	}
	if seq := intAfter(b, keySeq); seq > 0 {
		pos.Store(uint64(seq))
	}
}

// track dedupes one push by its position and checks its body index.
func (c *benchClient) track(b []byte) {
	w, st := c.w, c.st
	now := time.Now().UnixNano()
	for {
		old := w.lastPushAt.Load()
		if old >= now || w.lastPushAt.CompareAndSwap(old, now) {
			break
		}
	}
	doc := len(b) > len(pfxTarget) && b[len(pfxTarget)] == 'd'
	pos, got, lastS := &st.userSeq, &st.userGot, &st.userS
	step, first := w.spec.Users, c.idx
	if doc {
		pos, got, lastS = &st.docSeq, &st.docGot, &st.docS
		step, first = w.spec.Docs, docFor(c.idx, w.spec.Docs, w.spec.DocDist, zipfFor(w.spec.Docs))
	}
	seq := intAfter(b, keySeq)
	prevPos := pos.Load()
	if seq <= 0 {
		w.noSeq.Add(1)
	} else {
		if uint64(seq) <= prevPos {
			w.dups.Add(1)
			return
		}
		pos.Store(uint64(seq))
	}
	got.Add(1)
	s := intAfter(b, keyS)
	if s < 0 || step <= 0 {
		return
	}
	want := int64(first)
	if prev := lastS.Load(); prev >= 0 {
		want = prev + int64(step)
	}
	nth := c.pushes.Add(1)
	switch {
	case s > want:
		w.gaps.Add(uint64((s - want) / int64(step)))
		w.sample(fmt.Sprintf("gap: client %d doc=%v target %d: body index %d, expected %d; seq %d after position %d; push #%d of this connection, %s after ready",
			c.idx, doc, c.target, s, want, seq, prevPos, nth, time.Duration(now-c.readyAt.Load())))
	case s < want:
		w.reordered.Add(1)
		w.sample(fmt.Sprintf("reordered: client %d doc=%v: body index %d, expected %d; seq %d", c.idx, doc, s, want, seq))
	}
	lastS.Store(s)
}

// drop closes every client at once, as a network loss would (the clients
// go away; the server learns it from the closed sockets).
func (w *worker) drop() {
	now := time.Now().UnixNano()
	for i := range w.clients {
		c := w.clients[i].Load()
		if c == nil || c.closed.Load() {
			continue
		}
		c.leaving.Store(true)
		if c.st != nil {
			c.st.downAt.Store(now)
		}
		_ = c.conn.NetConn().Close()
	}
}

// resumeAll reconnects every client at once (Concurrency handshakes in
// flight), each with since on its user and, on joined, its doc. The reply's
// handshake histogram is each client's time until it was usable again
// (hello, and joined with a doc), counted from the start of the storm.
func (w *worker) resumeAll() reply {
	w.hs.Reset()
	var ok, failed atomic.Int64
	var errMu sync.Mutex
	firstErr := ""
	sem := make(chan struct{}, max(w.spec.Concurrency, 1))
	var wg sync.WaitGroup
	start := time.Now()
	for i := range w.clients {
		select {
		case sem <- struct{}{}:
		case <-w.ctx.Done():
		}
		if w.ctx.Err() != nil {
			break
		}
		idx := w.spec.First + i
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := w.connectOne(idx, false); err != nil {
				failed.Add(1)
				errMu.Lock()
				if firstErr == "" {
					firstErr = err.Error()
				}
				errMu.Unlock()
				return
			}
			w.hs.RecordDuration(time.Since(start))
			ok.Add(1)
		}()
	}
	wg.Wait()
	r := w.stats(false)
	r.Connected, r.Failed, r.FirstErr = int(ok.Load()), int(failed.Load()), firstErr
	r.Handshake = w.hs.Snapshot()
	return r
}

// startReconnect brings back a client the server closed: after a random
// delay up to JitterNano, to another target than the one that closed it,
// resuming; retried on failure, bounded in tries and by the worker closing.
func (w *worker) startReconnect(idx, from int) {
	w.closingMu.Lock() // closeAll waits for the reconnects only once none can start
	select {
	case <-w.closing:
		w.closingMu.Unlock()
		return
	default:
	}
	w.reconnWG.Add(1)
	w.closingMu.Unlock()
	go func() {
		defer w.reconnWG.Done()
		st := w.stateOf(idx)
		wait := func(d time.Duration) bool {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return true
			case <-w.closing:
			case <-w.ctx.Done():
			}
			return false
		}
		if j := w.spec.JitterNano; j > 0 && !wait(time.Duration(rand.Int64N(j))) {
			return
		}
		n := len(w.spec.Targets)
		for try := range 20 {
			target := from
			if n > 1 {
				target = (from + 1 + rand.IntN(n-1)) % n
			}
			attempt := time.Now()
			if err := w.connectOneTo(idx, target, false); err == nil {
				select {
				case <-w.closing: // closeAll ran meanwhile: it may have missed this one
					if c := w.slot(idx).Load(); c != nil {
						c.leaving.Store(true)
						_ = c.conn.NetConn().Close()
					}
					return
				default:
				}
				w.reconnects.Add(1)
				w.reconn.Record(time.Now().UnixNano() - st.downAt.Load())
				w.reconnHS.RecordDuration(time.Since(attempt))
				return
			}
			w.reconnErrs.Add(1)
			if !wait(time.Duration(try+1) * 100 * time.Millisecond) {
				return
			}
		}
		w.reconnF.Add(1)
	}()
}

// sample keeps the first few anomalies, described, for the report.
func (w *worker) sample(s string) {
	w.samplesMu.Lock()
	if len(w.samples) < 10 {
		w.samples = append(w.samples, s)
	}
	w.samplesMu.Unlock()
}
