package client

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CloseAction is what a Client does after a connection closes, by close
// code (docs/PROTOCOL.md, and the TypeScript SDK's policy.ts):
type CloseAction int

const (
	// ActionRetry: anything else (1006 lost connection, 4002 heartbeat
	// timeout, 4008 slow consumer, 1000 from the server, ...): exponential
	// backoff with full jitter.
	ActionRetry CloseAction = iota
	// ActionRestart: 1012, the node is draining: reconnect soon, with a
	// small jitter, to the next URL.
	ActionRestart
	// ActionSlow: 1013 (node full or not ready), 4009 (too many sessions),
	// 4029 (rate limited): a longer backoff.
	ActionSlow
	// ActionAuth: 4001 (token expired), 4003 (token missing or invalid, bad
	// user, auth timeout): get a new token and retry with backoff, but stop
	// after Config.MaxAuthFailures in a row.
	ActionAuth
	// ActionStop: 4004 (origin not allowed), 4010 (kicked by an admin):
	// stay disconnected.
	ActionStop
)

var actionNames = [...]string{"retry", "restart", "slow", "auth", "stop"}

func (a CloseAction) String() string {
	if a < 0 || int(a) >= len(actionNames) {
		return "unknown"
	}
	return actionNames[a]
}

// ActionFor is the CloseAction for a close code.
func ActionFor(code uint16) CloseAction {
	switch code {
	case 1012:
		return ActionRestart
	case 1013, 4009, 4029:
		return ActionSlow
	case 4001, 4003:
		return ActionAuth
	case 4004, 4010:
		return ActionStop
	}
	return ActionRetry
}

// Backoff are the reconnect delays. A zero field means its default.
type Backoff struct {
	// Min is the first retry's upper bound; each failure in a row doubles
	// it. Default 500ms.
	Min time.Duration
	// Max is the largest delay. Default 30s.
	Max time.Duration
	// Restart bounds the delay after a 1012 (drain): uniform in
	// [0, Restart]. Default 1s.
	Restart time.Duration
}

// Backoff defaults.
const (
	DefaultBackoffMin     = 500 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultBackoffRestart = time.Second
)

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = DefaultBackoffMin
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoffMax
	}
	if b.Restart <= 0 {
		b.Restart = DefaultBackoffRestart
	}
	return b
}

// Delay is the wait before reconnect attempt attempt (0 for the first retry
// after a close) for a close with action a; random is uniform in [0, 1):
//
//   - ActionRetry and ActionAuth: full jitter, uniform in
//     [0, min(Max, Min·2^attempt)];
//   - ActionSlow: equal jitter over a cap eight times larger, uniform in
//     [cap/2, cap] with cap = min(Max, 8·Min·2^attempt), so never short;
//   - ActionRestart: uniform in [0, Restart];
//   - ActionStop: -1, no reconnect.
func (b Backoff) Delay(a CloseAction, attempt int, random float64) time.Duration {
	b = b.withDefaults()
	exp := math.Exp2(float64(min(max(attempt, 0), 30)))
	switch a {
	case ActionStop:
		return -1
	case ActionRestart:
		return time.Duration(random * float64(b.Restart))
	case ActionSlow:
		c := math.Min(float64(b.Max), 8*float64(b.Min)*exp)
		return time.Duration(c/2 + random*c/2)
	}
	return time.Duration(random * math.Min(float64(b.Max), float64(b.Min)*exp))
}

// ParseReason splits a close reason "<error>: <message>" (pushd's refusals)
// in two; code is "" when the reason has no error code.
func ParseReason(reason string) (code, message string) {
	c, m, ok := strings.Cut(reason, ": ")
	if !ok || c == "" {
		return "", reason
	}
	for i := 0; i < len(c); i++ {
		if (c[i] < 'a' || c[i] > 'z') && c[i] != '_' {
			return "", reason
		}
	}
	return c, m
}

// refusalCodes are the close codes a browser gets for the refusals a
// non-browser client gets as an HTTP status (docs/PROTOCOL.md, Refusals).
var refusalCodes = map[string]uint16{
	"token_missing":     4003,
	"token_invalid":     4003,
	"token_expired":     4001,
	"invalid_user":      4003,
	"auth_timeout":      4003,
	"forbidden_origin":  4004,
	"too_many_sessions": 4009,
	"rate_limited":      4029,
	"over_capacity":     1013,
	"draining":          1012,
	"not_leased":        1013,
	"duplicate_node_id": 1013,
	"starting":          1013,
}

// refusal turns a refused upgrade (an HTTP status and its JSON body
// {"error":..., "message":...}) into the close code and reason a browser
// would have got, so one policy covers both.
func refusal(status int, body []byte) (code uint16, reason string) {
	var b struct{ Error, Message string }
	_ = json.Unmarshal(body, &b)
	if c, ok := refusalCodes[b.Error]; ok {
		return c, b.Error + ": " + b.Message
	}
	switch status {
	case http.StatusServiceUnavailable:
		code = 1013
	case http.StatusTooManyRequests:
		code = 4029
	case http.StatusUnauthorized, http.StatusBadRequest:
		code = 4003
	case http.StatusForbidden:
		code = 4004
	default:
		code = 1006
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return code, "http_error: HTTP " + strconv.Itoa(status) + " " + msg
}
