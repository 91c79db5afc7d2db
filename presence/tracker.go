package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushd/pushd/contract"
)

// Defaults for Config fields left at zero. They are exported so the flags
// of cmd/pushd show them without restating them.
const (
	DefaultWindow      = 200 * time.Millisecond
	DefaultLargeDoc    = 100
	DefaultSyncTimeout = time.Second
	DefaultGoneAfter   = 4 * time.Second

	// maxStretch is how many windows a large doc's window grows to at most.
	maxStretch = 10
	// tombstoneTTL is how long an instance declared gone is remembered, so
	// its late deltas are ignored and its return is noticed.
	tombstoneTTL = time.Hour
	// maxTombstones bounds that memory (a crash-looping node makes a new
	// instance each time).
	maxTombstones = 4096
	queueLen      = 8192
	shardCount    = 64
)

// Config configures a Tracker.
type Config struct {
	// Conn is the tracker's own NATS connection, made with nats.NoEcho(),
	// so that a holder's own subscription does not hide "no responders".
	// Required; the caller closes it after Close.
	Conn *nats.Conn
	// Prefix is the subject prefix; empty means "push".
	Prefix string
	// Node is this node's number and Instance its process's unique ID (the
	// cluster heartbeat's). Required.
	Node     int64
	Instance string
	// Window is how long a doc's changes wait to go out as one batch: each
	// listening session gets at most one presence frame per window. Zero
	// means 200ms; negative turns coalescing off (one frame per change, no
	// counts-only), for comparison.
	Window time.Duration
	// LargeDoc is the member count above which a doc's events carry counts
	// only and its window stretches in proportion (up to ten windows).
	// Zero means 100.
	LargeDoc int
	// SyncTimeout bounds a new holder's wait for the other holders'
	// members, and one fetch request. Zero means 1s.
	SyncTimeout time.Duration
	// GoneAfter is how long the members of an instance whose heartbeats were
	// never seen (Peer) are kept: it should be the cluster's own bound for
	// declaring a node gone. Zero means 4s; negative keeps them (no cluster).
	GoneAfter time.Duration
	// Logger receives the tracker's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the tracker's metrics. Nil means not registered.
	Registerer prometheus.Registerer
}

// Sink receives the coalesced events of the docs held, in order per doc,
// from one goroutine. *node.Node implements it.
type Sink interface {
	PresenceEvents(ev *contract.PresenceEvents)
}

// Tracker is one node's presence: see the package documentation.
type Tracker struct {
	cfg      Config
	nc       *nats.Conn
	subjects contract.Subjects
	log      *slog.Logger
	metrics  *metrics
	sink     Sink

	seed   maphash.Seed
	shards [shardCount]shard
	epochs atomic.Uint64
	queues []chan *nats.Msg

	// Prefixes of the subjects the tracker receives on.
	docPrefix, queryPrefix, inbox string
	roundSeq                      atomic.Uint64

	roundsMu sync.Mutex
	rounds   map[string]*docState // sync rounds by reply subject

	dirtyMu sync.Mutex
	dirtyM  map[*docState]struct{}
	kick    chan struct{}

	instMu     sync.Mutex
	byInst     map[string]map[*docState]struct{} // remote instance -> docs it has members in
	firstSeen  map[string]seen                   // remote instance -> when first indexed
	live       map[string]bool                   // instances the heartbeats confirm
	tombstones map[string]time.Time              // instances declared gone

	fetches fetcher

	mu      sync.Mutex
	subs    []*nats.Subscription // the node subject and the inbox
	started bool
	closed  bool
	closing atomic.Bool // set by Close: Track does nothing from then on
	stop    chan struct{}
	done    sync.WaitGroup
}

type shard struct {
	mu   sync.RWMutex
	docs map[string]*docState
}

