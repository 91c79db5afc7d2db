package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushd/pushd/contract"
)

// Defaults for Config fields left at zero.
const (
	DefaultMaxMsgsPerSubject = 100
	DefaultMaxAge            = time.Hour
	DefaultMaxBytes          = 1 << 30
	DefaultDuplicateWindow   = 2 * time.Minute
	DefaultReplayMaxMsgs     = 100
	DefaultReplayMaxBytes    = 1 << 20

	defaultInterval = time.Second
	// missedEchoes heartbeats without their echo make history unavailable.
	missedEchoes = 3
	// ensureEvery is how many heartbeat intervals apart an unavailable
	// history tries to create or repair its streams.
	ensureEvery    = 5
	requestTimeout = 5 * time.Second
	infoTTL        = time.Second
)

// Errors of Replay and Range; match them with errors.Is. They are the
// contract's, so the node can tell them apart without importing history.
var (
	// ErrUnavailable means the streams do not answer: history is off or
	// JetStream is down. Live delivery goes on without positions.
	ErrUnavailable = contract.ErrNoHistory
	// ErrFuture means a position is ahead of everything the stream holds.
	ErrFuture = contract.ErrAheadOfHistory
)

// Limits bound one stream's history per subject.
type Limits struct {
	// MaxMsgsPerSubject is how many pushes are kept per user or doc. Zero
	// means 100.
	MaxMsgsPerSubject int64
	// MaxAge is how long a push is kept. Zero means 1h.
	MaxAge time.Duration
}

