package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Config configures a Client. The zero value of every optional field means
// its documented default. Set exactly one of URL, URLs and URLFunc, and
// GetToken (or User, on a dev node).
type Config struct {
	// URL is the node's WebSocket URL, e.g. wss://push.example.com/ws.
	URL string
	// URLs are nodes to use in turn: each reconnect goes to the next one, so
	// a drained or dead node is left behind. A node that sends the client
	// away names itself (a drain's 1012, a 503 draining or over_capacity
	// refusal): for AvoidFor the client skips the URLs it saw lead to that
	// node (from hellos), unless every other URL failed too.
	URLs []string
	// URLFunc returns the URL of each attempt (0, 1, ...: the index moves on
	// after every close). It must return when ctx ends.
	URLFunc func(ctx context.Context, attempt int) (string, error)

	// GetToken returns a connection token (a JWT whose sub is the user). It
	// is called before every connection attempt, and again before the token
	// expires: the client sends refresh a fifth of the token's remaining
	// life before exp, at most RefreshMargin before it. The token travels in
	// the connect frame, never in the URL. It must return when ctx ends.
	GetToken func(ctx context.Context) (string, error)
	// User connects without a token as this user: dev nodes only (pushd
	// --dev).
	User string
	// Since resumes the user's pushes after this seq (a cursor saved from
	// Client.Cursor). Nil: no cursor yet.
	Since *uint64

	// Header is added to the upgrade request.
	Header http.Header
	// TLSConfig is used for wss:// URLs; nil means the system's roots.
	TLSConfig *tls.Config

	// Backoff are the reconnect delays (see Backoff.Delay).
	Backoff Backoff
	// ConnectTimeout bounds one attempt, from GetToken to hello. Default 10s.
	ConnectTimeout time.Duration
	// MaxAuthFailures is how many auth refusals (4001, 4003) in a row stop
	// the client. Default 3.
	MaxAuthFailures int
	// RefreshMargin is the most time before exp at which the token is
	// refreshed. Default 60s.
	RefreshMargin time.Duration
	// StableAfter: a session that lasted this long resets the backoff.
	// Default 10s.
	StableAfter time.Duration
	// AvoidFor is how long the client skips, in URLs, those that lead to a
	// node that sent it away (the drain hint). Default 30s.
	AvoidFor time.Duration
	// PushBuffer is how many pushes may wait for the handlers. When it is
	// full the client drops the connection (DisconnectEvent 4008
	// "slow_handlers") and reconnects once the handlers have worked through
	// half of it, resuming after the last push they handled. Default 1024.
	PushBuffer int

	// ManualAck: the application acknowledges pushes that ask for a receipt
	// with Push.Ack. By default the client does, once the handlers returned
	// nil.
	ManualAck bool

	// The handlers. They run one at a time, in the order the events
	// happened, on a goroutine of the client's (never the one reading the
	// socket), so a handler may block for a while, and may call any method
	// of the client, Close included.

	// OnState gets every change of state.
	OnState func(StateEvent)
	// OnHello gets every session that comes up.
	OnHello func(HelloEvent)
	// OnDisconnect gets every connection that closes.
	OnDisconnect func(DisconnectEvent)
	// OnPush gets every push: to the user, to joined docs (after the
	// subscription's OnPush), to all, to the session; once each (duplicates
	// from a resume are dropped). A push that asks for a receipt is
	// acknowledged when the handlers return nil (without ManualAck); an
	// error withholds the receipt, so the next resume replays the push.
	OnPush func(*Push) error
	// OnError gets errors that belong to no call: refused joins without
	// their own OnError, failed refreshes, a GetToken that failed, handler
	// errors, frames the client cannot read, the close that stopped the
	// client (a *CloseError).
	OnError func(error)

	random func() float64 // the jitter's source; tests set it
}

// Defaults of Config.
const (
	DefaultConnectTimeout  = 10 * time.Second
	DefaultMaxAuthFailures = 3
	DefaultRefreshMargin   = 60 * time.Second
	DefaultStableAfter     = 10 * time.Second
	DefaultPushBuffer      = 1024
	DefaultAvoidFor        = 30 * time.Second
)

