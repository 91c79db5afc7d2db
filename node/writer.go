package node

import (
	"errors"
	"net"
	"os"
	"time"
)

// enqueued is what became of a frame handed to a session.
type enqueued uint8

const (
	queued  enqueued = iota // in the queue, to be written
	closing                 // not queued: the session is closing or closed
	cutOff                  // not queued: the queue was full, the session is cut off
)

// enqueue queues f for the session and starts a writer if none is running. It
// never blocks on the socket: a session whose queue is already at its limits
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
	if s.dead || s.closeAfter != nil {
		s.mu.Unlock()
		return closing
	}
	cfg := &s.node.cfg
	if s.outBytes >= cfg.MaxQueuedBytes || len(s.out) >= cfg.MaxQueuedFrames {
		s.mu.Unlock()
		s.node.slowConsumer(s)
		return cutOff
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

// closeWith queues a close frame behind what is already queued, so a kicked
// or drained client still receives the pushes sent before. The writer closes
// the socket after writing it.
func (s *session) closeWith(code CloseCode, reason string, why Reason) {
	if !s.closing.CompareAndSwap(false, true) {
		return
	}
	s.setReason(why)
	cf := closeFrame(code, reason)
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		cf.release()
		return
	}
	s.closeAfter = cf
	start := !s.writing && !s.corked
	s.writing = s.writing || start
	s.mu.Unlock()
	if start {
		s.node.startWriter(s)
	}
}

// abort closes the socket at once, dropping what is queued; for slow
// consumers, whose queue nobody will read.
func (s *session) abort(code CloseCode, reason string, why Reason) {
	if !s.closing.CompareAndSwap(false, true) {
		return
	}
	s.setReason(why)
	cf := closeFrame(code, reason)
	// A short deadline: the peer is not reading, so the close frame is a courtesy.
	_ = s.netConn.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
	_, _ = s.netConn.Write(cf.bytes())
	cf.release()
	s.closeConn()
}

// closeConn closes the socket; a parked reader wakes to see it.
func (s *session) closeConn() {
	_ = s.netConn.Close()
	s.wakeReader()
}

// writeLoop drains the session's queue. It runs only while there is work, so
// an idle session costs no goroutine.
func (s *session) writeLoop() {
	cfg := &s.node.cfg
	if d := cfg.WriteCoalesce; d > 0 && s.lastWrite != 0 && time.Now().UnixNano()-s.lastWrite < int64(d) {
		time.Sleep(d) // streaming session: let more pushes join this write
	}
	var bufs net.Buffers
	for {
		s.mu.Lock()
		batch := s.out
		if s.corked && !s.dead {
			s.writing = false // uncork starts writing again
			s.mu.Unlock()
			return
		}
		if len(batch) == 0 {
			if cf := s.closeAfter; cf != nil && !s.dead {
				s.closeAfter = nil
				s.dead = true
				s.mu.Unlock()
				_ = s.netConn.SetWriteDeadline(time.Now().Add(closeFrameWriteTimeout))
				_, _ = s.netConn.Write(cf.bytes())
				cf.release()
				s.finishClose()
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
			// No write deadline: setting one per write costs ~5% of a
			// broadcast. The sweeper cuts off a write blocked past
			// WriteTimeout instead (writeStarted).
			s.writeStarted.Store(time.Now().UnixNano())
			if len(batch) == 1 {
				// The common case (one push per session, as in a broadcast):
				// a plain write, without building an iovec.
				_, err = s.netConn.Write(batch[0].bytes())
			} else {
				bufs = bufs[:0]
				for _, f := range batch {
					bufs = append(bufs, f.bytes())
				}
				w := bufs // WriteTo consumes the slice header it is given
				_, err = w.WriteTo(s.netConn)
			}
			s.writeStarted.Store(0)
		}
		n := len(batch)
		now := time.Now().UnixNano()
		s.lastWrite = now
		for i, f := range batch {
			if f.sent != 0 && err == nil && !dead {
				s.node.metrics.latency.Observe(float64(now-f.sent) / 1e9)
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
			if errors.Is(err, os.ErrDeadlineExceeded) {
				s.node.slowConsumer(s)
			}
			s.closeConn()
			continue
		}
		s.msgsOut.Add(uint64(n))
		s.bytesOut.Add(uint64(size))
		s.node.metrics.framesWritten.Add(float64(n))
		s.node.metrics.bytesWritten.Add(float64(size))
	}
}

// finishClose ends the socket after our close frame was written. Closing a
// socket with unread client data makes the kernel send a reset, which can
// destroy the close frame in flight (a flooding client would never learn its
// close code). So shut down only our side (FIN), and let the read loop drain
// until the peer closes or closeFrameWriteTimeout passes; then gws closes it.
func (s *session) finishClose() {
	if cw, ok := s.netConn.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			_ = s.netConn.SetReadDeadline(time.Now().Add(closeFrameWriteTimeout))
			s.wakeReader() // a parked reader would never see the deadline
			return
		}
	}
	s.closeConn()
}

// dropQueueLocked releases every queued frame. Lock must be held.
func (s *session) dropQueueLocked() {
	for i, f := range s.out {
		f.release()
		s.out[i] = nil
	}
	s.out = s.out[:0]
	s.outBytes = 0
	if s.closeAfter != nil {
		s.closeAfter.release()
		s.closeAfter = nil
	}
}