// Config configures a History.
type Config struct {
	// Conn is the node's NATS connection. Required.
	Conn *nats.Conn
	// Prefix is the subject prefix; empty means "push".
	Prefix string
	// NodeID names this node's heartbeat subjects.
	NodeID int64
	// Replicas is each stream's replica count. Zero means 1; a production
	// NATS cluster wants 3.
	Replicas int
	// Memory keeps the streams in memory instead of files (dev mode).
	Memory bool
	// MaxBytes bounds each stream. Zero means 1 GiB; negative means no limit.
	// Size it so it is never reached (docs/OPERATIONS.md): when it is, the
	// oldest pushes of every subject go first.
	MaxBytes int64
	// User and Doc bound the history of each user and each doc.
	User, Doc Limits
	// DuplicateWindow is how long Nats-Msg-Id de-duplicates publishes. Zero
	// means 2m.
	DuplicateWindow time.Duration
	// ReplayMaxMsgs and ReplayMaxBytes bound one replay; a client further
	// behind is told recovered:false. Zero means 100 pushes and 1 MiB.
	ReplayMaxMsgs  int
	ReplayMaxBytes int
	// Interval is the heartbeat period. Zero means 1s.
	Interval time.Duration
	// Logger receives the history's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the history's metrics. Nil means not registered.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	for _, l := range []*Limits{&c.User, &c.Doc} {
		if l.MaxMsgsPerSubject <= 0 {
			l.MaxMsgsPerSubject = DefaultMaxMsgsPerSubject
		}
		if l.MaxAge <= 0 {
			l.MaxAge = DefaultMaxAge
		}
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.ReplayMaxMsgs <= 0 {
		c.ReplayMaxMsgs = DefaultReplayMaxMsgs
	}
	if c.ReplayMaxBytes <= 0 {
		c.ReplayMaxBytes = DefaultReplayMaxBytes
	}
	if c.Interval <= 0 {
		c.Interval = defaultInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// History is one node's access to the history streams. Create it with New,
// Start it, and Close it at shutdown.
type History struct {
	cfg      Config
	log      *slog.Logger
	nc       *nats.Conn
	js       jetstream.JetStream
	subjects contract.Subjects
	users    *stream
	docs     *stream
	metrics  *metrics

	available atomic.Bool
	reqs      requests

	mu       sync.Mutex
	beats    *nats.Subscription
	watchers []func(bool)

	stop chan struct{}
	done sync.WaitGroup
}

// stream is one of the two history streams.
type stream struct {
	target  contract.Target
	name    string
	limits  Limits
	subject string // the pushes it holds: <prefix>.<kind>.>
	beats   string // the heartbeats it holds: <prefix>.history.<kind>.*

	// firstSeq is the sequence the stream was created at: positions below
	// it come from an earlier stream of the same name (a reset).
	firstSeq atomic.Uint64
	// lastEcho is when this node's heartbeat last came back (UnixNano).
	lastEcho atomic.Int64
	// position is the highest sequence this node has seen of the stream.
	position atomic.Uint64

	infoMu sync.Mutex
	info   streamInfo
}

// streamInfo is what a replay needs to know of a stream, at most infoTTL old.
type streamInfo struct {
	at       time.Time
	firstSeq uint64 // the lowest sequence the stream still holds
	lastSeq  uint64
	bytes    uint64
	// ageSeq is the first sequence stored within the last MaxAge: pushes
	// before it may have expired.
	ageSeq uint64
}

// New returns a History for cfg. It does nothing on NATS until Start.
func New(cfg Config) (*History, error) {
	if cfg.Conn == nil {
		return nil, errors.New("pushd: history needs a NATS connection")
	}
	cfg.setDefaults()
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("pushd: history: %w", err)
	}
	subjects := contract.NewSubjects(cfg.Prefix)
	name := StreamPrefix(subjects.Prefix())
	h := &History{
		cfg:      cfg,
		log:      cfg.Logger,
		nc:       cfg.Conn,
		js:       js,
		subjects: subjects,
		users: &stream{target: contract.TargetUser, name: name + "_USERS", limits: cfg.User,
			subject: subjects.Prefix() + ".user.>", beats: subjects.Prefix() + ".history.user.*"},
		docs: &stream{target: contract.TargetDoc, name: name + "_DOCS", limits: cfg.Doc,
			subject: subjects.Prefix() + ".doc.>", beats: subjects.Prefix() + ".history.doc.*"},
		stop: make(chan struct{}),
	}
	h.metrics = newMetrics(cfg.Registerer, h)
	return h, nil
}

// StreamPrefix is the name the history streams of a subject prefix start
// with: "push" gives PUSH (PUSH_USERS, PUSH_DOCS); dots become underscores.
func StreamPrefix(prefix string) string {
	return strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(prefix))
}

// StreamNames are the streams' names for a subject prefix: users, docs.
func StreamNames(prefix string) (users, docs string) {
	p := StreamPrefix(contract.NewSubjects(prefix).Prefix())
	return p + "_USERS", p + "_DOCS"
}

func (h *History) stream(t contract.Target) *stream {
	if t == contract.TargetDoc {
		return h.docs
	}
	return h.users
}

// Start creates or updates the streams, and runs the heartbeat that tells
// whether they work, until Close. When JetStream does not answer, Start
// logs it and returns nil: live delivery must go on, and the heartbeat
// keeps trying to create the streams.
func (h *History) Start(ctx context.Context) error {
	if err := h.reqs.start(h.nc); err != nil {
		return err
	}
	beats, err := h.nc.Subscribe(h.subjects.HistoryBeats(h.cfg.NodeID), h.echo)
	if err != nil {
		h.reqs.close()
		return fmt.Errorf("pushd: history: %w", err)
	}
	h.mu.Lock()
	h.beats = beats
	h.mu.Unlock()
	ectx, cancel := context.WithTimeout(ctx, 2*time.Second) // no JetStream must not hold a start up
	err = h.ensure(ectx)
	cancel()
	h.done.Add(1)
	go h.run()
	if err != nil {
		h.log.Warn("history streams not ready; live delivery goes on without positions, retrying", "err", err)
		return nil
	}
	// Wait for the first heartbeats to come back: positions come from
	// echoes (see Position), so a node serves them from its first session.
	deadline := time.NewTimer(missedEchoes * h.cfg.Interval)
	defer deadline.Stop()
	tick := time.NewTicker(h.cfg.Interval / 10)
	defer tick.Stop()
	for h.users.lastEcho.Load() == 0 || h.docs.lastEcho.Load() == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			h.log.Warn("history heartbeat did not come back; live delivery goes on without positions")
			return nil
		case <-tick.C:
		}
	}
	h.setAvailable(true)
	return nil
}

