package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
)

func TestMain(m *testing.M) { pushtest.ExitAfter(m.Run(), bins.Remove) }

// bins holds the pushd binary, built once for the tests that need a real
// process (a signal, kill -9, the memory of a process).
var bins = pushtest.NewBinaries()

// binary returns the path of the pushd binary built from this package.
func binary(t *testing.T) string { return bins.Path(t, "pushd") }

const testSecret = "test-secret-do-not-use"

// testNode is a pushd running in process, wired exactly as main wires it.
type testNode struct {
	started
	cancel context.CancelFunc
	done   chan error
}

func (n *testNode) wsURL() string { return "ws://" + n.Listen + "/ws" }

func (n *testNode) httpURL(path string) string { return "http://" + n.Listen + path }

// nextNodeID numbers the non-dev test nodes started without a number.
var nextNodeID atomic.Int64

// startPushd runs pushd with args plus random listeners; it stops when the
// test ends.
func startPushd(t *testing.T, natsURL string, args ...string) *testNode {
	t.Helper()
	// A short drain: stopping a node at cleanup spreads its 1012 closes over it.
	base := []string{"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--log-level", "error", "--log-format", "text", "--drain-timeout", "300ms"}
	if natsURL != "" {
		base = append(base, "--nats-url", natsURL)
	} else {
		base = append(base, "--nats-embedded-listen", "127.0.0.1:0")
	}
	if !slices.Contains(args, "--dev") && !slices.Contains(args, "--node-id") && !slices.Contains(args, "--consul-addr") {
		// Production nodes need a number; each test's nodes get their own.
		base = append(base, "--node-id", strconv.FormatInt(nextNodeID.Add(1)%1024, 10))
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan started, 1)
	n := &testNode{cancel: cancel, done: make(chan error, 1)}
	cmd := newRootCmd(ctx, io.Discard, io.Discard, func(string) (string, bool) { return "", false }, func(s started) { ready <- s })
	cmd.SetArgs(append(base, args...))
	go func() { n.done <- cmd.Execute() }()
	select {
	case s := <-ready:
		n.started = s
	case err := <-n.done:
		cancel()
		t.Fatalf("pushd did not start: %v", err)
	case <-time.After(15 * time.Second):
		cancel()
		t.Fatal("pushd did not start within 15s")
	}
	t.Cleanup(func() { n.stop(t) })
	return n
}

// startFails runs pushd with args plus random listeners and returns the
// error it exits with; it fails the test if pushd starts instead.
func startFails(t *testing.T, natsURL string, args ...string) error {
	t.Helper()
	base := []string{"--listen", "127.0.0.1:0", "--admin-listen", "", "--log-level", "error", "--log-format", "text", "--nats-url", natsURL}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up := make(chan struct{}, 1)
	cmd := newRootCmd(ctx, io.Discard, io.Discard, func(string) (string, bool) { return "", false }, func(started) { up <- struct{}{} })
	cmd.SetArgs(append(base, args...))
	done := make(chan error, 1)
	go func() { done <- cmd.Execute() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("pushd %v exited 0, want a start error", args)
		}
		return err
	case <-up:
		cancel()
		<-done
		t.Fatalf("pushd %v started, want it refused", args)
	case <-time.After(15 * time.Second):
		t.Fatalf("pushd %v neither started nor failed within 15s", args)
	}
	return nil
}

// stop cancels the node's context (as SIGTERM does) and waits for it to exit.
func (n *testNode) stop(t *testing.T) error {
	t.Helper()
	n.cancel()
	select {
	case err, ok := <-n.done:
		if ok {
			close(n.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("pushd did not stop within 30s")
		return nil
	}
}

// token is an HS256 token for sub that expires after ttl (negative: already
// expired).
func token(t testing.TB, sub string, ttl time.Duration) string {
	t.Helper()
	return signed(t, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()})
}

func ctxT(t *testing.T) context.Context { return pushtest.Ctx(t) }

// dial opens a dev session for user.
func dial(t *testing.T, n *testNode, user string) *client.Conn {
	t.Helper()
	return pushtest.Dial(t, n.wsURL(), user)
}

// The wire-level helpers are shared with the other packages' tests.
var (
	publish    = pushtest.Publish
	delivered  = pushtest.Delivered
	expectPush = pushtest.ExpectPush
	hdr        = pushtest.Header
	closeCode  = pushtest.CloseCode
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric reads one sample from the node's /metrics, e.g.
// `pushd_slow_consumers_total` or `pushd_connections_closed_total{reason="kicked"}`.
func metric(t *testing.T, n *testNode, name string) float64 {
	t.Helper()
	_, body := httpGet(t, n.httpURL("/metrics"))
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func eventually(t *testing.T, fn func() error) {
	t.Helper()
	pushtest.Eventually(t, 10*time.Second, fn)
}

// handshake returns the HTTP status and body of a WebSocket upgrade request.
func handshake(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	return pushtest.Handshake(t, url, header)
}

// signed signs claims with the test secret; exp defaults to an hour ahead.
func signed(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	if _, ok := claims["exp"]; !ok {
		claims["exp"] = time.Now().Add(time.Hour).Unix()
	}
	return mustSign(t, claims, testSecret)
}

func mustSign(t testing.TB, claims jwt.MapClaims, secret string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dialToken(t *testing.T, n *testNode, tok string) *client.Conn {
	t.Helper()
	c, err := client.Dial(ctxT(t), n.wsURL(), client.Options{Token: tok})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
