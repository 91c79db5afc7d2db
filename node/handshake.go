package node

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pushd/pushd/auth"
	"github.com/pushd/pushd/contract"
)

// The handshake: who may open a session, and how a refusal is told.
//
// A token may come with the upgrade (Authorization: Bearer, or ?token=), or,
// so that it never lands in a URL that proxies log, in the first frame after
// the upgrade: {"type":"connect","token":"..."}. A request without either is
// upgraded and waits AuthTimeout for that frame.
//
// Browsers cannot read the HTTP status of a refused WebSocket upgrade (every
// refusal reaches page code as a bare 1006), so a refused request that
// carries an Origin header (browsers always send one) is upgraded and then
// closed with a close code and a reason that says why; other clients get the
// HTTP status and a JSON body. docs/PROTOCOL.md lists both.

// refusal is one reason to refuse a handshake.
type refusal struct {
	code   string    // the error code, in the JSON body and the close reason
	status int       // HTTP status
	close  CloseCode // close code after an upgrade
	metric string    // pushd_handshake_failures_total reason
	// avoid: the refusal is about this node, not the client; the answer
	// names the node to avoid (elsewhere.go).
	avoid bool
}

// The refusals, by error code.
var (
	refuseStarting        = refusal{"starting", http.StatusServiceUnavailable, CloseTryAgainLater, "starting", false}
	refuseDraining        = refusal{"draining", http.StatusServiceUnavailable, CloseServiceRestart, "draining", true}
	refuseNotLeased       = refusal{"not_leased", http.StatusServiceUnavailable, CloseTryAgainLater, "not_leased", true}
	refuseDuplicate       = refusal{"duplicate_node_id", http.StatusServiceUnavailable, CloseTryAgainLater, "duplicate_node_id", true}
	refuseOverCapacity    = refusal{"over_capacity", http.StatusServiceUnavailable, CloseTryAgainLater, "over_capacity", true}
	refuseRateLimited     = refusal{"rate_limited", http.StatusTooManyRequests, CloseRateLimited, "rate_limited", false}
	refuseTooManySessions = refusal{"too_many_sessions", http.StatusTooManyRequests, CloseTooManySessions, "too_many_sessions", false}
	refuseForbiddenOrigin = refusal{"forbidden_origin", http.StatusForbidden, CloseForbiddenOrigin, "forbidden_origin", false}
	refuseTokenMissing    = refusal{"token_missing", http.StatusUnauthorized, CloseUnauthorized, "unauthorized", false}
	refuseTokenInvalid    = refusal{"token_invalid", http.StatusUnauthorized, CloseUnauthorized, "unauthorized", false}
	refuseTokenExpired    = refusal{"token_expired", http.StatusUnauthorized, CloseTokenExpired, "unauthorized", false}
	refuseInvalidUser     = refusal{"invalid_user", http.StatusBadRequest, CloseUnauthorized, "bad_request", false}
	refuseAuthTimeout     = refusal{"auth_timeout", http.StatusUnauthorized, CloseUnauthorized, "unauthorized", false}
)

// notReady is the refusal for a node that is not accepting, by Ready's reason.
func notReady(why string) refusal {
	switch why {
	case "draining":
		return refuseDraining
	case "duplicate_node_id":
		return refuseDuplicate
	case "starting":
		return refuseStarting
	}
	return refuseNotLeased
}

// authRefusal is the refusal for an authentication error.
func authRefusal(err error) refusal {
	switch {
	case errors.Is(err, auth.ErrTokenMissing):
		return refuseTokenMissing
	case errors.Is(err, auth.ErrTokenExpired):
		return refuseTokenExpired
	case errors.Is(err, contract.ErrInvalidID):
		return refuseInvalidUser
	}
	return refuseTokenInvalid
}

