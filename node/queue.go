package node

import "time"

// A session's outbound queue. Fan-out only ever appends to it (enqueue never
// blocks on the client); one writer goroutine per session, started when the
// queue turns non-empty and gone when it is empty again, hands the queued
// frames to the transport. An idle session costs no goroutine.

// enqueued is what became of a frame handed to a session.
type enqueued uint8

const (
	queued  enqueued = iota // in the queue, to be written
	closing                 // not queued: the session is closing or closed
	cutOff                  // not queued: the queue was full, the session is cut off
)

// enqueue queues f for the session and starts a writer if none is running. It
// never blocks on the client: a session whose queue is already at its limits
// is cut off as a slow consumer.
//
// The limits bound the backlog, not one frame: a frame is queued whenever the
// queue holds less than MaxQueuedBytes, so a single push up to the maximum
// push size always reaches a client that reads, even one bigger than the
// whole queue limit.
//
// Frames queued while a write is in flight are coalesced into the next write
// (one writev), which is where bursts to one session get cheap.
func (s *session) enqueue(f *frame) enqueued { return s.enqueueHeld(f, nil) }

// enqueueHeld is enqueue, except that when held is not nil a writer the
// session needs is not started but added to *held, for the caller to start
// (Batch.Flush).
func (s *session) enqueueHeld(f *frame, held *[]*session) enqueued {
	n := len(f.bytes())
	s.mu.Lock()
	if s.dead || s.ending {
		s.mu.Unlock()
		return closing
	}
	cfg := &s.node.cfg
	if s.outBytes+int(s.backlog.Load()) >= cfg.MaxQueuedBytes || len(s.out)+int(s.backlogFrames.Load()) >= cfg.MaxQueuedFrames {
		s.mu.Unlock()
		s.node.slowConsumer(s, ReasonSlowConsumer)
		return cutOff
	}
	if s.holdLocked(f) {
		s.mu.Unlock()
		return queued
	}
	if f.receipt != nil {
		s.oweLocked(f)
	}
	f.retain()
	s.out = append(s.out, f)
	s.outBytes += n
	start := !s.writing && !s.corked
	s.writing = s.writing || start
	s.mu.Unlock()
	switch {
	case !start:
	case held != nil:
		*held = append(*held, s)
	default:
		s.node.startWriter(s)
	}
	return queued
}

// reply queues f, which the caller built for this session alone, and drops
// the caller's reference; while the read side collects replies (sink), f
// goes there instead.
func (s *session) reply(f *frame) {
	if s.sink != nil {
		*s.sink = append(*s.sink, f)
		return
	}
	s.enqueue(f)
	f.release()
}

// queueAndUnlock queues frames, taking over the caller's references: at the
// front of the queue when front is set (a corked session's first frames),
// else at its end; then starts writing unless corked. Lock must be held; it
// is released.
func (s *session) queueAndUnlock(frames []*frame, front bool) {
	if s.dead {
		s.mu.Unlock()
		for _, f := range frames {
			f.release()
		}
		return
	}
	size := 0
	for _, f := range frames {
		size += len(f.bytes())
		if f.receipt != nil {
			s.oweLocked(f)
		}
	}
	if front {
		s.out = append(frames, s.out...)
		s.corked = false
	} else {
		s.out = append(s.out, frames...)
	}
	s.outBytes += size
	start := !s.writing && !s.corked
	s.writing = s.writing || start
	s.mu.Unlock()
	if start {
		s.node.startWriter(s)
	}
}

// cork holds the session's writes: frames queue up but no writer starts,
// and a running one stops at its next round, until uncork.
func (s *session) cork() {
	s.mu.Lock()
	s.corked = true
	s.mu.Unlock()
}

// uncork puts first in front of whatever was queued while the session was
// corked and starts writing, so first is the first frame written since cork.
func (s *session) uncork(first *frame) {
	s.mu.Lock()
	s.corked = false
	if s.dead {
		s.mu.Unlock()
		return
	}
	first.retain()
	s.out = append(s.out, nil)
	copy(s.out[1:], s.out)
	s.out[0] = first
	s.outBytes += len(first.bytes())
	start := !s.writing
	s.writing = true
	s.mu.Unlock()
	if start {
		s.node.startWriter(s)
	}
}