// requestTimeout bounds the client's own requests (refresh).
const requestTimeout = 10 * time.Second

func (cfg *Config) setDefaults() {
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.MaxAuthFailures <= 0 {
		cfg.MaxAuthFailures = DefaultMaxAuthFailures
	}
	if cfg.RefreshMargin <= 0 {
		cfg.RefreshMargin = DefaultRefreshMargin
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = DefaultStableAfter
	}
	if cfg.PushBuffer <= 0 {
		cfg.PushBuffer = DefaultPushBuffer
	}
	if cfg.AvoidFor <= 0 {
		cfg.AvoidFor = DefaultAvoidFor
	}
	if cfg.random == nil {
		cfg.random = rand.Float64
	}
}

func (cfg *Config) validate() error {
	n := 0
	if cfg.URL != "" {
		n++
	}
	if len(cfg.URLs) > 0 {
		n++
	}
	if cfg.URLFunc != nil {
		n++
	}
	if n != 1 {
		return errors.New("pushd: set one of Config.URL, URLs and URLFunc")
	}
	if cfg.GetToken == nil && cfg.User == "" {
		return errors.New("pushd: set Config.GetToken (or User, on a dev node)")
	}
	return nil
}

// Client is a pushd client: one session at a time, reconnected with backoff
// as each close code asks, with its subscriptions, resume cursors, receipts
// and token refresh (docs/SDK.md). Its methods are safe for concurrent use.
type Client struct {
	cfg Config

	mu           sync.Mutex
	closed       bool
	state        State
	gen          uint64   // connections begun
	conn         *attempt // the current connection, nil between them
	attempt      int      // failures in a row, for the backoff
	urlIndex     int      // where the next attempt goes
	avoid        avoider  // nodes that sent the client away (the drain hint)
	authFailures int
	hellos       int
	stats        Stats
	ids          uint64
	retryTimer   *time.Timer
	retryID      uint64
	refreshTimer *time.Timer
	refreshID    uint64
	user         *cursor
	subs         map[string]*Subscription
	requests     map[string]*request
	queue        []string // publishes waiting for a session
	session      HelloEvent
	waiters      []chan error // Connect calls waiting for hello

	ctx    context.Context // ends at Close: GetToken, URLFunc, TokenFunc
	cancel context.CancelFunc
	wg     sync.WaitGroup // connection goroutines and token calls

	// The dispatcher (events.go).
	events       []item
	queuedPushes int
	waitHandlers bool // dropped as slow: reconnect when the handlers catch up
	started      bool
	wake         chan struct{}
	quit         chan struct{}
	dispatched   chan struct{}
}

// request is a frame waiting for the reply that echoes its id. reply and
// fail run with c.mu held.
type request struct {
	frame    []byte
	inFlight bool // sent on the current connection: its close fails it
	reply    func(*Frame)
	fail     func(error)
	timer    *time.Timer
}

// New returns a client for cfg. It starts nothing: see Connect. Once
// Connect was called, Close releases the client, whatever happened.
func New(cfg Config) *Client {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{
		cfg:        cfg,
		user:       newCursor(cfg.Since),
		subs:       map[string]*Subscription{},
		requests:   map[string]*request{},
		ctx:        ctx,
		cancel:     cancel,
		wake:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		dispatched: make(chan struct{}),
	}
}