// ServeHTTP upgrades a request to a WebSocket session, or refuses it
// (docs/PROTOCOL.md): 503 when the node is not accepting or full, 429 past
// the per-IP handshake rate or the per-user session limit, 403 for a browser
// origin not allowed, 401 for a missing, expired or invalid token, 400 for a
// user ID that cannot be used; after an upgrade, as a close code, for
// browsers.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ok, why := n.Ready(); !ok {
		n.refuse(w, r, notReady(why), n.notReadyMessage(why))
		return
	}
	if n.ipLimiter != nil && !n.ipLimiter.allow(n.clientKey(r), time.Now().UnixNano()) {
		n.refuse(w, r, refuseRateLimited, "too many handshakes from this address; retry later")
		return
	}
	if !n.originAllowed(r) {
		n.refuse(w, r, refuseForbiddenOrigin, n.originRefusal(r))
		return
	}
	c, present := credentials(r)
	var who identity
	if present {
		var err error
		if who, err = n.identify(c); err != nil {
			n.refuse(w, r, authRefusal(err), authMessage(err))
			return
		}
	}
	if !n.admit.reserveConn() {
		n.refuse(w, r, refuseOverCapacity, n.elsewhere("at its connection limit, reconnect elsewhere"))
		return
	}
	if present {
		if ok, cluster := n.admit.reserveUserWhy(who.user); !ok {
			n.admit.releaseConn()
			n.refuse(w, r, tooManySessions(cluster), n.tooManySessionsMessage(cluster))
			return
		}
	}
	t, err := n.upgradeWS(w, r, present)
	if err != nil {
		if present {
			n.admit.releaseUser(who.user)
		}
		n.admit.releaseConn()
		n.metrics.handshakeFailures.inc("upgrade")
		return
	}
	s := n.newWSSession(t, !present)
	switch {
	case s == nil: // draining began meanwhile
		if present {
			n.admit.releaseUser(who.user)
		}
		n.admit.releaseConn()
		_ = t.conn.WriteClose(uint16(CloseServiceRestart), []byte("draining: "+n.notReadyMessage("draining")))
		_ = t.nc.Close()
	case present:
		n.activate(s, who, "", false, querySince(r))
	default:
		s.startReading()
	}
}

// querySince is the since of a request's query (?since=): the position of
// the last user push a client processed.
func querySince(r *http.Request) Position {
	var p Position
	if v := r.URL.Query().Get("since"); v != "" {
		_ = p.UnmarshalJSON([]byte(strconv.Quote(v)))
	}
	return p
}

// creds is what a client presents to authenticate: a token, or on a dev node
// a user name.
type creds struct {
	token   string
	user    string
	hasUser bool
}

// credentials returns what a request presents, and whether it presents
// anything. An Authorization header wins over ?token=, which wins over a dev
// node's ?user=.
func credentials(r *http.Request) (creds, bool) {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return creds{token: strings.TrimSpace(h[7:])}, true
	}
	q := r.URL.Query()
	if t := q.Get("token"); t != "" {
		return creds{token: t}, true
	}
	if q.Has("user") {
		return creds{user: q.Get("user"), hasUser: true}, true
	}
	return creds{}, false
}

// identity is who a handshake authenticated as.
type identity struct {
	user         string
	grants       []string // the token's "docs" claim
	expires      int64    // the token's exp in UnixNano; 0 for dev sessions
	unrestricted bool     // may join any doc (dev ?user=, or no keys)
	info         []byte   // the token's info claim, compact JSON; nil when none
}

// identify checks a token, or a dev user name when there is no token.
func (n *Node) identify(c creds) (identity, error) {
	var id identity
	switch {
	case c.token == "" && c.hasUser && n.cfg.Dev:
		id = identity{user: c.user, unrestricted: true}
	case c.token == "" && c.hasUser:
		return id, fmt.Errorf("%w: a user without a token is accepted by dev nodes only", auth.ErrTokenMissing)
	case n.cfg.Auth == nil && c.token != "":
		return id, fmt.Errorf("%w: this dev node has no key to verify tokens; connect with a user instead", auth.ErrTokenInvalid)
	case n.cfg.Auth == nil || c.token == "":
		return id, auth.ErrTokenMissing
	default:
		claims, err := n.cfg.Auth.Verify(c.token)
		if err != nil {
			return id, err
		}
		id = identity{user: claims.Subject, grants: claims.Docs, expires: unixNano(claims.Expiry())}
		if id.info, err = n.presenceInfo(claims.Info); err != nil {
			return id, err
		}
	}
	if err := contract.ValidateID(id.user); err != nil {
		return id, err
	}
	return id, nil
}