// closeWith ends the session after what is already queued, so a kicked or
// drained client still receives the pushes sent before: the writer ends the
// transport with code and reason once the queue is written.
func (s *session) closeWith(code CloseCode, reason string, why Reason) {
	if !s.closing.CompareAndSwap(false, true) {
		return
	}
	s.setReason(why)
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	s.ending, s.endCode, s.endReason = true, code, reason
	start := !s.writing && !s.corked
	s.writing = s.writing || start
	s.mu.Unlock()
	if start {
		s.node.startWriter(s)
	}
}

// abort ends the session at once, dropping what is queued: for slow
// consumers, whose queue nobody will read.
func (s *session) abort(code CloseCode, reason string, why Reason) {
	if !s.closing.CompareAndSwap(false, true) {
		return
	}
	s.setReason(why)
	s.t.abort(code, reason)
}

// writeLoop drains the session's queue into its transport. It runs only
// while there is work.
func (s *session) writeLoop() {
	cfg := &s.node.cfg
	if d := cfg.WriteCoalesce; d > 0 && s.lastWrite != 0 && time.Now().UnixNano()-s.lastWrite < int64(d) {
		time.Sleep(d) // streaming session: let more pushes join this write
	}
	m := s.node.metrics
	for {
		s.mu.Lock()
		batch := s.out
		if s.corked && !s.dead {
			s.writing = false // uncork starts writing again
			s.mu.Unlock()
			return
		}
		if len(batch) == 0 {
			if s.ending && !s.dead {
				s.dead = true
				code, reason := s.endCode, s.endReason
				s.mu.Unlock()
				s.t.end(code, reason)
				s.mu.Lock()
			}
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.out, s.spare = s.spare[:0], nil
		size := s.outBytes
		s.outBytes = 0
		dead := s.dead
		s.mu.Unlock()

		var err error
		if !dead {
			// No deadline per write: setting one costs ~5% of a broadcast.
			// The sweeper cuts off a write blocked past WriteTimeout instead
			// (writeStarted).
			s.writeStarted.Store(time.Now().UnixNano())
			err = s.t.write(batch)
			s.writeStarted.Store(0)
		}
		n := len(batch)
		now := time.Now().UnixNano()
		s.lastWrite = now
		for i, f := range batch {
			if f.sent != 0 && err == nil && !dead {
				m.latency.Observe(float64(now-f.sent) / 1e9)
			}
			f.release()
			batch[i] = nil
		}
		s.mu.Lock()
		s.spare = batch[:0]
		if err != nil {
			s.dead = true
			s.dropQueueLocked()
		}
		s.mu.Unlock()
		if dead {
			continue
		}
		if err != nil {
			s.t.close()
			continue
		}
		s.msgsOut.Add(uint64(n))
		s.bytesOut.Add(uint64(size))
		m.framesWritten.add(uint64(n))
		m.bytesWritten.add(uint64(size))
	}
}

// dropQueueLocked releases every queued and held frame. Lock must be held.
func (s *session) dropQueueLocked() {
	for i, f := range s.out {
		f.release()
		s.out[i] = nil
	}
	s.out = s.out[:0]
	s.outBytes = 0
	s.ending = false
	for k, h := range s.holding {
		for _, f := range h.frames {
			f.release()
		}
		delete(s.holding, k)
	}
}

// startWriter runs the session's writer; the node waits for it at Close.
func (n *Node) startWriter(s *session) {
	n.writers.Add(1)
	go func() {
		defer n.writers.Done()
		s.writeLoop()
	}()
}

// slowConsumer cuts s off: its queue overflowed (ReasonSlowConsumer) or a
// write blocked past WriteTimeout (ReasonWriteTimeout).
func (n *Node) slowConsumer(s *session, why Reason) {
	if s.closing.Load() {
		return
	}
	n.metrics.slowConsumers.inc()
	reason := "slow consumer: outbound queue full"
	if why == ReasonWriteTimeout {
		reason = "slow consumer: write timed out"
	}
	n.log.Info("slow consumer cut off", "sid", s.sid, "user", s.user, "reason", why)
	// Off the caller's goroutine: fan-out calls this under a hub read lock,
	// and the courtesy close may wait for its (short) write deadline.
	n.writers.Add(1)
	go func() {
		defer n.writers.Done()
		s.abort(CloseSlowConsumer, reason, why)
	}()
}
