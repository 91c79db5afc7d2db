package node

import (
	"testing"
	"time"
)

func TestGranted(t *testing.T) {
	patterns := []string{"d1", "team-7/*"}
	for doc, want := range map[string]bool{
		"d1": true, "d10": false, "team-7/a": true, "team-7/": true, "team-7": false, "team-70/a": false, "": false,
	} {
		if got := granted(patterns, doc); got != want {
			t.Errorf("granted(%q) = %v, want %v", doc, got, want)
		}
	}
	if !granted([]string{"*"}, "anything") || granted(nil, "d1") {
		t.Fatal("* must grant everything and no claim nothing")
	}
}

func TestMatchOrigin(t *testing.T) {
	patterns := []string{"https://*.example.com", "https://app.test", "http://localhost:3000"}
	for origin, want := range map[string]bool{
		"https://a.example.com":          true,
		"https://A.Example.COM":          true,
		"https://a.b.example.com":        true,
		"https://example.com":            false,
		"https://evilexample.com":        false,
		"https://example.com.evil.test":  false,
		"http://a.example.com":           false,
		"https://a.example.com:8443":     false,
		"https://evil.test/.example.com": false,
		"https://user@x.example.com":     false,
		"https://app.test":               true,
		"https://app.test.evil":          false,
		"http://localhost:3000":          true,
		"http://localhost:3001":          false,
		"null":                           false,
	} {
		if got := matchOrigin(patterns, origin); got != want {
			t.Errorf("matchOrigin(%q) = %v, want %v", origin, got, want)
		}
	}
	if !matchOrigin([]string{"*"}, "https://x") {
		t.Fatal("* must match any origin")
	}
}

func TestBucket(t *testing.T) {
	var b bucket
	now := time.Now().UnixNano()
	for i := range 5 {
		if !b.take(now, 1, 5, 1) {
			t.Fatalf("take %d within the burst refused", i)
		}
	}
	if b.take(now, 1, 5, 1) {
		t.Fatal("take past the burst allowed")
	}
	if !b.take(now+int64(time.Second), 1, 5, 1) {
		t.Fatal("no token after a second at 1/s")
	}
	if !b.full(now+int64(10*time.Second), 1, 5) {
		t.Fatal("bucket not full after 10s")
	}
	l := newIPLimiter(1, 2)
	if !l.allow("10.0.0.1:5", now) || !l.allow("10.0.0.1:6", now) || l.allow("10.0.0.1:7", now) || !l.allow("10.0.0.2:5", now) {
		t.Fatal("per-IP limiter")
	}
	l.prune(now + int64(time.Minute))
	if len(l.ips) != 0 {
		t.Fatalf("%d IPs kept after they refilled", len(l.ips))
	}
	if newIPLimiter(0, 0) != nil || !(*ipLimiter)(nil).allow("x", now) {
		t.Fatal("rate 0 must disable the limiter")
	}
}

func TestAdmission(t *testing.T) {
	a := admission{maxConns: 3, maxPerUser: 2, users: map[string]int{}}
	for _, u := range []string{"a", "a"} {
		if !a.reserveConn() || !a.reserveUser(u) {
			t.Fatalf("slot for %s refused", u)
		}
	}
	if !a.reserveConn() || a.reserveUser("a") {
		t.Fatal("a third session of a was admitted")
	}
	if !a.reserveUser("b") {
		t.Fatal("b refused")
	}
	if a.reserveConn() {
		t.Fatal("a fourth connection was admitted")
	}
	a.releaseUser("a")
	a.releaseUser("a")
	a.releaseConn()
	if len(a.users) != 1 || a.conns != 2 {
		t.Fatalf("after release: %+v, %d connections", a.users, a.conns)
	}
}
