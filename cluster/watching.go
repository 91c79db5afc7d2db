package cluster

import "time"

// Watching: whether this node would know of another live node using its
// number.
//
// Every node hears its own heartbeats back (NATS echoes a connection's
// messages to its own subscriptions). An unbroken run of those echoes says
// the node has been connected and subscribed to everyone's heartbeats all
// along, so a live node using the same number that reaches the same NATS
// would have been heard within an interval, and named by Duplicate. A node
// whose run is shorter than three intervals, or whose last echo is more than
// two intervals old (disconnected, or its server lost its subscription),
// cannot tell.
//
// It says nothing about nodes on the other side of a NATS partition: they
// cannot be heard.

// echoes tracks this node's heartbeats coming back. Guarded by Cluster.mu.
type echoes struct {
	last  time.Time // the latest echo
	since time.Time // the first echo of the current run without a gap
	// reported is the Watching value last passed to OnWatching.
	reported bool
}

// seen records an echo at now; a gap of more than two intervals since the
// previous one starts a new run.
func (e *echoes) seen(now time.Time, interval time.Duration) {
	if e.last.IsZero() || now.Sub(e.last) > 2*interval {
		e.since = now
	}
	e.last = now
}

// watching reports whether at now the run of echoes is recent and at least
// missedBeats intervals long.
func (e *echoes) watching(now time.Time, interval time.Duration) bool {
	return !e.last.IsZero() && now.Sub(e.last) <= 2*interval && now.Sub(e.since) >= missedBeats*interval
}

// Watching reports whether this node has heard its own heartbeats come back
// without a gap for the last three intervals: it has been connected to NATS
// and hearing every node's heartbeats all that time, so a live node using
// its number (on the NATS it reaches) would be known to Duplicate. It is
// false before Start, for three intervals after Start and after any gap in
// the NATS connection.
func (c *Cluster) Watching() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.echo.watching(time.Now(), c.cfg.Interval)
}

// checkWatching tells OnWatching, from the run goroutine, when Watching
// changed.
func (c *Cluster) checkWatching(now time.Time) {
	c.mu.Lock()
	w := c.echo.watching(now, c.cfg.Interval)
	changed := w != c.echo.reported
	c.echo.reported = w
	c.mu.Unlock()
	if !changed {
		return
	}
	if w {
		c.log.Info("hearing every node's heartbeats: a live node with this node's number would be seen", "node", c.cfg.Self.Node)
	} else {
		c.log.Warn("not hearing this node's own heartbeats back: another live node with its number could go unseen", "node", c.cfg.Self.Node)
	}
	if c.cfg.OnWatching != nil {
		c.cfg.OnWatching(w)
	}
}