// authMessage is the human part of an authentication refusal.
func authMessage(err error) string {
	if errors.Is(err, contract.ErrInvalidID) {
		return "user id: " + err.Error()
	}
	return err.Error()
}

// refuse answers a handshake that will not become a session: with an HTTP
// status and a JSON body, or, for a browser's WebSocket upgrade, with an
// upgrade and a close frame whose reason is "<code>: <message>". It is
// logged at info, rate-limited.
func (n *Node) refuse(w http.ResponseWriter, r *http.Request, why refusal, message string) {
	n.metrics.handshakeFailures.inc(why.metric)
	n.refusals.log("handshake refused", "reason", why.code, "remote", r.RemoteAddr, "message", message)
	if r.Header.Get("Origin") != "" && upgradeRequest(r) && closeAfterUpgrade(w, r, why.close, why.code+": "+message) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if why.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(why.status)
	b := appendString(append(appendString([]byte(`{"error":`), why.code), `,"message":`...), message)
	if why.avoid {
		b = strconv.AppendInt(append(b, `,"avoid_node":`...), n.cfg.NodeID, 10)
	}
	_, _ = w.Write(append(b, "}\n"...))
}

// upgradeRequest reports whether r is a well-formed WebSocket upgrade
// (RFC 6455 section 4.2.1) that can be answered with a 101.
func upgradeRequest(r *http.Request) bool {
	return r.Method == http.MethodGet &&
		headerHas(r.Header, "Connection", "upgrade") && headerHas(r.Header, "Upgrade", "websocket") &&
		r.Header.Get("Sec-WebSocket-Version") == "13" && len(r.Header.Get("Sec-WebSocket-Key")) == 24
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// websocketGUID is RFC 6455's magic string for Sec-WebSocket-Accept.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// refusalLinger is how long a refused browser's socket is kept open after
// the close frame, so its close reply does not turn into a reset that could
// destroy the close frame in flight.
const refusalLinger = 250 * time.Millisecond

// closeAfterUpgrade completes the WebSocket handshake and at once sends a
// close frame, so browser code sees code and reason. It reports false when
// the connection could not be taken over (the caller answers in HTTP).
func closeAfterUpgrade(w http.ResponseWriter, r *http.Request, code CloseCode, reason string) bool {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return false
	}
	defer conn.Close()
	sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + websocketGUID))
	b := append([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "),
		base64.StdEncoding.EncodeToString(sum[:])...)
	b = append(b, "\r\n\r\n"...)
	cf := closeFrame(code, reason)
	b = append(b, cf.bytes()...)
	cf.release()
	_ = conn.SetDeadline(time.Now().Add(refusalLinger))
	if _, err := conn.Write(b); err != nil {
		return true
	}
	if tc, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		var sink [512]byte
		for {
			if _, err := conn.Read(sink[:]); err != nil {
				break
			}
		}
	}
	return true
}

// originAllowed checks a handshake's Origin header. Requests without one
// (non-browser clients) are allowed: the check protects browser users from
// cross-site WebSocket hijacking, which needs a browser, and a browser always
// sends Origin. With no AllowedOrigins configured, production nodes accept
// only the request's own host and dev nodes accept any origin.
func (n *Node) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	patterns := n.cfg.AllowedOrigins
	if len(patterns) == 0 {
		if n.cfg.Dev {
			return true
		}
		u, err := url.Parse(origin)
		return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
	}
	return matchOrigin(patterns, origin)
}

