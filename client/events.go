package client

import (
	"reflect"
	"runtime"
	"time"
)

// State is where a Client is.
type State int

const (
	// Disconnected: not trying: before Connect, after Close, or after a
	// close that forbids reconnecting (its StateEvent carries the code and
	// reason).
	Disconnected State = iota
	// Connecting: opening a connection, or waiting to retry (see
	// DisconnectEvent.Delay).
	Connecting
	// Connected: the server said hello.
	Connected
)

func (s State) String() string {
	switch s {
	case Disconnected:
		return "disconnected"
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	}
	return "unknown"
}

// StateEvent is a change of the client's state.
type StateEvent struct {
	State    State
	Previous State
	// Code and Reason are the close that caused the change, when one did
	// (Code 0 otherwise).
	Code   uint16
	Reason string
}

// HelloEvent is a session that is up: the server's hello.
type HelloEvent struct {
	// SID is the session ID (a snowflake, as a decimal string).
	SID string
	// Node is the node's number.
	Node int64
	User string
	// URL is the URL this session is connected to.
	URL string
	// Seq is the user subject's position (with durable delivery; 0 without).
	Seq uint64
	// First is true for the first hello after Connect.
	First bool
	// Resumed is true when the client resumed the user's pushes (it sent a
	// cursor, since).
	Resumed bool
	// Recovered, when Resumed: the user pushes missed since the cursor
	// follow, every one of them.
	Recovered bool
	// Gap: user pushes may have been missed: refetch what depends on them.
	// True when a resume was not recovered, and when a reconnect had no
	// cursor to resume from (a server without durable delivery).
	Gap bool
}

// DisconnectEvent is a connection that closed.
type DisconnectEvent struct {
	// Code is the close code: the server's, the one a refused upgrade's
	// HTTP status stands for (see Status), or 1006 when the connection
	// failed or the client gave up on a silent server (then Reason says
	// why: "heartbeat_timeout: ...", "connect_timeout: ...", ...). 4008
	// with a reason starting "slow_handlers" is the client's own: its
	// handlers fell PushBuffer pushes behind.
	Code uint16
	// Reason is the close reason, "<error>: <message>" for pushd's refusals.
	Reason string
	// Error is the reason's error code (token_expired, draining, ...), ""
	// when none.
	Error string
	// Status is the HTTP status of a refused upgrade (503, 429, 401, ...),
	// 0 when the upgrade succeeded.
	Status int
	URL    string
	// WillReconnect says whether the client will reconnect.
	WillReconnect bool
	// Delay is the wait before the next attempt, when it will reconnect.
	Delay time.Duration
	// AvoidNode is the node that sent the client away and named itself
	// (the reason's "node <n>; ", a refusal's "avoid_node"): URLs known to
	// lead to it are skipped for Config.AvoidFor. -1 when none was named.
	AvoidNode int64
}

// SubscribedEvent is a doc joined: after Join, and again after every
// reconnect.
type SubscribedEvent struct {
	Doc string
	// Seq is the doc's position after the replay (durable delivery; 0
	// without).
	Seq uint64
	// First is true for the subscription's first SubscribedEvent.
	First bool
	// Resumed is true when the join carried the subscription's cursor
	// (since).
	Resumed bool
	// Recovered, when Resumed: every push missed since the cursor is
	// replayed.
	Recovered bool
	// Gap: pushes may have been missed: refetch the doc's state. True when
	// a resume was not recovered, when the server refused the cursor
	// (bad_since), or when a rejoin after a reconnect had no cursor to
	// resume from (a server without durable delivery).
	Gap bool
}

// The event queue. Handlers run one at a time, in the order the events
// happened, on one goroutine the client owns (the dispatcher), never on the
// goroutine that reads the socket: a slow handler cannot stall heartbeats or
// replies. Pushes waiting for the handlers are bounded (Config.PushBuffer):
// when the queue is full the client closes the connection (4008,
// "slow_handlers") and reconnects once the handlers have worked through half
// of it, resuming from the last push handled, so nothing is lost that the
// server's history still holds. Other events are few per connection and
// always queued.

// item is one queued event: a call of the handlers.
type item struct {
	run  func()
	push bool
}

// enqueue queues run for the dispatcher. c.mu must be held.
func (c *Client) enqueue(run func(), push bool) {
	c.events = append(c.events, item{run: run, push: push})
	if push {
		c.queuedPushes++
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// dispatch runs the queued handlers until Close.
func (c *Client) dispatch() {
	defer close(c.dispatched)
	for {
		c.mu.Lock()
		for len(c.events) == 0 && !c.closed {
			c.mu.Unlock()
			select {
			case <-c.wake:
			case <-c.quit:
			}
			c.mu.Lock()
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		it := c.events[0]
		c.events[0] = item{}
		c.events = c.events[1:]
		c.mu.Unlock()

		it.run()

		c.mu.Lock()
		if it.push {
			c.queuedPushes--
			if c.waitHandlers && c.queuedPushes <= c.cfg.PushBuffer/2 && !c.closed {
				c.waitHandlers = false
				if c.state == Connecting && c.conn == nil {
					c.open()
				}
			}
		}
		c.mu.Unlock()
	}
}

// dispatchFunc names dispatch in stack traces.
var dispatchFunc = runtime.FuncForPC(reflect.ValueOf((*Client).dispatch).Pointer()).Name()

// onDispatcher says whether the caller runs on a dispatcher goroutine (a
// handler calling Close), which Close must not wait for. It walks the
// caller's own stack, whose bottom frame is dispatch on that goroutine.
func onDispatcher() bool {
	pc := make([]uintptr, 128)
	for {
		n := runtime.Callers(2, pc)
		if n == len(pc) && len(pc) < 1<<16 {
			pc = make([]uintptr, 2*len(pc)) // deeper than that: look again
			continue
		}
		frames := runtime.CallersFrames(pc[:n])
		for {
			f, more := frames.Next()
			if f.Function == dispatchFunc {
				return true
			}
			if !more {
				return false
			}
		}
	}
}
