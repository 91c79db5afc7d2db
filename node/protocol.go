package node

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/pushd/pushd/contract"
)

// Frame types of the client protocol (docs/PROTOCOL.md).
const (
	typeConnect   = "connect"
	typeHello     = "hello"
	typeJoin      = "join"
	typeJoined    = "joined"
	typeLeave     = "leave"
	typeLeft      = "left"
	typePing      = "ping"
	typePong      = "pong"
	typePublish   = "publish"
	typePush      = "push"
	typeError     = "error"
	typeRefresh   = "refresh"
	typeRefreshed = "refreshed"
	typePublished = "published"
	typeAck       = "ack"
	// presence (presence.go)
	typePresence      = "presence"
	typePresenceStats = "presence_stats"
	typePresenceDiff  = "presence_diff"
)

// Error codes sent in error frames.
const (
	errBadJSON      = "bad_json"
	errUnknownType  = "unknown_type"
	errInvalidDoc   = "invalid_doc"
	errNotJoined    = "not_joined"
	errInvalidEvent = "invalid_event"
	errUnavailable  = "unavailable"
	errForbidden    = "forbidden"
	errTooManyDocs  = "too_many_docs"
	errRateLimited  = "rate_limited"
	errTokenExpired = "token_expired"
	errTokenInvalid = "token_invalid"
	errBadSince     = "bad_since"
	errBadSeq       = "bad_seq"
	// errBadCursor (httpsession.go) answers a presence cursor that is not a
	// session ID too.
)

// ClientFrame is a frame a client sends. Unknown fields are ignored so clients
// can be newer than the node.
type ClientFrame struct {
	Type  string          `json:"type"`
	Doc   string          `json:"doc,omitempty"`
	Event string          `json:"event,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	// Token is the connection token (connect), a join token (join) or a new
	// connection token (refresh).
	Token string `json:"token,omitempty"`
	// User is the user of a dev node's connect frame, in place of a token.
	User string `json:"user,omitempty"`
	// ID is the client's own correlation ID, echoed in the reply.
	ID string `json:"id,omitempty"`
	// Since is the position a client resumes from (connect, join).
	Since Position `json:"since,omitempty"`
	// Seq is the position of the push an ack acknowledges.
	Seq Position `json:"seq,omitempty"`
	// PushID names the push an ack acknowledges when it has no position (a
	// broadcast or a session push): its "id".
	PushID string `json:"push_id,omitempty"`
	// Presence, in a join, asks for the doc's presence events.
	Presence bool `json:"presence,omitempty"`
	// Limit and Cursor page a presence request.
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// Position is a push's position as a client sends it back: a decimal
// string, as the node sends it (positions do not fit a JavaScript number),
// or a JSON number from clients that insist. Set says it was given.
type Position struct {
	N   uint64
	Set bool
	// Invalid says what was sent is not a position; Bad holds it (at most
	// 64 bytes of it) for the error message.
	Invalid bool
	Bad     string
}

// UnmarshalJSON accepts "123" or 123; anything else is kept in Bad for a
// bad_since or bad_seq error rather than failing the whole frame.
func (p *Position) UnmarshalJSON(b []byte) error {
	*p = Position{Set: true}
	raw := string(b)
	if len(b) >= 2 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			p.Invalid, p.Bad = true, raw[:min(len(raw), 64)]
			return nil
		}
		raw = s
	}
	n, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		p.Invalid, p.Bad = true, raw[:min(len(raw), 64)]
		return nil
	}
	p.N = n
	return nil
}

// maxFrameIDLength bounds a client frame's id: it is echoed back.
const maxFrameIDLength = 128

var (
	errNoType = errors.New("pushd: frame has no type")
	errLongID = errors.New("pushd: frame id or push_id longer than 128 bytes")
)

// ref is what a reply echoes of the client frame it answers, so a client can
// match them: the frame's id and, for frames about a doc, the doc.
type ref struct{ id, doc string }

// appendRef appends the ref's fields, each only when set.
func appendRef(b []byte, r ref) []byte {
	if r.doc != "" {
		b = appendString(append(b, `,"doc":`...), r.doc)
	}
	if r.id != "" {
		b = appendString(append(b, `,"id":`...), r.id)
	}
	return b
}

// DecodeClientFrame parses one client text frame. It rejects anything that is
// not a JSON object with a string "type".
func DecodeClientFrame(b []byte) (ClientFrame, error) {
	var f ClientFrame
	if err := json.Unmarshal(b, &f); err != nil {
		return ClientFrame{}, err
	}
	if f.Type == "" {
		return ClientFrame{}, errNoType
	}
	if len(f.ID) > maxFrameIDLength || len(f.PushID) > maxFrameIDLength {
		return ClientFrame{}, errLongID
	}
	return f, nil
}

// encodePush builds the push frame once; every recipient gets these bytes.
//
// A body that is valid JSON and valid UTF-8 is embedded verbatim; anything
// else becomes a JSON string, so the frame is always valid JSON text. An empty
// body is null.
func encodePush(p *contract.Push) *frame {
	f := newFrame()
	b := append(f.buf, `{"type":"push","target":`...)
	b = appendString(b, string(p.Target))
	if p.Target == contract.TargetDoc {
		b = append(b, `,"doc":`...)
		b = appendString(b, p.Key)
	}
	if p.Seq != 0 {
		b = strconv.AppendUint(append(b, `,"seq":"`...), p.Seq, 10)
		b = append(b, '"')
		f.seq, f.prev, f.subject = p.Seq, p.PrevSeq, subjectKey(p.Target, p.Key)
	}
	// An ack names a push by its position, or by its ID when it has none.
	if p.Receipt != "" && (p.Seq != 0 || p.ID != "") {
		b = append(b, `,"ack":true`...)
		f.receipt = &receipt{subject: p.Receipt, id: p.ID, target: p.Target, key: p.Key}
	}
	b = append(b, `,"event":`...)
	b = appendString(b, p.Event)
	if p.ID != "" {
		b = append(b, `,"id":`...)
		b = appendString(b, p.ID)
	}
	b = append(b, `,"data":`...)
	switch {
	case len(p.Data) == 0:
		b = append(b, "null"...)
	case utf8.Valid(p.Data) && json.Valid(p.Data):
		b = append(b, p.Data...)
	default:
		b = appendString(b, string(p.Data))
	}
	f.buf = append(b, '}')
	f.seal(opText)
	return f
}

