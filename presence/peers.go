package presence

import (
	"time"

	"github.com/pushd/pushd/contract"
)

// Liveness: remote members belong to an instance (a pushd process), and go
// with it. The cluster's heartbeats say which instances are alive (Peer);
// an instance declared gone is tombstoned, so nothing it sent late brings
// its members back.

// Peer tells the tracker that a node instance's heartbeats started (alive)
// or stopped: its members are dropped on every doc, with leave events of
// reason node_lost. An instance declared gone that heartbeats again (a
// healed partition, a NATS reconnect) has its members fetched again for
// every doc held. Call it from the cluster's peer callback; it does not
// block on the network.
func (t *Tracker) Peer(node int64, inst string, alive bool) {
	if inst == "" || inst == t.cfg.Instance {
		return
	}
	if alive {
		t.instMu.Lock()
		t.live[inst] = true
		_, returned := t.tombstones[inst]
		delete(t.tombstones, inst)
		t.instMu.Unlock()
		if returned {
			t.log.Info("presence: a node declared gone is back; fetching its members", "node", node, "instance", inst)
			t.refetch(node, inst)
		}
		return
	}
	t.lost(node, inst)
}

// lost drops inst's members everywhere and tombstones it.
func (t *Tracker) lost(node int64, inst string) {
	t.instMu.Lock()
	delete(t.live, inst)
	if len(t.tombstones) >= maxTombstones {
		t.pruneTombstonesLocked(time.Now(), true)
	}
	t.tombstones[inst] = time.Now()
	docs := make([]*docState, 0, len(t.byInst[inst]))
	for d := range t.byInst[inst] {
		docs = append(docs, d)
	}
	t.instMu.Unlock()
	dropped := 0
	for _, d := range docs {
		d.mu.Lock()
		if r := d.remotes[inst]; r != nil && !d.closed {
			dropped += d.drop(r, contract.LeaveNodeLost)
		}
		d.mu.Unlock()
	}
	if dropped > 0 {
		t.metrics.nodesLost.Inc()
		t.metrics.membersLost.Add(float64(dropped))
		t.log.Info("presence: node gone; its members dropped", "node", node, "instance", inst, "members", dropped, "docs", len(docs))
	}
}

// gone reports whether inst was declared gone.
func (t *Tracker) gone(inst string) bool {
	t.instMu.Lock()
	_, ok := t.tombstones[inst]
	t.instMu.Unlock()
	return ok
}

// refetch fetches inst's members of every doc this node holds.
func (t *Tracker) refetch(node int64, inst string) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		docs := make([]*docState, 0, len(sh.docs))
		for _, d := range sh.docs {
			docs = append(docs, d)
		}
		sh.mu.RUnlock()
		for _, d := range docs {
			d.mu.Lock()
			if !d.closed {
				r := d.remoteOf(node, inst)
				r.synced = false
				t.fetch(d, r, nil)
			}
			d.mu.Unlock()
		}
	}
}

// index notes that node's instance inst has members in d. Lock: d's.
func (t *Tracker) index(node int64, inst string, d *docState) {
	t.instMu.Lock()
	docs := t.byInst[inst]
	if docs == nil {
		docs = make(map[*docState]struct{})
		t.byInst[inst] = docs
		if _, ok := t.firstSeen[inst]; !ok {
			t.firstSeen[inst] = seen{at: time.Now(), node: node}
		}
	}
	docs[d] = struct{}{}
	t.instMu.Unlock()
}

// unindex forgets that inst has members in d. Lock: d's.
func (t *Tracker) unindex(inst string, d *docState) {
	t.instMu.Lock()
	if docs := t.byInst[inst]; docs != nil {
		delete(docs, d)
		if len(docs) == 0 {
			delete(t.byInst, inst)
		}
	}
	t.instMu.Unlock()
}

// seen is when an instance's members were first seen, and its node.
type seen struct {
	at   time.Time
	node int64
}

// maintain drops the members of instances the heartbeats never confirmed
// within GoneAfter, and forgets old tombstones.
func (t *Tracker) maintain(now time.Time) {
	type nodeInst struct {
		node int64
		inst string
	}
	var unconfirmed []nodeInst
	t.instMu.Lock()
	for inst, first := range t.firstSeen {
		if _, indexed := t.byInst[inst]; !indexed {
			delete(t.firstSeen, inst)
			continue
		}
		if t.cfg.GoneAfter > 0 && !t.live[inst] && now.Sub(first.at) > t.cfg.GoneAfter {
			unconfirmed = append(unconfirmed, nodeInst{first.node, inst})
			delete(t.firstSeen, inst)
		}
	}
	t.pruneTombstonesLocked(now, false)
	t.instMu.Unlock()
	for _, u := range unconfirmed {
		t.log.Info("presence: members of a node whose heartbeats never came are dropped", "node", u.node, "instance", u.inst)
		t.lost(u.node, u.inst)
	}
}

// pruneTombstonesLocked forgets tombstones older than tombstoneTTL, or with
// full set, the oldest half. Lock: instMu.
func (t *Tracker) pruneTombstonesLocked(now time.Time, full bool) {
	cut := now.Add(-tombstoneTTL)
	if full {
		var oldest time.Time
		for _, at := range t.tombstones {
			if oldest.IsZero() || at.Before(oldest) {
				oldest = at
			}
		}
		cut = oldest.Add(now.Sub(oldest) / 2)
	}
	for inst, at := range t.tombstones {
		if at.Before(cut) || at.Equal(cut) && full {
			delete(t.tombstones, inst)
		}
	}
}
