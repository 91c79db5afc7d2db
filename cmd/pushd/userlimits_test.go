package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
)

// TestClusterWideSessionsPerUser: one user's sessions are bounded across
// nodes, not only per node: a node counts what the others report (users
// with at least an eighth of the limit, at least 2, there), within a
// second, and lets the user in again once they report fewer.
func TestClusterWideSessionsPerUser(t *testing.T) {
	ns := pushtest.RunNATS(t)
	args := []string{"--dev", "--max-sessions-per-user", "3", "--max-cluster-sessions-per-user", "4"}
	a, b := startPushd(t, ns.URL(), args...), startPushd(t, ns.URL(), args...)
	var onA []*client.Conn
	for range 3 {
		onA = append(onA, dial(t, a, "alice"))
	}
	dial(t, b, "alice") // the fourth, before or after b heard of a's three
	eventually(t, func() error {
		status, body := pushtest.Handshake(t, b.wsURL()+"?user=alice", nil)
		if status != http.StatusTooManyRequests || !strings.Contains(body, "too_many_sessions") || !strings.Contains(body, "in the cluster (4)") {
			return fmt.Errorf("a fifth alice session on b: %d %s", status, body)
		}
		return nil
	})
	if got := metric(t, a, "pushd_census_users_reported"); got != 1 {
		t.Fatalf("a reports %v users, want alice", got)
	}
	if got := metric(t, b, `pushd_handshake_failures_total{reason="too_many_sessions_cluster"}`); got < 1 {
		t.Fatalf("too_many_sessions_cluster = %v", got)
	}
	dial(t, b, "bob") // another user is not limited by alice
	for _, c := range onA[:2] {
		_ = c.Close()
	}
	eventually(t, func() error { // a has one alice session left, which it does not report
		if status, body := pushtest.Handshake(t, b.wsURL()+"?user=alice", nil); status != http.StatusSwitchingProtocols {
			return fmt.Errorf("alice on b after two closed on a: %d %s", status, body)
		}
		return nil
	})
}

// TestLimitFlags: the new limits' flags are checked at start with a clear
// error, and turning the per-IP handshake limit off is said loudly.
func TestLimitFlags(t *testing.T) {
	ns := pushtest.RunNATS(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-docs-per-user", "50"}, "--max-docs-per-user 50 is below --max-docs-per-session 100"},
		{[]string{"--trusted-proxies", "10.0.0.0/33"}, `--trusted-proxies "10.0.0.0/33"`},
		{[]string{"--join-rate", "-1"}, "must not be negative"},
	} {
		err := startFails(t, ns.URL(), append([]string{"--dev"}, c.args...)...)
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%v: %q, want one line with %q", c.args, err, c.want)
		}
	}
	// Left at its default, --max-docs-per-user follows a higher --max-docs-per-session.
	startPushd(t, ns.URL(), "--dev", "--max-docs-per-session", "500", "--trusted-proxies", "10.0.0.0/8,192.0.2.7")

	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready, done := make(chan started, 1), make(chan error, 1)
	cmd := newRootCmd(ctx, nil, logs, func(string) (string, bool) { return "", false }, func(s started) { ready <- s })
	cmd.SetArgs([]string{"--dev", "--listen", "127.0.0.1:0", "--admin-listen", "", "--nats-url", ns.URL(), "--handshake-rate-per-ip", "0", "--drain-timeout", "100ms"})
	go func() { done <- cmd.Execute() }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(15 * time.Second):
		t.Fatal("pushd did not start")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "PER-IP HANDSHAKE LIMIT OFF") {
		t.Fatalf("no warning with --handshake-rate-per-ip 0:\n%s", logs.String())
	}
}