// New returns a tracker for cfg; it receives nothing until Start.
func New(cfg Config) (*Tracker, error) {
	if cfg.Conn == nil {
		return nil, errors.New("pushd: presence needs a NATS connection")
	}
	if !cfg.Conn.Opts.NoEcho {
		return nil, errors.New("pushd: presence needs its own NATS connection made with nats.NoEcho()")
	}
	if cfg.Instance == "" || cfg.Node < 0 || cfg.Node > 1023 {
		return nil, errors.New("pushd: presence needs the node number and instance")
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.LargeDoc <= 0 {
		cfg.LargeDoc = DefaultLargeDoc
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = DefaultSyncTimeout
	}
	if cfg.GoneAfter == 0 {
		cfg.GoneAfter = DefaultGoneAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	subjects := contract.NewSubjects(cfg.Prefix)
	t := &Tracker{
		cfg:         cfg,
		nc:          cfg.Conn,
		subjects:    subjects,
		log:         cfg.Logger,
		seed:        maphash.MakeSeed(),
		docPrefix:   subjects.PresenceDoc(""),
		queryPrefix: subjects.PresenceQuery(""),
		inbox:       cfg.Conn.NewInbox(),
		rounds:      make(map[string]*docState),
		dirtyM:      make(map[*docState]struct{}),
		kick:        make(chan struct{}, 1),
		byInst:      make(map[string]map[*docState]struct{}),
		firstSeen:   make(map[string]seen),
		live:        make(map[string]bool),
		tombstones:  make(map[string]time.Time),
		stop:        make(chan struct{}),
	}
	for i := range t.shards {
		t.shards[i].docs = make(map[string]*docState)
	}
	for range max(2, runtime.GOMAXPROCS(0)) {
		t.queues = append(t.queues, make(chan *nats.Msg, queueLen))
	}
	t.fetches.init(t)
	t.metrics = newMetrics(t)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(t.metrics); err != nil {
			return nil, fmt.Errorf("pushd: presence metrics: %w", err)
		}
	}
	cfg.Conn.SetReconnectHandler(func(*nats.Conn) { t.resyncAll() })
	cfg.Conn.SetErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrSlowConsumer) {
			t.metrics.dropped.Inc() // a dropped delta is a gap: repaired by a fetch
			return
		}
		subject := ""
		if sub != nil {
			subject = sub.Subject
		}
		t.log.Warn("NATS async error", "subject", subject, "err", err)
	})
	return t, nil
}

