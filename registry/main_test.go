package registry_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/registry"
)

// helperEnv makes the test binary act as a pushd node that holds a lease
// until it is killed, so tests can SIGKILL a real process.
const helperEnv = "PUSHD_REGISTRY_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	goleak.VerifyTestMain(m)
}

// runHelper starts a registry against $PUSHD_TEST_CONSUL_ADDR, prints
// "NODEID <n>" and blocks until killed.
func runHelper() int {
	cfg := baseConfig(os.Getenv("PUSHD_TEST_CONSUL_ADDR"), os.Getenv("PUSHD_TEST_NODE_NAME"))
	cfg.LockDelay, _ = time.ParseDuration(os.Getenv("PUSHD_TEST_LOCK_DELAY"))
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	r, err := registry.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	id, err := r.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Printf("NODEID %d\n", id)
	select {} // until SIGKILL
}

// baseConfig uses the shortest timings Consul allows so tests stay fast.
func baseConfig(addr, name string) registry.Config {
	return registry.Config{
		Addr:       addr,
		NodeName:   name,
		NodeID:     registry.AutoNodeID,
		Address:    "127.0.0.1",
		Port:       8080,
		Meta:       map[string]string{"version": "test"},
		SessionTTL: 10 * time.Second,
		LockDelay:  time.Second,
		// Passed every 1s: long enough that a busy CI machine under -race
		// does not let it lapse, short enough for the kill test.
		CheckTTL: 3 * time.Second,
	}
}

func testConfig(t testing.TB, c *pushtest.Consul, name string) registry.Config {
	cfg := baseConfig(c.Addr(), name)
	cfg.Logger = testLogger(t)
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// countingHandler counts log records whose message contains substr, so
// tests can wait for "retrying" lines instead of sleeping.
type countingHandler struct {
	slog.Handler
	substr string
	n      *atomic.Int64
}

func (h countingHandler) Handle(ctx context.Context, rec slog.Record) error {
	if strings.Contains(rec.Message, h.substr) {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, rec)
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countingHandler{h.Handler.WithAttrs(as), h.substr, h.n}
}

func (h countingHandler) WithGroup(name string) slog.Handler {
	return countingHandler{h.Handler.WithGroup(name), h.substr, h.n}
}

// countingLogger logs to t and counts messages containing substr.
func countingLogger(t testing.TB, substr string) (*slog.Logger, *atomic.Int64) {
	n := new(atomic.Int64)
	return slog.New(countingHandler{testLogger(t).Handler(), substr, n}), n
}

// newRegistry creates a registry that is closed at cleanup (closing also
// drops idle HTTP connections, which goleak would otherwise report).
func newRegistry(t testing.TB, cfg registry.Config) *registry.Registry {
	t.Helper()
	r, err := registry.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Close(ctx)
	})
	return r
}

func start(t testing.TB, r *registry.Registry) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, err := r.Start(ctx)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return id
}

// leaseEvents records OnLease calls.
type leaseEvents struct {
	mu  sync.Mutex
	evs []leaseEvent
}

type leaseEvent struct {
	held bool
	at   time.Time
}

func (l *leaseEvents) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.evs)
}

func (l *leaseEvents) record(held bool) {
	l.mu.Lock()
	l.evs = append(l.evs, leaseEvent{held, time.Now()})
	l.mu.Unlock()
}

// wait returns the n-th event (0-based) once it exists.
func (l *leaseEvents) wait(t testing.TB, n int, timeout time.Duration) leaseEvent {
	t.Helper()
	var ev leaseEvent
	pushtest.Eventually(t, timeout, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.evs) <= n {
			return fmt.Errorf("have %d OnLease calls, want %d: %v", len(l.evs), n+1, l.evs)
		}
		ev = l.evs[n]
		return nil
	})
	return ev
}

func itoa(n int) string { return strconv.Itoa(n) }

// startHelper runs a registry named name in a child process (this test
// binary, see runHelper) against c and returns the node ID it leased and a
// function that SIGKILLs it, so the lease is left behind as after a crash.
func startHelper(t *testing.T, c *pushtest.Consul, name string, lockDelay time.Duration) (int, func()) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(),
		helperEnv+"=1",
		"PUSHD_TEST_CONSUL_ADDR="+c.Addr(),
		"PUSHD_TEST_NODE_NAME="+name,
		"PUSHD_TEST_LOCK_DELAY="+lockDelay.String(),
	)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := sync.OnceFunc(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	t.Cleanup(kill)
	line := make(chan string, 1)
	go func() { // ends at EOF, i.e. when the helper dies
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "NODEID "); ok {
				line <- id
			}
		}
	}()
	select {
	case id := <-line:
		n, err := strconv.Atoi(id)
		if err != nil {
			t.Fatalf("helper reported %q", id)
		}
		return n, kill
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not report its node ID")
		return -1, nil
	}
}
