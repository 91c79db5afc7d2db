package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// pushctl's tests run the real pushctl binary against real pushd processes
// on a real NATS server (and, for discovery, a real Consul agent), as an
// operator would.

// binDir holds the pushd and pushctl binaries. TestMain sets it once, before
// any test runs; tests only read it.
var binDir string

func TestMain(m *testing.M) { os.Exit(buildAndRun(m)) }

// buildAndRun builds pushd and pushctl into a temporary directory, runs the
// tests, checks that they left no goroutine behind and removes the
// directory.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pushctl-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushctl test:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "../pushd", ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "pushctl test: go build ../pushd .: %v\n%s", err, out)
		return 1
	}
	binDir = dir
	code := m.Run()
	if code == 0 {
		// The NATS client's package-level flusher/timer helpers, and the
		// in-process NATS servers' shared pools, are global by design.
		if err := goleak.Find(goleak.IgnoreTopFunction("time.Sleep"),
			goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine")); err != nil {
			fmt.Fprintln(os.Stderr, "pushctl test: leaked goroutines:", err)
			code = 1
		}
	}
	return code
}

// pushd is a pushd process started by a test.
type pushd struct {
	// Listen is its public listener (WebSocket at /ws, and /metrics).
	Listen string
	cmd    *exec.Cmd
	log    *logLines
	exited chan error
	once   sync.Once
	err    error
}

// startPushd runs pushd --dev on the NATS server at natsURL as node id, with
// extra flags, until the test ends; its log is shown if the test failed.
func startPushd(t *testing.T, natsURL string, id int, extra ...string) *pushd {
	t.Helper()
	args := append([]string{"--dev", "--nats-url", natsURL, "--listen", "127.0.0.1:0", "--admin-listen", "",
		"--node-id", strconv.Itoa(id), "--log-format", "json", "--drain-timeout", "300ms"}, extra...)
	p := &pushd{cmd: exec.Command(filepath.Join(binDir, "pushd"), args...), log: &logLines{started: make(chan string, 1)}, exited: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start pushd: %v", err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("pushd node %d: %v", id, err)
		}
		if t.Failed() {
			t.Logf("pushd node %d log:\n%s", id, p.log.String())
		}
	})
	select {
	case p.Listen = <-p.log.started:
		return p
	case err := <-p.exited:
		p.exited <- err // for stop
		t.Fatalf("pushd exited before it started: %v\n%s", err, p.log.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("pushd did not log \"pushd started\" within 20s\n%s", p.log.String())
	}
	return nil
}

// stop sends SIGTERM (pushd drains and exits 0), kills the process if it has
// not exited within 10s, and reports anything but a clean exit. A second
// call returns the first one's result.
func (p *pushd) stop() error {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.exited:
			if err != nil {
				p.err = fmt.Errorf("exited with %v after SIGTERM, want 0", err)
			}
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.err = fmt.Errorf("did not exit within 10s of SIGTERM; killed it")
		}
	})
	return p.err
}

// wsURL is the node's WebSocket endpoint.
func (p *pushd) wsURL() string { return "ws://" + p.Listen + "/ws" }

// metric reads one sample from the node's /metrics, e.g.
// `pushd_connections_closed_total{reason="kicked"}`.
func (p *pushd) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
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

// logLines collects a process's output and sends the listen address of the
// first "pushd started" JSON log line on started.
type logLines struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	started chan string // buffered, receives at most one address
	found   bool
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.partial = append(l.partial, p...)
	for {
		line, rest, ok := bytes.Cut(l.partial, []byte("\n"))
		if !ok {
			break
		}
		l.partial = rest
		var rec struct {
			Msg    string `json:"msg"`
			Listen string `json:"listen"`
		}
		if !l.found && json.Unmarshal(line, &rec) == nil && rec.Msg == "pushd started" {
			l.found = true
			l.started <- rec.Listen
		}
	}
	return len(p), nil
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}