// Start hands events to sink from now on, and answers fetches for this
// node's members. Call it once, before the first Track.
func (t *Tracker) Start(sink Sink) error {
	if sink == nil {
		return errors.New("pushd: presence needs a Sink")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.started || t.closed {
		return errors.New("pushd: presence started twice or closed")
	}
	t.started, t.sink = true, sink
	for _, q := range t.queues {
		t.done.Add(1)
		go t.work(q)
	}
	for _, subject := range []string{t.subjects.PresenceNode(t.cfg.Node), t.inbox + ".*"} {
		sub, err := t.nc.ChanSubscribe(subject, t.queueOf(subject))
		if err != nil {
			return fmt.Errorf("pushd: presence subscribe %s: %w", subject, err)
		}
		t.subs = append(t.subs, sub)
	}
	if err := t.nc.FlushTimeout(5 * time.Second); err != nil {
		t.log.Warn("presence subscriptions not confirmed", "err", err)
	}
	t.done.Add(2)
	go t.flushLoop()
	go t.fetches.run()
	return nil
}

// Close stops the tracker: it leaves every doc it holds (without leave
// deltas: the node drained its sessions first, or is going away, which the
// heartbeats tell the other nodes) and waits for its goroutines.
func (t *Tracker) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.closing.Store(true)
	subs := t.subs
	t.subs = nil
	t.mu.Unlock()
	var errs []error
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for doc, d := range sh.docs {
			d.mu.Lock()
			t.release(d)
			d.mu.Unlock()
			delete(sh.docs, doc)
		}
		sh.mu.Unlock()
	}
	close(t.stop)
	t.done.Wait()
	if err := t.nc.FlushTimeout(2 * time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (t *Tracker) shardOf(doc string) *shard {
	return &t.shards[maphash.String(t.seed, doc)%shardCount]
}

// queueOf is the worker for a subject; a doc's subjects always map to the
// same one, so its deltas are applied in arrival order.
func (t *Tracker) queueOf(key string) chan *nats.Msg {
	return t.queues[maphash.String(t.seed, key)%uint64(len(t.queues))]
}

// Track adds session m to doc's members. When the session wants presence
// events for the doc, listen is not nil: it is called, under the doc's lock
// and before any later change can be handed out, with the number of the
// session's own join; the session gets the changes numbered after it. A
// session tracked already is not added again, but listen turns its events
// on. The first member of a doc here makes the node a holder: it subscribes
// to the doc's presence subjects and asks the other holders for their
// members.
func (t *Tracker) Track(doc string, m contract.Member, listen func(since uint64)) {
	sh := t.shardOf(doc)
	sh.mu.Lock()
	if t.closing.Load() { // checked under the shard lock Close takes
		sh.mu.Unlock()
		return
	}
	d := sh.docs[doc]
	if d == nil {
		d = t.hold(doc)
		sh.docs[doc] = d
	}
	d.mu.Lock()
	sh.mu.Unlock()
	defer d.mu.Unlock()
	if l, ok := d.local[m.SID]; ok { // joined twice: maybe events now
		if listen != nil && !l.events {
			l.events = true
			d.local[m.SID] = l
			d.listeners++
			listen(d.evSeq)
		}
		return
	}
	m.Node = t.cfg.Node
	d.local[m.SID] = local{m: m, events: listen != nil}
	d.counted(m.User, 1)
	seq := d.changed(true, m, "")
	if listen != nil {
		d.listeners++
		listen(seq)
	}
	t.publish(d, message{Op: opJoin, Member: &m})
}

// Untrack removes session sid from doc's members, for reason. The last
// member of a doc here ends the node's holding of it.
func (t *Tracker) Untrack(doc, sid string, reason contract.LeaveReason) {
	sh := t.shardOf(doc)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	d := sh.docs[doc]
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.local[sid]
	if !ok {
		return
	}
	delete(d.local, sid)
	d.counted(l.m.User, -1)
	if l.events {
		d.listeners--
	}
	d.changed(false, l.m, reason)
	t.publish(d, message{Op: opLeave, SID: sid, Reason: reason})
	if len(d.local) == 0 {
		t.release(d)
		delete(sh.docs, doc)
	}
}

// hold makes this node a holder of doc: subscribe, then ask the holders
// for their members. The order matters: any holder either sees the sync
// request or publishes its first delta after our subscription.
func (t *Tracker) hold(doc string) *docState {
	d := newDocState(t, doc, t.epochs.Add(1))
	t.metrics.holds.Inc()
	q := t.queueOf(doc)
	sub, err := t.nc.ChanSubscribe(t.subjects.PresenceDoc(doc), q)
	if err == nil {
		d.subs = append(d.subs, sub)
		sub, err = t.nc.ChanQueueSubscribe(t.subjects.PresenceQuery(doc), contract.PresenceQueueGroup, q)
		if err == nil {
			d.subs = append(d.subs, sub)
		}
	}
	if err != nil {
		t.log.Warn("presence: cannot subscribe; this node's view of the doc is local only", "doc", doc, "err", err)
		d.setReady()
		return d
	}
	t.sync(d, "hold")
	return d
}

// sync asks the doc's holders for their members: when this node starts
// holding it (kind "hold"), and after a NATS reconnect ("resync"), when
// deltas may have been lost while it was away. Every remote instance known
// is expected to answer; one that does not by the deadline is fetched (and
// dropped if it no longer holds the doc). Lock: d's.
func (t *Tracker) sync(d *docState, kind string) {
	if d.round != nil {
		t.endRound(d.round.reply)
	}
	reply := t.inbox + "." + fmt.Sprint(t.roundSeq.Add(1))
	d.round = &syncRound{reply: reply, deadline: time.Now().Add(t.cfg.SyncTimeout),
		expected: map[string]holder{}, answered: map[string]bool{}}
	for inst, r := range d.remotes {
		d.round.expected[inst] = holder{Node: r.node, Inst: inst}
	}
	t.roundsMu.Lock()
	t.rounds[reply] = d
	t.roundsMu.Unlock()
	body, _ := json.Marshal(message{Op: opSync, Node: t.cfg.Node, Inst: t.cfg.Instance})
	if err := t.nc.PublishRequest(t.subjects.PresenceDoc(d.doc), reply, body); err != nil {
		t.log.Warn("presence: sync request not sent", "doc", d.doc, "err", err)
		d.setReady()
	}
	t.metrics.syncs.WithLabelValues(kind).Inc()
}

// resyncAll syncs every doc held again: after a NATS reconnect, deltas
// published while this node was away are lost to it.
func (t *Tracker) resyncAll() {
	n := 0
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
				t.sync(d, "resync")
				n++
			}
			d.mu.Unlock()
		}
	}
	if n > 0 {
		t.log.Info("presence: NATS reconnected; syncing the docs held again", "docs", n)
	}
}

