// Command pushbench is pushd's load generator. It opens many WebSocket
// clients over loopback source addresses 127.0.0.2..127.0.0.250, splits them
// over worker processes (re-execs of itself) to stay under the per-process
// open-files cap, can start the pushd nodes and the NATS server itself, and
// runs named scenarios: idle, connect, broadcast, targeted, docs, churn,
// compare (against NATS server's own WebSocket listener), transports
// (WebSocket against SSE and long-polling), presence (join and leave churn
// in one doc), and, with history (JetStream), history (on vs off), resume
// (reconnect storm) and rolling (rolling restart without loss); chaos is
// internal/chaos's fault scenario at scale; seed is seed 001's own load test (broadcasts with receipts while clients churn, on 4
// nodes). --transport makes the clients of the scenarios that take it SSE or
// long-poll clients.
//
//	go build -o /tmp/pushd ./cmd/pushd
//	go run ./cmd/pushbench broadcast --pushd-bin /tmp/pushd --conns 1000 --count 100
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pushd/pushd/internal/cliutil"
)

const envPrefix = "PUSHBENCH"

type options struct {
	conns       int
	workers     int
	perWorker   int
	inProcess   bool
	targets     []string
	adminURLs   []string
	targetPIDs  []int
	natsURL     string
	spawnNodes  int
	pushdBin    string
	pushdArgs   []string
	tls         bool
	nodeEnv     []string
	secret      string
	docs        int
	docDist     string
	srcFrom     int
	srcTo       int
	readBuf     int
	connRate    float64
	concurrency int
	timeout     time.Duration
	rate        float64
	count       int
	payload     int
	settle      time.Duration
	hold        time.Duration
	churnRate   float64
	duration    time.Duration
	churners    int
	coalesce    string
	output      string
	progress    bool
	maxRuntime  time.Duration
	transport   string
	transports  []string
	jetstream   bool
	missed      int
	jitter      time.Duration
	gap         time.Duration
	profileDir  string
	drop        string
	interval    time.Duration
	churnPct    float64
	sampleEvery time.Duration
}

type scenario struct {
	name, short string
	run         func(*bench) error
	defaults    func(*options)
	// jetstream: the scenario needs history, so --jetstream defaults on.
	jetstream bool
}

var scenarios = []scenario{
	{"idle", "hold N connections; server RSS, heap and goroutines per connection, heartbeat traffic", runIdle, nil, false},
	{"connect", "ramp N connections; accepted per second (avg and peak), handshake p50/p99", runConnect, nil, false},
	{"broadcast", "publish --count pushes to push.all at --rate; deliveries/s, server CPU per delivered frame, time to last client", runBroadcast, nil, false},
	{"targeted", "publish --count pushes to random users at --rate; publish->receive p50/p99/p999 and loss", runTargeted, nil, false},
	{"docs", "clients join --docs docs (--doc-size uniform|zipf|fixed:N); pushes round-robin over docs; loss and latency", runDocs,
		func(o *options) {
			if o.docs == 0 {
				o.docs = 100
			}
		}, false},
	{"churn", "--churn-rate disconnect+reconnect cycles/s for --duration while broadcasts flow; goroutines and heap must return flat", runChurn, nil, false},
	{"compare", "idle + broadcast against pushd, then against NATS server's own WebSocket listener; pushd/peer ratios", runCompare, nil, false},
	{"transports", "idle + broadcast over each of --transports (ws, sse, poll), each on fresh nodes; memory per idle session and CPU per delivery, against ws", runTransports, nil, false},
	{"history", "targeted (and with --docs, docs) pushes with nodes at --history=false, then at --history=true, same run: CPU per push, latency, loss, on/off ratios", runHistory,
		nil, true},
	{"resume", "reconnect storm: all clients drop, --missed pushes per user (and doc) are published, all come back with since; resume time, replayed vs expected, reads per session", runResume,
		func(o *options) {
			if o.docs == 0 {
				o.docs = max(1, o.conns/100)
			}
		}, true},
	{"rolling", "steady user and doc pushes while each node in turn is drained (SIGTERM, 1012) and restarted; clients resume by since elsewhere; delivery exactly once after dedupe", runRolling,
		func(o *options) {
			if o.docs == 0 {
				o.docs = max(1, o.conns/20)
			}
			if o.spawnNodes < 2 && len(o.targets) == 0 {
				o.spawnNodes = 3
			}
		}, true},
	{"presence", "--conns members of one doc listen for presence events while --churners sessions join and leave it at --churn-rate joins/s (and as many leaves); presence events/s and server CPU, with coalescing on and off (--coalesce)", runPresence, nil, false},
	{"seed", "seed 001's load test (its scenario 4): a broadcast asking for receipts every --interval, every client acknowledges it, --churn-pct of the clients per second disconnect and reconnect, for --duration on 4 nodes; receipts vs deliveries, memory per connection, CPU, flatness", runSeed,
		nil, false},
	{"chaos", "the chaos suite at scale (internal/chaos): --conns Go SDK clients through Toxiproxy, --rate doc pushes/s, 3 nodes, 3 JetStream servers, Consul; 2 s drops of 10% of clients, kill -9 of a node and of a NATS server, a node cut from NATS, a Consul freeze, a rolling drain, then rebalancing; delivery exactly once, duplicates before dedupe, time until every client is served again, sessions per node after the drain and at the end with the time until balanced, RSS/goroutines before and after", runChaos,
		func(o *options) {
			if o.docs == 0 {
				o.docs = max(6, o.conns/30)
			}
		}, true},
}

