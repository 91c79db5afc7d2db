package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/contract"
)

// defaultMaxInFlight bounds the forwarded requests a node serves at once: a
// long-poll holds its goroutine for up to the poll timeout.
const defaultMaxInFlight = 1 << 16

// ForwarderConfig configures a Forwarder.
type ForwarderConfig struct {
	// Conn is the NATS connection. Required.
	Conn *nats.Conn
	// Prefix is the subject prefix. Empty means "push".
	Prefix string
	// NodeID is this node's number: Serve takes the requests for its
	// sessions.
	NodeID int64
	// MaxInFlight bounds the requests served at once; past it a request is
	// answered by Serve's busy function at once. Zero means 65536.
	MaxInFlight int
	// Logger receives the forwarder's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Forwarder carries the requests of HTTP sessions (SSE streams, polls,
// upstream POSTs) from the node an HTTP request reached to the node holding
// the session, over NATS request/reply on contract.Subjects.SessionRequests.
// It carries bytes: the node encodes requests and replies.
type Forwarder struct {
	nc       *nats.Conn
	subjects contract.Subjects
	node     int64
	log      *slog.Logger
	slots    chan struct{}

	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	sub    *nats.Subscription
	closed bool
	wg     sync.WaitGroup // one per request being served
}

// NewForwarder returns a forwarder on cfg.Conn; it serves nothing until
// Serve.
func NewForwarder(cfg ForwarderConfig) (*Forwarder, error) {
	if cfg.Conn == nil {
		return nil, errors.New("pushd: forwarder needs a NATS connection")
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = defaultMaxInFlight
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Forwarder{
		nc:       cfg.Conn,
		subjects: contract.NewSubjects(cfg.Prefix),
		node:     cfg.NodeID,
		log:      cfg.Logger,
		slots:    make(chan struct{}, cfg.MaxInFlight),
		ctx:      ctx,
		cancel:   cancel,
	}, nil
}

// Forward sends req to node and returns its reply. It returns
// contract.ErrNoNode when no node of that number is subscribed.
func (f *Forwarder) Forward(ctx context.Context, node int64, req []byte) ([]byte, error) {
	m, err := f.nc.RequestWithContext(ctx, f.subjects.SessionRequests(node), req)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, contract.ErrNoNode
	}
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

// MaxAnswer is the largest message the NATS server takes (max_payload).
func (f *Forwarder) MaxAnswer() int { return int(f.nc.MaxPayload()) }

// Serve answers the requests for this node's sessions from now on: each
// runs handle on its own goroutine (a poll may be held) with a context that
// ends at Close, and handle's result is the reply. Past MaxInFlight requests
// at once, busy answers at once instead. It returns once the subscription
// is confirmed by the server. Call it once.
func (f *Forwarder) Serve(handle func(ctx context.Context, req []byte) []byte, busy func(req []byte) []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.sub != nil {
		return errors.New("pushd: forwarder closed or serving already")
	}
	subject := f.subjects.SessionRequests(f.node)
	sub, err := f.nc.Subscribe(subject, func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		select {
		case f.slots <- struct{}{}:
		default:
			_ = m.Respond(busy(m.Data))
			return
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			<-f.slots
			return
		}
		f.wg.Add(1)
		f.mu.Unlock()
		go func() {
			defer f.wg.Done()
			defer func() { <-f.slots }()
			if err := m.Respond(handle(f.ctx, m.Data)); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				f.log.Debug("forwarded request not answered", "err", err)
			}
		}()
	})
	if err != nil {
		return fmt.Errorf("pushd: subscribe %s: %w", subject, err)
	}
	f.sub = sub
	if err := f.nc.FlushTimeout(defaultSyncTimeout); err != nil {
		f.log.Warn("session request subscription not confirmed", "err", err)
	}
	return nil
}

// Close stops serving: requests being served see their context end, and
// Close waits for them.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	sub := f.sub
	f.mu.Unlock()
	var err error
	if sub != nil {
		if uerr := sub.Unsubscribe(); uerr != nil && !errors.Is(uerr, nats.ErrConnectionClosed) {
			err = uerr
		}
	}
	f.cancel()
	f.wg.Wait()
	return err
}