// originRefusal explains a refused origin and how to allow it.
func (n *Node) originRefusal(r *http.Request) string {
	origin := r.Header.Get("Origin")
	if len(n.cfg.AllowedOrigins) == 0 {
		return "origin " + origin + " is not allowed: by default only pages from this node's own host (" + r.Host +
			") may connect; allow it with --allowed-origins " + origin
	}
	return "origin " + origin + " is not in --allowed-origins (" + strings.Join(n.cfg.AllowedOrigins, ",") + ")"
}

// matchOrigin reports whether origin ("scheme://host[:port]") matches one of
// patterns: "*" (any), an exact origin, or one with a leading "*." in the
// host ("https://*.example.com" matches https://a.example.com and
// https://a.b.example.com but not https://example.com). Comparison is
// case-insensitive.
func matchOrigin(patterns []string, origin string) bool {
	origin = strings.ToLower(origin)
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "*" || p == origin {
			return true
		}
		scheme, host, ok := strings.Cut(p, "://*.")
		if !ok {
			continue
		}
		oScheme, oHost, ok := strings.Cut(origin, "://")
		if ok && oScheme == scheme && !strings.ContainsAny(oHost, "/@") && strings.HasSuffix(oHost, "."+host) && len(oHost) > len(host)+1 {
			return true
		}
	}
	return false
}

// pendingSessions are upgraded sessions waiting for their connect frame.
// They are in no index (no push reaches them) but Drain, Close and the
// sweeper's auth deadline must find them.
type pendingSessions struct {
	mu sync.Mutex
	m  map[*session]struct{}
}

// add puts s in; newSession calls it under the node's gate.
func (p *pendingSessions) add(s *session) {
	s.pending.Store(true)
	p.mu.Lock()
	if p.m == nil {
		p.m = make(map[*session]struct{})
	}
	p.m[s] = struct{}{}
	p.mu.Unlock()
}

// remove takes s out; it reports whether s was pending.
func (p *pendingSessions) remove(s *session) bool {
	if !s.pending.CompareAndSwap(true, false) {
		return false
	}
	p.mu.Lock()
	delete(p.m, s)
	p.mu.Unlock()
	return true
}

// all returns the pending sessions.
func (p *pendingSessions) all() []*session {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*session, 0, len(p.m))
	for s := range p.m {
		out = append(out, s)
	}
	return out
}

// connect authenticates a pending session with its first frame.
func (n *Node) connect(s *session, f *ClientFrame) {
	if f.Type != typeConnect {
		n.refuseSession(s, refuseTokenMissing, `the first frame must be {"type":"connect","token":"<jwt>"} when the upgrade carries no token`)
		return
	}
	who, err := n.identify(creds{token: f.Token, user: f.User, hasUser: f.User != ""})
	if err != nil {
		n.refuseSession(s, authRefusal(err), authMessage(err))
		return
	}
	if ok, cluster := n.admit.reserveUserWhy(who.user); !ok {
		n.refuseSession(s, tooManySessions(cluster), n.tooManySessionsMessage(cluster))
		return
	}
	if !n.pending.remove(s) {
		n.admit.releaseUser(who.user) // closed meanwhile (drain, auth deadline)
		return
	}
	n.activate(s, who, f.ID, true, f.Since)
}

// refuseSession closes a pending session that will not become one.
func (n *Node) refuseSession(s *session, why refusal, message string) {
	n.metrics.handshakeFailures.inc(why.metric)
	n.refusals.log("handshake refused", "reason", why.code, "remote", s.remote, "message", message)
	s.closeWith(why.close, why.code+": "+message, ReasonUnauthenticated)
}

// expirePending closes sessions that sent no connect frame within
// AuthTimeout; the sweeper calls it.
func (n *Node) expirePending(now int64) {
	limit := now - int64(n.cfg.AuthTimeout)
	for _, s := range n.pending.all() {
		if s.since.UnixNano() < limit {
			n.refuseSession(s, refuseAuthTimeout, "no connect frame within "+n.cfg.AuthTimeout.String())
		}
	}
}
