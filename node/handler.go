package node

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/lxzan/gws"

	"github.com/pushd/pushd/auth"
	"github.com/pushd/pushd/contract"
)

// slot is the gws session storage: it only points back at our session, which
// is cheaper than gws's default map per connection.
type slot struct{ s *session }

func (*slot) Len() int                           { return 0 }
func (*slot) Load(string) (any, bool)            { return nil, false }
func (*slot) Delete(string)                      {}
func (*slot) Store(string, any)                  {}
func (*slot) Range(func(key string, v any) bool) {}

func sessionOf(c *gws.Conn) *session { return c.Session().(*slot).s }

// handler receives gws events. All of them run on the session's read
// goroutine, so per-session read state needs no lock.
type handler struct {
	n *Node
}

func (h *handler) OnOpen(*gws.Conn) {}

func (h *handler) OnClose(c *gws.Conn, err error) {
	if s := sessionOf(c); s != nil {
		if s.reason.Load() == nil {
			if _, ok := err.(*gws.CloseError); !ok && err != nil {
				h.n.log.Debug("session read ended", "sid", s.sid, "err", err)
			}
		}
		h.n.closed(s)
	}
}

func (h *handler) OnPing(c *gws.Conn, payload []byte) {
	s := sessionOf(c)
	now := time.Now().UnixNano()
	if !h.n.admitFrame(s, now, len(payload)) {
		return
	}
	s.lastSeen.Store(now)
	h.n.heartbeat(s, now)
	h.reply(s, pongFrame(payload))
}

func (h *handler) OnPong(c *gws.Conn, _ []byte) {
	sessionOf(c).lastSeen.Store(time.Now().UnixNano())
}

func (h *handler) OnMessage(c *gws.Conn, msg *gws.Message) {
	defer msg.Close()
	s := sessionOf(c)
	n := h.n
	now := time.Now().UnixNano()
	s.lastSeen.Store(now)
	b := msg.Bytes()
	s.msgsIn.Add(1)
	s.bytesIn.Add(uint64(len(b)))
	if s.closing.Load() {
		return // we sent our close frame; only the peer's close matters now
	}
	if !n.admitFrame(s, now, len(b)) {
		return
	}
	if msg.Opcode != gws.OpcodeText {
		s.closeWith(CloseUnsupportedData, "binary frames are not supported: send JSON text", ReasonProtocolError)
		return
	}
	f, err := DecodeClientFrame(b)
	if err != nil {
		h.bad(s, ref{}, errBadJSON, "frame is not a JSON object with a \"type\": "+err.Error())
		return
	}
	if s.pending.Load() {
		n.connect(s, &f)
		return
	}
	r := ref{id: f.ID}
	switch f.Type {
	case typePing:
		interval := n.heartbeat(s, now)
		h.reply(s, encodePong(ms(interval), ms(interval+n.cfg.PingGrace), r))
	case typeJoin:
		h.join(s, &f)
	case typeRefresh:
		h.refresh(s, &f)
	case typeLeave:
		h.leave(s, &f)
	case typePublish:
		h.publish(s, &f)
	default:
		h.bad(s, r, errUnknownType, "unknown frame type "+quote(f.Type))
		return
	}
	s.badFrames = 0
}

func (h *handler) reply(s *session, f *frame) {
	s.enqueue(f)
	f.release()
}

// bad answers a bad frame with an error frame; a run of them closes the
// session, so a broken client cannot spin the node.
func (h *handler) bad(s *session, r ref, code, message string) {
	h.reply(s, encodeError(code, message, r))
	s.badFrames++
	if s.badFrames >= maxConsecutiveBadFrames {
		s.closeWith(CloseProtocolError, "too many bad frames", ReasonProtocolError)
	}
}

func (h *handler) join(s *session, f *ClientFrame) {
	n := h.n
	doc := f.Doc
	r := ref{id: f.ID, doc: doc}
	if err := contract.ValidateID(doc); err != nil {
		n.metrics.joinsRefused.WithLabelValues(errInvalidDoc).Inc()
		h.bad(s, r, errInvalidDoc, "doc id: "+err.Error())
		return
	}
	if s.joined(doc) {
		h.reply(s, encodeReply(typeJoined, r))
		return
	}
	if code, msg := h.authorizeJoin(s, doc, f.Token); code != "" {
		n.metrics.joinsRefused.WithLabelValues(code).Inc()
		h.bad(s, r, code, msg)
		return
	}
	if limit := n.cfg.MaxDocsPerSession; limit > 0 && s.docCount() >= limit {
		n.metrics.joinsRefused.WithLabelValues(errTooManyDocs).Inc()
		h.bad(s, r, errTooManyDocs, "this session has joined "+strconv.Itoa(limit)+" docs, the limit; leave one first")
		return
	}
	first, err := n.hub.docs.add(doc, s, func() error { return n.bus.Subscribe(contract.TargetDoc, doc) })
	if err != nil {
		h.reply(s, encodeError(errUnavailable, "cannot join now: "+err.Error(), r))
		return
	}
	s.mu.Lock()
	s.docs = append(s.docs, doc)
	s.mu.Unlock()
	if first {
		n.metrics.docs.Inc()
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.HandshakeTimeout)
		_ = n.bus.Sync(ctx)
		cancel()
	}
	h.reply(s, encodeReply(typeJoined, r))
}

