package cluster

import "time"

// Watch calls fn whenever another node instance starts being heard (alive:
// its first heartbeat, or the first after it was declared gone) or is
// declared gone (no heartbeat for three intervals). Calls come in the order
// the cluster saw the changes, under its lock: fn must return quickly and
// must not call the Cluster. Register watchers before Start.
func (c *Cluster) Watch(fn func(m Member, alive bool)) {
	c.mu.Lock()
	c.watchers = append(c.watchers, fn)
	c.mu.Unlock()
}

// notifyLocked tells the watchers about m. Lock: c.mu.
func (c *Cluster) notifyLocked(m Member, alive bool) {
	for _, fn := range c.watchers {
		fn(m, alive)
	}
}

// GoneAfter bounds how long after its last heartbeat a node that stopped
// (killed, or cut off from NATS) is declared gone: three missed intervals,
// noticed on the next tick.
func (c *Cluster) GoneAfter() time.Duration { return (missedBeats + 1) * c.cfg.Interval }
