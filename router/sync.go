package router

import (
	"context"
	"sync"
)

// syncer shares NATS round trips among concurrent Sync calls. During a
// connect storm every handshake waits for its subscriptions to reach the
// server; one PING/PONG per handshake would cost a round trip and a server
// wake-up each. Instead a caller joins the next round, which starts only after
// it arrived (so after its subscriptions were written), and one flush answers
// the whole round.
type syncer struct {
	mu      sync.Mutex
	running bool       // a flushing goroutine exists
	next    *syncRound // the round callers join; nil when nobody waits
	done    sync.WaitGroup
}

type syncRound struct {
	done chan struct{}
	err  error
}

// Sync waits until the server has processed every subscription made before
// the call, or ctx ends. The round trip itself gives up after 5s.
func (r *Router) Sync(ctx context.Context) error {
	s := &r.sync
	s.mu.Lock()
	if s.next == nil {
		s.next = &syncRound{done: make(chan struct{})}
	}
	round := s.next
	if !s.running {
		s.running = true
		s.done.Add(1)
		go r.flushRounds()
	}
	s.mu.Unlock()
	select {
	case <-round.done:
		return round.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flushRounds flushes one round after another until nobody waits. Each flush
// is bounded by defaultSyncTimeout, so the goroutine always ends.
func (r *Router) flushRounds() {
	s := &r.sync
	defer s.done.Done()
	for {
		s.mu.Lock()
		round := s.next
		s.next = nil
		if round == nil {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		round.err = r.nc.FlushTimeout(defaultSyncTimeout)
		close(round.done)
	}
}

// wait waits for the flushing goroutine, if any, to end.
func (s *syncer) wait() { s.done.Wait() }
