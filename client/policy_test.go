package client

import (
	"encoding/base64"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

// The reconnect policy and token timing, as client/js/test/unit/policy.test.ts
// checks them for the TypeScript SDK.

var defaults = Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second, Restart: time.Second}

func TestBackoffRetryIsFullJitter(t *testing.T) {
	for attempt := range 12 {
		limit := min(30*time.Second, 500*time.Millisecond<<attempt)
		if d := defaults.Delay(ActionRetry, attempt, 0); d != 0 {
			t.Fatalf("attempt %d: low end %s", attempt, d)
		}
		if d := defaults.Delay(ActionRetry, attempt, 0.999999); limit-d > time.Millisecond || d > limit {
			t.Fatalf("attempt %d: high end %s, want near %s", attempt, d, limit)
		}
		for range 200 {
			if d := defaults.Delay(ActionRetry, attempt, rand.Float64()); d < 0 || d > limit {
				t.Fatalf("attempt %d: %s outside [0, %s]", attempt, d, limit)
			}
		}
	}
	if defaults.Delay(ActionAuth, 3, 0.5) != defaults.Delay(ActionRetry, 3, 0.5) {
		t.Fatal("auth backs off as retry does")
	}
}

func TestBackoffSlowIsNeverShort(t *testing.T) {
	for attempt := range 10 {
		limit := min(30*time.Second, 8*500*time.Millisecond<<attempt)
		if d := defaults.Delay(ActionSlow, attempt, 0); d != limit/2 {
			t.Fatalf("attempt %d: low end %s, want %s", attempt, d, limit/2)
		}
		if d := defaults.Delay(ActionSlow, attempt, 0.999999); d > limit {
			t.Fatalf("attempt %d: %s over %s", attempt, d, limit)
		}
		if defaults.Delay(ActionSlow, attempt, 0) < defaults.Delay(ActionRetry, attempt, 0.49) {
			t.Fatalf("attempt %d: slow shorter than retry", attempt)
		}
	}
}

func TestBackoffRestartAndStop(t *testing.T) {
	for _, attempt := range []int{0, 5, 50} {
		if d := defaults.Delay(ActionRestart, attempt, 0); d != 0 {
			t.Fatalf("restart low end %s", d)
		}
		if d := defaults.Delay(ActionRestart, attempt, 0.999999); d >= time.Second {
			t.Fatalf("restart %s, want under 1s", d)
		}
	}
	if d := defaults.Delay(ActionStop, 0, 0.5); d >= 0 {
		t.Fatalf("stop %s, want negative (no reconnect)", d)
	}
}

func TestBackoffDefaultsAndHugeAttempts(t *testing.T) {
	if d := (Backoff{}).Delay(ActionRetry, 1e9, 0.999999); d > 30*time.Second {
		t.Fatalf("huge attempt: %s", d)
	}
	if d := (Backoff{}).Delay(ActionRetry, 0, 0.999999); d > 500*time.Millisecond {
		t.Fatalf("first retry: %s", d)
	}
	if d := (Backoff{Min: time.Hour, Max: 1000 * time.Hour}).Delay(ActionSlow, 40, 0.999999); d <= 0 || d > 1000*time.Hour {
		t.Fatalf("large durations overflow: %s", d)
	}
}

func TestActionFor(t *testing.T) {
	want := map[uint16]CloseAction{
		1000: ActionRetry, 1005: ActionRetry, 1006: ActionRetry, 4000: ActionRetry, 4002: ActionRetry, 4008: ActionRetry,
		1012: ActionRestart,
		1013: ActionSlow, 4009: ActionSlow, 4029: ActionSlow,
		4001: ActionAuth, 4003: ActionAuth,
		4004: ActionStop, 4010: ActionStop,
	}
	for code, a := range want {
		if got := ActionFor(code); got != a {
			t.Errorf("close %d: %s, want %s", code, got, a)
		}
	}
}

func TestParseReason(t *testing.T) {
	for _, tc := range []struct{ in, code, msg string }{
		{"draining: node is not accepting connections (node 3; reconnect to another node)", "draining", "node is not accepting connections (node 3; reconnect to another node)"},
		{"token_invalid: signature: bad", "token_invalid", "signature: bad"},
		{"too many bad frames", "", "too many bad frames"},
		{"service restart: reconnect", "", "service restart: reconnect"},
		{"", "", ""},
	} {
		if c, m := ParseReason(tc.in); c != tc.code || m != tc.msg {
			t.Errorf("ParseReason(%q) = %q, %q", tc.in, c, m)
		}
	}
}

func TestRefusal(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		code   uint16
		reason string
	}{
		{503, `{"error":"draining","message":"node is not accepting connections: draining (node 3; reconnect to another node)"}`, 1012, "draining: node is not accepting connections: draining (node 3; reconnect to another node)"},
		{503, `{"error":"over_capacity","message":"full"}`, 1013, "over_capacity: full"},
		{429, `{"error":"rate_limited","message":"slow down"}`, 4029, "rate_limited: slow down"},
		{429, `{"error":"too_many_sessions","message":"x"}`, 4009, "too_many_sessions: x"},
		{401, `{"error":"token_expired","message":"x"}`, 4001, "token_expired: x"},
		{401, `{"error":"token_invalid","message":"x"}`, 4003, "token_invalid: x"},
		{403, `{"error":"forbidden_origin","message":"x"}`, 4004, "forbidden_origin: x"},
		// Not pushd's body (a proxy): by status.
		{503, `<html>bad gateway</html>`, 1013, "http_error: HTTP 503 <html>bad gateway</html>"},
		{429, ``, 4029, "http_error: HTTP 429 "},
		{401, `nope`, 4003, "http_error: HTTP 401 nope"},
		{http.StatusNotFound, `not found`, 1006, "http_error: HTTP 404 not found"},
	} {
		code, reason := refusal(tc.status, []byte(tc.body))
		if code != tc.code || reason != tc.reason {
			t.Errorf("refusal(%d, %s) = %d %q, want %d %q", tc.status, tc.body, code, reason, tc.code, tc.reason)
		}
	}
}

func TestRefreshDelay(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, tc := range []struct{ left, want time.Duration }{
		{10 * time.Second, 8 * time.Second},
		{time.Hour, time.Hour - time.Minute},
		{-5 * time.Millisecond, 0},
	} {
		if got := refreshDelay(now.Add(tc.left), now, time.Minute); got != tc.want {
			t.Errorf("%s left: refresh in %s, want %s", tc.left, got, tc.want)
		}
	}
}

func TestTokenExpiry(t *testing.T) {
	jwt := func(claims string) string {
		return "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".c2ln"
	}
	if exp, ok := tokenExpiry(jwt(`{"sub":"alice","exp":1900000000,"name":"Zoë ~~~??"}`)); !ok || exp.Unix() != 1_900_000_000 {
		t.Fatalf("exp %v %v", exp, ok)
	}
	for _, bad := range []string{jwt(`{"sub":"alice"}`), jwt(`{"exp":"soon"}`), jwt(`{"exp":-1}`), jwt(`{"exp":1e300}`), "not-a-jwt", "a.!!!.c", ""} {
		if _, ok := tokenExpiry(bad); ok {
			t.Errorf("tokenExpiry(%q) ok", bad)
		}
	}
}
