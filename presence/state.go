package presence

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/contract"
)

// maxHeld bounds the deltas held back per remote instance while its members
// are fetched; past it they are dropped and the fetch starts over.
const maxHeld = 4096

// local is one of this node's members of a doc.
type local struct {
	m      contract.Member
	events bool // the session asked for presence events
}

// remote is what a node knows of another instance's members of a doc.
type remote struct {
	node int64
	inst string
	// epoch and seq are the last delta applied; synced says every delta
	// up to seq was, so the next one must be seq+1.
	epoch, seq uint64
	synced     bool
	members    map[string]contract.Member
	// held are deltas that arrived while !synced, applied on top of the
	// fetched members; overflow says some were dropped.
	held     []message
	overflow bool
	// fetching is set while a fetch of its members is queued or running.
	fetching bool
}

// syncRound is a new holder's wait for the members of the doc's other
// holders. It is ready once every holder named answered, or at deadline;
// answers coming later (a holder nobody named yet) are still applied until
// roundLinger after the deadline.
type syncRound struct {
	reply    string
	deadline time.Time
	expected map[string]holder // known before, or named by an answer
	answered map[string]bool
	expired  bool // the deadline passed: unanswered holders were fetched
}

// docState is everything a node knows about one doc it holds. mu guards
// all of it; the tracker's shard lock is taken before mu, never after.
type docState struct {
	doc string
	t   *Tracker

	mu     sync.Mutex
	closed bool // no longer held: a stale pointer must do nothing
	subs   []*nats.Subscription

	// epoch is this node's holding epoch of the doc and seq its last delta.
	epoch, seq uint64
	local      map[string]local
	listeners  int // local members that asked for events
	remotes    map[string]*remote
	// users counts members per user, count all members (local and remote).
	users map[string]int
	count int
	// sorted caches every member ordered by session ID; nil when stale.
	sorted []contract.Member

	// ready is closed once the other holders' members are known (or the
	// sync timed out); queries wait for it.
	ready   chan struct{}
	isReady bool
	round   *syncRound
	waiting []*nats.Msg // queries that came before ready

	// evSeq numbers changes; pending are those not yet handed to the node.
	evSeq     uint64
	pending   []contract.PresenceChange
	due       time.Time
	lastFlush time.Time
}

func newDocState(t *Tracker, doc string, epoch uint64) *docState {
	return &docState{
		doc:     doc,
		t:       t,
		epoch:   epoch,
		local:   make(map[string]local),
		remotes: make(map[string]*remote),
		users:   make(map[string]int),
		ready:   make(chan struct{}),
	}
}

// counted adjusts the counts for a member of user coming (+1) or going (-1).
func (d *docState) counted(user string, delta int) {
	d.count += delta
	if n := d.users[user] + delta; n > 0 {
		d.users[user] = n
	} else {
		delete(d.users, user)
	}
	d.sorted = nil
}

// changed records a join or leave for the sessions listening for events; it
// returns the change's number. Members learned from the other holders when
// the node starts holding the doc are changes too: a listener that asked
// for the presence meanwhile sees them twice, which applying joins and
// leaves by session ID absorbs (docs/PROTOCOL.md).
func (d *docState) changed(join bool, m contract.Member, reason contract.LeaveReason) uint64 {
	d.evSeq++
	if d.listeners > 0 {
		if len(m.Info) > 0 && !join {
			m.Info = nil // a leave names who left, no more
		}
		d.pending = append(d.pending, contract.PresenceChange{Seq: d.evSeq, Join: join, Member: m, Reason: reason})
		if len(d.pending) == 1 {
			d.t.dirty(d)
		}
	}
	return d.evSeq
}

// setReady ends the sync: queries waiting for it are answered.
func (d *docState) setReady() {
	if d.isReady {
		return
	}
	d.isReady = true
	close(d.ready)
	for _, m := range d.waiting {
		d.t.answerQuery(d, m)
	}
	d.waiting = nil
}

// checkRound makes the doc ready once every holder an answer named has
// answered and its members are complete.
func (d *docState) checkRound() {
	r := d.round
	if r == nil || d.isReady {
		return
	}
	for inst := range r.expected {
		if !r.answered[inst] {
			return
		}
		if rm := d.remotes[inst]; rm != nil && !rm.synced {
			return
		}
	}
	d.setReady()
}

// remoteOf returns inst's state, making an empty unsynced one if needed.
func (d *docState) remoteOf(node int64, inst string) *remote {
	r := d.remotes[inst]
	if r == nil {
		r = &remote{node: node, inst: inst, members: make(map[string]contract.Member)}
		d.remotes[inst] = r
		d.t.index(node, inst, d)
	}
	return r
}

