package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/lxzan/gws"
)

// Frame is any frame the server sends; which fields are set depends on Type.
type Frame struct {
	Type         string          `json:"type"`
	SID          string          `json:"sid,omitempty"`
	Node         int64           `json:"node,omitempty"`
	User         string          `json:"user,omitempty"`
	PingInterval int64           `json:"ping_interval,omitempty"`
	PingTimeout  int64           `json:"ping_timeout,omitempty"`
	Target       string          `json:"target,omitempty"`
	Doc          string          `json:"doc,omitempty"`
	Event        string          `json:"event,omitempty"`
	ID           string          `json:"id,omitempty"`
	Data         json.RawMessage `json:"data,omitempty"`
	Code         string          `json:"code,omitempty"`
	Message      string          `json:"message,omitempty"`
	// Seq is a push's position in its subject's history, or, in hello and
	// joined, where the client stands on the user's or doc's subject.
	Seq string `json:"seq,omitempty"`
	// Recovered is set in hello and joined when the client resumed: whether
	// it got every push it missed.
	Recovered *bool `json:"recovered,omitempty"`
	// Ack is set on a push whose publisher asked for a receipt.
	Ack bool `json:"ack,omitempty"`
	// Exp is the new token's expiry (Unix seconds) in refreshed.
	Exp int64 `json:"exp,omitempty"`
	// CloseCode, Reason and Retry are an HTTP session's close frame's
	// (type "close"): the WebSocket close code it stands for, why, and how
	// long (ms) to wait before reconnecting when set.
	CloseCode int    `json:"close_code,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Retry     int64  `json:"retry,omitempty"`
	// Presence fields (presence, presence_stats and presence_diff frames):
	// the doc's member and user counts, a page of members and the cursor
	// of the next, and a diff's events (or, for a large doc, how many
	// joined and left).
	Sessions *int             `json:"sessions,omitempty"`
	Users    *int             `json:"users,omitempty"`
	Members  []Member         `json:"members,omitempty"`
	Next     string           `json:"next,omitempty"`
	Events   []PresenceChange `json:"events,omitempty"`
	Joined   *int             `json:"joined,omitempty"`
	Left     *int             `json:"left,omitempty"`
}

// Member is one session in a doc's presence.
type Member struct {
	SID      string          `json:"sid"`
	User     string          `json:"user"`
	Node     int64           `json:"node"`
	JoinedAt time.Time       `json:"joined_at"`
	Info     json.RawMessage `json:"info,omitempty"`
}

// PresenceChange is one event of a presence_diff: a join (with the member)
// or a leave (with who and why: left, disconnected, node_lost).
type PresenceChange struct {
	Event string `json:"event"`
	Member
	Reason string `json:"reason,omitempty"`
}

// Options configure Dial.
type Options struct {
	// Token is sent as ?token=. Empty sends none.
	Token string
	// BearerToken is sent in an Authorization header instead of the query.
	BearerToken string
	// User is sent as ?user= (dev nodes only).
	User string
	// Since resumes the user's pushes from this position (?since=).
	Since string
	// Header is added to the handshake request.
	Header http.Header
	// HandshakeTimeout bounds dialing and the hello frame. Zero means 10s.
	HandshakeTimeout time.Duration
	// Buffer is how many unread pushes are kept before the oldest reader
	// blocks the socket. Zero means 1024.
	Buffer int
}

// Conn is one session on one WebSocket, with no reconnect: for tools and
// tests, which drive the protocol frame by frame.
type Conn struct {
	conn    *gws.Conn
	hello   Frame
	pushes  chan Frame
	replies chan Frame
	done    chan struct{}

	mu        sync.Mutex
	closeErr  error
	readDone  chan struct{}
	closing   chan struct{} // closed by Close: unblocks a read loop stuck on a full buffer
	closeOnce sync.Once
}

// Hello is the server's first frame.
func (c *Conn) Hello() Frame { return c.hello }

// SID is the session ID.
func (c *Conn) SID() string { return c.hello.SID }

// Dial opens a session and waits for the hello frame.
func Dial(ctx context.Context, rawURL string, opts Options) (*Conn, error) {
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 1024
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	if opts.Token != "" {
		q.Set("token", opts.Token)
	}
	if opts.User != "" {
		q.Set("user", opts.User)
	}
	if opts.Since != "" {
		q.Set("since", opts.Since)
	}
	u.RawQuery = q.Encode()
	h := http.Header{}
	for k, v := range opts.Header {
		h[k] = v
	}
	if opts.BearerToken != "" {
		h.Set("Authorization", "Bearer "+opts.BearerToken)
	}
	c := &Conn{
		pushes:   make(chan Frame, opts.Buffer),
		replies:  make(chan Frame, 64),
		done:     make(chan struct{}),
		readDone: make(chan struct{}),
		closing:  make(chan struct{}),
	}
	conn, resp, err := gws.NewClient(&events{c: c}, &gws.ClientOption{
		Addr:             u.String(),
		RequestHeader:    h,
		HandshakeTimeout: opts.HandshakeTimeout,
		CheckUtf8Enabled: true,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, &HandshakeError{Status: resp.StatusCode}
		}
		return nil, err
	}
	c.conn = conn
	go func() {
		defer close(c.readDone)
		conn.ReadLoop()
	}()
	ctx, cancel := context.WithTimeout(ctx, opts.HandshakeTimeout)
	defer cancel()
	f, err := c.reply(ctx)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	if f.Type != "hello" {
		_ = c.Close()
		return nil, fmt.Errorf("pushd: first frame is %q, want hello", f.Type)
	}
	c.hello = f
	return c, nil
}

// Send writes a raw frame; tests use it for malformed input.
func (c *Conn) Send(b []byte) error { return c.conn.WriteMessage(gws.OpcodeText, b) }

// SendBinary writes a binary frame.
func (c *Conn) SendBinary(b []byte) error { return c.conn.WriteMessage(gws.OpcodeBinary, b) }

// WritePing sends a WebSocket ping control frame.
func (c *Conn) WritePing() error { return c.conn.WritePing(nil) }

func (c *Conn) sendJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.Send(b)
}

// Join joins doc and waits for the joined reply.
func (c *Conn) Join(ctx context.Context, doc string) error {
	if err := c.sendJSON(map[string]string{"type": "join", "doc": doc}); err != nil {
		return err
	}
	return c.expect(ctx, "joined")
}

// JoinSince joins doc resuming from position since (the seq of the last
// push of doc processed) and returns the joined reply; the missed pushes
// follow it.
func (c *Conn) JoinSince(ctx context.Context, doc, since string) (Frame, error) {
	if err := c.sendJSON(map[string]string{"type": "join", "doc": doc, "since": since}); err != nil {
		return Frame{}, err
	}
	f, err := c.reply(ctx)
	if err != nil {
		return f, err
	}
	if f.Type == "error" {
		return f, &ServerError{Code: f.Code, Message: f.Message, Doc: f.Doc}
	}
	if f.Type != "joined" {
		return f, fmt.Errorf("pushd: got %q, want joined", f.Type)
	}
	return f, nil
}

// Ack acknowledges the push at seq (of doc, or of the user's subject when
// doc is empty), so the node publishes its receipt.
func (c *Conn) Ack(seq, doc string) error {
	m := map[string]string{"type": "ack", "seq": seq}
	if doc != "" {
		m["doc"] = doc
	}
	return c.sendJSON(m)
}

// JoinPresence joins doc asking for its presence events (presence_diff
// frames, read with Next) and waits for the joined reply.
func (c *Conn) JoinPresence(ctx context.Context, doc string) error {
	if err := c.sendJSON(map[string]any{"type": "join", "doc": doc, "presence": true}); err != nil {
		return err
	}
	return c.expect(ctx, "joined")
}

// Presence asks for a page of doc's members: at most limit (0: the
// server's default) after the session ID cursor ("" for the first page).
func (c *Conn) Presence(ctx context.Context, doc string, limit int, cursor string) (Frame, error) {
	return c.request(ctx, "presence", map[string]any{"type": "presence", "doc": doc, "limit": limit, "cursor": cursor})
}

// PresenceStats asks for doc's member and user counts.
func (c *Conn) PresenceStats(ctx context.Context, doc string) (Frame, error) {
	return c.request(ctx, "presence_stats", map[string]any{"type": "presence_stats", "doc": doc})
}

// request sends v and waits for a reply of type want; an error frame
// becomes a *ServerError.
func (c *Conn) request(ctx context.Context, want string, v any) (Frame, error) {
	if err := c.sendJSON(v); err != nil {
		return Frame{}, err
	}
	f, err := c.reply(ctx)
	if err != nil {
		return f, err
	}
	if f.Type == "error" {
		return f, &ServerError{Code: f.Code, Message: f.Message, Doc: f.Doc}
	}
	if f.Type != want {
		return f, fmt.Errorf("pushd: got %q, want %q", f.Type, want)
	}
	return f, nil
}

// Leave leaves doc and waits for the left reply.
func (c *Conn) Leave(ctx context.Context, doc string) error {
	if err := c.sendJSON(map[string]string{"type": "leave", "doc": doc}); err != nil {
		return err
	}
	return c.expect(ctx, "left")
}

// Ping sends a JSON heartbeat and returns the pong.
func (c *Conn) Ping(ctx context.Context) (Frame, error) {
	if err := c.Send([]byte(`{"type":"ping"}`)); err != nil {
		return Frame{}, err
	}
	f, err := c.reply(ctx)
	if err != nil {
		return Frame{}, err
	}
	if f.Type != "pong" {
		return f, fmt.Errorf("pushd: got %q, want pong", f.Type)
	}
	return f, nil
}

// Publish sends an upstream message for a joined doc. data is marshalled to
// JSON unless it is a json.RawMessage.
func (c *Conn) Publish(doc, event string, data any) error {
	raw, ok := data.(json.RawMessage)
	if !ok {
		b, err := json.Marshal(data)
		if err != nil {
			return err
		}
		raw = b
	}
	return c.sendJSON(struct {
		Type  string          `json:"type"`
		Doc   string          `json:"doc"`
		Event string          `json:"event,omitempty"`
		Data  json.RawMessage `json:"data"`
	}{"publish", doc, event, raw})
}

// expect waits for a reply of type want; an error frame becomes an error.
func (c *Conn) expect(ctx context.Context, want string) error {
	f, err := c.reply(ctx)
	if err != nil {
		return err
	}
	if f.Type == "error" {
		return &ServerError{Code: f.Code, Message: f.Message, Doc: f.Doc}
	}
	if f.Type != want {
		return fmt.Errorf("pushd: got %q, want %q", f.Type, want)
	}
	return nil
}

// Reply waits for the next non-push frame (hello, joined, left, pong, error).
func (c *Conn) Reply(ctx context.Context) (Frame, error) { return c.reply(ctx) }

func (c *Conn) reply(ctx context.Context) (Frame, error) { return c.await(ctx, c.replies) }

// await takes the next frame from ch; once the connection is done, frames
// already queued are still handed out before its error.
func (c *Conn) await(ctx context.Context, ch <-chan Frame) (Frame, error) {
	select {
	case f := <-ch:
		return f, nil
	case <-c.done:
		select {
		case f := <-ch:
			return f, nil
		default:
		}
		return Frame{}, c.Err()
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	}
}

// Next waits for the next push frame.
func (c *Conn) Next(ctx context.Context) (Frame, error) { return c.await(ctx, c.pushes) }

// Done is closed when the socket is gone.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the socket is gone: a *CloseError when the server sent a close
// frame, ErrClosed otherwise; nil while open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// Close closes the session normally and waits for the read loop to end.
// Pushes not yet read are dropped.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { close(c.closing) })
	_ = c.conn.WriteClose(1000, nil)
	<-c.readDone
	return nil
}

type events struct {
	gws.BuiltinEventHandler
	c *Conn
}

func (e *events) OnClose(_ *gws.Conn, err error) {
	c := e.c
	c.mu.Lock()
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		c.closeErr = &CloseError{Code: ce.Code, Reason: string(ce.Reason)}
	} else {
		c.closeErr = ErrClosed
	}
	c.mu.Unlock()
	close(c.done)
}

func (e *events) OnMessage(_ *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	var f Frame
	if err := json.Unmarshal(msg.Bytes(), &f); err != nil {
		f = Frame{Type: "invalid", Message: err.Error(), Data: append(json.RawMessage(nil), msg.Bytes()...)}
	}
	ch := e.c.replies
	if f.Type == "push" || f.Type == "presence_diff" { // unasked-for: Next reads them
		ch = e.c.pushes
	}
	select {
	case ch <- f: // a full buffer blocks the socket: backpressure, as a slow reader would
	case <-e.c.closing:
	}
}
