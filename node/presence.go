package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pushd/pushd/auth"
	"github.com/pushd/pushd/contract"
)

// Presence, as the node sees it (docs/PROTOCOL.md): joins and leaves are
// tracked by the presence tracker (package presence), which keeps the
// cluster-wide members of the docs this node holds; sessions ask who is in
// a doc with presence and presence_stats frames, and those that joined with
// "presence":true get the doc's changes as presence_diff frames.

// Presence is what the node needs from the presence tracker;
// *presence.Tracker implements it.
type Presence interface {
	// Track adds m to doc's members; listen, when not nil, is called with
	// the number of m's own join before any later change is handed out
	// (see PresenceEvents).
	Track(doc string, m contract.Member, listen func(since uint64))
	// Untrack removes session sid from doc's members.
	Untrack(doc, sid string, reason contract.LeaveReason)
	// Query answers a page of doc's presence, wherever its members are.
	Query(ctx context.Context, doc string, q contract.PresenceQuery) (contract.PresencePage, error)
}

// track adds s, which just joined doc, to its presence; with events (or a
// doc matched by PresenceEvents) the session gets the doc's changes.
func (n *Node) track(s *session, doc string, events bool) {
	p := n.cfg.Presence
	if p == nil {
		return
	}
	var listen func(uint64)
	if events || granted(n.cfg.PresenceEvents, doc) {
		listen = func(since uint64) {
			s.mu.Lock()
			if s.listening == nil {
				s.listening = make(map[string]uint64)
			}
			if _, ok := s.listening[doc]; !ok {
				s.listening[doc] = since
			}
			s.mu.Unlock()
		}
	}
	p.Track(doc, contract.Member{SID: s.sid, User: s.user, Node: n.cfg.NodeID, JoinedAt: time.Now().UTC(), Info: s.info()}, listen)
}

// untrack takes s out of doc's presence.
func (n *Node) untrack(s *session, doc string, reason contract.LeaveReason) {
	p := n.cfg.Presence
	if p == nil {
		return
	}
	s.mu.Lock()
	delete(s.listening, doc)
	s.mu.Unlock()
	p.Untrack(doc, s.sid, reason)
}

// presenceInfo checks and compacts a token's info claim.
func (n *Node) presenceInfo(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, fmt.Errorf("%w: the info claim is not JSON", auth.ErrTokenInvalid)
	}
	if !utf8.Valid(b.Bytes()) {
		return nil, fmt.Errorf("%w: the info claim is not valid UTF-8", auth.ErrTokenInvalid)
	}
	if b.Len() > n.cfg.MaxPresenceInfo {
		return nil, fmt.Errorf("%w: the info claim is %d bytes, over the %d-byte limit (--presence-max-info)", auth.ErrTokenInvalid, b.Len(), n.cfg.MaxPresenceInfo)
	}
	return b.Bytes(), nil
}

// presence answers a presence or presence_stats frame: who is in a doc the
// session may join (it need not have joined it), a page at a time.
func (n *Node) presence(s *session, f *ClientFrame) {
	doc, stats := f.Doc, f.Type == typePresenceStats
	r := ref{id: f.ID, doc: doc}
	if err := contract.ValidateID(doc); err != nil {
		n.metrics.presence.inc(errInvalidDoc)
		n.bad(s, r, errInvalidDoc, "doc id: "+err.Error())
		return
	}
	if !s.joined(doc) {
		if code, msg := n.authorizeJoin(s, doc, f.Token); code != "" {
			n.metrics.presence.inc(code)
			n.bad(s, r, code, "the presence of a doc needs the grant joining it needs: "+msg)
			return
		}
	}
	if !n.admitPresence(s, r) {
		return
	}
	q := contract.PresenceQuery{Limit: f.Limit, Cursor: f.Cursor, Stats: stats}
	if q.Cursor != "" && q.After() <= 0 {
		n.metrics.presence.inc(errBadCursor)
		n.bad(s, r, errBadCursor, "cursor "+quote(q.Cursor)+" is not a session ID: pass the \"next\" of the previous page")
		return
	}
	if n.cfg.Presence == nil {
		n.metrics.presence.inc(errUnavailable)
		s.reply(encodeError(errUnavailable, "presence is off on this node", r))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.PresenceTimeout)
	page, err := n.cfg.Presence.Query(ctx, doc, q)
	cancel()
	if err != nil {
		n.metrics.presence.inc(errUnavailable)
		s.reply(encodeError(errUnavailable, "presence: "+err.Error(), r))
		return
	}
	n.metrics.presence.inc("ok")
	s.reply(encodePresence(&page, stats, f.ID))
}

