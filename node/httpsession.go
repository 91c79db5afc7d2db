package node

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pushd/pushd/contract"
)

// HTTP sessions: the same sessions and frames as on a WebSocket, carried by
// plain HTTP for clients whose network breaks WebSockets
// (docs/PROTOCOL.md, "HTTP transports"):
//
//	POST /http/connect   a session: token in Authorization (or the body), never in the URL;
//	                     answers {"sid","secret",...}
//	GET  /http/sse       the session's frames as server-sent events (sid and secret in the query)
//	GET  /http/poll      the session's frames, long-polled, acknowledged by cursor
//	POST /http/send      one client frame (join, leave, publish, refresh, ack, ping); the
//	                     replies come back in the response
//	POST /http/close     ends the session
//
// The sid names the node holding the session, and any node serves any of
// these requests: one for a session elsewhere is forwarded over NATS
// (forward.go), so no sticky load balancing is needed. The sid is a
// snowflake, guessable; only the secret, 256 random bits handed to the
// client that authenticated, grants access to the session.

// HTTP error codes (the "error" of an HTTP error's JSON body).
const (
	errNotFound         = "not_found"
	errMethodNotAllowed = "method_not_allowed"
	errBadSession       = "bad_session"
	errSessionNotFound  = "session_not_found"
	errSessionClosed    = "session_closed"
	errWrongTransport   = "wrong_transport"
	errBadTransport     = "bad_transport"
	errBadCursor        = "bad_cursor"
	errBadWait          = "bad_wait"
	errCursorLost       = "cursor_lost"
	errReplaced         = "replaced"
	errTooLarge         = "too_large"
	errBusy             = "busy"
)

// httpErrorCodes are the values of pushd_http_errors_total.
var httpErrorCodes = []string{errNotFound, errMethodNotAllowed, errBadSession, errSessionNotFound, errSessionClosed,
	errWrongTransport, errBadTransport, errBadCursor, errBadWait, errCursorLost, errReplaced, errTooLarge, errBusy,
	errBadJSON, errRateLimited, errUnavailable, "forbidden_origin"}

// CloseReplaced ends an SSE stream that another stream or poll of its
// session replaced: the session lives on there; this stream must not
// reconnect.
const CloseReplaced CloseCode = 4011

// minConnectBody is the least a connect body may hold, whatever
// MaxFrameSize says: a token is up to 8 KiB.
const minConnectBody = 16 << 10

// forwardMargin is how much longer than a pull may be held the node that
// forwarded it waits for the answer.
const forwardMargin = 5 * time.Second

// httpSessions are the node's HTTP sessions by ID, live or ended (kept as
// tombstones until their client could read the close frame).
type httpSessions struct {
	mu         sync.RWMutex
	m          map[int64]*httpTransport
	tombstones []*httpTransport // ended, oldest first

	live     [2]atomic.Int64 // by transportIndex
	accepted [2]atomic.Uint64
	closed   [2]atomic.Uint64
	streams  atomic.Int64 // SSE streams open, here or relayed
	polls    atomic.Int64 // pulls held waiting for frames
	metrics  *httpMetrics

	// ctx ends when the node drains or closes: streams relayed from other
	// nodes end with it, so their clients reconnect elsewhere.
	ctx  context.Context
	stop context.CancelFunc
}

func newHTTPSessions() *httpSessions {
	ctx, stop := context.WithCancel(context.Background())
	return &httpSessions{m: make(map[int64]*httpTransport), ctx: ctx, stop: stop, metrics: newHTTPMetrics()}
}

func transportIndex(kind string) int {
	if kind == transportSSE {
		return 0
	}
	return 1
}

// add registers t's session, activated as id. A session that ended
// meanwhile (a kick, say) goes straight to the tombstones.
func (h *httpSessions) add(id int64, t *httpTransport) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m[id] = t
	h.accepted[transportIndex(t.kind)].Add(1)
	if t.endedEarly {
		h.closed[transportIndex(t.kind)].Add(1)
		h.tombstones = append(h.tombstones, t)
		return
	}
	t.registered = true
	h.live[transportIndex(t.kind)].Add(1)
}

// ended records that t's session ended; its tombstone stays until prune.
func (h *httpSessions) ended(t *httpTransport) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !t.registered {
		t.endedEarly = true
		return
	}
	h.live[transportIndex(t.kind)].Add(-1)
	h.closed[transportIndex(t.kind)].Add(1)
	h.tombstones = append(h.tombstones, t)
}

