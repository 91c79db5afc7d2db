package presence

import (
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/contract"
)

// Fetching: when a remote instance's deltas for a doc have a gap, or its
// snapshot took more than one page, or it came back after being declared
// gone, this node asks that instance for its members of the doc, page by
// page, on <prefix>.presence.node.<n>. Deltas arriving meanwhile are held
// back (remote.held) and applied on top of the result: applying a join or a
// leave twice changes nothing, so pages read at different moments add up to
// the members at the first page's position plus the deltas after it.

// fetchJob is one (doc, instance) to fetch; start, when set, is the first
// page, already received in a sync answer.
type fetchJob struct {
	d     *docState
	node  int64
	inst  string
	start *snapshot
	// notBefore delays a retry.
	notBefore time.Time
}

// fetcher runs fetches one at a time in its own goroutine.
type fetcher struct {
	t      *Tracker
	mu     sync.Mutex
	queue  []fetchJob
	signal chan struct{}
}

func (f *fetcher) init(t *Tracker) {
	f.t = t
	f.signal = make(chan struct{}, 1)
}

// fetch queues a fetch of r's members of d unless one is queued or running.
// Lock: d's.
func (t *Tracker) fetch(d *docState, r *remote, start *snapshot) {
	if r.fetching {
		return
	}
	r.fetching = true
	t.fetches.add(fetchJob{d: d, node: r.node, inst: r.inst, start: start})
}

func (f *fetcher) add(j fetchJob) {
	f.mu.Lock()
	f.queue = append(f.queue, j)
	f.mu.Unlock()
	select {
	case f.signal <- struct{}{}:
	default:
	}
}

// run works through the queue until the tracker stops.
func (f *fetcher) run() {
	t := f.t
	defer t.done.Done()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		f.mu.Lock()
		var j fetchJob
		found, wait := false, time.Duration(0)
		now := time.Now()
		for i, q := range f.queue {
			if !q.notBefore.After(now) {
				j, found = q, true
				f.queue = append(f.queue[:i], f.queue[i+1:]...)
				break
			}
			if d := q.notBefore.Sub(now); wait == 0 || d < wait {
				wait = d
			}
		}
		f.mu.Unlock()
		if found {
			f.do(j)
			continue
		}
		if wait > 0 {
			retry.Reset(wait)
		}
		select {
		case <-t.stop:
			return
		case <-f.signal:
		case <-retry.C:
		}
	}
}

// do fetches every page of one instance's members and installs them.
func (f *fetcher) do(j fetchJob) {
	t := f.t
	t.metrics.syncs.WithLabelValues("fetch").Inc()
	members := map[string]contract.Member{}
	var base snapshot
	s := j.start
	after := ""
	for restarts := 0; ; {
		if s == nil {
			page, err := f.page(j, after)
			if err != nil {
				f.failed(j, err)
				return
			}
			s = &page
		}
		if s.Inst != j.inst { // the node runs another instance now: this one is gone
			t.lost(j.node, j.inst)
			f.done(j)
			return
		}
		if base.Inst == "" {
			base = *s
		} else if s.Epoch != base.Epoch { // it stopped and started holding the doc meanwhile
			if restarts++; restarts > 3 {
				f.failed(j, errors.New("the holder's epoch keeps changing"))
				return
			}
			members, base, after, s = map[string]contract.Member{}, snapshot{}, "", nil
			continue
		}
		for _, m := range s.Members {
			members[m.SID] = m
		}
		if !s.More || len(s.Members) == 0 {
			break
		}
		after = s.Members[len(s.Members)-1].SID
		s = nil
	}
	j.d.mu.Lock()
	defer j.d.mu.Unlock()
	d := j.d
	r := d.remotes[j.inst]
	if d.closed || r == nil || t.gone(j.inst) {
		return
	}
	r.fetching = false
	switch {
	case base.Epoch == 0: // it does not hold the doc (any more)
		d.drop(r, contract.LeaveDisconnected)
	case r.synced && (r.epoch > base.Epoch || r.epoch == base.Epoch && r.seq >= base.Seq):
		d.checkRound() // the deltas got there first
		d.tidy(r)
	default:
		d.install(r, members, base.Epoch, base.Seq)
	}
}

// page asks for one page of the instance's members after the SID after.
func (f *fetcher) page(j fetchJob, after string) (snapshot, error) {
	t := f.t
	body, _ := json.Marshal(fetchRequest{Doc: j.d.doc, Inst: j.inst, After: after})
	m, err := t.nc.Request(t.subjects.PresenceNode(j.node), body, t.cfg.SyncTimeout)
	if err != nil {
		return snapshot{}, err
	}
	return decodeSnapshot(m.Data)
}

// failed retries a fetch later; when nobody answers for the node and the
// heartbeats do not confirm the instance, it is gone.
func (f *fetcher) failed(j fetchJob, err error) {
	t := f.t
	t.instMu.Lock()
	live := t.live[j.inst]
	t.instMu.Unlock()
	if errors.Is(err, nats.ErrNoResponders) && !live {
		t.lost(j.node, j.inst)
		f.done(j)
		return
	}
	t.log.Debug("presence: fetch failed; retrying", "doc", j.d.doc, "node", j.node, "instance", j.inst, "err", err)
	j.d.mu.Lock()
	r := j.d.remotes[j.inst]
	keep := !j.d.closed && r != nil && !t.gone(j.inst)
	j.d.mu.Unlock()
	if !keep {
		return
	}
	j.start, j.notBefore = nil, time.Now().Add(t.cfg.SyncTimeout)
	f.add(j)
}

// done clears the fetching mark of a job that installed nothing.
func (f *fetcher) done(j fetchJob) {
	j.d.mu.Lock()
	if r := j.d.remotes[j.inst]; r != nil {
		r.fetching = false
	}
	j.d.mu.Unlock()
}