// join adds or updates a remote member; only a new one is a change.
func (d *docState) join(r *remote, m contract.Member) {
	old, ok := r.members[m.SID]
	r.members[m.SID] = m
	if ok {
		if old.User != m.User {
			d.counted(old.User, -1)
			d.counted(m.User, 1)
		}
		d.sorted = nil
		return
	}
	d.counted(m.User, 1)
	d.changed(true, m, "")
}

// leave removes a remote member, if there.
func (d *docState) leave(r *remote, sid string, reason contract.LeaveReason) {
	m, ok := r.members[sid]
	if !ok {
		return
	}
	delete(r.members, sid)
	d.counted(m.User, -1)
	d.changed(false, m, reason)
}

// drop forgets inst's members of the doc, each a leave for reason.
func (d *docState) drop(r *remote, reason contract.LeaveReason) int {
	sids := sortedSIDs(r.members)
	for _, sid := range sids {
		d.leave(r, sid, reason)
	}
	delete(d.remotes, r.inst)
	d.t.unindex(r.inst, d)
	if d.round != nil {
		delete(d.round.expected, r.inst)
		d.checkRound()
	}
	return len(sids)
}

// tidy forgets a remote without members that needs nothing more: its node
// stopped holding the doc (its last member left).
func (d *docState) tidy(r *remote) {
	if len(r.members) == 0 && r.synced && !r.fetching && len(r.held) == 0 {
		delete(d.remotes, r.inst)
		d.t.unindex(r.inst, d)
	}
}

// delta applies a join or leave from another holder, in its order; a gap
// holds it back and fetches the holder's members.
func (d *docState) delta(m message) {
	r := d.remotes[m.Inst]
	switch {
	case r != nil && m.Epoch < r.epoch && r.synced:
		return // a leftover of the holder's earlier epoch
	case r == nil || m.Epoch > r.epoch:
		if m.Seq != 1 {
			r = d.remoteOf(m.Node, m.Inst)
			d.hold(r, m)
			return
		}
		// The first delta of an epoch: everything since it started.
		if r == nil {
			r = d.remoteOf(m.Node, m.Inst)
		} else {
			for _, sid := range sortedSIDs(r.members) {
				d.leave(r, sid, contract.LeaveDisconnected)
			}
		}
		r.epoch, r.seq, r.synced, r.held, r.overflow = m.Epoch, 0, true, nil, false
	}
	if !r.synced {
		d.hold(r, m)
		return
	}
	switch {
	case m.Seq <= r.seq:
		return // seen
	case m.Seq > r.seq+1:
		d.hold(r, m)
		return
	}
	d.apply(r, m)
	d.tidy(r)
}

// apply applies one delta of r's current epoch.
func (d *docState) apply(r *remote, m message) {
	r.seq = m.Seq
	switch m.Op {
	case opJoin:
		d.join(r, *m.Member)
	case opLeave:
		d.leave(r, m.SID, m.Reason)
	}
}

// hold keeps a delta back until r's members are fetched, and starts the
// fetch.
func (d *docState) hold(r *remote, m message) {
	r.synced = false
	if len(r.held) < maxHeld {
		r.held = append(r.held, m)
	} else {
		r.overflow = true
	}
	d.t.fetch(d, r, nil)
}

// install replaces r's members with a complete snapshot of them taken at
// (epoch, seq), then applies the deltas held back since. A gap among those
// fetches again.
func (d *docState) install(r *remote, members map[string]contract.Member, epoch, seq uint64) {
	for _, sid := range sortedSIDs(r.members) {
		if _, ok := members[sid]; !ok {
			d.leave(r, sid, contract.LeaveDisconnected)
		}
	}
	for _, sid := range sortedSIDs(members) {
		d.join(r, members[sid])
	}
	r.epoch, r.seq, r.synced = epoch, seq, true
	held, overflow := r.held, r.overflow
	r.held, r.overflow = nil, false
	slices.SortStableFunc(held, func(a, b message) int { return cmpU64(a.Seq, b.Seq) })
	for i, m := range held {
		if m.Epoch != epoch || m.Seq <= r.seq {
			continue
		}
		if m.Seq > r.seq+1 || overflow {
			r.held = append(r.held, held[i:]...)
			r.synced = false
			d.t.fetch(d, r, nil)
			return
		}
		d.apply(r, m)
	}
	d.checkRound()
	d.tidy(r)
}