// Connect starts the client, if it is not running, and waits until it is
// connected. The client keeps reconnecting in the background until Close,
// whatever Connect returns: ctx bounds only the wait (ctx's error), and a
// close that forbids reconnecting (4004, 4010, or MaxAuthFailures auth
// refusals in a row) stops it (a *CloseError). Connect on a stopped client
// starts it again, with its subscriptions.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClientClosed
	}
	if err := c.cfg.validate(); err != nil {
		c.mu.Unlock()
		return err
	}
	if !c.started {
		c.started = true
		go c.dispatch()
	}
	if c.state == Disconnected {
		c.attempt, c.authFailures, c.hellos = 0, 0, 0
		c.setState(Connecting, 0, "")
		c.open()
	}
	if c.state == Connected {
		c.mu.Unlock()
		return nil
	}
	ch := make(chan error, 1)
	c.waiters = append(c.waiters, ch)
	c.mu.Unlock()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		c.mu.Lock()
		for i, w := range c.waiters {
			if w == ch {
				c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Close closes the connection (normally, 1000), stops reconnecting, and
// waits for the client's goroutines to end, a running handler included, so
// that Cursor is final when it returns; requests in flight fail with
// ErrClientClosed. A handler may call Close: then it does not wait for that
// handler (itself), and no other handler is called. Calling Close again does
// nothing.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	var polite *attempt // closed with a close frame, outside the lock
	if a := c.conn; a != nil && a.ws != nil {
		polite = a
		c.conn = nil
		a.cancel()
		if a.ping != nil {
			a.ping.Stop()
		}
		if a.watch != nil {
			a.watch.Stop()
		}
		a.watchID++
	}
	c.stop(1000, "", ErrClientClosed)
	for _, s := range c.subs {
		s.settle(ErrClientClosed) // Ready of a doc never joined
	}
	c.closed = true
	c.cancel()
	close(c.quit)
	waitHandlers := c.started && !onDispatcher()
	c.mu.Unlock()
	if a := polite; a != nil {
		_ = a.raw.SetWriteDeadline(time.Now().Add(time.Second))
		_ = a.ws.WriteClose(1000, nil)
		_ = a.raw.Close()
	}
	c.wg.Wait()
	if waitHandlers {
		<-c.dispatched
	}
	return nil
}

// State is where the client is.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Session is the current session's hello; ok is false when not connected.
func (c *Client) Session() (hello HelloEvent, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session, c.state == Connected
}

// Stats are counts over a Client's life, for monitoring and tests.
type Stats struct {
	// Sessions is how many sessions came up (hellos) since New.
	Sessions int
	// Duplicates is how many pushes the client dropped, by seq, as copies
	// of pushes it had already handed over or was handing over: a resume
	// replays from the cursor, which may trail what a session delivered.
	Duplicates uint64
}

// Stats returns the client's counts so far.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Cursor is the seq of the last user push handled (whose receipt, if it
// asked for one, was given): save it to resume from after a restart with
// Config.Since. ok is false until the server sent a position.
func (c *Client) Cursor() (seq uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.user.since()
}

// Join joins a doc and returns its subscription (the existing one, and
// opts ignored, when the doc is joined already). The join is sent now when
// connected, else after the next hello, and again after every reconnect,
// with the subscription's cursor.
func (c *Client) Join(doc string, opts JoinOptions) *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.subs[doc]; s != nil {
		return s
	}
	s := &Subscription{c: c, doc: doc, opts: opts, cur: newCursor(opts.Since), ready: make(chan struct{})}
	if c.closed {
		s.state = Failed
		s.settle(ErrClientClosed)
		return s
	}
	c.subs[doc] = s
	if a := c.conn; a != nil && a.hello {
		c.sendJoin(s, a)
	}
	return s
}

// Subscription is the subscription of a doc, nil when not joined.
func (c *Client) Subscription(doc string) *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[doc]
}

// Publish sends an event to a joined doc's backends (push.up.doc.<doc> on
// NATS) and returns once the node forwarded it. data is marshalled to JSON,
// unless it is a json.RawMessage; event "" is "message". While the client
// reconnects the publish waits for the next session. Errors: a
// *ServerError (not_joined, invalid_event, unavailable, rate_limited, ...),
// ErrDisconnected (the connection closed first: it may or may not have
// gone out), ErrStopped, ErrClientClosed, or ctx's error.
func (c *Client) Publish(ctx context.Context, doc, event string, data any) error {
	raw, ok := data.(json.RawMessage)
	if ok && !json.Valid(raw) {
		return errors.New("pushd: publish: data is not valid JSON")
	}
	if !ok {
		b, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("pushd: publish: %w", err)
		}
		raw = b
	}
	done := make(chan error, 1)
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClientClosed
	case c.state == Disconnected:
		c.mu.Unlock()
		return ErrStopped
	}
	id := c.id("p")
	r := &request{
		frame: clientFrame{Type: "publish", ID: id, Doc: doc, Event: event, Data: raw}.encode(),
		reply: func(f *Frame) {
			if f.Type == "published" {
				done <- nil
			} else {
				done <- fmt.Errorf("pushd: publish answered with %q", f.Type)
			}
		},
		fail: func(err error) { done <- err },
	}
	c.requests[id] = r
	if a := c.conn; a != nil && a.hello {
		c.sendRequest(a, r)
	} else {
		c.queue = append(c.queue, id)
	}
	c.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.requests, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// --- connections (c.mu held in every method below) --------------------------