// authorizeJoin returns an error code and message when s may not join doc:
// it needs a grant in its connection token's "docs" claim, or a join token
// for doc signed for its user (docs/PROTOCOL.md).
func (h *handler) authorizeJoin(s *session, doc, token string) (string, string) {
	if s.unrestricted || (token == "" && granted(s.grants, doc)) {
		return "", ""
	}
	if token == "" {
		return errForbidden, "not allowed to join " + quote(doc) + ": the token's docs claim does not cover it and the join has no token"
	}
	claims, err := h.n.cfg.Auth.Verify(token)
	switch {
	case errors.Is(err, auth.ErrTokenExpired):
		return errTokenExpired, "join token expired"
	case err != nil:
		return errTokenInvalid, "join token: " + err.Error()
	case claims.Subject != s.user:
		return errForbidden, "join token is for another user"
	case claims.Doc != doc:
		return errForbidden, "join token is for doc " + quote(claims.Doc) + ", not " + quote(doc)
	}
	return "", ""
}

// refresh replaces the session's token before it expires: same user, new
// exp and docs grants.
func (h *handler) refresh(s *session, f *ClientFrame) {
	n := h.n
	r := ref{id: f.ID}
	if n.cfg.Auth == nil {
		n.metrics.refreshes.WithLabelValues("error").Inc()
		h.bad(s, r, errTokenInvalid, "this node has no keys to verify tokens")
		return
	}
	claims, err := n.cfg.Auth.Verify(f.Token)
	code := ""
	switch {
	case errors.Is(err, auth.ErrTokenExpired):
		code = errTokenExpired
	case err != nil:
		code = errTokenInvalid
	case claims.Subject != s.user:
		code, err = errForbidden, errors.New("the new token's sub is not the session's user")
	}
	if code != "" {
		n.metrics.refreshes.WithLabelValues("error").Inc()
		h.bad(s, r, code, "refresh: "+err.Error())
		return
	}
	s.grants = claims.Docs
	exp := claims.Expiry()
	s.expires.Store(exp.UnixNano())
	n.metrics.refreshes.WithLabelValues("ok").Inc()
	h.reply(s, encodeRefreshed(exp.Unix(), r))
}

func (h *handler) leave(s *session, f *ClientFrame) {
	doc := f.Doc
	r := ref{id: f.ID, doc: doc}
	s.mu.Lock()
	i := slices.Index(s.docs, doc)
	if i >= 0 {
		s.docs = slices.Delete(s.docs, i, i+1)
	}
	s.mu.Unlock()
	if i < 0 {
		h.reply(s, encodeError(errNotJoined, "not joined to doc "+quote(doc), r))
		return
	}
	n := h.n
	if n.hub.docs.remove(doc, s, func() { n.unsubscribe(contract.TargetDoc, doc) }) {
		n.metrics.docs.Dec()
	}
	h.reply(s, encodeReply(typeLeft, r))
}

// publish forwards a client's publish frame to backends. A frame with an id
// is acknowledged with "published" once NATS took it.
func (h *handler) publish(s *session, f *ClientFrame) {
	r := ref{id: f.ID, doc: f.Doc}
	if !s.joined(f.Doc) {
		h.reply(s, encodeError(errNotJoined, "publish needs a joined doc; join "+quote(f.Doc)+" first", r))
		return
	}
	event := f.Event
	if event == "" {
		event = "message"
	}
	if len(event) > contract.MaxIDLength {
		h.reply(s, encodeError(errInvalidEvent, "event name longer than 128 characters", r))
		return
	}
	data := []byte(f.Data)
	if len(data) == 0 {
		data = []byte("null")
	}
	if err := h.n.bus.PublishUpstream(f.Doc, s.sid, s.user, event, data); err != nil {
		h.reply(s, encodeError(errUnavailable, "publish failed: "+err.Error(), r))
		return
	}
	h.n.metrics.upstream.Inc()
	if f.ID != "" {
		h.reply(s, encodeReply(typePublished, r))
	}
}

func quote(s string) string { return string(appendString(nil, s)) }

// gwsLogger routes gws's own errors (mostly recovered panics) to slog.
type gwsLogger struct{ l *slog.Logger }

func (g gwsLogger) Error(v ...any) { g.l.Error("gws", "detail", v) }