// run publishes heartbeats, watches their echoes and repairs the streams.
func (h *History) run() {
	defer h.done.Done()
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	down := 0
	reconnects := h.nc.Stats().Reconnects
	var back int64 // when the connection was last seen back (UnixNano)
	for {
		for _, st := range []*stream{h.users, h.docs} {
			if err := h.nc.Publish(h.subjects.HistoryBeat(st.target, h.cfg.NodeID), nil); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				h.log.Debug("history heartbeat not published", "err", err)
			}
		}
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			limit := now.Add(-missedEchoes * h.cfg.Interval).UnixNano()
			ok := h.users.lastEcho.Load() > limit && h.docs.lastEcho.Load() > limit
			// Echoes missed while this node was away from NATS say nothing
			// of the streams: no copy could reach it. It judges them only
			// once it has been back for missedEchoes intervals. Taking
			// them for gone would switch to the plain subjects and then
			// back at the stream's newest position, so the pushes stored
			// while it was away would never be read (the router reads
			// them after a reconnect: checkPositions), and live pushes
			// would go out without positions meanwhile.
			if r := h.nc.Stats().Reconnects; r != reconnects {
				reconnects, back = r, now.UnixNano()
			}
			if !ok && h.Available() && (!h.nc.IsConnected() || back > limit) {
				continue
			}
			h.setAvailable(ok)
			if ok {
				down = 0
				continue
			}
			if down++; down%ensureEvery == 1 {
				ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
				if err := h.ensure(ctx); err != nil {
					h.log.Debug("history streams still not ready", "err", err)
				}
				cancel()
			}
		}
	}
}

// echo is a heartbeat of this node coming back from a stream.
func (h *History) echo(m *nats.Msg) {
	st := h.users
	if strings.Contains(m.Subject, ".history.doc.") {
		st = h.docs
	}
	now := time.Now()
	st.lastEcho.Store(now.UnixNano())
	if seq, err := strconv.ParseUint(m.Header.Get(contract.HeaderStreamSequence), 10, 64); err == nil {
		st.see(seq)
	}
	if ts, err := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp")); err == nil {
		h.metrics.echo.Set(now.Sub(ts).Seconds())
	}
}

func (h *History) setAvailable(ok bool) {
	if h.available.Swap(ok) == ok {
		return
	}
	if ok {
		h.log.Info("history available: pushes carry positions and clients can resume")
	} else {
		h.log.Warn("history unavailable: live delivery goes on without positions; resuming clients are told recovered:false")
	}
	h.mu.Lock()
	watchers := h.watchers
	h.mu.Unlock()
	for _, fn := range watchers {
		fn(ok)
	}
}

// Notify makes fn be called, from the History's goroutine, whenever
// history turns available or unavailable.
func (h *History) Notify(fn func(bool)) {
	h.mu.Lock()
	h.watchers = append(h.watchers, fn)
	h.mu.Unlock()
}

// Available reports whether the streams work now.
func (h *History) Available() bool { return h.available.Load() }