// prune forgets tombstones older than linger; the sweeper calls it.
func (h *httpSessions) prune(now int64, linger time.Duration) {
	var gone []*httpTransport
	h.mu.Lock()
	i := 0
	for ; i < len(h.tombstones) && now-h.tombstones[i].endedAt > int64(linger); i++ {
		t := h.tombstones[i]
		if h.m[t.s.id] == t {
			delete(h.m, t.s.id)
		}
		gone = append(gone, t)
		h.tombstones[i] = nil
	}
	h.tombstones = h.tombstones[i:]
	h.mu.Unlock()
	for _, t := range gone {
		t.drop()
	}
}

// lookup returns the session sid whose secret is secret, live or ended.
// An unknown sid and a wrong secret are the same answer, and take the same
// time: the secret is compared in constant time either way.
func (h *httpSessions) lookup(sid, secret string) *httpTransport {
	id, err := strconv.ParseInt(sid, 10, 64)
	if err != nil {
		return nil
	}
	h.mu.RLock()
	t := h.m[id]
	h.mu.RUnlock()
	want := decoySecret
	if t != nil {
		want = t.secret
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 || t == nil {
		return nil
	}
	return t
}

// decoySecret is compared against when the sid is unknown.
var decoySecret = strings.Repeat("x", secretLength)

// secretLength is the length of a session secret: 32 random bytes,
// unpadded base64url.
const secretLength = 43

func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ServeHTTPSessions serves the HTTP transports mounted at /http/ (see the
// top of this file and docs/PROTOCOL.md). Every error is an HTTP status and
// a JSON body {"error":"<code>","message":"..."}.
func (n *Node) ServeHTTPSessions(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if origin := r.Header.Get("Origin"); origin != "" {
		if !n.originAllowed(r) {
			n.httpError(w, http.StatusForbidden, "forbidden_origin", n.originRefusal(r))
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	}
	endpoint := strings.TrimPrefix(r.URL.Path, "/http/")
	if r.Method == http.MethodOptions { // a browser's CORS preflight
		h.Set("Access-Control-Allow-Methods", "GET, POST")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID, Push-Session, Push-Secret")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	method := http.MethodPost
	var serve func(http.ResponseWriter, *http.Request)
	switch endpoint {
	case "connect":
		serve = n.serveConnect
	case "send":
		serve = n.serveSend
	case "close":
		serve = n.serveClose
	case "sse":
		method, serve = http.MethodGet, n.serveSSE
	case "poll":
		method, serve = http.MethodGet, n.servePoll
	default:
		n.httpError(w, http.StatusNotFound, errNotFound, "no endpoint "+quote(r.URL.Path)+": see docs/PROTOCOL.md, \"HTTP transports\"")
		return
	}
	n.http.metrics.requests.inc(endpoint)
	if r.Method != method {
		h.Set("Allow", method)
		n.httpError(w, http.StatusMethodNotAllowed, errMethodNotAllowed, r.URL.Path+" takes "+method)
		return
	}
	serve(w, r)
}

// httpError answers with status and a JSON error body.
func (n *Node) httpError(w http.ResponseWriter, status int, code, message string) {
	n.http.metrics.errors.inc(code)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	switch status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	b := appendString(append(appendString([]byte(`{"error":`), code), `,"message":`...), message)
	_, _ = w.Write(append(b, "}\n"...))
}

// readBody reads r's body up to limit bytes, or answers 413.
func (n *Node) readBody(w http.ResponseWriter, r *http.Request, limit int) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		n.httpError(w, http.StatusRequestEntityTooLarge, errTooLarge, "body larger than "+strconv.Itoa(limit)+" bytes")
		return nil, false
	case err != nil:
		n.httpError(w, http.StatusBadRequest, errBadJSON, "reading the body: "+err.Error())
		return nil, false
	}
	return b, true
}

// connectRequest is the body of POST /http/connect: a connect frame
// ({"type":"connect","token":...}) with the transport and where to resume.
type connectRequest struct {
	Type      string `json:"type"`
	Token     string `json:"token"`
	User      string `json:"user"`
	Transport string `json:"transport"`
	ID        string `json:"id"`
	// Since resumes the user's pushes from a position; LastEventID from
	// the user position an earlier session's cursor carries.
	Since       Position `json:"since"`
	LastEventID string   `json:"last_event_id"`
}

// serveConnect opens an HTTP session: POST /http/connect.
func (n *Node) serveConnect(w http.ResponseWriter, r *http.Request) {
	if ok, why := n.Ready(); !ok {
		n.refuse(w, r, notReady(why), n.notReadyMessage(why))
		return
	}
	if n.ipLimiter != nil && !n.ipLimiter.allow(n.clientKey(r), time.Now().UnixNano()) {
		n.refuse(w, r, refuseRateLimited, "too many handshakes from this address; retry later")
		return
	}
	body, ok := n.readBody(w, r, max(n.cfg.MaxFrameSize, minConnectBody))
	if !ok {
		return
	}
	var req connectRequest
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			n.httpError(w, http.StatusBadRequest, errBadJSON, "body is not a JSON connect object: "+err.Error())
			return
		}
	}
	q := r.URL.Query()
	if req.Transport == "" {
		req.Transport = q.Get("transport")
	}
	if req.Transport != transportSSE && req.Transport != transportPoll {
		n.httpError(w, http.StatusBadRequest, errBadTransport, `transport must be "sse" or "poll" (in the body or ?transport=)`)
		return
	}
	if len(req.ID) > maxFrameIDLength {
		n.httpError(w, http.StatusBadRequest, errBadJSON, "id longer than 128 bytes")
		return
	}
	since := req.Since
	if !since.Set {
		since = querySince(r)
	}
	if lei := req.LastEventID; lei != "" && !since.Set {
		if _, upos, err := parseCursor(lei); err != nil {
			n.httpError(w, http.StatusBadRequest, errBadCursor, "last_event_id "+quote(lei)+" is not a cursor of this protocol")
			return
		} else if upos != 0 {
			since = Position{N: upos, Set: true}
		}
	}
	c, present := credentials(r)
	if !present && (req.Token != "" || req.User != "") {
		c, present = creds{token: req.Token, user: req.User, hasUser: req.User != ""}, true
	}
	if !present {
		n.refuse(w, r, refuseTokenMissing, "no token: send Authorization: Bearer <jwt>, or {\"token\":\"<jwt>\"} in the body")
		return
	}
	who, err := n.identify(c)
	if err != nil {
		n.refuse(w, r, authRefusal(err), authMessage(err))
		return
	}
	if !n.admit.reserveConn() {
		n.refuse(w, r, refuseOverCapacity, n.elsewhere("at its connection limit, reconnect elsewhere"))
		return
	}
	if ok, cluster := n.admit.reserveUserWhy(who.user); !ok {
		n.admit.releaseConn()
		n.refuse(w, r, tooManySessions(cluster), n.tooManySessionsMessage(cluster))
		return
	}
	t := &httpTransport{kind: req.Transport, secret: newSecret(), userKey: subjectKey(contract.TargetUser, who.user)}
	s := n.newSession(t, r.RemoteAddr, func() {})
	t.s = s
	if !n.enter(s, false) {
		n.admit.releaseUser(who.user)
		n.admit.releaseConn()
		n.refuse(w, r, refuseDraining, n.notReadyMessage("draining"))
		return
	}
	n.activate(s, who, req.ID, true, since)
	if t.finished.Load() {
		// Draining began, or the subscription failed: activate ended it.
		t.drop()
		n.refuse(w, r, refuseDraining, n.notReadyMessage("draining"))
		return
	}
	n.http.add(s.id, t)
	w.Header().Set("Content-Type", "application/json")
	b := append([]byte(`{"sid":"`), s.sid...)
	b = append(append(b, `","secret":"`...), t.secret...)
	b = strconv.AppendInt(append(b, `","node":`...), n.cfg.NodeID, 10)
	b = appendString(append(b, `,"user":`...), s.user)
	b = append(append(append(b, `,"transport":"`...), t.kind...), '"')
	b = append(append(b, `,"url":"/http/`...), t.kind...)
	b = append(append(b, `?sid=`...), s.sid...)
	b = append(append(b, `&secret=`...), t.secret...)
	_, _ = w.Write(append(b, "\"}\n"...))
}

