package client

import (
	"fmt"
	"time"
)

// Heartbeats: the client sends {"type":"ping"} every interval, taken from the
// latest hello or pong (the server adapts it, docs/PROTOCOL.md), and takes the
// server for dead when no frame at all arrives within its grace
// (ping_timeout - ping_interval) after a ping: it closes the socket and
// reconnects (a DisconnectEvent 1006 "heartbeat_timeout: ..."). The same
// watch gives up on a connection without hello within ConnectTimeout. Every
// function here runs with c.mu held.

// Bounds on the server's interval: a bad value must neither spin the client
// nor overflow a Duration.
const (
	minInterval = 10 * time.Millisecond
	maxInterval = 24 * time.Hour
)

// setInterval takes a hello's or pong's interval and timeout, in ms.
func (c *Client) setInterval(a *attempt, intervalMS, timeoutMS int64) {
	if intervalMS <= 0 {
		return
	}
	iv := clampMS(intervalMS)
	a.interval, a.grace = iv, iv
	if timeoutMS > intervalMS {
		a.grace = clampMS(timeoutMS - intervalMS)
	}
}

func clampMS(ms int64) time.Duration {
	if ms > int64(maxInterval/time.Millisecond) {
		return maxInterval
	}
	return max(time.Duration(ms)*time.Millisecond, minInterval)
}

// schedulePing pings after the current interval, and again after each.
func (c *Client) schedulePing(a *attempt) {
	if a.interval <= 0 {
		return
	}
	a.ping = c.after(a.interval, func() {
		if a != c.conn {
			return
		}
		c.schedulePing(a)
		c.checkAlive(a)
	})
}

// checkAlive pings and expects a frame within the grace.
func (c *Client) checkAlive(a *attempt) {
	if a.watch != nil {
		return // a ping is already waiting for its answer
	}
	c.send(a, pingFrame)
	c.expect(a, a.grace, fmt.Sprintf("heartbeat_timeout: no frame from the server within %s of a ping", a.grace))
}

// expect gives a up unless a frame arrives within d.
func (c *Client) expect(a *attempt, d time.Duration, why string) {
	if a.watch != nil {
		a.watch.Stop()
	}
	a.watchID++
	id := a.watchID
	a.watch = c.after(d, func() {
		if a.watchID != id || a != c.conn {
			return
		}
		c.giveUp(a, 1006, why)
	})
}

// received notes a frame from the server: it is alive.
func (c *Client) received(a *attempt) {
	if a.watch == nil {
		return
	}
	a.watch.Stop()
	a.watch = nil
	a.watchID++
}

// alive is received for control frames (WebSocket pings and pongs).
func (c *Client) alive(a *attempt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a == c.conn {
		c.received(a)
	}
}

// giveUp closes a as if the server had closed it with code and reason.
func (c *Client) giveUp(a *attempt, code uint16, reason string) {
	if a != c.conn {
		return
	}
	c.onCloseLocked(a, code, reason, 0)
}