// after runs fn with c.mu held after d, unless the client is closed by then.
// fn must check that what it acts on is still current.
func (c *Client) after(d time.Duration, fn func()) *time.Timer {
	return time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.closed {
			fn()
		}
	})
}

func (c *Client) random() float64 { return c.cfg.random() }

// open begins a connection attempt.
func (c *Client) open() {
	c.gen++
	c.urlIndex = c.avoid.next(c.cfg.URLs, c.urlIndex, time.Now())
	a := &attempt{gen: c.gen, index: c.urlIndex, out: newOutbox()}
	a.ctx, a.cancel = context.WithCancel(c.ctx)
	c.conn = a
	c.stopRetry()
	c.expect(a, c.cfg.ConnectTimeout, fmt.Sprintf("connect_timeout: no hello within %s", c.cfg.ConnectTimeout))
	c.wg.Add(1)
	go c.run(a)
}

// retry opens a connection after delay.
func (c *Client) retry(delay time.Duration) {
	c.stopRetry()
	id := c.retryID
	c.retryTimer = c.after(delay, func() {
		if c.retryID != id || c.state != Connecting || c.conn != nil {
			return
		}
		c.retryTimer = nil
		c.open()
	})
}

func (c *Client) stopRetry() {
	if c.retryTimer != nil {
		c.retryTimer.Stop()
		c.retryTimer = nil
	}
	c.retryID++
}

// onCloseLocked handles the end of connection a: by the server, the network,
// a refused upgrade, or the client giving up on it.
func (c *Client) onCloseLocked(a *attempt, code uint16, reason string, status int) {
	if a != c.conn {
		return
	}
	c.conn = nil
	c.endAttempt(a)
	c.stopRefresh()
	c.failRequests(ErrDisconnected, true)
	for _, s := range c.subs {
		s.stopTimer()
		if s.state == Joined {
			s.state = Joining
		}
	}
	errCode, message := ParseReason(reason)
	action := ActionFor(code)
	if action == ActionAuth {
		c.authFailures++
		if c.cfg.GetToken == nil || c.authFailures >= c.cfg.MaxAuthFailures {
			action = ActionStop
		}
	}
	if a.hello && time.Since(a.helloAt) >= c.cfg.StableAfter {
		c.attempt = 0
	}
	c.urlIndex++
	if !a.hello {
		c.avoid.misses++
	}
	ev := DisconnectEvent{Code: code, Reason: reason, Error: errCode, Status: status, URL: a.url, WillReconnect: action != ActionStop, AvoidNode: -1}
	if n, ok := avoidNodeOf(reason); ok || a.avoidSet {
		if a.avoidSet {
			n = a.avoidNode
		}
		c.avoid.avoid(a.url, n, time.Now().Add(c.cfg.AvoidFor))
		ev.AvoidNode = n
	}
	if action == ActionStop {
		c.emitDisconnect(ev)
		err := &CloseError{Code: code, Reason: reason}
		c.stop(code, reason, err)
		if message == "" {
			message = "no reason"
		}
		c.report(fmt.Errorf("pushd: stopped after close %d (%s): %w", code, message, err))
		return
	}
	if !c.waitHandlers {
		ev.Delay = c.cfg.Backoff.Delay(action, c.attempt, c.random())
	}
	c.attempt++
	c.setState(Connecting, code, reason)
	c.emitDisconnect(ev)
	if !c.waitHandlers { // else the dispatcher reconnects when the handlers caught up
		c.retry(ev.Delay)
	}
}

