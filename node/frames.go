package node

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/pushd/pushd/auth"
	"github.com/pushd/pushd/contract"
)

// The client protocol's frames, whatever transport brought them
// (docs/PROTOCOL.md): ping, join, leave, publish, refresh, and connect for a
// session that authenticates with its first frame (handshake.go).

// receive handles one client frame of any transport, on the session's read
// side: b is the frame's payload, text whether it came as text.
func (n *Node) receive(s *session, b []byte, text bool) {
	now := time.Now().UnixNano()
	s.lastSeen.Store(now)
	s.msgsIn.Add(1)
	s.bytesIn.Add(uint64(len(b)))
	if s.closing.Load() {
		return // we sent our close; only the peer's close matters now
	}
	if !n.admitFrame(s, now, b) {
		return
	}
	if !text {
		s.closeWith(CloseUnsupportedData, "binary frames are not supported: send JSON text", ReasonProtocolError)
		return
	}
	f, err := DecodeClientFrame(b)
	if err != nil {
		n.bad(s, ref{}, errBadJSON, "frame is not a JSON object with a \"type\": "+err.Error())
		return
	}
	if s.pending.Load() {
		n.connect(s, &f)
		return
	}
	r := ref{id: f.ID}
	if (f.Type == typeJoin || f.Type == typeLeave) && !n.admitJoin(s, now, ref{id: f.ID, doc: f.Doc}) {
		return
	}
	switch f.Type {
	case typePing:
		interval := n.heartbeat(s, now)
		s.reply(encodePong(ms(interval), ms(interval+n.cfg.PingGrace), r))
	case typeJoin:
		n.join(s, &f)
	case typeRefresh:
		n.refresh(s, &f)
	case typeLeave:
		n.leave(s, &f)
	case typePublish:
		n.publish(s, &f)
	case typeAck:
		n.ack(s, &f)
	case typePresence, typePresenceStats:
		n.presence(s, &f)
	default:
		n.bad(s, r, errUnknownType, "unknown frame type "+quote(f.Type))
		return
	}
	s.badFrames = 0
}

// bad answers a bad frame with an error frame; a run of them closes the
// session, so a broken client cannot spin the node.
func (n *Node) bad(s *session, r ref, code, message string) {
	s.reply(encodeError(code, message, r))
	s.badFrames++
	if s.badFrames >= maxConsecutiveBadFrames {
		s.closeWith(CloseProtocolError, "too many bad frames", ReasonProtocolError)
	}
}

// join joins s to f.Doc. With f.Since, the position of the last push of
// the doc the client processed, the pushes it missed follow joined, then the
// live ones, with no gap and no duplicate (recover.go).
func (n *Node) join(s *session, f *ClientFrame) {
	doc := f.Doc
	r := ref{id: f.ID, doc: doc}
	if err := contract.ValidateID(doc); err != nil {
		n.metrics.joinsRefused.inc(errInvalidDoc)
		n.bad(s, r, errInvalidDoc, "doc id: "+err.Error())
		return
	}
	if code, msg := n.authorizeJoin(s, doc, f.Token); code != "" {
		n.metrics.joinsRefused.inc(code)
		n.bad(s, r, code, msg)
		return
	}
	if f.Since.Invalid {
		n.bad(s, r, errBadSince, sinceMessage(f.Since, nil))
		return
	}
	joined := func(at resumed) *frame { return encodeJoined(r, at) }
	if s.joined(doc) {
		if f.Presence {
			n.track(s, doc, true) // events from now on
		}
		var at resumed
		at.position, at.known = n.bus.Position(contract.TargetDoc)
		s.reply(joined(at))
		return
	}
	if limit := n.cfg.MaxDocsPerSession; limit > 0 && s.docCount() >= limit {
		n.metrics.joinsRefused.inc(errTooManyDocs)
		n.bad(s, r, errTooManyDocs, "this session has joined "+strconv.Itoa(limit)+" docs, the limit; leave one first")
		return
	}
	if !n.userDocs.add(s.user, doc) {
		n.metrics.joinsRefused.inc(reasonTooManyUDocs)
		n.bad(s, r, errTooManyDocs, "this user's sessions on this node have joined "+strconv.Itoa(n.cfg.MaxDocsPerUser)+" distinct docs, the limit; leave one first")
		return
	}
	if f.Since.Set {
		s.holdLive(subjectKey(contract.TargetDoc, doc))
	}
	first, err := n.hub.docs.add(doc, s, func() error { return n.bus.Subscribe(contract.TargetDoc, doc) })
	if err != nil {
		n.userDocs.remove(s.user, doc)
		s.unhold(subjectKey(contract.TargetDoc, doc))
		s.reply(encodeError(errUnavailable, "cannot join now: "+err.Error(), r))
		return
	}
	s.mu.Lock()
	s.docs = append(s.docs, doc)
	s.mu.Unlock()
	n.track(s, doc, f.Presence)
	if first {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.HandshakeTimeout)
		_ = n.bus.Sync(ctx)
		cancel()
	}
	if !f.Since.Set {
		var at resumed
		at.position, at.known = n.bus.Position(contract.TargetDoc)
		s.reply(joined(at))
		return
	}
	replay, at, err := n.resume(s, contract.TargetDoc, doc, f.Since.N)
	if err != nil { // a since ahead of the history: no join, no data
		s.unhold(subjectKey(contract.TargetDoc, doc))
		n.leaveDoc(s, doc)
		n.bad(s, r, errBadSince, sinceMessage(f.Since, err))
		return
	}
	n.release(s, contract.TargetDoc, doc, joined, replay, at, false)
}