// sessionParams are the sid and secret a request names its session by: in
// the query (?sid=&secret=, what an EventSource can send) or in the
// Push-Session and Push-Secret headers.
func (n *Node) sessionParams(w http.ResponseWriter, r *http.Request) (sid, secret string, ok bool) {
	q := r.URL.Query()
	sid, secret = q.Get("sid"), q.Get("secret")
	if sid == "" {
		sid = r.Header.Get("Push-Session")
	}
	if secret == "" {
		secret = r.Header.Get("Push-Secret")
	}
	switch {
	case sid == "" || secret == "":
		n.httpError(w, http.StatusBadRequest, errBadSession, "the session's sid and secret are required (?sid=&secret=, or the Push-Session and Push-Secret headers)")
		return "", "", false
	case !validSID(sid):
		n.httpError(w, http.StatusBadRequest, errBadSession, "sid "+quote(sid)+" is not a session ID (the decimal sid from /http/connect)")
		return "", "", false
	}
	return sid, secret, true
}

// validSID reports whether sid is a session ID as nodes write them: a
// positive decimal without sign or leading zeros.
func validSID(sid string) bool {
	id, err := strconv.ParseInt(sid, 10, 64)
	return err == nil && id > 0 && strconv.FormatInt(id, 10) == sid
}