// see records that the stream holds seq.
func (st *stream) see(seq uint64) {
	for {
		cur := st.position.Load()
		if seq <= cur || st.position.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// See records a sequence of target's stream that arrived live.
func (h *History) See(t contract.Target, seq uint64) { h.stream(t).see(seq) }

// Position is where target's stream stands as far as this node knows: the
// highest position of a push or heartbeat the stream republished to this
// node. Every push stored before it has reached this node already (the
// stream republishes in order, on one connection), so a client that joins
// and is given it misses nothing that is not delivered to it live or on its
// resume. ok is false when history is unavailable.
func (h *History) Position(t contract.Target) (uint64, bool) {
	if !h.Available() {
		return 0, false
	}
	return h.stream(t).position.Load(), true
}

// ensure creates the streams, or updates them to the configured limits.
func (h *History) ensure(ctx context.Context) error {
	var errs []error
	for _, st := range []*stream{h.users, h.docs} {
		if err := h.ensureStream(ctx, st); err != nil {
			errs = append(errs, fmt.Errorf("stream %s: %w", st.name, err))
		}
	}
	return errors.Join(errs...)
}

func (h *History) ensureStream(ctx context.Context, st *stream) error {
	storage := jetstream.FileStorage
	if h.cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	maxBytes := h.cfg.MaxBytes
	if maxBytes < 0 {
		maxBytes = -1
	}
	p := h.subjects.Prefix()
	cfg := jetstream.StreamConfig{
		Name:              st.name,
		Description:       "pushd history of " + string(st.target) + " pushes (" + p + ")",
		Subjects:          []string{st.subject, st.beats},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: st.limits.MaxMsgsPerSubject,
		MaxAge:            st.limits.MaxAge,
		MaxBytes:          maxBytes,
		Storage:           storage,
		Replicas:          h.cfg.Replicas,
		Duplicates:        h.cfg.DuplicateWindow,
		AllowDirect:       true,
		RePublish:         &jetstream.RePublish{Source: p + ".>", Destination: p + ".seq.>"},
	}
	s, err := h.js.Stream(ctx, st.name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// A new stream starts at the current time in nanoseconds, so its
		// positions are above those of any stream of the same name before
		// it: a client resuming from an older stream is told it cannot be
		// recovered rather than served someone else's pushes.
		cfg.FirstSeq = uint64(time.Now().UnixNano())
		s, err = h.js.CreateStream(ctx, cfg)
		if err == nil {
			h.log.Info("history stream created", "stream", st.name, "first_seq", cfg.FirstSeq)
		} else {
			s, err = h.js.Stream(ctx, st.name) // another node created it first
		}
	}
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	cfg.FirstSeq = info.Config.FirstSeq
	if cfg.Storage != info.Config.Storage {
		h.log.Warn("history stream keeps its storage; change it by recreating the stream", "stream", st.name, "storage", info.Config.Storage)
		cfg.Storage = info.Config.Storage
	}
	if changed(info.Config, cfg) {
		if _, err := h.js.UpdateStream(ctx, cfg); err != nil {
			h.log.Warn("history stream not updated to the configured limits", "stream", st.name, "err", err)
		} else {
			h.log.Info("history stream updated", "stream", st.name)
		}
	}
	st.firstSeq.Store(max(info.Config.FirstSeq, 1))
	return nil
}

// changed reports whether an existing stream differs from what we want in
// what we set.
func changed(have, want jetstream.StreamConfig) bool {
	return have.MaxMsgsPerSubject != want.MaxMsgsPerSubject || have.MaxAge != want.MaxAge || have.MaxBytes != want.MaxBytes ||
		have.Replicas != want.Replicas || have.Duplicates != want.Duplicates || !have.AllowDirect ||
		have.RePublish == nil || *have.RePublish != *want.RePublish || !equalStrings(have.Subjects, want.Subjects)
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Close stops the heartbeat and the reads.
func (h *History) Close() error {
	h.mu.Lock()
	beats := h.beats
	h.beats = nil
	h.mu.Unlock()
	if beats == nil {
		return nil
	}
	close(h.stop)
	h.done.Wait()
	err := beats.Unsubscribe()
	h.reqs.close()
	if errors.Is(err, nats.ErrConnectionClosed) {
		err = nil
	}
	return err
}
