// Package interop runs third-party clients, with their default settings,
// against a real pushd process on a real NATS server: Python's websockets
// library (with pushes published by the real pushctl) and Node's ws and nats
// packages (the latter publishing as a backend). See README.md.
package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushtest"
)

// python is Debian's interpreter, which has the python3-websockets package
// (a python3 earlier on PATH may be another installation without it).
const python = "/usr/bin/python3"

// scriptTimeout bounds one client script; each script also has its own
// shorter deadlines and reports which one passed.
const scriptTimeout = 60 * time.Second

// bins holds the pushd and pushctl binaries, built once when a test first
// asks; TestMain removes them.
var bins = pushtest.NewBinaries()

func TestMain(m *testing.M) {
	code := m.Run()
	bins.Remove()
	os.Exit(code)
}

// TestPythonWebsockets runs interop/python/client.py (the websockets
// library, keepalive pings every 0.3 s, each needing its matching pong) and
// publishes a user, a doc and a broadcast push with pushctl once it is ready.
func TestPythonWebsockets(t *testing.T) {
	t.Parallel()
	requirePythonWebsockets(t)
	srv := startServer(t)
	const user, doc = "py-alice", "py-doc"
	pushes := []push{
		{Flag: "--user", Key: user, Target: "user", Event: "greet", ID: "py-1", Data: json.RawMessage(`{"text":"hi py-alice"}`)},
		{Flag: "--doc", Key: doc, Target: "doc", Doc: doc, Event: "edit", ID: "py-2", Data: json.RawMessage(`[1,2,3]`)},
		{Flag: "--all", Target: "all", Event: "news", ID: "py-3", Data: json.RawMessage(`"hello everyone"`)},
	}
	want, err := json.Marshal(pushes)
	if err != nil {
		t.Fatal(err)
	}
	publish := func() error {
		for _, p := range pushes {
			if err := srv.pushctl(t, p.args()...); err != nil {
				return err
			}
		}
		return nil
	}
	runScript(t, "python", publish, python, "-u", "python/client.py", srv.wsURL(user), doc, string(want))
}

// TestNodeWS runs interop/node/client.mjs: the ws package as the client,
// sending its own pings with payloads, and the nats package as the backend
// that publishes the pushes.
func TestNodeWS(t *testing.T) {
	t.Parallel()
	node := requireNodeModules(t, "ws", "nats")
	srv := startServer(t)
	runScript(t, "node", nil, node, "node/client.mjs", srv.wsURL("js-alice"), srv.natsURL, "js-alice", "js-doc")
}

// requirePythonWebsockets fails the test unless Debian's python has the
// websockets package.
func requirePythonWebsockets(t *testing.T) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import websockets; print(websockets.__version__)").CombinedOutput()
	if err != nil {
		t.Fatalf("%s cannot import websockets (%v): install it with .ci/install-debs (apt-get install -y python3-websockets)", python, err)
	}
	t.Logf("python websockets %s", bytes.TrimSpace(out))
}

// requireNodeModules fails the test unless node is on PATH and the given
// packages are installed in interop/node_modules; it returns node's path.
func requireNodeModules(t *testing.T, pkgs ...string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH: install Node.js 20 (and npm), then run .ci/install-npm")
	}
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join("node_modules", p, "package.json")); err != nil {
			t.Fatalf("npm package %s is not installed in interop/node_modules: run .ci/install-npm (npm ci in interop/)", p)
		}
	}
	return node
}

// push is one push the Go test publishes with pushctl. Its JSON form (the
// fields with JSON names) is what the client must receive.
type push struct {
	Flag   string          `json:"-"` // pushctl's target flag
	Key    string          `json:"-"` // the flag's value (none for --all)
	Target string          `json:"target"`
	Doc    string          `json:"doc,omitempty"`
	Event  string          `json:"event"`
	ID     string          `json:"id"`
	Data   json.RawMessage `json:"data"`
}

