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
	done  chan struct{}
	err   error
	after []func(error) // AfterSync callbacks, run once the round is answered
}

// Sync waits until the server has processed every subscription made before
// the call, or ctx ends. The round trip itself gives up after 5s.
func (r *Router) Sync(ctx context.Context) error {
	round := r.join(nil)
	select {
	case <-round.done:
		return round.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AfterSync calls fn, from the router's flushing goroutine, once the server
// has processed every subscription made before the call: Sync without a
// goroutine parked per caller, so a connect storm wakes one goroutine per
// round instead of one per handshake. fn must not block.
func (r *Router) AfterSync(fn func(error)) { r.join(fn) }

// join adds a caller (and its callback, if any) to the next round.
func (r *Router) join(fn func(error)) *syncRound {
	s := &r.sync
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == nil {
		s.next = &syncRound{done: make(chan struct{})}
	}
	round := s.next
	if fn != nil {
		round.after = append(round.after, fn)
	}
	if !s.running {
		s.running = true
		s.done.Add(1)
		go r.flushRounds()
	}
	return round
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
		for _, fn := range round.after {
			fn(round.err)
		}
	}
}

// wait waits for the flushing goroutine, if any, to end.
func (s *syncer) wait() { s.done.Wait() }