// scenarioFlags are flag defaults of one scenario, applied to flags not
// given on the command line or in the environment.
var scenarioFlags = map[string][][2]string{
	"seed": {{"spawn-nodes", "4"}, {"duration", "15m"}},
}

func newRootCmd(ctx context.Context, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) *cobra.Command {
	o := &options{}
	root := &cobra.Command{
		Use:   "pushbench",
		Short: "Load generator and benchmarks for pushd",
		Long: `pushbench opens many WebSocket clients against pushd nodes (spawned with
--spawn-nodes/--pushd-bin, or given with --target) and runs one scenario.
All traffic stays on loopback; every loop is bounded by count and time.
Clients are spread over source addresses 127.0.0.<src-from>..<src-to> and over
worker processes (re-execs of this binary, at most --per-worker clients each)
to stay under the ephemeral-port and open-files limits.

Every flag has an environment twin PUSHBENCH_<FLAG> shown in its usage.`,
		Example: `  go build -o /tmp/pushd ./cmd/pushd
  pushbench idle      --pushd-bin /tmp/pushd --conns 18000
  pushbench connect   --pushd-bin /tmp/pushd --conns 18000 --jwt-secret s3cret
  pushbench broadcast --pushd-bin /tmp/pushd --conns 18000 --count 200 --rate 50 --payload 256
  pushbench targeted  --pushd-bin /tmp/pushd --conns 18000 --count 200000 --rate 20000
  pushbench docs      --pushd-bin /tmp/pushd --conns 5000 --docs 1000 --doc-size zipf
  pushbench churn     --pushd-bin /tmp/pushd --conns 15000 --churn-rate 3000 --duration 5m
  pushbench compare   --pushd-bin /tmp/pushd --conns 10000 -o json
  pushbench transports --pushd-bin /tmp/pushd --conns 10000 --count 50 --rate 10
  pushbench idle      --pushd-bin /tmp/pushd --conns 10000 --transport sse
  pushbench presence  --pushd-bin /tmp/pushd --conns 1000 --churn-rate 100 --duration 30s
  pushbench idle --spawn-nodes 4 --pushd-bin /tmp/pushd --conns 70000
  pushbench history   --pushd-bin /tmp/pushd --conns 18000 --count 200000 --rate 20000
  pushbench resume    --pushd-bin /tmp/pushd --conns 10000 --missed 5
  pushbench rolling   --pushd-bin /tmp/pushd --conns 6000 --rate 1000
  pushbench seed      --pushd-bin /tmp/pushd --conns 48000 --duration 15m
  pushbench chaos     --pushd-bin /tmp/pushd --conns 3000 --rate 1000`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.IntVar(&o.conns, "conns", 100, "WebSocket clients to open")
	pf.IntVar(&o.workers, "workers", 0, "client worker processes (0: one per --per-worker clients)")
	pf.IntVar(&o.perWorker, "per-worker", 15000, "most clients per worker process (open files are capped per process)")
	pf.BoolVar(&o.inProcess, "in-process", false, "run client workers as goroutines in this process instead of child processes")
	pf.StringSliceVar(&o.targets, "target", nil, "ws:// URL(s) of running pushd nodes, e.g. ws://127.0.0.1:8080/ws (instead of spawning)")
	pf.StringSliceVar(&o.adminURLs, "admin-url", nil, "http:// admin listener of each --target, for /metrics and GC")
	pf.IntSliceVar(&o.targetPIDs, "target-pid", nil, "pid of each --target, to read RSS and CPU from /proc")
	pf.StringVar(&o.natsURL, "nats-url", "", "NATS server the nodes use and pushbench publishes to (empty: start one in process)")
	pf.IntVar(&o.spawnNodes, "spawn-nodes", 1, "pushd nodes to start (each with its own --node-id and port)")
	pf.StringVar(&o.pushdBin, "pushd-bin", "", "pushd binary to spawn")
	pf.StringSliceVar(&o.pushdArgs, "pushd-arg", nil, "extra argument for spawned pushd nodes (repeatable)")
	pf.BoolVar(&o.tls, "tls", false, "spawned nodes serve wss:// with a self-signed certificate made for the run (--tls-cert); WebSocket clients verify nothing")
	pf.StringSliceVar(&o.nodeEnv, "node-env", nil, "KEY=VALUE environment for spawned pushd nodes, e.g. GOGC=50 (repeatable)")
	pf.StringVar(&o.secret, "jwt-secret", "", "HS256 secret: clients send real JWTs (sub = user ID); empty uses dev ?user=")
	pf.IntVar(&o.docs, "docs", 0, "docs clients join, one each (0: none)")
	pf.StringVar(&o.docDist, "doc-size", "uniform", "doc membership distribution: uniform, zipf or fixed:N (N clients per doc)")
	pf.IntVar(&o.srcFrom, "src-from", 2, "first source address 127.0.0.<n>")
	pf.IntVar(&o.srcTo, "src-to", 250, "last source address 127.0.0.<n>")
	pf.IntVar(&o.readBuf, "client-read-buffer", 1024, "client read buffer bytes")
	pf.Float64Var(&o.connRate, "conn-rate", 0, "new connections per second across workers (0: as fast as --concurrency allows)")
	pf.IntVar(&o.concurrency, "concurrency", 128, "handshakes in flight per worker")
	pf.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-connection handshake timeout")
	pf.Float64Var(&o.rate, "rate", 100, "pushes published per second")
	pf.IntVar(&o.count, "count", 100, "pushes to publish")
	pf.IntVar(&o.payload, "payload", 256, "push body bytes")
	pf.DurationVar(&o.settle, "settle", 5*time.Second, "wait this long without progress for deliveries before giving up")
	pf.DurationVar(&o.hold, "hold", 5*time.Second, "idle/compare: how long to hold the connections before measuring")
	pf.Float64Var(&o.churnRate, "churn-rate", 100, "churn: disconnect+reconnect cycles per second")
	pf.DurationVar(&o.duration, "duration", 10*time.Second, "churn, presence, seed: how long to churn (seed: 15m)")
	pf.IntVar(&o.churners, "churners", 100, "presence: sessions that join and leave the doc (on top of --conns members)")
	pf.StringVar(&o.coalesce, "coalesce", "both", "presence: on (pushd's default window), off (--presence-window=0) or both, one after the other")
	pf.StringVarP(&o.output, "output", "o", "table", "output: table or json")
	pf.BoolVar(&o.progress, "progress", false, "draw the ramp progress bar even when stderr is not a terminal")
	pf.DurationVar(&o.maxRuntime, "max-runtime", 30*time.Minute, "hard limit on the whole run")
	pf.StringVar(&o.transport, "transport", "ws", "how clients connect to pushd: ws (WebSocket), sse (POST /http/connect + event stream) or poll (long-polling)")
	pf.StringSliceVar(&o.transports, "transports", []string{"ws", "sse", "poll"}, "transports: the transports compared, in order")
	pf.BoolVar(&o.jetstream, "jetstream", false, "run NATS with JetStream (a child process, file storage in the run's temp dir) and the nodes with --history=true; "+
		"default on for history, resume and rolling, off for the rest (their nodes run --history=false, as measured before history existed)")
	pf.StringVar(&o.drop, "drop", "close", "resume: how the clients go away: close (every client closes its socket) or kill (every node is killed with SIGKILL and started again with the same node id and ports)")
	pf.IntVar(&o.missed, "missed", 5, "resume: pushes published to each user and each doc while the clients are away")
	pf.DurationVar(&o.jitter, "reconnect-jitter", time.Second, "rolling: a client closed by a drain reconnects after a random delay up to this")
	pf.StringVar(&o.profileDir, "profile-dir", "", "history: write CPU profiles of node 1 and of the NATS server for each phase's publishing here (<phase>pushd.pprof, <phase>nats.pprof)")
	pf.DurationVar(&o.interval, "interval", 5*time.Second, "seed: time between broadcasts")
	pf.Float64Var(&o.churnPct, "churn-pct", 4, "seed: percent of the clients that disconnect and reconnect each second (the seed's 40k users going off and on line per second of 500k: 20k cycles/s)")
	pf.DurationVar(&o.sampleEvery, "sample-every", 0, "seed: how often the nodes' RSS, heap and goroutines are sampled (after a forced GC); 0: --duration/30, within 1s..30s")
	pf.DurationVar(&o.gap, "restart-gap", 3*time.Second, "rolling: steady pushes before the first drain, between a node's restart and the next drain, and after the last")
	cliutil.AnnotateEnv(pf, envPrefix)

	var scenarioName string
	root.Flags().StringVar(&scenarioName, "scenario", "", "scenario to run (same as the subcommand)")
	cliutil.AnnotateEnv(root.Flags(), envPrefix)
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := cliutil.BindEnv(cmd.Flags(), envPrefix, lookupEnv); err != nil {
			return err
		}
		for _, s := range scenarios {
			if s.name == scenarioName {
				return runScenario(ctx, cmd, o, s, stdout, stderr, lookupEnv)
			}
		}
		if scenarioName == "" {
			return cmd.Help()
		}
		return fmt.Errorf("unknown scenario %q", scenarioName)
	}

	for _, s := range scenarios {
		root.AddCommand(&cobra.Command{
			Use: s.name, Short: s.short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runScenario(ctx, cmd, o, s, stdout, stderr, lookupEnv)
			},
		})
	}
	root.AddCommand(&cobra.Command{
		Use: "worker", Hidden: true, Short: "client worker driven over stdin/stdout (started by pushbench)",
		RunE: func(*cobra.Command, []string) error { return runWorker(ctx, os.Stdin, os.Stdout) },
	})
	var port, wsPort, monPort, profPort int
	var storeDir string
	ns := &cobra.Command{
		Use: "nats-server", Hidden: true, Short: "NATS server child: compare's peer (WebSocket listener) or the JetStream server of --jetstream",
		RunE: func(*cobra.Command, []string) error {
			return runPeerNATS(ctx, port, wsPort, monPort, profPort, storeDir)
		},
	}
	ns.Flags().IntVar(&port, "port", 4222, "client port")
	ns.Flags().IntVar(&wsPort, "ws-port", 8222, "WebSocket port (0: none)")
	ns.Flags().IntVar(&profPort, "prof-port", 0, "pprof port (0: none)")
	ns.Flags().StringVar(&storeDir, "store-dir", "", "JetStream file store directory (empty: no JetStream)")
	ns.Flags().IntVar(&monPort, "monitor-port", 0, "monitoring port")
	root.AddCommand(ns)
	return root
}

