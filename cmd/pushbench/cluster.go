package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// server is one process under test: a pushd node or the peer NATS server.
type serverProc struct {
	name  string
	pid   int    // 0 when not ours (a --target): then only /metrics is read
	ws    string // ws://host:port/ws
	admin string // http://host:port of the admin listener, empty if unknown
	cmd   *exec.Cmd
	done  chan struct{}
	log   string
	// bin, args and env start it again (rolling restarts: same node id,
	// same ports).
	bin  string
	args []string
	env  []string
}

// cluster is what a run targets.
type cluster struct {
	natsURL string
	nats    *server.Server
	// natsProc is the NATS server when it runs as our child (--jetstream):
	// its CPU is then its own, apart from the clients' and the publisher's.
	natsProc *serverProc
	natsProf string // http://host:port of natsProc's pprof listener
	servers  []*serverProc
	tmp      string
	// history tells spawned nodes to keep history (--history=true) or not.
	history bool
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startNATS runs an in-process NATS server on a random loopback port.
func startNATS() (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, MaxPayload: 8 << 20,
		MaxPending: 512 << 20})
	if err != nil {
		return nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("in-process NATS server did not start")
	}
	return ns, nil
}

// setupCluster starts NATS and K pushd nodes, or adopts --target URLs;
// spawned nodes keep history when history is set.
func setupCluster(ctx context.Context, o *options, history bool) (*cluster, error) {
	c := &cluster{history: history}
	tmp, err := os.MkdirTemp("", "pushbench-")
	if err != nil {
		return nil, err
	}
	c.tmp = tmp
	if len(o.targets) > 0 {
		c.natsURL = o.natsURL
		for i, t := range o.targets {
			sp := &serverProc{name: fmt.Sprintf("target-%d", i), ws: t}
			if i < len(o.adminURLs) {
				sp.admin = o.adminURLs[i]
			}
			if i < len(o.targetPIDs) {
				sp.pid = o.targetPIDs[i]
			}
			c.servers = append(c.servers, sp)
		}
		if c.natsURL == "" {
			return c, errors.New("--target needs --nats-url to publish to")
		}
		return c, nil
	}
	if o.pushdBin == "" {
		return c, errors.New("give --pushd-bin (with --spawn-nodes) or --target URLs")
	}
	c.natsURL = o.natsURL
	if c.natsURL == "" && o.jetstream {
		sp, url, err := c.startNATSProc(ctx, true, false)
		if err != nil {
			return c, err
		}
		c.natsProc, c.natsURL = sp, url
	} else if c.natsURL == "" {
		ns, err := startNATS()
		if err != nil {
			return c, err
		}
		c.nats = ns
		c.natsURL = ns.ClientURL()
	}
	return c, c.spawnNodes(ctx, o)
}

// spawnNodes starts o.spawnNodes pushd nodes and waits until each is ready
// (and, with history, until history is available on each).
func (c *cluster) spawnNodes(ctx context.Context, o *options) error {
	k := max(o.spawnNodes, 1)
	if per := o.conns / k; per > 18000 {
		return fmt.Errorf("%d connections on %d node(s) is %d per pushd process, past what its 20,000 open files allow; use --spawn-nodes %d",
			o.conns, k, per, (o.conns+17999)/18000)
	}
	for i := range k {
		sp, err := c.spawnPushd(ctx, o, i)
		if err != nil {
			return err
		}
		c.servers = append(c.servers, sp)
	}
	for _, sp := range c.servers {
		if err := c.waitReady(ctx, sp); err != nil {
			return err
		}
	}
	return nil
}

// nodeHTTP asks nodes' public listeners, which --tls makes https with the
// run's self-signed certificate.
var nodeHTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a benchmark's own certificate