// stop ends the current connection and stops reconnecting: the client is
// disconnected; err fails every request and waiting Connect.
func (c *Client) stop(code uint16, reason string, err error) {
	c.stopRetry()
	c.stopRefresh()
	if a := c.conn; a != nil {
		c.conn = nil
		c.endAttempt(a)
	}
	c.waitHandlers = false
	c.queue = nil
	c.failRequests(err, false)
	for _, s := range c.subs {
		s.stopTimer()
		if s.state == Joined {
			s.state = Joining
		}
	}
	c.setState(Disconnected, code, reason)
	for _, w := range c.waiters {
		w <- err
	}
	c.waiters = nil
}

// setState changes the state and tells OnState.
func (c *Client) setState(s State, code uint16, reason string) {
	prev := c.state
	if s == prev {
		return
	}
	c.state = s
	if h := c.cfg.OnState; h != nil {
		ev := StateEvent{State: s, Previous: prev, Code: code, Reason: reason}
		c.enqueue(func() { h(ev) }, false)
	}
}

func (c *Client) emitDisconnect(ev DisconnectEvent) {
	if h := c.cfg.OnDisconnect; h != nil {
		c.enqueue(func() { h(ev) }, false)
	}
}

// report hands err to OnError.
func (c *Client) report(err error) {
	if h := c.cfg.OnError; h != nil {
		c.enqueue(func() { h(err) }, false)
	}
}

func (c *Client) id(prefix string) string {
	c.ids++
	return prefix + formatSeq(c.ids)
}

// --- frames --------------------------------------------------------------------

// onFrame handles one frame of connection a.
func (c *Client) onFrame(a *attempt, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a != c.conn {
		return
	}
	c.received(a)
	f, err := decodeFrame(b)
	if err != nil {
		if len(b) > 100 {
			b = b[:100]
		}
		c.report(fmt.Errorf("pushd: not a pushd frame (%v): %q", err, b))
		return
	}
	switch f.Type {
	case "hello":
		c.onHello(a, &f)
		return
	case "pong":
		c.setInterval(a, f.PingInterval, f.PingTimeout)
		return
	case "push":
		c.onPush(a, &f)
		return
	}
	if c.settle(&f) {
		return
	}
	if f.Type == "error" {
		c.report(&ServerError{Code: f.Code, Message: f.Message, Doc: f.Doc})
	}
	// Anything else is a frame this client does not know yet: ignored, as
	// the protocol asks.
}

func (c *Client) onHello(a *attempt, f *Frame) {
	if a.hello {
		return
	}
	a.hello, a.helloAt = true, time.Now()
	c.authFailures = 0
	c.avoid.learn(a.url, f.Node)
	c.avoid.misses = 0
	first := c.hellos == 0
	c.hellos++
	c.stats.Sessions++
	seq, hasSeq := parseSeq(f.Seq)
	resumed, recovered, gap := resume(c.user, a.sinceSet, seq, hasSeq, f.Recovered, first)
	c.session = HelloEvent{SID: f.SID, Node: f.Node, User: f.User, URL: a.url, Seq: seq,
		First: first, Resumed: resumed, Recovered: recovered, Gap: gap}
	c.setInterval(a, f.PingInterval, f.PingTimeout)
	c.schedulePing(a)
	for _, s := range c.subs {
		c.sendJoin(s, a)
	}
	queued := c.queue
	c.queue = nil
	for _, id := range queued {
		if r := c.requests[id]; r != nil {
			c.sendRequest(a, r)
		}
	}
	c.scheduleRefresh(a)
	c.setState(Connected, 0, "")
	if h := c.cfg.OnHello; h != nil {
		ev := c.session
		c.enqueue(func() { h(ev) }, false)
	}
	for _, w := range c.waiters {
		w <- nil
	}
	c.waiters = nil
}

// resume applies the cursor rule to a hello or joined: without a cursor
// sent, or when the server could not recover, start at the reply's seq;
// when it recovers, keep the cursor (the replay advances it).
func resume(cur *cursor, sinceSent bool, seq uint64, hasSeq bool, rec *bool, first bool) (resumed, recovered, gap bool) {
	recovered = sinceSent && rec != nil && *rec
	if !recovered && (hasSeq || (rec != nil && !*rec)) {
		cur.reset(seq, hasSeq)
	}
	if sinceSent {
		return true, recovered, !recovered
	}
	return false, false, !first
}