func runScenario(ctx context.Context, cmd *cobra.Command, o *options, s scenario, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) error {
	if err := cliutil.BindEnv(cmd.Flags(), envPrefix, lookupEnv); err != nil {
		return err
	}
	for _, fv := range scenarioFlags[s.name] {
		if f := cmd.Flags().Lookup(fv[0]); f != nil && !f.Changed {
			if err := cmd.Flags().Set(fv[0], fv[1]); err != nil {
				return err
			}
		}
	}
	if s.defaults != nil {
		s.defaults(o)
	}
	if !cmd.Flags().Changed("jetstream") {
		o.jetstream = s.jetstream
	}
	if s.jetstream && !o.jetstream && len(o.targets) == 0 {
		return fmt.Errorf("%s needs history: drop --jetstream=false", s.name)
	}
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("-o %q: want table or json", o.output)
	}
	if o.conns <= 0 || o.perWorker <= 0 || o.count < 0 {
		return errors.New("--conns and --per-worker must be positive")
	}
	if o.srcFrom < 1 || o.srcTo > 254 || o.srcTo < o.srcFrom {
		return errors.New("--src-from/--src-to: want 1 <= from <= to <= 254")
	}
	for _, t := range append([]string{o.transport}, o.transports...) {
		if t != transportWS && t != transportSSE && t != transportPoll {
			return fmt.Errorf("transport %q: want ws, sse or poll", t)
		}
	}
	if o.transport != transportWS && (s.jetstream || s.name == "compare") {
		return fmt.Errorf("%s works with --transport ws only", s.name)
	}
	if o.transport != transportWS && o.docs > 0 {
		return errors.New("--docs works with --transport ws only (an HTTP client's joins would need a second connection)")
	}
	ctx, cancel := context.WithTimeout(ctx, o.maxRuntime)
	defer cancel()
	start := time.Now()
	b := newBench(ctx, o, stderr, s.name)
	err := s.run(b)
	b.close()
	b.rep.Elapsed = time.Since(start).Seconds()
	if err != nil {
		b.rep.note("error: " + err.Error())
	}
	if werr := b.rep.write(stdout, o.output); werr != nil && err == nil {
		err = werr
	}
	if err == nil && !b.rep.ok() {
		err = errors.New("some checks failed")
	}
	return err
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cmd := newRootCmd(ctx, os.Stdout, os.Stderr, os.LookupEnv)
	cmd.SetArgs(os.Args[1:])
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "pushbench: "+err.Error())
		os.Exit(1)
	}
}