// snapshotPage is a page of this node's own members of the doc, after the
// session ID after (-1: from the start).
func (d *docState) snapshotPage(after int64) snapshot {
	s := snapshot{Node: d.t.cfg.Node, Inst: d.t.cfg.Instance, Epoch: d.epoch, Seq: d.seq, Members: []contract.Member{}}
	list := make([]contract.Member, 0, len(d.local))
	for _, l := range d.local {
		if l.m.SIDNum() > after {
			list = append(list, l.m)
		}
	}
	slices.SortFunc(list, bySID)
	if len(list) > maxSnapshotPage {
		list, s.More = list[:maxSnapshotPage], true
	}
	s.Members = append(s.Members, list...)
	return s
}

// holders are the instances known to hold the doc, this one included.
func (d *docState) holders() []holder {
	out := []holder{{Node: d.t.cfg.Node, Inst: d.t.cfg.Instance}}
	for _, r := range d.remotes {
		if len(r.members) > 0 || len(r.held) > 0 {
			out = append(out, holder{Node: r.node, Inst: r.inst})
		}
	}
	return out
}

// page answers a query from the doc's members.
func (d *docState) page(q contract.PresenceQuery) contract.PresencePage {
	p := contract.PresencePage{Doc: d.doc, Sessions: d.count, Users: len(d.users), Node: d.t.cfg.Node}
	if q.Stats {
		return p
	}
	all := d.all()
	after := q.After()
	i, _ := slices.BinarySearchFunc(all, after, func(m contract.Member, after int64) int { return cmpI64(m.SIDNum(), after+1) })
	limit := q.PageSize()
	end := min(i+limit, len(all))
	p.Members = slices.Clone(all[i:end])
	if p.Members == nil {
		p.Members = []contract.Member{}
	}
	if end < len(all) {
		p.Next = all[end-1].SID
	}
	return p
}

// all is every member, ordered by session ID.
func (d *docState) all() []contract.Member {
	if d.sorted != nil {
		return d.sorted
	}
	out := make([]contract.Member, 0, d.count)
	for _, l := range d.local {
		out = append(out, l.m)
	}
	for _, r := range d.remotes {
		for _, m := range r.members {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, bySID)
	d.sorted = out
	return out
}

// takeEvents turns the pending changes into batches for the node: one
// coalesced batch, or one per change when coalescing is off.
func (d *docState) takeEvents(now time.Time) []*contract.PresenceEvents {
	pending := d.pending
	d.pending = nil
	d.lastFlush = now
	if len(pending) == 0 {
		return nil
	}
	if d.t.cfg.Window < 0 {
		out := make([]*contract.PresenceEvents, len(pending))
		for i, c := range pending {
			out[i] = &contract.PresenceEvents{Doc: d.doc, Changes: []contract.PresenceChange{c}, First: c.Seq, Last: c.Seq,
				Sessions: d.count, Users: len(d.users)}
		}
		return out
	}
	ev := &contract.PresenceEvents{Doc: d.doc, First: pending[0].Seq, Last: pending[len(pending)-1].Seq,
		Sessions: d.count, Users: len(d.users)}
	changes := coalesce(pending)
	if len(changes) == 0 {
		return nil
	}
	if d.count > d.t.cfg.LargeDoc {
		ev.CountsOnly = true
		for _, c := range changes {
			if c.Join {
				ev.Joined++
			} else {
				ev.Left++
			}
		}
		return []*contract.PresenceEvents{ev}
	}
	ev.Changes = changes
	return []*contract.PresenceEvents{ev}
}

// coalesce drops a join and a later leave of the same session within one
// batch: nobody saw that member.
func coalesce(changes []contract.PresenceChange) []contract.PresenceChange {
	joinAt := map[string]int{}
	drop := map[int]bool{}
	for i, c := range changes {
		if c.Join {
			joinAt[c.Member.SID] = i
			continue
		}
		if j, ok := joinAt[c.Member.SID]; ok {
			drop[i], drop[j] = true, true
			delete(joinAt, c.Member.SID)
		}
	}
	if len(drop) == 0 {
		return changes
	}
	out := make([]contract.PresenceChange, 0, len(changes)-len(drop))
	for i, c := range changes {
		if !drop[i] {
			out = append(out, c)
		}
	}
	return out
}

func sortedSIDs(m map[string]contract.Member) []string {
	out := make([]string, 0, len(m))
	for sid := range m {
		out = append(out, sid)
	}
	slices.SortFunc(out, func(a, b string) int {
		if c := cmpI64(int64(len(a)), int64(len(b))); c != 0 {
			return c // decimal session IDs: shorter is smaller
		}
		return strings.Compare(a, b)
	})
	return out
}

func bySID(a, b contract.Member) int { return cmpI64(a.SIDNum(), b.SIDNum()) }

func cmpI64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