// args is the pushctl publish command line for p; --require-delivery makes
// pushctl exit 4 when no session received it.
func (p push) args() []string {
	args := []string{"publish", p.Flag}
	if p.Key != "" {
		args = append(args, p.Key)
	}
	return append(args, "--event", p.Event, "--id", p.ID, "--require-delivery", string(p.Data))
}

// server is a real pushd process on its own NATS server.
type server struct {
	natsURL string
	addr    string // the WebSocket listener, host:port
}

// wsURL is the dev-mode WebSocket URL for user.
func (s server) wsURL(user string) string { return "ws://" + s.addr + "/ws?user=" + user }

// pushctl runs the built pushctl against the server's NATS.
func (s server) pushctl(t *testing.T, args ...string) error {
	t.Helper()
	args = append([]string{"--nats-url", s.natsURL}, args...)
	out, err := exec.Command(bins.Path(t, "pushctl"), args...).CombinedOutput()
	t.Logf("pushctl %s: %s", strings.Join(args[2:], " "), bytes.TrimSpace(out))
	if err != nil {
		return fmt.Errorf("pushctl %s: %v: %s", strings.Join(args[2:], " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// startServer starts NATS and a dev-mode pushd on random loopback ports,
// with a heartbeat of 1 s plus 1 s grace (a session silent for 2 s is closed
// within the 100 ms sweep) that does not adapt. pushd is stopped, and its log
// shown if the test failed, when the test ends.
func startServer(t *testing.T) server { return startServerOn(t, pushtest.RunNATS(t)) }

// startServerOn is startServer on a NATS server of the caller's (one with
// JetStream gives pushes their positions), with extra pushd arguments.
func startServerOn(t *testing.T, ns *pushtest.NATS, args ...string) server {
	t.Helper()
	p := pushtest.StartPushd(t, bins.Path(t, "pushd"), append([]string{
		"--dev", "--nats-url", ns.URL(),
		"--ping-interval", "1s", "--ping-interval-max", "1s", "--ping-grace", "1s",
		"--heartbeat-sweep", "100ms", "--drain-timeout", "100ms"}, args...)...)
	return server{natsURL: ns.URL(), addr: p.Listen}
}

// runScript runs a client script from the interop directory, logs what it
// prints, calls onReady (if not nil) when it prints the line READY, and fails
// the test with the script's "FAIL: <reason>" line (or the tail of its
// output) unless it exits 0 after an "OK: <summary>" line.
func runScript(t *testing.T, name string, onReady func() error, command string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, command, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s client: %v", name, err)
	}
	var (
		readyErr      error
		result, lines []string
	)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		t.Logf("%s: %s", name, line)
		lines = append(lines, line)
		switch {
		case line == "READY" && onReady != nil:
			readyErr = onReady()
		case strings.HasPrefix(line, "OK: "), strings.HasPrefix(line, "FAIL: "):
			result = append(result, line)
		}
	}
	err = cmd.Wait()
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("%s stderr:\n%s", name, s)
	}
	t.Logf("%s client ran %v", name, time.Since(start).Round(time.Millisecond))
	switch {
	case len(result) == 1 && strings.HasPrefix(result[0], "FAIL: "):
		t.Errorf("%s client: %s", name, strings.TrimPrefix(result[0], "FAIL: "))
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		t.Errorf("%s client did not finish within %v", name, scriptTimeout)
	case err != nil || len(result) != 1 || !strings.HasPrefix(result[0], "OK: "):
		t.Errorf("%s client exited with %v and no verdict; last output: %s", name, err, lastLine(stderr.String(), lines))
	}
	if readyErr != nil {
		t.Errorf("publishing for the %s client: %v", name, readyErr)
	}
}

// lastLine is the last non-empty line of stderr, else of stdout's lines.
func lastLine(stderr string, stdout []string) string {
	all := append(stdout[:len(stdout):len(stdout)], strings.Split(stderr, "\n")...)
	for i := len(all) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(all[i]); s != "" {
			return s
		}
	}
	return "(none)"
}
