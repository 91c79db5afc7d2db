package pushtest

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
)

// Binaries builds this module's commands (pushd, pushctl) once per test
// binary, the first time a test asks for one, into a directory its Remove
// deletes: a package's TestMain owns one.
//
//	var bins = pushtest.NewBinaries()
//	func TestMain(m *testing.M) { code := m.Run(); bins.Remove(); os.Exit(code) }
type Binaries struct {
	mu    sync.Mutex
	dir   string
	built map[string]error
}

// NewBinaries returns an empty set; nothing is built yet.
func NewBinaries() *Binaries { return &Binaries{built: map[string]error{}} }

// Path returns the path of command cmd (a directory under cmd/ of this
// module), building it on first use.
func (b *Binaries) Path(t testing.TB, cmd string) string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir == "" {
		dir, err := os.MkdirTemp("", "pushtest-bin-")
		if err != nil {
			t.Fatal(err)
		}
		b.dir = dir
	}
	err, ok := b.built[cmd]
	if !ok {
		out, berr := exec.Command("go", "build", "-o", filepath.Join(b.dir, cmd), "github.com/pushd/pushd/cmd/"+cmd).CombinedOutput()
		if berr != nil {
			err = fmt.Errorf("go build cmd/%s: %v\n%s", cmd, berr, out)
		}
		b.built[cmd] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(b.dir, cmd)
}

// Remove deletes what was built.
func (b *Binaries) Remove() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// Pushd is a pushd process started by a test.
type Pushd struct {
	// Listen is its public listener's address (WebSocket at /ws).
	Listen string
	// NodeID is the node number it logged at start.
	NodeID int64

	cmd    *exec.Cmd
	log    *logLines
	exited chan struct{}
	err    error // the exit status, once exited is closed
}

// StartPushd runs the pushd binary bin with args, after defaults for random
// loopback listeners, JSON logs and no admin listener (args come later, so
// they win), and waits for its start line. When the test ends the process is
// stopped (SIGTERM, killed after 10s) and its log shown if the test failed.
func StartPushd(t testing.TB, bin string, args ...string) *Pushd {
	t.Helper()
	base := []string{"--listen", "127.0.0.1:0", "--admin-listen", "", "--log-format", "json"}
	p := &Pushd{cmd: exec.Command(bin, append(base, args...)...), log: &logLines{started: make(chan startLine, 1)}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start pushd: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("pushd %s: %v", p.Listen, err)
		}
		if t.Failed() {
			t.Logf("pushd %s log (last 40 lines):\n%s", p.Listen, tail(p.Log(), 40))
		}
	})
	select {
	case s := <-p.log.started:
		p.Listen, p.NodeID = s.Listen, s.NodeID
	case <-p.exited:
		t.Fatalf("pushd exited before it started: %v\n%s", p.err, p.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("pushd did not log \"pushd started\" within 30s\n%s", p.Log())
	}
	return p
}

// WSURL is its WebSocket endpoint.
func (p *Pushd) WSURL() string { return "ws://" + p.Listen + "/ws" }

// Log is everything it wrote so far.
func (p *Pushd) Log() string { return p.log.String() }

// PID is its process ID.
func (p *Pushd) PID() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM (pushd drains and exits 0), kills the process if it
// has not exited within 10s, and returns an error unless it exited 0 on its
// own. Stopping a process that already ended returns how it ended.
func (p *Pushd) Stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a frozen process cannot drain
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("did not exit within 10s of SIGTERM; killed it")
	}
}

// Kill stops it with SIGKILL (no drain, no goodbye) and waits until it is
// gone.
func (p *Pushd) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.err = nil // killed on purpose
}

// Freeze stops it with SIGSTOP: it holds its sockets and answers nothing,
// as a node stuck in a long pause would. Thaw resumes it.
func (p *Pushd) Freeze() error { return p.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen process.
func (p *Pushd) Thaw() error { return p.cmd.Process.Signal(syscall.SIGCONT) }

// Exited is closed once the process ended.
func (p *Pushd) Exited() <-chan struct{} { return p.exited }

// startLine is what pushd's start line says.
type startLine struct {
	Listen string `json:"listen"`
	NodeID int64  `json:"node_id"`
}

// logLines collects a process's output and sends what the first "pushd
// started" JSON log line says on started.
type logLines struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	started chan startLine // buffered, receives at most one line
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
			Msg string `json:"msg"`
			startLine
		}
		if !l.found && json.Unmarshal(line, &rec) == nil && rec.Msg == "pushd started" {
			l.found = true
			l.started <- rec.startLine
		}
	}
	return len(p), nil
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Metric reads one sample from its /metrics on the public listener, e.g.
// `pushd_connections_closed_total{reason="kicked"}`.
func (p *Pushd) Metric(t testing.TB, series string) float64 {
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
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not found", series)
	return 0
}
