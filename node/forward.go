package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/pushd/pushd/contract"
)

// Forwarding: a request for an HTTP session that reached a node other than
// the one holding it (the sid names that node) goes there over NATS
// request/reply (router.Forwarder carries the bytes; this file encodes
// them), is answered there as a local one would be, and the answer comes
// back the same way. So any node serves any request, and load balancers
// need no sticky sessions.

// Forwarder carries a request for an HTTP session to the node holding it.
// router.Forwarder implements it over NATS.
type Forwarder interface {
	// Forward sends req to node and returns its answer, or
	// contract.ErrNoNode when no node of that number is up.
	Forward(ctx context.Context, node int64, req []byte) ([]byte, error)
	// MaxAnswer is the largest answer Forward can carry (NATS's
	// max_payload).
	MaxAnswer() int
}

// Request operations.
const (
	reqPull  = "pull"
	reqSend  = "send"
	reqClose = "close"
)

// request is one request for an HTTP session, as forwarded between nodes.
type request struct {
	Op     string `json:"op"`
	SID    string `json:"sid"`
	Secret string `json:"secret"`
	// A pull's: the reader's transport, attachment, cursor and how long it
	// may be held.
	Kind   string `json:"kind,omitempty"`
	Gen    uint64 `json:"gen,omitempty"`
	Cursor uint64 `json:"cursor,omitempty"`
	WaitMS int64  `json:"wait_ms,omitempty"`
	// MaxBytes bounds a pull's frames, so the answer fits a NATS message.
	MaxBytes int `json:"max_bytes,omitempty"`
	// Body is a send's frame.
	Body []byte `json:"body,omitempty"`
}

// dispatch answers req here when this node holds the session, or forwards
// it to the node that does.
func (n *Node) dispatch(ctx context.Context, req request) answer {
	home := contract.SessionNode(req.SID)
	if home == n.cfg.NodeID {
		return n.handle(ctx, req)
	}
	if n.cfg.Forwarder == nil || home < 0 {
		return pullError(http.StatusNotFound, errSessionNotFound, "no session with this sid and secret")
	}
	n.http.metrics.forwarded.inc(req.Op)
	req.MaxBytes = max(n.cfg.Forwarder.MaxAnswer()-answerHeadroom, 1)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(req.WaitMS)*time.Millisecond+forwardMargin)
	defer cancel()
	b, err := n.cfg.Forwarder.Forward(ctx, home, encodeRequest(req))
	switch {
	case errors.Is(err, contract.ErrNoNode):
		return pullError(http.StatusNotFound, errSessionNotFound, "no session with this sid and secret")
	case err != nil:
		return pullError(http.StatusServiceUnavailable, errUnavailable, "node "+strconv.FormatInt(home, 10)+" holding the session did not answer: "+err.Error())
	}
	a, err := decodeAnswer(b)
	if err != nil {
		n.log.Warn("bad answer from a node", "node", home, "err", err)
		return pullError(http.StatusServiceUnavailable, errUnavailable, "node "+strconv.FormatInt(home, 10)+" answered garbage")
	}
	return a
}

// answerHeadroom is kept free in a forwarded answer for its header line and
// the NATS headers.
const answerHeadroom = 4 << 10

// ServeForwarded answers a request another node forwarded (the Forwarder's
// handler): req and the result are encoded by encodeRequest and
// encodeAnswer. ctx ends when the forwarder closes.
func (n *Node) ServeForwarded(ctx context.Context, b []byte) []byte {
	req, err := decodeRequest(b)
	if err != nil {
		return encodeAnswer(pullError(http.StatusBadRequest, errBadSession, "bad forwarded request: "+err.Error()))
	}
	n.http.metrics.served.inc(req.Op)
	if contract.SessionNode(req.SID) != n.cfg.NodeID { // never forwarded twice
		return encodeAnswer(pullError(http.StatusNotFound, errSessionNotFound, "no session with this sid and secret"))
	}
	a := n.handle(ctx, req)
	out := encodeAnswer(a)
	a.done()
	return out
}