// --- requests ------------------------------------------------------------------

func (c *Client) sendRequest(a *attempt, r *request) {
	r.inFlight = true
	c.send(a, r.frame)
}

// settle hands a reply to the request whose id it echoes; false when none.
func (c *Client) settle(f *Frame) bool {
	if f.ID == "" {
		return false
	}
	r := c.requests[f.ID]
	if r == nil {
		return false
	}
	delete(c.requests, f.ID)
	if r.timer != nil {
		r.timer.Stop()
	}
	if f.Type == "error" {
		r.fail(&ServerError{Code: f.Code, Message: f.Message, Doc: f.Doc})
	} else {
		r.reply(f)
	}
	return true
}

// failRequests fails the requests in flight (all with all).
func (c *Client) failRequests(err error, inFlightOnly bool) {
	for id, r := range c.requests {
		if inFlightOnly && !r.inFlight {
			continue
		}
		delete(c.requests, id)
		if r.timer != nil {
			r.timer.Stop()
		}
		r.fail(err)
	}
}

// --- joins ---------------------------------------------------------------------

// sendJoin joins s on connection a, once per connection.
func (c *Client) sendJoin(s *Subscription, a *attempt) {
	if s.joinGen == a.gen {
		return
	}
	s.joinGen = a.gen
	tf := s.opts.TokenFunc
	if tf == nil {
		c.sendJoinFrame(s, a, s.opts.Token)
		return
	}
	// Only a token function waits; other joins go out at once.
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		tok, err := tf(a.ctx)
		if err == nil && tok == "" {
			err = errors.New("no token")
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed || a != c.conn || c.subs[s.doc] != s {
			return // rejoined after the next hello
		}
		if err != nil {
			delete(c.subs, s.doc)
			c.failSub(s, fmt.Errorf("pushd: join token for %s: %w", s.doc, err))
			return
		}
		c.sendJoinFrame(s, a, tok)
	}()
}

func (c *Client) sendJoinFrame(s *Subscription, a *attempt, token string) {
	if a != c.conn || c.subs[s.doc] != s || s.state != Joining {
		return
	}
	since, sinceSet := s.cur.since()
	id := c.id("j")
	f := clientFrame{Type: "join", ID: id, Doc: s.doc, Token: token}
	if sinceSet {
		f.Since = formatSeq(since)
	}
	r := &request{
		frame: f.encode(),
		reply: func(f *Frame) { c.onJoined(s, a, f, sinceSet) },
		fail:  func(err error) { c.onJoinError(s, a, err) },
	}
	c.requests[id] = r
	c.sendRequest(a, r)
}

func (c *Client) onJoined(s *Subscription, a *attempt, f *Frame, sinceSent bool) {
	if a != c.conn || s.state != Joining || f.Type != "joined" {
		return
	}
	first := !s.joinedOnce
	s.joinedOnce = true
	seq, hasSeq := parseSeq(f.Seq)
	resumed, recovered, gap := resume(s.cur, sinceSent, seq, hasSeq, f.Recovered, first)
	gap = gap || s.droppedSince // the app's cursor was no good: its state may be stale
	s.droppedSince = false
	s.state, s.attempts = Joined, 0
	s.settle(nil)
	if h := s.opts.OnSubscribed; h != nil {
		ev := SubscribedEvent{Doc: s.doc, Seq: seq, First: first, Resumed: resumed, Recovered: recovered, Gap: gap}
		c.enqueue(func() { h(ev) }, false)
	}
}