// release ends the holding of d. Locks: the shard's and d's.
func (t *Tracker) release(d *docState) {
	d.closed = true
	for _, s := range d.subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			t.log.Debug("presence unsubscribe", "doc", d.doc, "err", err)
		}
	}
	d.subs = nil
	for inst := range d.remotes {
		t.unindex(inst, d)
	}
	d.setReady() // answers queries that still wait, from what is known
	if d.round != nil {
		t.endRound(d.round.reply)
		d.round = nil
	}
	d.pending = nil
	t.dirtyMu.Lock()
	delete(t.dirtyM, d)
	t.dirtyMu.Unlock()
}

// publish sends one of this node's deltas for d, numbered. Lock: d's.
func (t *Tracker) publish(d *docState, m message) {
	d.seq++
	m.Node, m.Inst, m.Epoch, m.Seq = t.cfg.Node, t.cfg.Instance, d.epoch, d.seq
	body, _ := json.Marshal(m)
	if err := t.nc.Publish(t.subjects.PresenceDoc(d.doc), body); err != nil {
		t.log.Debug("presence delta not published", "doc", d.doc, "err", err)
		return
	}
	t.metrics.deltas.WithLabelValues("published").Inc()
}

// Query answers a page of doc's presence: from this node's copy when it
// holds the doc, else from a holder over NATS; nobody holding it is an
// empty presence at once.
func (t *Tracker) Query(ctx context.Context, doc string, q contract.PresenceQuery) (contract.PresencePage, error) {
	sh := t.shardOf(doc)
	sh.mu.RLock()
	d := sh.docs[doc]
	sh.mu.RUnlock()
	if d != nil {
		select {
		case <-d.ready:
		case <-ctx.Done():
			return contract.PresencePage{}, ctx.Err()
		}
		d.mu.Lock()
		if !d.closed {
			p := d.page(q)
			d.mu.Unlock()
			return p, nil
		}
		d.mu.Unlock()
	}
	body, _ := json.Marshal(q)
	m, err := t.nc.RequestWithContext(ctx, t.subjects.PresenceQuery(doc), body)
	if errors.Is(err, nats.ErrNoResponders) {
		return contract.PresencePage{Doc: doc, Members: emptyIfNot(q.Stats), Node: -1}, nil
	}
	if err != nil {
		return contract.PresencePage{}, fmt.Errorf("presence of %s: %w", doc, err)
	}
	var p contract.PresencePage
	if err := json.Unmarshal(m.Data, &p); err != nil {
		return contract.PresencePage{}, fmt.Errorf("presence of %s: bad answer: %w", doc, err)
	}
	if p.Error != "" {
		return p, fmt.Errorf("presence of %s: %s: %s", doc, p.Error, p.Message)
	}
	if p.Members == nil && !q.Stats {
		p.Members = []contract.Member{}
	}
	return p, nil
}