// waitReady waits for a node's /readyz, and with history for
// "history":"available": a node whose history heartbeat has not come back
// yet delivers without positions.
func (c *cluster) waitReady(ctx context.Context, sp *serverProc) error {
	url := "http" + strings.TrimPrefix(strings.TrimSuffix(sp.ws, "/ws"), "ws") + "/readyz"
	if err := waitHTTP(ctx, url, 20*time.Second, sp.done); err != nil {
		return fmt.Errorf("%s not ready: %w (log %s: %s)", sp.name, err, sp.log, tail(sp.log))
	}
	if !c.history {
		return nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := nodeHTTP.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `"history":"available"`) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: history not available within 20s (log %s: %s)", sp.name, sp.log, tail(sp.log))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sp.done:
			return fmt.Errorf("%s exited: %s", sp.name, tail(sp.log))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// natsCPU is the NATS server's CPU time in ns when it is our child, else -1.
func (c *cluster) natsCPU() int64 {
	if c.natsProc == nil {
		return -1
	}
	return procCPU(c.natsProc.pid)
}

// metric sums one sample (labelled ones written as in the exposition, e.g.
// pushd_history_replays_total{result="recovered"}) over the nodes.
func (c *cluster) metric(names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, sp := range c.servers {
		if sp.admin == "" {
			continue
		}
		m := scrape(sp.admin + "/metrics")
		for _, n := range names {
			out[n] += m[n]
		}
	}
	return out
}

// stopNodes ends every spawned node (the NATS server stays).
func (c *cluster) stopNodes() {
	for _, sp := range c.servers {
		sp.stop()
	}
	c.servers = nil
}

// restart starts a stopped node again with its own arguments: same node id,
// same ports.
func (c *cluster) restart(ctx context.Context, i int) error {
	old := c.servers[i]
	sp, err := startProc(ctx, old.name, old.bin, old.args, old.env, old.log+".restart")
	if err != nil {
		return err
	}
	sp.ws, sp.admin = old.ws, old.admin
	c.servers[i] = sp
	return c.waitReady(ctx, sp)
}

func (c *cluster) spawnPushd(ctx context.Context, o *options, i int) (*serverProc, error) {
	lp, err := freePort()
	if err != nil {
		return nil, err
	}
	ap, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"--listen", fmt.Sprintf("127.0.0.1:%d", lp), "--admin-listen", fmt.Sprintf("127.0.0.1:%d", ap),
		"--nats-url", c.natsURL, "--node-id", strconv.Itoa(i + 1), "--log-level", "warn", "--log-format", "text",
		"--drain-timeout", "1s", "--node-name", fmt.Sprintf("pushbench-%d", i+1),
		// Without JetStream a node with history on would run it
		// "unavailable" (heartbeats, warnings): say which one is measured.
		"--history=" + strconv.FormatBool(c.history),
		// every client of a load generator comes from one address
		"--handshake-rate-per-ip", "0"}
	if o.secret != "" {
		args = append(args, "--jwt-secret", o.secret)
	} else {
		args = append(args, "--dev")
	}
	if o.tls {
		cert, key, err := c.selfSigned()
		if err != nil {
			return nil, err
		}
		args = append(args, "--tls-cert", cert, "--tls-key", key)
	}
	args = append(args, o.pushdArgs...)
	logPath := filepath.Join(c.tmp, fmt.Sprintf("pushd-%d.log", i+1))
	sp, err := startProc(ctx, fmt.Sprintf("pushd-%d", i+1), o.pushdBin, args, o.nodeEnv, logPath)
	if err != nil {
		return nil, err
	}
	sp.ws = fmt.Sprintf("ws://127.0.0.1:%d/ws", lp)
	if o.tls {
		sp.ws = "wss" + strings.TrimPrefix(sp.ws, "ws")
	}
	sp.admin = fmt.Sprintf("http://127.0.0.1:%d", ap)
	sp.bin, sp.args, sp.env = o.pushdBin, args, o.nodeEnv
	return sp, nil
}

// startProc starts a child that dies with us (Pdeathsig) and logs to a file.
func startProc(ctx context.Context, name, bin string, args, env []string, logPath string) (*serverProc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	sp := &serverProc{name: name, pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{}), log: logPath, bin: bin, args: args, env: env}
	go func() { _ = cmd.Wait(); lf.Close(); close(sp.done) }()
	return sp, nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}

func waitHTTP(ctx context.Context, url string, within time.Duration, died <-chan struct{}) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := nodeHTTP.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-died:
			return errors.New("process exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not up within %s", url, within)
}

// stop ends a child: SIGTERM, then SIGKILL after 5s.
func (sp *serverProc) stop() { sp.term(5 * time.Second) }

// term sends SIGTERM and waits up to within for the child to exit, then
// kills it; it reports whether the child exited by itself.
func (sp *serverProc) term(within time.Duration) bool {
	if sp.cmd == nil {
		return true
	}
	_ = sp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-sp.done:
		return true
	case <-time.After(within):
		_ = sp.cmd.Process.Kill()
		<-sp.done
		return false
	}
}

func (c *cluster) close() {
	for _, sp := range c.servers {
		sp.stop()
	}
	if c.natsProc != nil {
		c.natsProc.stop()
	}
	if c.nats != nil {
		c.nats.Shutdown()
		c.nats.WaitForShutdown()
	}
	if c.tmp != "" {
		_ = os.RemoveAll(c.tmp)
	}
}

func (c *cluster) targets() []string {
	var t []string
	for _, sp := range c.servers {
		t = append(t, sp.ws)
	}
	return t
}