func encodeHello(sid string, nodeID int64, user string, intervalMS, timeoutMS int64, id string, at resumed) *frame {
	f := newFrame()
	b := append(f.buf, `{"type":"hello","sid":"`...)
	b = append(b, sid...)
	b = append(b, `","node":`...)
	b = strconv.AppendInt(b, nodeID, 10)
	b = append(b, `,"user":`...)
	b = appendString(b, user)
	b = appendHeartbeat(append(b, ','), intervalMS, timeoutMS)
	b = at.append(b)
	f.buf = append(appendRef(b, ref{id: id}), '}')
	f.seal(opText)
	return f
}

func encodePong(intervalMS, timeoutMS int64, r ref) *frame {
	f := newFrame()
	b := appendHeartbeat(append(f.buf, `{"type":"pong",`...), intervalMS, timeoutMS)
	f.buf = append(appendRef(b, r), '}')
	f.seal(opText)
	return f
}

// appendHeartbeat appends the heartbeat fields hello and pong share.
func appendHeartbeat(b []byte, intervalMS, timeoutMS int64) []byte {
	b = append(b, `"ping_interval":`...)
	b = strconv.AppendInt(b, intervalMS, 10)
	b = append(b, `,"ping_timeout":`...)
	return strconv.AppendInt(b, timeoutMS, 10)
}

// resumed is where a reply leaves a client on a subject: the subject's
// position, and, for a client that resumed, whether it got everything.
type resumed struct {
	position  uint64
	known     bool // history gave a position
	resuming  bool // the client sent since
	recovered bool
}

// append adds "seq" and "recovered" to a hello or joined.
func (r resumed) append(b []byte) []byte {
	if r.known {
		b = strconv.AppendUint(append(b, `,"seq":"`...), r.position, 10)
		b = append(b, '"')
	}
	if r.resuming {
		b = strconv.AppendBool(append(b, `,"recovered":`...), r.recovered)
	}
	return b
}

// encodeJoined builds joined, with the doc's position.
func encodeJoined(r ref, at resumed) *frame {
	f := newFrame()
	b := at.append(append(f.buf, `{"type":"joined"`...))
	f.buf = append(appendRef(b, r), '}')
	f.seal(opText)
	return f
}

// encodeReply builds a reply that carries nothing but its type and ref:
// joined, left, published.
func encodeReply(typ string, r ref) *frame {
	f := newFrame()
	b := append(append(append(f.buf, `{"type":"`...), typ...), '"')
	f.buf = append(appendRef(b, r), '}')
	f.seal(opText)
	return f
}

func encodeRefreshed(exp int64, r ref) *frame {
	f := newFrame()
	b := append(f.buf, `{"type":"refreshed","exp":`...)
	b = strconv.AppendInt(b, exp, 10)
	f.buf = append(appendRef(b, r), '}')
	f.seal(opText)
	return f
}

// encodeError builds an error frame; r names the doc and echoes the id of
// the frame it answers, when there is one.
func encodeError(code, message string, r ref) *frame {
	f := newFrame()
	b := append(f.buf, `{"type":"error","code":"`...)
	b = append(b, code...)
	b = append(b, `","message":`...)
	b = appendString(b, message)
	f.buf = append(appendRef(b, r), '}')
	f.seal(opText)
	return f
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does, so the result is always valid text.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
