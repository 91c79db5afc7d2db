package pushtest

import (
	"errors"
	"fmt"
	"net"
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

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-cleanhttp"
)

// consulStartTimeout bounds waiting for a fresh agent to elect itself and
// register its node (a dev agent needs well under a second normally).
const consulStartTimeout = 30 * time.Second

// Consul is a real `consul agent -dev` process owned by one test. It listens
// on random loopback ports only (DNS and gRPC are disabled), keeps its files
// in a t.TempDir, and is stopped by t.Cleanup.
//
// A dev agent keeps its state in memory, so Restart brings back an agent on
// the same address with empty state: sessions, KV and services are gone,
// which is exactly what a registry must survive.
type Consul struct {
	t        testing.TB
	bin      string
	dir      string
	logPath  string
	node     string
	args     []string
	httpAddr string

	client    *api.Client
	transport *http.Transport

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// RunConsul starts a Consul dev agent for t and waits until it has a leader
// and its node is in the catalog (sessions need that). It fails the test if
// no consul binary is found: run .ci/install-consul to build one. Call it
// from the test goroutine.
func RunConsul(t testing.TB) *Consul {
	t.Helper()
	c := &Consul{t: t, bin: consulBinary(t), dir: t.TempDir()}
	c.logPath = filepath.Join(c.dir, "consul.log")
	t.Cleanup(c.cleanup)

	// A port picked free can be grabbed by someone else before consul binds
	// it; try a few sets.
	var err error
	for range 3 {
		c.configure(t)
		if err = c.start(); err == nil {
			break
		}
		t.Logf("pushtest: consul did not start, retrying with new ports: %v", err)
	}
	if err != nil {
		t.Fatalf("pushtest: consul agent did not start: %v\n%s", err, c.logTail(40))
	}

	c.transport = cleanhttp.DefaultPooledTransport()
	client, err := api.NewClient(&api.Config{Address: c.httpAddr, Transport: c.transport})
	if err != nil {
		t.Fatalf("pushtest: consul client: %v", err)
	}
	c.client = client
	return c
}

// consulBinary finds the agent: $PUSHD_CONSUL_BIN, then the cache that
// .ci/install-consul fills, then PATH.
func consulBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PUSHD_CONSUL_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("pushtest: PUSHD_CONSUL_BIN=%s: %v", p, err)
		}
		return p
	}
	var candidates []string
	if d := os.Getenv("PUSHD_TOOLS"); d != "" {
		candidates = append(candidates, filepath.Join(d, "bin", "consul"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".cache", "pushd", "tools", "bin", "consul"))
	}
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p
	}
	t.Fatalf("pushtest: no consul binary: tried $PUSHD_CONSUL_BIN, %s and PATH; run .ci/install-consul (from the repo root) to build and cache one",
		strings.Join(candidates, ", "))
	return ""
}

// configure picks fresh ports and builds the agent's command line.
func (c *Consul) configure(t testing.TB) {
	t.Helper()
	ports, err := freePorts(4)
	if err != nil {
		t.Fatalf("pushtest: picking ports for consul: %v", err)
	}
	httpPort, lan, wan, server := ports[0], ports[1], ports[2], ports[3]
	c.httpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	c.node = "pushtest-" + strconv.Itoa(httpPort)
	c.args = []string{
		"agent", "-dev",
		"-node=" + c.node,
		"-bind=127.0.0.1", "-client=127.0.0.1", "-advertise=127.0.0.1",
		"-data-dir=" + filepath.Join(c.dir, "data"),
		"-http-port=" + strconv.Itoa(httpPort),
		"-serf-lan-port=" + strconv.Itoa(lan),
		"-serf-wan-port=" + strconv.Itoa(wan),
		"-server-port=" + strconv.Itoa(server),
		"-dns-port=-1", "-grpc-port=-1", "-grpc-tls-port=-1",
		"-hcl=disable_update_check = true",
		"-log-level=info",
	}
}

// freePorts returns n distinct loopback ports free for both TCP and UDP
// (Serf uses both on one port).
func freePorts(n int) ([]int, error) {
	var (
		ports   []int
		closers []func() error
	)
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 50 {
			return nil, errors.New("no free ports found")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		closers = append(closers, l.Close)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		closers = append(closers, u.Close)
		ports = append(ports, port)
	}
	return ports, nil
}

