package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/internal/pushtest"
)

// The binary's command line: flags, their environment twins and dev mode's
// defaults. What a node does with a session is tested in package node.

// TestDevModeRules: without a key and without --dev pushd refuses to start;
// --dev embeds NATS, accepts ?user= and, given a key, still verifies tokens
// (node's TestDevModeAcceptsUsersAndStillVerifiesTokens has the node's side).
func TestDevModeRules(t *testing.T) {
	// Without a key and without --dev, pushd refuses to start.
	cmd := newRootCmd(context.Background(), nil, nil, func(string) (string, bool) { return "", false }, nil)
	cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--nats-embedded-listen", "127.0.0.1:0"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "no token key") {
		t.Fatalf("start without key: %v, want a 'no token key' error", err)
	}
	// --dev with an embedded NATS server accepts ?user= and still verifies tokens if a key is set.
	n := startPushd(t, "", "--dev", "--jwt-secret", testSecret)
	c := dial(t, n, "dev-user")
	if c.Hello().User != "dev-user" {
		t.Fatalf("hello %+v", c.Hello())
	}
	if status, _ := handshake(t, n.wsURL()+"?token="+token(t, "x", -time.Minute), nil); status != 401 {
		t.Fatalf("expired token in dev mode: %d, want 401", status)
	}
	// The embedded server is reachable for backends.
	if !strings.HasPrefix(n.NATSURL, "nats://127.0.0.1:") {
		t.Fatalf("embedded NATS url %q", n.NATSURL)
	}
}

func TestEnvVarsSetFlags(t *testing.T) {
	env := map[string]string{"PUSHD_DEV": "true", "PUSHD_NODE_ID": "42", "PUSHD_LISTEN": "127.0.0.1:0",
		"PUSHD_ADMIN_LISTEN": "", "PUSHD_NATS_EMBEDDED_LISTEN": "127.0.0.1:0", "PUSHD_LOG_LEVEL": "error"}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan started, 1)
	cmd := newRootCmd(ctx, nil, devNull{}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, func(s started) { got <- s })
	cmd.SetArgs(nil)
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()
	select {
	case s := <-got:
		if s.NodeID != 42 || s.AdminListen != "" {
			t.Errorf("env not applied: %+v", s)
		}
	case err := <-done:
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A bad value names the variable.
	env["PUSHD_NODE_ID"] = "4096"
	cmd = newRootCmd(context.Background(), nil, devNull{}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--node-id 4096") {
		t.Fatalf("node id 4096: %v", err)
	}
	env["PUSHD_DRAIN_TIMEOUT"] = "soon"
	cmd = newRootCmd(context.Background(), nil, devNull{}, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, nil)
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "PUSHD_DRAIN_TIMEOUT") {
		t.Fatalf("bad duration: %v", err)
	}
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }

// TestSecondDevNodeNeedsNoFlags: `pushd --dev` twice on one laptop. The
// first listens on loopback only and embeds NATS; the second takes the next
// free ports, joins the first one's NATS server and the next free node
// number, and the two form a cluster.
func TestSecondDevNodeNeedsNoFlags(t *testing.T) {
	run := func() started {
		ctx, cancel := context.WithCancel(context.Background())
		ready, done := make(chan started, 1), make(chan error, 1)
		cmd := newRootCmd(ctx, io.Discard, io.Discard, func(string) (string, bool) { return "", false }, func(s started) { ready <- s })
		cmd.SetArgs([]string{"--dev", "--log-level", "error", "--drain-timeout", "200ms"})
		go func() { done <- cmd.Execute() }()
		t.Cleanup(func() { cancel(); <-done })
		select {
		case s := <-ready:
			return s
		case err := <-done:
			t.Fatalf("pushd --dev: %v", err)
		case <-time.After(15 * time.Second):
			t.Fatal("pushd --dev did not start")
		}
		return started{}
	}
	a := run()
	b := run()
	for _, s := range []started{a, b} {
		if host, _, _ := net.SplitHostPort(s.Listen); host != "127.0.0.1" {
			t.Fatalf("dev node listens on %s, want loopback only", s.Listen)
		}
	}
	if a.Listen == b.Listen || a.AdminListen == b.AdminListen || a.NodeID == b.NodeID {
		t.Fatalf("two dev nodes share a listener or a number: %+v %+v", a, b)
	}
	if a.NATSURL != b.NATSURL {
		t.Fatalf("second dev node uses NATS %s, want the first one's %s", b.NATSURL, a.NATSURL)
	}
	nc, err := nats.Connect(a.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ca := dial(t, &testNode{started: a}, "alice")
	cb := dial(t, &testNode{started: b}, "alice")
	if rs := publish(t, nc, "push.user.alice", nil, `"both"`, 2); delivered(rs) != 2 {
		t.Fatalf("reports %+v, want one session on each node", rs)
	}
	expectPush(t, ca, "message", `"both"`)
	expectPush(t, cb, "message", `"both"`)
}

// TestTakenPortsAreReportedAtOnce: outside dev mode a taken address is an
// error naming the flag, at once (the embedded NATS port once took 10s).
func TestTakenPortsAreReportedAtOnce(t *testing.T) {
	ns := pushtest.RunNATS(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", addr, "--nats-url", ns.URL()}, "--listen " + addr},
		{[]string{"--admin-listen", addr, "--nats-url", ns.URL()}, "--admin-listen " + addr},
		{[]string{"--nats-embedded-listen", addr}, "--nats-embedded-listen " + addr},
	} {
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		cmd := newRootCmd(ctx, io.Discard, io.Discard, func(string) (string, bool) { return "", false }, nil)
		args := append([]string{"--jwt-secret", testSecret, "--node-id", "1", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, tc.args...)
		cmd.SetArgs(args)
		err := cmd.Execute()
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("%v: %v, want an error naming %q", tc.args, err, tc.want)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("%v: refused after %s, want at once", tc.args, took)
		}
	}
}
