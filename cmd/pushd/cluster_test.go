package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
)

// TestNodeNumbersAreNeverShared: two live nodes minting session IDs from one
// node number would collide, and a push to one session could reach another
// user's. Every source of the number is checked against the live nodes on
// NATS, at start and while running.
func TestNodeNumbersAreNeverShared(t *testing.T) {
	ns := pushtest.RunNATS(t)
	// No Consul, no --node-id, not dev: there is no number to use.
	err := startFails(t, ns.URL(), "--jwt-secret", testSecret)
	if !strings.Contains(err.Error(), "no node number: set --consul-addr to lease one, or --node-id") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("start without a number: %q, want one line saying what to set", err)
	}
	// A number a live node holds is refused at start.
	a := startPushd(t, ns.URL(), "--dev", "--node-id", "3")
	err = startFails(t, ns.URL(), "--dev", "--node-id", "3")
	if !strings.Contains(err.Error(), "node number is used by a live node: node 3") || !strings.Contains(err.Error(), a.Listen) {
		t.Fatalf("second node 3: %v", err)
	}
	// Dev nodes without a number take the lowest free ones.
	d0, d1 := startPushd(t, ns.URL(), "--dev"), startPushd(t, ns.URL(), "--dev")
	if d0.NodeID != 0 || d1.NodeID != 1 {
		t.Fatalf("dev nodes got numbers %d and %d, want 0 and 1", d0.NodeID, d1.NodeID)
	}
}

// TestDuplicateNumberAfterAPartitionHeals: two nodes took number 7 on two
// halves of a partitioned NATS cluster, where neither could see the other.
// When the partition heals, the younger one stops taking sessions and closes
// its own, so they reconnect to nodes whose IDs cannot collide; the older
// one carries on.
func TestDuplicateNumberAfterAPartitionHeals(t *testing.T) {
	a, b := pushtest.RunNATSSplit(t)
	older := startPushd(t, a.URL(), "--dev", "--node-id", "7")
	younger := startPushd(t, b.URL(), "--dev", "--node-id", "7", "--drain-timeout", "100ms")
	kept, moved := dial(t, older, "alice"), dial(t, younger, "bob")

	pushtest.Heal(t, a, b)
	// pushctl marks the shared number loudly.
	pushctl := buildPushctl(t)
	eventually(t, func() error {
		r := runPushctl(t, pushctl, []string{"PUSHCTL_NATS_URL=" + a.URL(), "PUSHCTL_TIMEOUT=1s"}, "nodes")
		if r.code != 0 || strings.Count(r.stdout, "DUPLICATE-NUMBER") != 2 ||
			!strings.Contains(r.stderr, "WARNING: more than one live node uses node number 7") {
			return fmt.Errorf("pushctl nodes: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		return nil
	})
	select {
	case <-moved.Done():
		if code := closeCode(moved.Err()); code != 1012 {
			t.Fatalf("younger node's session closed with %v, want 1012", moved.Err())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the younger node kept its session after the duplicate showed up")
	}
	if status, body := httpGet(t, younger.httpURL("/readyz")); status != 503 || !strings.Contains(body, "duplicate_node_id") {
		t.Fatalf("younger /readyz %d %q, want 503 duplicate_node_id", status, body)
	}
	if _, err := client.Dial(ctxT(t), younger.wsURL(), client.Options{User: "new"}); err == nil {
		t.Fatal("the younger node accepted a session while its number is duplicated")
	}
	if status, _ := httpGet(t, older.httpURL("/readyz")); status != 200 {
		t.Fatalf("older /readyz %d, want 200", status)
	}
	if _, err := kept.Ping(ctxT(t)); err != nil {
		t.Fatalf("older node's session: %v", err)
	}
}

// buildPushctl builds the real pushctl binary into a test temp dir.
// (pushctl's own tests are in cmd/pushctl.)
func buildPushctl(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pushctl")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/pushd/pushd/cmd/pushctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go build pushctl: %v\n%s", err, out)
	}
	return bin
}

// ctlResult is one pushctl run.
type ctlResult struct {
	stdout, stderr string
	code           int
}

// runPushctl runs pushctl bin with args and env, on top of an environment
// without PUSHCTL_* variables.
func runPushctl(t *testing.T, bin string, env []string, args ...string) ctlResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PUSHCTL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r := ctlResult{}
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("pushctl %q: %v", args, err)
		}
		r.code = ee.ExitCode()
	}
	r.stdout, r.stderr = stdout.String(), stderr.String()
	return r
}