// serverSample is the resource use of the servers under test at one moment.
type serverSample struct {
	RSS        int64   `json:"rss_bytes"`
	CPUNanos   int64   `json:"cpu_ns"`
	Goroutines float64 `json:"goroutines"`
	HeapInuse  float64 `json:"heap_inuse_bytes"`
	HeapLive   float64 `json:"heap_live_bytes"` // heap_alloc, live objects only when sampled after a GC
	StackInuse float64 `json:"stack_inuse_bytes"`
	Sessions   float64 `json:"sessions"`
	WriteCalls int64   `json:"write_syscalls"` // syscw of /proc/<pid>/io: write and writev calls
}

// sample reads /proc for our children and /metrics where there is an admin
// listener; gc first asks each Go server for a GC (pprof heap?gc=1) so RSS is
// not inflated by garbage.
func (c *cluster) sample(gc bool) serverSample {
	var s serverSample
	for _, sp := range c.servers {
		if gc && sp.admin != "" {
			if resp, err := http.Get(sp.admin + "/debug/pprof/heap?gc=1"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		var m map[string]float64
		if sp.admin != "" {
			m = scrape(sp.admin + "/metrics")
		}
		if sp.pid > 0 {
			s.RSS += procRSS(sp.pid)
			s.CPUNanos += procCPU(sp.pid)
			s.WriteCalls += procWrites(sp.pid)
		} else {
			s.RSS += int64(m["process_resident_memory_bytes"])
			s.CPUNanos += int64(m["process_cpu_seconds_total"] * 1e9)
		}
		s.Goroutines += m["go_goroutines"]
		s.HeapInuse += m["go_memstats_heap_inuse_bytes"]
		s.HeapLive += m["go_memstats_heap_alloc_bytes"]
		s.StackInuse += m["go_memstats_stack_inuse_bytes"]
		s.Sessions += m["pushd_connections"]
	}
	return s
}

// scrape reads the samples of a Prometheus text page whose labels have no
// spaces, keyed by name and labels as written.
func scrape(url string) map[string]float64 {
	out := map[string]float64{}
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	return out
}

// startPeerNATS starts "pushbench nats-server" as a child so its RSS and CPU
// are its own; it listens for NATS clients and WebSocket clients.
func (c *cluster) startPeerNATS(ctx context.Context) (*serverProc, string, error) {
	return c.startNATSProc(ctx, false, true)
}

// startNATSProc starts "pushbench nats-server" as a child, with JetStream
// (file storage in the run's temp dir) and/or a WebSocket listener.
func (c *cluster) startNATSProc(ctx context.Context, jetstream, websocket bool) (*serverProc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cp, err := freePort()
	if err != nil {
		return nil, "", err
	}
	wp := 0
	if websocket {
		if wp, err = freePort(); err != nil {
			return nil, "", err
		}
	}
	mp, err := freePort()
	if err != nil {
		return nil, "", err
	}
	args := []string{"nats-server", "--port", strconv.Itoa(cp), "--ws-port", strconv.Itoa(wp), "--monitor-port", strconv.Itoa(mp)}
	if jetstream {
		pp, err := freePort()
		if err != nil {
			return nil, "", err
		}
		args = append(args, "--store-dir", filepath.Join(c.tmp, "jetstream"), "--prof-port", strconv.Itoa(pp))
		c.natsProf = fmt.Sprintf("http://127.0.0.1:%d", pp)
	}
	sp, err := startProc(ctx, "nats-server", self, args, []string{workerEnv + "=nats-server"}, filepath.Join(c.tmp, "nats-server.log"))
	if err != nil {
		return nil, "", err
	}
	if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", mp), 20*time.Second, sp.done); err != nil {
		sp.stop()
		return nil, "", fmt.Errorf("peer nats-server: %w: %s", err, tail(sp.log))
	}
	sp.ws = fmt.Sprintf("ws://127.0.0.1:%d", wp)
	return sp, fmt.Sprintf("nats://127.0.0.1:%d", cp), nil
}

// runPeerNATS is the hidden nats-server subcommand; a storeDir turns
// JetStream on with file storage there.
func runPeerNATS(ctx context.Context, port, wsPort, monPort, profPort int, storeDir string) error {
	opts := &server.Options{Host: "127.0.0.1", Port: port, HTTPHost: "127.0.0.1", HTTPPort: monPort,
		NoSigs: true, MaxPayload: 8 << 20, MaxPending: 512 << 20,
		JetStream: storeDir != "", StoreDir: storeDir, ProfPort: profPort}
	if wsPort > 0 {
		opts.Websocket = server.WebsocketOpts{Host: "127.0.0.1", Port: wsPort, NoTLS: true}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return errors.New("nats-server did not start")
	}
	<-ctx.Done()
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}

// procWrites is the number of write-family syscalls pid made (syscw in
// /proc/<pid>/io), which tells how many frames each writev carried.
func procWrites(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
