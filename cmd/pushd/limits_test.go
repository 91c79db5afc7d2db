package main

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushtest"
)

// TestSlowlorisHandshakes stays with the binary: what drops a handshake that
// never finishes is the ReadHeaderTimeout of pushd's own http.Server
// (serve.go), not the node. The node's limits are tested in package node
// (limits_e2e_test.go).
func TestSlowlorisHandshakes(t *testing.T) {
	t.Parallel() // it waits out the 5s header timeout, not working
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := startPushd(t, ns.URL(), "--dev")
	c := dial(t, n, "patient")
	// 200 connections that send half a request line and stop.
	var conns []net.Conn
	for range 200 {
		nc, err := net.Dial("tcp", n.Listen)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write([]byte("GET /ws?user=x HTTP/1.1\r\nHost: a\r\nUpgr")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
	}
	// And garbage instead of a handshake.
	g, err := net.Dial("tcp", n.Listen)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = g.Write([]byte("\x16\x03\x01\x00\xff garbage \x00\x01\x02\r\n\r\n"))
	_ = g.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if m, _ := g.Read(buf); !strings.Contains(string(buf[:m]), "400") {
		t.Fatalf("garbage handshake answered %q, want a 400", buf[:m])
	}
	_ = g.Close()
	// Meanwhile the node serves others.
	publish(t, nc, "push.user.patient", nil, `"served"`, 1)
	expectPush(t, c, "message", `"served"`)
	late := dial(t, n, "late")
	publish(t, nc, "push.user.late", nil, `"also"`, 1)
	expectPush(t, late, "message", `"also"`)
	// Every slow handshake is dropped once the 5s header timeout passes.
	start := time.Now()
	for _, s := range conns {
		_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := s.Read(buf)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("slow handshake still open after 10s")
		}
		_ = s.Close()
	}
	if took := time.Since(start); took > 9*time.Second {
		t.Fatalf("slow handshakes dropped after %s", took)
	}
}
