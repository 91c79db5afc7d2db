package client

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAvoidNodeOf(t *testing.T) {
	for _, c := range []struct {
		reason string
		node   int64
		ok     bool
	}{
		{"draining: node 3; reconnect elsewhere", 3, true},
		{"duplicate_node_id: node 1023; another live node uses this node's number, reconnect elsewhere", 1023, true},
		{"over_capacity: node 0; full, reconnect elsewhere", 0, true},
		{"draining: node 3 reconnect elsewhere", 0, false},   // no "; "
		{"draining: node ; reconnect elsewhere", 0, false},   // no number
		{"draining: node -3; reconnect elsewhere", 0, false}, // not digits
		{"draining: node 3x; reconnect elsewhere", 0, false}, // not digits
		{"Draining: node 3; reconnect elsewhere", 0, false},  // not an error code
		{"node 3; reconnect elsewhere", 0, false},            // no error code
		{"token_expired: the token expired", 0, false},       // about the client
		{"draining: node 99999999999999999999; x", 0, false}, // too long
		{"connection_lost: node 3; EOF", 3, true},            // any code may name it
		{"", 0, false},
	} {
		n, ok := avoidNodeOf(c.reason)
		if n != c.node || ok != c.ok {
			t.Errorf("avoidNodeOf(%q) = %d, %v; want %d, %v", c.reason, n, ok, c.node, c.ok)
		}
	}
	for _, c := range []struct {
		body string
		node int64
		ok   bool
	}{
		{`{"error":"draining","message":"node 3; draining, reconnect elsewhere","avoid_node":3}`, 3, true},
		{`{"error":"over_capacity","message":"x","avoid_node":0}`, 0, true},
		{`{"error":"token_invalid","message":"bad"}`, 0, false},
		{`{"avoid_node":-1}`, 0, false},
		{`{"avoid_node":"3"}`, 0, false},
		{`not json`, 0, false},
	} {
		n, ok := avoidNodeOfBody([]byte(c.body))
		if n != c.node || ok != c.ok {
			t.Errorf("avoidNodeOfBody(%s) = %d, %v; want %d, %v", c.body, n, ok, c.node, c.ok)
		}
	}
}

// TestAvoiderNext: the URLs known to lead to an avoided node are skipped,
// in turn, until the horizon passes; with every URL avoided, with one URL,
// or once every URL was tried without a hello, the next one is used anyway.
func TestAvoiderNext(t *testing.T) {
	now := time.Now()
	urls := []string{"ws://a1", "ws://b", "ws://a2", "ws://c"}
	var v avoider
	if got := v.next(urls, 2, now); got != 2 {
		t.Fatalf("nothing avoided: next %d, want 2", got)
	}
	v.learn("ws://a1", 1)
	v.learn("ws://a2", 1)
	v.learn("ws://b", 2)
	v.avoid("ws://a1", 1, now.Add(30*time.Second))
	if got := v.next(urls, 2, now); got != 3 {
		t.Fatalf("a2 leads to node 1: next %d, want 3 (c)", got)
	}
	if got := v.next(urls, 4, now); got != 5 { // 4 is a1 again: skip to b
		t.Fatalf("next %d, want 5", got)
	}
	if got := v.next(urls, 3, now); got != 3 {
		t.Fatalf("c is unknown: next %d, want 3", got)
	}
	if got := v.next(urls, 2, now.Add(31*time.Second)); got != 2 {
		t.Fatalf("after the horizon: next %d, want 2", got)
	}
	if len(v.until) != 0 {
		t.Fatalf("an expired avoidance is kept: %v", v.until)
	}

	v.avoid("ws://a1", 1, now.Add(30*time.Second))
	v.avoid("ws://b", 2, now.Add(30*time.Second))
	v.learn("ws://c", 1)
	if got := v.next(urls, 0, now); got != 0 {
		t.Fatalf("every URL avoided: next %d, want 0 (as without the hint)", got)
	}
	v.avoid("ws://b", 2, now) // expired
	if got := v.next(urls, 0, now); got != 1 {
		t.Fatalf("next %d, want 1", got)
	}
	v.misses = len(urls)
	v.avoid("ws://b", 2, now.Add(time.Second))
	v.learn("ws://c", 3)
	if got := v.next(urls, 0, now); got != 0 {
		t.Fatalf("every URL tried without a hello: next %d, want 0 (try the avoided ones too)", got)
	}
	v.misses = 0
	if got := v.next([]string{"ws://a1"}, 7, now); got != 7 {
		t.Fatalf("one URL: next %d, want 7 (reconnect there)", got)
	}
}

// FuzzAvoidNode: any close reason or refusal body is read without a panic,
// and a node is found only where the protocol's form names it.
func FuzzAvoidNode(f *testing.F) {
	f.Add("draining: node 3; reconnect elsewhere")
	f.Add(`{"error":"draining","message":"node 3; x","avoid_node":3}`)
	f.Add("token_expired: node x")
	f.Fuzz(func(t *testing.T, s string) {
		if n, ok := avoidNodeOf(s); ok {
			code, msg := ParseReason(s)
			digits, _, _ := strings.Cut(strings.TrimPrefix(msg, "node "), "; ")
			m, err := strconv.ParseInt(digits, 10, 64)
			if code == "" || n < 0 || !strings.HasPrefix(msg, "node ") || err != nil || m != n {
				t.Fatalf("avoidNodeOf(%q) = %d from %q / %q", s, n, code, msg)
			}
		}
		if n, ok := avoidNodeOfBody([]byte(s)); ok && n < 0 {
			t.Fatalf("avoidNodeOfBody(%q) = %d", s, n)
		}
	})
}
