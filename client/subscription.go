package client

import (
	"context"
	"errors"
	"time"
)

// SubState is where a Subscription is.
type SubState int

const (
	// Joining: the join is on its way (also while the client reconnects).
	Joining SubState = iota
	// Joined: pushes to the doc arrive.
	Joined
	// Left: Leave was called.
	Left
	// Failed: the server refused the join for good (forbidden, invalid_doc,
	// too_many_docs, token_invalid, ...); the client will not retry.
	Failed
)

func (s SubState) String() string {
	switch s {
	case Joining:
		return "joining"
	case Joined:
		return "joined"
	case Left:
		return "left"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// ErrLeft is why Ready fails for a subscription left before it was joined.
var ErrLeft = errors.New("pushd: the subscription was left")

// JoinOptions configure Client.Join. The handlers run on the client's
// handler goroutine, in order with the client's own (see Config).
type JoinOptions struct {
	// Token is a join token for the doc (docs/PROTOCOL.md, Joining).
	Token string
	// TokenFunc, when set, is called for every join, including the rejoins
	// after reconnects (join tokens are short-lived); it must return when
	// ctx ends.
	TokenFunc func(ctx context.Context) (string, error)
	// Since resumes the doc after this seq (a cursor saved earlier from
	// Subscription.Cursor). Nil: no cursor yet.
	Since *uint64
	// OnPush gets every push to the doc, once (duplicates from a resume are
	// dropped); the client's Config.OnPush gets it next. Returning an error
	// withholds the push's receipt (see Config.OnPush).
	OnPush func(*Push) error
	// OnSubscribed is called each time the doc is joined: after Join, and
	// again after every reconnect. Refetch the doc's state when Gap is set.
	OnSubscribed func(SubscribedEvent)
	// OnError is called when the join is refused for good (a *ServerError);
	// without it the error goes to Config.OnError.
	OnError func(error)
}

// Subscription is a joined doc. It survives reconnects: the client rejoins
// it with its cursor, so the server replays what was missed, and drops
// pushes it already delivered.
type Subscription struct {
	c    *Client
	doc  string
	opts JoinOptions
	cur  *cursor

	// Guarded by c.mu.
	state      SubState
	joinedOnce bool
	joinGen    uint64 // the connection the last join went out on
	attempts   int    // join retries in a row (unavailable, rate_limited, token_expired)
	// droppedSince: the server refused the cursor (bad_since); the next
	// subscribed reports a gap.
	droppedSince bool
	timer        *time.Timer
	timerID      uint64
	ready        chan struct{} // closed at the first subscribed, or when failed or left
	readyErr     error
}

// Doc is the doc ID.
func (s *Subscription) Doc() string { return s.doc }

// State is where the subscription is.
func (s *Subscription) State() SubState {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.state
}

// Cursor is the seq of the last push to the doc handled (whose receipt, if
// it asked for one, was given): save it to resume from after a restart with
// JoinOptions.Since. ok is false until the server sent a position.
func (s *Subscription) Cursor() (seq uint64, ok bool) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.cur.since()
}

// Ready waits until the doc is joined for the first time. It returns the
// server's refusal (*ServerError) when the join is refused for good, ErrLeft
// when the subscription is left first, or ctx's error.
func (s *Subscription) Ready(ctx context.Context) error {
	select {
	case <-s.ready:
		s.c.mu.Lock()
		defer s.c.mu.Unlock()
		return s.readyErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Leave leaves the doc: no push to it is handled from now on. It waits for
// the server's confirmation when connected (at most until ctx ends: then it
// returns ctx's error, and the doc is left anyway).
func (s *Subscription) Leave(ctx context.Context) error {
	return s.c.leave(ctx, s)
}

// settle resolves Ready once. c.mu must be held.
func (s *Subscription) settle(err error) {
	select {
	case <-s.ready:
	default:
		s.readyErr = err
		close(s.ready)
	}
}

// stopTimer stops a pending join retry. c.mu must be held.
func (s *Subscription) stopTimer() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.timerID++
}