// ForwardBusy is the answer to a forwarded request the node has no room
// for: 503 busy.
func (n *Node) ForwardBusy([]byte) []byte {
	return encodeAnswer(pullError(http.StatusServiceUnavailable, errBusy, "the node holding the session is busy; retry"))
}

func encodeRequest(req request) []byte {
	b, _ := json.Marshal(req) // plain fields: cannot fail
	return b
}

// maxForwarded bounds what decodeRequest and decodeAnswer accept: more than
// a session's backlog and one push.
const maxForwarded = 64 << 20

func decodeRequest(b []byte) (request, error) {
	var req request
	if len(b) > maxForwarded {
		return req, errors.New("request too large")
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return req, err
	}
	switch {
	case req.Op != reqPull && req.Op != reqSend && req.Op != reqClose:
		return req, errors.New("unknown op " + quote(req.Op))
	case !validSID(req.SID):
		return req, errors.New("bad sid")
	case req.WaitMS < 0 || req.MaxBytes < 0:
		return req, errors.New("negative wait or size")
	}
	return req, nil
}

// answerHeader is the first line of an encoded answer.
type answerHeader struct {
	Status  int    `json:"status"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Gen     uint64 `json:"gen,omitempty"`
	Ended   bool   `json:"ended,omitempty"`
	Retry   int64  `json:"retry,omitempty"`
	Items   int    `json:"items,omitempty"`
}

// encodeAnswer encodes a: a JSON header line, then a pull's items, each
// "<cursor> <upos> <length>\n" and its frame, or a send's body.
func encodeAnswer(a answer) []byte {
	h, _ := json.Marshal(answerHeader{Status: a.status, Code: a.code, Message: a.message, Gen: a.gen,
		Ended: a.ended, Retry: a.retry, Items: len(a.items)})
	size := len(h) + 1 + len(a.body)
	for _, it := range a.items {
		size += len(it.data) + 48
	}
	b := append(make([]byte, 0, size), h...)
	b = append(b, '\n')
	for _, it := range a.items {
		b = strconv.AppendUint(b, it.cursor, 10)
		b = strconv.AppendUint(append(b, ' '), it.upos, 10)
		b = strconv.AppendInt(append(b, ' '), int64(len(it.data)), 10)
		b = append(append(b, '\n'), it.data...)
	}
	return append(b, a.body...)
}

// decodeAnswer decodes what encodeAnswer made; the items' data alias b.
func decodeAnswer(b []byte) (answer, error) {
	var a answer
	if len(b) > maxForwarded {
		return a, errors.New("answer too large")
	}
	line, rest, ok := bytes.Cut(b, []byte{'\n'})
	if !ok {
		return a, errors.New("no header line")
	}
	var h answerHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return a, err
	}
	if h.Status < 100 || h.Status > 599 || h.Items < 0 || h.Items > len(rest) {
		return a, errors.New("bad header")
	}
	a = answer{status: h.Status, code: h.Code, message: h.Message, gen: h.Gen, ended: h.Ended, retry: h.Retry}
	if h.Items > 0 {
		a.items = make([]item, 0, h.Items)
	}
	for range h.Items {
		line, tail, ok := bytes.Cut(rest, []byte{'\n'})
		if !ok {
			return answer{}, errors.New("truncated item")
		}
		fields := bytes.Fields(line)
		if len(fields) != 3 {
			return answer{}, errors.New("bad item header")
		}
		var it item
		var size uint64
		var err error
		if it.cursor, err = parseDecimal(string(fields[0])); err == nil {
			if it.upos, err = parseDecimal(string(fields[1])); err == nil {
				size, err = parseDecimal(string(fields[2]))
			}
		}
		if err != nil || size > uint64(len(tail)) {
			return answer{}, errors.New("bad item header")
		}
		it.data = tail[:size:size]
		a.items = append(a.items, it)
		rest = tail[size:]
	}
	if len(rest) > 0 {
		a.body = rest
	}
	return a, nil
}