func (c *Client) onJoinError(s *Subscription, a *attempt, err error) {
	if a != c.conn || s.state != Joining || c.subs[s.doc] != s {
		return
	}
	s.joinGen = 0
	if errors.Is(err, ErrDisconnected) {
		return // rejoined after the next hello
	}
	var se *ServerError
	code := ""
	if errors.As(err, &se) {
		code = se.Code
	}
	switch code {
	case "bad_since":
		s.cur.reset(0, false) // joined again without it: a gap
		s.droppedSince = true
		c.sendJoin(s, a)
		return
	case "token_expired":
		if s.opts.TokenFunc != nil && s.attempts == 0 {
			s.attempts++
			c.sendJoin(s, a)
			return
		}
	case "unavailable", "rate_limited":
		d := c.cfg.Backoff.Delay(ActionRetry, s.attempts, c.random())
		s.attempts++
		s.stopTimer()
		id := s.timerID
		s.timer = c.after(d, func() {
			if s.timerID != id {
				return
			}
			s.timer = nil
			c.sendJoin(s, a)
		})
		return
	}
	delete(c.subs, s.doc)
	c.failSub(s, err)
}

// failSub ends s after a refusal for good.
func (c *Client) failSub(s *Subscription, err error) {
	s.state = Failed
	s.stopTimer()
	s.settle(err)
	if h := s.opts.OnError; h != nil {
		c.enqueue(func() { h(err) }, false)
	} else {
		c.report(err)
	}
}