// serveSend handles one client frame: POST /http/send.
func (n *Node) serveSend(w http.ResponseWriter, r *http.Request) {
	sid, secret, ok := n.sessionParams(w, r)
	if !ok {
		return
	}
	body, ok := n.readBody(w, r, n.cfg.MaxFrameSize)
	if !ok {
		return
	}
	if _, err := DecodeClientFrame(body); err != nil {
		n.httpError(w, http.StatusBadRequest, errBadJSON, "body is not a JSON frame with a \"type\": "+err.Error())
		return
	}
	a := n.dispatch(r.Context(), request{Op: reqSend, SID: sid, Secret: secret, Body: body})
	if a.status != http.StatusOK {
		n.answerError(w, a)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(a.body)
}

// serveClose ends a session: POST /http/close (navigator.sendBeacon works).
func (n *Node) serveClose(w http.ResponseWriter, r *http.Request) {
	sid, secret, ok := n.sessionParams(w, r)
	if !ok {
		return
	}
	a := n.dispatch(r.Context(), request{Op: reqClose, SID: sid, Secret: secret})
	if a.status != http.StatusOK {
		n.answerError(w, a)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// answerError writes an answer that is not OK.
func (n *Node) answerError(w http.ResponseWriter, a answer) {
	a.done()
	n.httpError(w, a.status, a.code, a.message)
}

// handle answers a request for a session of this node.
func (n *Node) handle(ctx context.Context, req request) answer {
	t := n.http.lookup(req.SID, req.Secret)
	if t == nil {
		return pullError(http.StatusNotFound, errSessionNotFound, "no session with this sid and secret")
	}
	switch req.Op {
	case reqPull:
		if req.Kind != t.kind {
			return pullError(http.StatusConflict, errWrongTransport, "this is a "+t.kind+" session: read it at /http/"+t.kind)
		}
		wait := min(time.Duration(req.WaitMS)*time.Millisecond, n.cfg.PingInterval)
		return t.pull(ctx, pullRequest{gen: req.Gen, cursor: req.Cursor, wait: max(wait, 0), poll: t.kind == transportPoll, maxBytes: req.MaxBytes})
	case reqSend:
		return t.send(req.Body)
	case reqClose:
		if !t.finished.Load() {
			t.s.closeWith(CloseNormal, "closed by the client", ReasonClient)
		}
		return answer{status: http.StatusOK}
	}
	return pullError(http.StatusBadRequest, errNotFound, "unknown operation "+quote(req.Op))
}

// send reads one client frame on the session, as a WebSocket's read side
// does, and returns the replies: a JSON array of frames (empty for a frame
// without a reply, as a publish without id or an ack). Frames over the
// session's rate limit are answered 429.
func (t *httpTransport) send(body []byte) answer {
	s, n := t.s, t.s.node
	t.in.Lock()
	defer t.in.Unlock()
	if t.finished.Load() || s.closing.Load() {
		return pullError(http.StatusGone, errSessionClosed, "the session is closed")
	}
	var replies []*frame
	s.sink = &replies
	n.receive(s, body, true)
	s.sink = nil
	defer func() {
		for _, f := range replies {
			f.release()
		}
	}()
	if s.limited > 0 {
		return pullError(http.StatusTooManyRequests, errRateLimited, "too many frames: slow down (frames or bytes per second over the session's limit)")
	}
	b := make([]byte, 0, 64)
	b = append(b, '[')
	for i, f := range replies {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f.payload()...)
	}
	return answer{status: http.StatusOK, body: append(b, "]\n"...)}
}