// authorizeJoin returns an error code and message when s may not join doc:
// it needs a grant in its connection token's "docs" claim, or a join token
// for doc signed for its user (docs/PROTOCOL.md).
func (n *Node) authorizeJoin(s *session, doc, token string) (string, string) {
	if s.unrestricted || (token == "" && granted(s.grants, doc)) {
		return "", ""
	}
	if token == "" {
		return errForbidden, "not allowed to join " + quote(doc) + ": the token's docs claim does not cover it and the join has no token"
	}
	claims, err := n.cfg.Auth.Verify(token)
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
func (n *Node) refresh(s *session, f *ClientFrame) {
	r := ref{id: f.ID}
	if n.cfg.Auth == nil {
		n.metrics.refreshes.inc("error")
		n.bad(s, r, errTokenInvalid, "this node has no keys to verify tokens")
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
		n.metrics.refreshes.inc("error")
		n.bad(s, r, code, "refresh: "+err.Error())
		return
	}
	s.grants = claims.Docs
	exp := claims.Expiry()
	s.expires.Store(exp.UnixNano())
	n.metrics.refreshes.inc("ok")
	s.reply(encodeRefreshed(exp.Unix(), r))
}

func (n *Node) leave(s *session, f *ClientFrame) {
	r := ref{id: f.ID, doc: f.Doc}
	if !n.leaveDoc(s, f.Doc) {
		s.reply(encodeError(errNotJoined, "not joined to doc "+quote(f.Doc), r))
		return
	}
	s.reply(encodeReply(typeLeft, r))
}

// leaveDoc takes s out of doc; it reports false when s had not joined it.
func (n *Node) leaveDoc(s *session, doc string) bool {
	s.mu.Lock()
	i := slices.Index(s.docs, doc)
	if i >= 0 {
		s.docs = slices.Delete(s.docs, i, i+1)
	}
	s.mu.Unlock()
	if i < 0 {
		return false
	}
	n.userDocs.remove(s.user, doc)
	n.hub.docs.remove(doc, s, func() { n.unsubscribe(contract.TargetDoc, doc) })
	n.untrack(s, doc, contract.LeaveLeft)
	return true
}

// publish forwards a client's publish frame to backends. A frame with an id
// is acknowledged with "published" once NATS took it.
func (n *Node) publish(s *session, f *ClientFrame) {
	r := ref{id: f.ID, doc: f.Doc}
	if !s.joined(f.Doc) {
		s.reply(encodeError(errNotJoined, "publish needs a joined doc; join "+quote(f.Doc)+" first", r))
		return
	}
	event := f.Event
	if event == "" {
		event = "message"
	}
	if len(event) > contract.MaxIDLength {
		s.reply(encodeError(errInvalidEvent, "event name longer than 128 characters", r))
		return
	}
	data := []byte(f.Data)
	if len(data) == 0 {
		data = []byte("null")
	}
	if err := n.bus.PublishUpstream(f.Doc, s.sid, s.user, event, data); err != nil {
		s.reply(encodeError(errUnavailable, "publish failed: "+err.Error(), r))
		return
	}
	n.metrics.upstream.inc()
	if f.ID != "" {
		s.reply(encodeReply(typePublished, r))
	}
}

func quote(s string) string { return string(appendString(nil, s)) }