// leave is Subscription.Leave.
func (c *Client) leave(ctx context.Context, s *Subscription) error {
	c.mu.Lock()
	if s.state == Left || s.state == Failed {
		c.mu.Unlock()
		return nil
	}
	a := c.conn
	wasJoined := a != nil && a.hello && s.joinGen == a.gen
	if c.subs[s.doc] == s {
		delete(c.subs, s.doc)
	}
	s.state = Left
	s.stopTimer()
	s.settle(ErrLeft)
	if !wasJoined {
		c.mu.Unlock()
		return nil
	}
	done := make(chan struct{}, 1)
	id := c.id("l")
	r := &request{
		frame: clientFrame{Type: "leave", ID: id, Doc: s.doc}.encode(),
		reply: func(*Frame) { done <- struct{}{} },
		fail:  func(error) { done <- struct{}{} },
	}
	c.requests[id] = r
	c.sendRequest(a, r)
	c.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.requests, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// --- pushes and receipts ---------------------------------------------------------

func (c *Client) onPush(a *attempt, f *Frame) {
	var sub *Subscription
	var cur *cursor
	switch f.Target {
	case "doc":
		if sub = c.subs[f.Doc]; sub == nil || sub.state != Joined {
			return
		}
		cur = sub.cur
	case "user":
		cur = c.user
	}
	seq, hasSeq := parseSeq(f.Seq)
	if !hasSeq {
		cur = nil // nothing to resume from or to acknowledge
	}
	if cur != nil {
		if cur.seen(seq) { // a duplicate from a resume
			c.stats.Duplicates++
			if f.Ack {
				cur.owedOn(seq, a.gen)
			}
			return
		}
		if cur.awaits(seq) {
			cur.owedOn(seq, a.gen)
			if cur.acked(seq) {
				// The app acknowledged an earlier copy while no session could
				// take it: the replay makes this one owe the receipt, so send
				// it now, and do not hand the push over again.
				c.sendAck(sub, cur, seq)
				return
			}
		}
	}
	if c.queuedPushes >= c.cfg.PushBuffer {
		c.waitHandlers = true
		c.giveUp(a, 4008, fmt.Sprintf("slow_handlers: %d pushes wait for the handlers; reconnecting when they catch up", c.queuedPushes))
		return
	}
	if cur != nil {
		cur.queue(seq, a.gen)
	}
	data := f.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	p := &Push{Target: f.Target, Doc: f.Doc, Event: f.Event, ID: f.ID, Seq: seq, Data: data,
		NeedsAck: f.Ack && cur != nil, c: c, sub: sub, cur: cur}
	c.enqueue(func() { c.handle(p) }, true)
}

// handle runs the handlers of p on the dispatcher, then takes it.
func (c *Client) handle(p *Push) {
	if p.sub != nil {
		c.mu.Lock()
		left := p.sub.state == Left || p.sub.state == Failed
		c.mu.Unlock()
		if left { // Leave was called after the push came: not handed over
			return
		}
	}
	var errs []error
	if p.sub != nil && p.sub.opts.OnPush != nil {
		if err := p.sub.opts.OnPush(p); err != nil {
			errs = append(errs, err)
		}
	}
	if h := c.cfg.OnPush; h != nil {
		if err := h(p); err != nil {
			errs = append(errs, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(errs) > 0 {
		what := ""
		if p.NeedsAck {
			what = "; no receipt (the next resume replays it)"
		}
		c.report(fmt.Errorf("pushd: a handler failed on %s push seq %d%s: %w", p.Target, p.Seq, what, errors.Join(errs...)))
	}
	if p.cur == nil || !p.cur.handled(p.Seq, p.NeedsAck) {
		return
	}
	if p.NeedsAck && (p.acked || p.cur.acked(p.Seq) || (len(errs) == 0 && !c.cfg.ManualAck)) {
		p.acked = true
		c.sendAck(p.sub, p.cur, p.Seq)
	}
}

// sendAck sends a receipt if the session that delivered the push is the
// current one (a node takes receipts only for pushes it delivered on the
// session); else it is sent when a resume replays the push.
func (c *Client) sendAck(sub *Subscription, cur *cursor, seq uint64) {
	if !cur.awaits(seq) {
		return
	}
	a := c.conn
	if a == nil || !a.hello || a.gen != cur.deliveredOn(seq) || (sub != nil && sub.state != Joined) {
		cur.ackLater(seq)
		return
	}
	f := clientFrame{Type: "ack", Seq: formatSeq(seq)}
	if sub != nil {
		f.Doc = sub.doc
	}
	c.send(a, f.encode())
	cur.ackSent(seq)
}

// --- token refresh ---------------------------------------------------------------

func (c *Client) scheduleRefresh(a *attempt) {
	c.stopRefresh()
	exp, ok := tokenExpiry(a.token)
	if !ok || c.cfg.GetToken == nil {
		return
	}
	id := c.refreshID
	c.refreshTimer = c.after(refreshDelay(exp, time.Now(), c.cfg.RefreshMargin), func() {
		if c.refreshID != id || a != c.conn {
			return
		}
		c.refreshTimer = nil
		c.refresh(a, exp)
	})
}

func (c *Client) stopRefresh() {
	if c.refreshTimer != nil {
		c.refreshTimer.Stop()
		c.refreshTimer = nil
	}
	c.refreshID++
}

// refresh gets a new token and sends it in a refresh frame.
func (c *Client) refresh(a *attempt, exp time.Time) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		tok, err := c.cfg.GetToken(a.ctx)
		if err == nil && tok == "" {
			err = errors.New("no token")
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed || a != c.conn {
			return
		}
		if err != nil {
			c.refreshFailed(a, exp, fmt.Errorf("pushd: token refresh: GetToken: %w", err))
			return
		}
		id := c.id("r")
		r := &request{frame: clientFrame{Type: "refresh", ID: id, Token: tok}.encode()}
		r.reply = func(*Frame) {
			a.token = tok
			c.scheduleRefresh(a)
		}
		r.fail = func(err error) { c.refreshFailed(a, exp, fmt.Errorf("pushd: token refresh: %w", err)) }
		r.timer = c.after(requestTimeout, func() {
			if c.requests[id] == r {
				delete(c.requests, id)
				r.fail(fmt.Errorf("no reply within %s: %w", requestTimeout, context.DeadlineExceeded))
			}
		})
		c.requests[id] = r
		c.sendRequest(a, r)
	}()
}

// refreshFailed reports err and tries again while the token lasts; past exp
// the node closes with 4001 and the client reconnects with a new token.
func (c *Client) refreshFailed(a *attempt, exp time.Time, err error) {
	if a != c.conn {
		return
	}
	c.report(err)
	left := time.Until(exp)
	if left <= 100*time.Millisecond {
		return
	}
	c.stopRefresh()
	id := c.refreshID
	c.refreshTimer = c.after(min(left/2, 5*time.Second), func() {
		if c.refreshID != id || a != c.conn {
			return
		}
		c.refreshTimer = nil
		c.refresh(a, exp)
	})
}