// start runs the agent and waits until it is usable.
func (c *Consul) start() error {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "==> pushtest: %s %s\n", c.bin, strings.Join(c.args, " "))

	cmd := exec.Command(c.bin, c.args...)
	cmd.Stdout, cmd.Stderr = logf, logf // *os.File: no copying goroutines
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.bin, err)
	}
	done := make(chan struct{})
	go func() { // owned by c; ends when the process exits (Stop/cleanup)
		_ = cmd.Wait()
		close(done)
	}()
	c.mu.Lock()
	c.cmd, c.done = cmd, done
	c.mu.Unlock()

	transport := cleanhttp.DefaultTransport()
	defer transport.CloseIdleConnections()
	client, err := api.NewClient(&api.Config{Address: c.httpAddr, Transport: transport})
	if err != nil {
		c.Stop()
		return err
	}
	deadline := time.Now().Add(consulStartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("consul exited during startup: %v", cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if lastErr = ready(client, c.node); lastErr == nil {
			return nil
		}
	}
	c.Stop()
	return fmt.Errorf("consul not ready after %s: %v", consulStartTimeout, lastErr)
}

// ready reports whether the agent has a leader and its node is registered
// in the catalog (session creation fails with "Missing node registration"
// until then).
func ready(client *api.Client, node string) error {
	leader, err := client.Status().Leader()
	if err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no leader yet")
	}
	n, _, err := client.Catalog().Node(node, nil)
	if err != nil {
		return err
	}
	if n == nil {
		return fmt.Errorf("node %s not in catalog yet", node)
	}
	return nil
}

// Addr is the agent's HTTP address, "127.0.0.1:<port>"; it stays the same
// across Restart.
func (c *Consul) Addr() string { return c.httpAddr }

// Client is an API client for assertions. Its idle connections are closed
// at cleanup.
func (c *Consul) Client() *api.Client { return c.client }

// Stop stops the agent (SIGTERM, then SIGKILL after 10s) and waits for it to
// exit. It is a no-op if the agent is not running.
func (c *Consul) Stop() {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.cmd = nil
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a frozen agent cannot act on SIGTERM
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

// Freeze stops the agent's process with SIGSTOP: it keeps its sockets and
// state but answers nothing, as an agent stuck in a long GC pause, swapped
// out or on a frozen VM would. Thaw (or cleanup) resumes it.
func (c *Consul) Freeze() { c.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen agent with SIGCONT. Its timers catch up at once:
// sessions whose TTL passed meanwhile are invalidated then.
func (c *Consul) Thaw() { c.signal(syscall.SIGCONT) }

func (c *Consul) signal(sig syscall.Signal) {
	c.t.Helper()
	c.mu.Lock()
	cmd := c.cmd
	c.mu.Unlock()
	if cmd == nil {
		c.t.Fatalf("pushtest: consul %s: the agent is not running", sig)
	}
	if err := syscall.Kill(cmd.Process.Pid, sig); err != nil {
		c.t.Fatalf("pushtest: consul %s: %v", sig, err)
	}
}

// Restart stops the agent if it runs and starts it again on the same ports
// and data dir. Call it from the test goroutine.
func (c *Consul) Restart() {
	c.t.Helper()
	c.Stop()
	if err := c.start(); err != nil {
		c.t.Fatalf("pushtest: consul restart: %v\n%s", err, c.logTail(40))
	}
}

func (c *Consul) cleanup() {
	c.Stop()
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	if c.t.Failed() {
		c.t.Logf("pushtest: consul log (%s):\n%s", c.logPath, c.logTail(60))
	}
}

// logTail returns the last n lines of the agent's log.
func (c *Consul) logTail(n int) string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return "(no consul log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Eventually polls fn until it returns nil, failing the test with fn's last
// error if that does not happen within timeout. Use it instead of sleeping
// for an event. Call it from the test goroutine.
func Eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", timeout, err)
		}
		time.Sleep(wait) // polling interval, not a stand-in for an event
		wait = min(wait*2, 250*time.Millisecond)
	}
}