func emptyIfNot(stats bool) []contract.Member {
	if stats {
		return nil
	}
	return []contract.Member{}
}

// work handles what arrives on the tracker's subscriptions until Close.
func (t *Tracker) work(q chan *nats.Msg) {
	defer t.done.Done()
	for {
		select {
		case <-t.stop:
			return
		case m := <-q:
			t.handle(m)
		}
	}
}

func (t *Tracker) handle(m *nats.Msg) {
	switch {
	case strings.HasPrefix(m.Subject, t.docPrefix):
		t.onDoc(strings.TrimPrefix(m.Subject, t.docPrefix), m)
	case strings.HasPrefix(m.Subject, t.queryPrefix):
		t.onQuery(strings.TrimPrefix(m.Subject, t.queryPrefix), m)
	case strings.HasPrefix(m.Subject, t.inbox+"."):
		t.onSyncAnswer(m)
	case m.Subject == t.subjects.PresenceNode(t.cfg.Node):
		t.onFetch(m)
	}
}

// held returns the state of a doc this node holds, locked; nil when it
// holds none.
func (t *Tracker) held(doc string) *docState {
	sh := t.shardOf(doc)
	sh.mu.RLock()
	d := sh.docs[doc]
	sh.mu.RUnlock()
	if d == nil {
		return nil
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	return d
}

// onDoc applies another holder's delta, or answers its sync request with
// this node's members.
func (t *Tracker) onDoc(doc string, nm *nats.Msg) {
	m, err := decodeMessage(nm.Data)
	if err != nil {
		t.metrics.invalid.Inc()
		t.log.Debug("presence: bad message", "subject", nm.Subject, "err", err)
		return
	}
	if m.Inst == t.cfg.Instance {
		return
	}
	d := t.held(doc)
	if d == nil {
		return
	}
	defer d.mu.Unlock()
	if m.Op == opSync {
		if nm.Reply == "" {
			return
		}
		s := d.snapshotPage(-1)
		s.Holders = d.holders()
		t.respond(nm, s)
		return
	}
	t.metrics.deltas.WithLabelValues("received").Inc()
	if t.gone(m.Inst) {
		return // a late delta of a node declared gone: no resurrection
	}
	d.delta(m)
}

// onSyncAnswer takes another holder's answer to this node's sync request.
func (t *Tracker) onSyncAnswer(nm *nats.Msg) {
	t.roundsMu.Lock()
	d := t.rounds[nm.Subject]
	t.roundsMu.Unlock()
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	if len(nm.Data) == 0 && nm.Header.Get("Status") == "503" { // no responders: nobody else holds it
		d.setReady()
		return
	}
	s, err := decodeSnapshot(nm.Data)
	if err != nil {
		t.metrics.invalid.Inc()
		t.log.Debug("presence: bad sync answer", "doc", d.doc, "err", err)
		return
	}
	if s.Inst == t.cfg.Instance || t.gone(s.Inst) {
		return
	}
	if r := d.round; r != nil {
		r.answered[s.Inst] = true
		r.expected[s.Inst] = holder{Node: s.Node, Inst: s.Inst}
		for _, h := range s.Holders {
			if h.Inst != t.cfg.Instance && !t.gone(h.Inst) {
				r.expected[h.Inst] = h
			}
		}
	}
	t.snapshotPage(d, s)
	d.checkRound()
}

// snapshotPage applies the first page of an instance's members: complete,
// it is installed; with more to come, a fetch takes it from there. Lock:
// d's.
func (t *Tracker) snapshotPage(d *docState, s snapshot) {
	r := d.remotes[s.Inst]
	if s.Epoch == 0 {
		if r != nil && r.synced {
			d.drop(r, contract.LeaveDisconnected)
		}
		return
	}
	if r != nil && r.synced && (r.epoch > s.Epoch || r.epoch == s.Epoch && r.seq >= s.Seq) {
		return // the deltas told us more already
	}
	r = d.remoteOf(s.Node, s.Inst)
	if !s.More {
		if !r.fetching {
			d.install(r, toMap(s.Members), s.Epoch, s.Seq)
		}
		return
	}
	r.synced = false
	t.fetch(d, r, &s)
}

func toMap(members []contract.Member) map[string]contract.Member {
	out := make(map[string]contract.Member, len(members))
	for _, m := range members {
		out[m.SID] = m
	}
	return out
}

// onQuery answers a query in the queue group, once the doc is ready.
func (t *Tracker) onQuery(doc string, nm *nats.Msg) {
	if nm.Reply == "" {
		return
	}
	d := t.held(doc)
	if d == nil { // released just now
		t.respond(nm, contract.PresencePage{Doc: doc, Members: []contract.Member{}, Node: -1})
		return
	}
	defer d.mu.Unlock()
	if !d.isReady {
		d.waiting = append(d.waiting, nm)
		return
	}
	t.answerQuery(d, nm)
}

// answerQuery answers one query from d. Lock: d's.
func (t *Tracker) answerQuery(d *docState, nm *nats.Msg) {
	t.metrics.queries.Inc()
	q, err := DecodeQuery(nm.Data)
	if err != nil {
		t.respond(nm, contract.PresencePage{Doc: d.doc, Node: t.cfg.Node, Error: "bad_request", Message: err.Error()})
		return
	}
	t.respond(nm, d.page(q))
}

// onFetch answers another node's fetch of this node's members of a doc.
func (t *Tracker) onFetch(nm *nats.Msg) {
	if nm.Reply == "" {
		return
	}
	var req fetchRequest
	if err := json.Unmarshal(nm.Data, &req); err != nil || contract.ValidateID(req.Doc) != nil {
		t.metrics.invalid.Inc()
		return
	}
	after := int64(-1)
	if req.After != "" {
		after = (&contract.Member{SID: req.After}).SIDNum()
	}
	d := t.held(req.Doc)
	if d == nil {
		t.respond(nm, snapshot{Node: t.cfg.Node, Inst: t.cfg.Instance, Members: []contract.Member{}})
		return
	}
	s := d.snapshotPage(after)
	d.mu.Unlock()
	t.respond(nm, s)
}

func (t *Tracker) respond(nm *nats.Msg, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		t.log.Error("presence answer not encoded", "err", err)
		return
	}
	if err := nm.Respond(b); err != nil {
		t.log.Debug("presence answer not sent", "err", err)
	}
}

// endRound forgets a sync round's reply subject.
func (t *Tracker) endRound(reply string) {
	t.roundsMu.Lock()
	delete(t.rounds, reply)
	t.roundsMu.Unlock()
}

// dirty marks d as having events to hand out, due after its window. Lock:
// d's.
func (t *Tracker) dirty(d *docState) {
	now := time.Now()
	d.due = now
	if t.cfg.Window > 0 {
		if next := d.lastFlush.Add(t.window(d.count)); next.After(now) {
			d.due = next
		}
	}
	t.dirtyMu.Lock()
	t.dirtyM[d] = struct{}{}
	t.dirtyMu.Unlock()
	if !d.due.After(now) {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// window is the coalescing window of a doc of count members.
func (t *Tracker) window(count int) time.Duration {
	w := t.cfg.Window
	if count > t.cfg.LargeDoc {
		w *= time.Duration(min((count+t.cfg.LargeDoc-1)/t.cfg.LargeDoc, maxStretch))
	}
	return w
}