// admitPresence applies the session's presence request rate. A request
// over it is answered rate_limited and is a strike, as a frame over the
// upstream rate is (admitFrame).
func (n *Node) admitPresence(s *session, r ref) bool {
	cfg := &n.cfg
	if cfg.PresenceRate < 0 {
		return true
	}
	now := time.Now().UnixNano()
	if s.rare().presenceLimit.take(now, cfg.PresenceRate, max(2*cfg.PresenceRate, 1), 1) {
		return true
	}
	n.metrics.presence.inc(errRateLimited)
	n.metrics.rateLimited.inc()
	s.reply(encodeError(errRateLimited, "too many presence requests: at most "+strconv.FormatFloat(cfg.PresenceRate, 'f', -1, 64)+" a second", r))
	n.strike(s, now, 1)
	return false
}

// PresenceEvents hands a doc's coalesced changes to the local sessions that
// asked for them: one frame, encoded once, for all; a session whose own
// join is in the batch gets only what came after it. The presence tracker
// calls it from one goroutine, so a doc's frames go out in order.
func (n *Node) PresenceEvents(ev *contract.PresenceEvents) {
	var shared *frame
	n.hub.docs.each(ev.Doc, func(s *session) {
		s.mu.Lock()
		since, ok := s.listening[ev.Doc]
		s.mu.Unlock()
		if !ok || since >= ev.Last {
			return
		}
		if since >= ev.First && !ev.CountsOnly {
			if f := encodePresenceDiff(ev, since); f != nil {
				n.metrics.presenceFrames.inc()
				s.reply(f)
			}
			return
		}
		if shared == nil {
			shared = encodePresenceDiff(ev, 0)
		}
		n.metrics.presenceFrames.inc()
		s.enqueue(shared)
	})
	if shared != nil {
		shared.release()
	}
}

// encodePresence builds the answer to a presence or presence_stats frame.
func encodePresence(p *contract.PresencePage, stats bool, id string) *frame {
	f := newFrame()
	typ := typePresence
	if stats {
		typ = typePresenceStats
	}
	b := append(append(append(f.buf, `{"type":"`...), typ...), `","doc":`...)
	b = appendString(b, p.Doc)
	b = appendCounts(b, p.Sessions, p.Users)
	if !stats {
		b = append(b, `,"members":[`...)
		for i := range p.Members {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendMember(b, &p.Members[i], "")
		}
		b = append(b, ']')
		if p.Next != "" {
			b = appendString(append(b, `,"next":`...), p.Next)
		}
	}
	f.buf = append(appendRef(b, ref{id: id}), '}')
	f.seal(opText)
	return f
}

// encodePresenceDiff builds a presence_diff frame of ev's changes after
// since; nil when there is none.
func encodePresenceDiff(ev *contract.PresenceEvents, since uint64) *frame {
	f := newFrame()
	b := append(f.buf, `{"type":"presence_diff","doc":`...)
	b = appendString(b, ev.Doc)
	b = appendCounts(b, ev.Sessions, ev.Users)
	if ev.CountsOnly {
		b = strconv.AppendInt(append(b, `,"joined":`...), int64(ev.Joined), 10)
		b = strconv.AppendInt(append(b, `,"left":`...), int64(ev.Left), 10)
	} else {
		b = append(b, `,"events":[`...)
		wrote := false
		for i := range ev.Changes {
			c := &ev.Changes[i]
			if c.Seq <= since {
				continue
			}
			if wrote {
				b = append(b, ',')
			}
			wrote = true
			if c.Join {
				b = appendMember(b, &c.Member, "join")
			} else {
				b = appendLeave(b, c)
			}
		}
		if !wrote {
			f.release()
			return nil
		}
		b = append(b, ']')
	}
	f.buf = append(b, '}')
	f.seal(opText)
	return f
}

func appendCounts(b []byte, sessions, users int) []byte {
	b = strconv.AppendInt(append(b, `,"sessions":`...), int64(sessions), 10)
	return strconv.AppendInt(append(b, `,"users":`...), int64(users), 10)
}

// appendMember appends a member object; event, when set, leads it
// ("join").
func appendMember(b []byte, m *contract.Member, event string) []byte {
	b = append(b, '{')
	if event != "" {
		b = append(append(append(b, `"event":"`...), event...), `",`...)
	}
	b = appendString(append(b, `"sid":`...), m.SID)
	b = appendString(append(b, `,"user":`...), m.User)
	b = strconv.AppendInt(append(b, `,"node":`...), m.Node, 10)
	b = append(b, `,"joined_at":"`...)
	b = m.JoinedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if len(m.Info) > 0 {
		b = append(append(b, `,"info":`...), m.Info...)
	}
	return append(b, '}')
}

// appendLeave appends a leave event: who left and why.
func appendLeave(b []byte, c *contract.PresenceChange) []byte {
	b = appendString(append(b, `{"event":"leave","sid":`...), c.Member.SID)
	b = appendString(append(b, `,"user":`...), c.Member.User)
	b = strconv.AppendInt(append(b, `,"node":`...), c.Member.Node, 10)
	b = appendString(append(b, `,"reason":`...), string(c.Reason))
	return append(b, '}')
}
