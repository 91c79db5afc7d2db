package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

var pushdBin string

// TestMain doubles as the worker and peer nats-server processes pushbench
// re-execs (os.Executable is this test binary), and builds pushd once.
func TestMain(m *testing.M) {
	switch os.Getenv(workerEnv) {
	case "worker", "nats-server":
		cmd := newRootCmd(context.Background(), os.Stdout, os.Stderr, os.LookupEnv)
		args := os.Args[1:]
		cmd.SetArgs(args)
		if err := cmd.Execute(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "pushbench-test-")
	if err != nil {
		panic(err)
	}
	pushdBin = filepath.Join(dir, "pushd")
	out, err := exec.Command("go", "build", "-o", pushdBin, "github.com/pushd/pushd/cmd/pushd").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build pushd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, args ...string) *report {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newRootCmd(context.Background(), &out, &errb, func(string) (string, bool) { return "", false })
	cmd.SetArgs(append(args, "-o", "json", "--pushd-bin", pushdBin, "--max-runtime", "45s"))
	err := cmd.Execute()
	var r report
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
		t.Fatalf("%v: not a JSON report (%v): %s\nstderr: %s", args, jerr, out.String(), errb.String())
	}
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out.String())
	}
	for _, c := range r.Checks {
		if !c.OK {
			t.Errorf("check failed: %s (%s)", c.Name, c.Detail)
		}
	}
	return &r
}

func metricOf(t *testing.T, r *report, name string) float64 {
	t.Helper()
	v, ok := r.get(name)
	if !ok {
		t.Fatalf("report has no %s: %+v", name, r.Metrics)
	}
	return v
}

func positive(t *testing.T, r *report, names ...string) {
	t.Helper()
	for _, n := range names {
		if v := metricOf(t, r, n); !(v > 0) {
			t.Errorf("%s = %v, want > 0", n, v)
		}
	}
}

func TestIdle(t *testing.T) {
	r := run(t, "idle", "--conns", "40", "--in-process", "--hold", "300ms")
	if got := metricOf(t, r, "open"); got != 40 {
		t.Errorf("open = %v", got)
	}
	positive(t, r, "server_rss_total")
	// Idle sessions are parked: no goroutine each (a few node-wide ones
	// spread over 40 sessions stay well under one).
	if g := metricOf(t, r, "server_goroutines_per_conn"); g <= -0.5 || g >= 0.5 {
		t.Errorf("goroutines per idle conn = %v, want parked sessions (< 0.5)", g)
	}
}

// TestIdleOverTLS: with --tls the node serves wss:// and the clients speak
// TLS (what TLS costs per idle session, BENCHMARKS.md).
func TestIdleOverTLS(t *testing.T) {
	r := run(t, "idle", "--conns", "20", "--in-process", "--hold", "300ms", "--tls")
	if got := metricOf(t, r, "open"); got != 20 {
		t.Errorf("open = %v", got)
	}
	positive(t, r, "server_rss_per_conn")
}

func TestConnectWithJWT(t *testing.T) {
	r := run(t, "connect", "--conns", "50", "--in-process", "--jwt-secret", "bench-secret")
	positive(t, r, "accepted_per_sec_avg", "accepted_per_sec_peak", "handshake_p50", "handshake_p99")
	if p50, p99 := metricOf(t, r, "handshake_p50"), metricOf(t, r, "handshake_p99"); p99 < p50 {
		t.Errorf("p99 %v < p50 %v", p99, p50)
	}
}

// TestBroadcastWorkerProcesses splits the clients over two worker processes
// and two pushd nodes sharing one NATS server.
func TestBroadcastWorkerProcesses(t *testing.T) {
	r := run(t, "broadcast", "--conns", "40", "--workers", "2", "--spawn-nodes", "2", "--count", "20", "--rate", "200")
	if d, e := metricOf(t, r, "deliveries"), metricOf(t, r, "expected"); d != e || d != 800 {
		t.Errorf("deliveries %v, expected %v, want 800", d, e)
	}
	positive(t, r, "deliveries_per_sec", "last_client_p99")
	// Server CPU comes from /proc in 10 ms ticks: 800 batched deliveries may
	// cost less than one tick, so only its presence and sign are checked.
	if c := metricOf(t, r, "server_cpu_per_delivery"); c < 0 {
		t.Errorf("server_cpu_per_delivery = %v", c)
	}
}

func TestTargeted(t *testing.T) {
	r := run(t, "targeted", "--conns", "40", "--in-process", "--count", "200", "--rate", "1000")
	if l := metricOf(t, r, "lost"); l != 0 {
		t.Errorf("lost %v", l)
	}
	positive(t, r, "latency_p50", "latency_p99", "latency_p999", "publish_rate")
}

func TestDocsZipf(t *testing.T) {
	r := run(t, "docs", "--conns", "60", "--in-process", "--docs", "10", "--doc-size", "zipf", "--jwt-secret", "bench-secret", "--count", "50", "--rate", "500")
	if d, e := metricOf(t, r, "deliveries"), metricOf(t, r, "expected"); d != e || d == 0 {
		t.Errorf("deliveries %v, expected %v", d, e)
	}
	if big := metricOf(t, r, "largest_doc"); big <= 6 {
		t.Errorf("zipf largest doc %v of 60 clients over 10 docs: not skewed", big)
	}
}

func TestChurn(t *testing.T) {
	r := run(t, "churn", "--conns", "40", "--in-process", "--churn-rate", "40", "--duration", "1500ms", "--rate", "20", "--settle", "1s")
	positive(t, r, "churn_cycles")
	if open := metricOf(t, r, "open_after"); open != 40 {
		t.Errorf("open after churn %v", open)
	}
}

func TestCompare(t *testing.T) {
	r := run(t, "compare", "--conns", "30", "--in-process", "--count", "10", "--rate", "200", "--hold", "200ms")
	// CPU ticks are 10ms: a few hundred deliveries may cost none, so only
	// the memory ratio must be there.
	positive(t, r, "ratio_rss_per_conn", "nats_deliveries", "pushd_deliveries")
	if d := metricOf(t, r, "nats_deliveries"); d != 300 {
		t.Errorf("nats deliveries %v, want 300", d)
	}
}

// TestPresence: members spread over two nodes listen while churners join
// and leave; with coalescing, the doc's frames are fewer than without,
// where every member gets every change.
func TestPresence(t *testing.T) {
	r := run(t, "presence", "--conns", "30", "--churners", "6", "--in-process", "--spawn-nodes", "2",
		"--churn-rate", "20", "--duration", "1500ms", "--settle", "500ms")
	positive(t, r, "on_presence_frames_per_sec", "off_presence_frames_per_sec", "off_presence_events_per_sec")
	on, off := metricOf(t, r, "on_presence_frames_per_sec"), metricOf(t, r, "off_presence_frames_per_sec")
	if on >= off {
		t.Errorf("frames/s with coalescing %v, without %v: want fewer with", on, off)
	}
	// Without coalescing, each of the 30 members gets each of ~40 changes a second.
	if off < 30*40*0.8 {
		t.Errorf("frames/s without coalescing %v, want about %v", off, 30*40)
	}
}

func TestScenarioFlagAndEnv(t *testing.T) {
	var out bytes.Buffer
	env := map[string]string{"PUSHBENCH_CONNS": "5", "PUSHBENCH_OUTPUT": "json", "PUSHBENCH_IN_PROCESS": "true", "PUSHBENCH_PUSHD_BIN": pushdBin}
	cmd := newRootCmd(context.Background(), &out, &out, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	cmd.SetArgs([]string{"--scenario", "connect"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	var r report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err, out.String())
	}
	if v, _ := r.get("connections"); r.Scenario != "connect" || v != 5 {
		t.Errorf("scenario %q connections %v", r.Scenario, v)
	}
	var help bytes.Buffer
	h := newRootCmd(context.Background(), &help, &help, nil)
	h.SetArgs([]string{"broadcast", "--help"})
	_ = h.Execute()
	if !strings.Contains(help.String(), "PUSHBENCH_RATE") {
		t.Errorf("help lacks env twins:\n%s", help.String())
	}
}

func exactQuantile(vs []int64, q float64) int64 {
	s := append([]int64(nil), vs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(q*float64(len(s)) + 0.5)
	rank = max(1, min(rank, len(s)))
	return s[rank-1]
}

func TestHistQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for _, dist := range []string{"uniform", "exp", "lognormal-ish"} {
		var h Hist
		vs := make([]int64, 100000)
		for i := range vs {
			var v int64
			switch dist {
			case "uniform":
				v = rng.Int64N(10_000_000)
			case "exp":
				v = int64(rng.ExpFloat64() * 1e6)
			default:
				v = int64(float64(time.Millisecond) * (1 + 50*rng.Float64()*rng.Float64()*rng.Float64()))
			}
			vs[i] = v
			h.Record(v)
		}
		for _, q := range []float64{.5, .9, .99, .999} {
			want, got := exactQuantile(vs, q), h.Quantile(q)
			if diff := float64(got-want) / float64(max(want, 1)); got < want || diff > 0.016 {
				t.Errorf("%s q%.3f: got %d, exact %d (%.2f%%)", dist, q, got, want, 100*diff)
			}
		}
	}
}

func TestHistEdges(t *testing.T) {
	var h Hist
	if h.Quantile(.99) != 0 || h.Max() != 0 || h.Count() != 0 {
		t.Fatal("empty histogram not zero")
	}
	for _, v := range []int64{0, 1, 127, 128, 255, 256, 1 << 40, -5} {
		h.Record(v)
	}
	if h.Count() != 8 {
		t.Fatalf("count %d", h.Count())
	}
	if m := h.Max(); m < 1<<40 || m > (1<<40)*101/100 {
		t.Errorf("max %d", m)
	}
	for v := int64(0); v < 1<<20; v = v*3/2 + 1 {
		if b := bucketValue(bucketOf(v)); b < v || float64(b-v) > float64(v)/128+1 {
			t.Fatalf("value %d -> bucket upper %d", v, b)
		}
	}
	// merge through the wire form
	var a, c Hist
	for i := range int64(1000) {
		a.Record(i * 1000)
	}
	js, _ := json.Marshal(a.Snapshot())
	var sp Sparse
	if err := json.Unmarshal(js, &sp); err != nil {
		t.Fatal(err)
	}
	c.Merge(sp)
	c.Merge(sp)
	if c.Count() != 2000 || c.Quantile(.5) != a.Quantile(.5) {
		t.Errorf("merge: count %d p50 %d vs %d", c.Count(), c.Quantile(.5), a.Quantile(.5))
	}
}

func TestIntAfterAndBody(t *testing.T) {
	b := body(42, 256)
	if len(b) != 256 {
		t.Errorf("body len %d", len(b))
	}
	frame := append(append([]byte(`{"type":"push","target":"all","event":"bench","data":`), b...), '}')
	if s := intAfter(frame, keyS); s != 42 {
		t.Errorf("seq %d", s)
	}
	if ts := intAfter(frame, keyT); ts < time.Now().Add(-time.Minute).UnixNano() {
		t.Errorf("t %d", ts)
	}
	if intAfter([]byte(`{"x":1}`), keyT) != -1 {
		t.Error("missing key")
	}
	if peakWindow([]int{1, 2, 3, 4, 5}, 2) != 9 {
		t.Error("peakWindow")
	}
}

// TestTransports runs idle + broadcast with WebSocket, SSE and long-poll
// clients against fresh nodes, with a JWT so the HTTP clients authenticate
// with Authorization: every client of each transport gets every push.
func TestTransports(t *testing.T) {
	r := run(t, "transports", "--conns", "30", "--workers", "2", "--count", "10", "--rate", "200", "--hold", "300ms", "--jwt-secret", "bench-secret")
	for _, tr := range []string{"ws", "sse", "poll"} {
		if d, e := metricOf(t, r, tr+"_deliveries"), metricOf(t, r, tr+"_expected"); d != e || d != 300 {
			t.Errorf("%s: deliveries %v, expected %v, want 300", tr, d, e)
		}
		if got := metricOf(t, r, tr+"_open"); got != 30 {
			t.Errorf("%s: open = %v", tr, got)
		}
	}
	positive(t, r, "sse_server_rss_total", "poll_server_rss_total", "sse_vs_ws_rss_per_conn")
}

// TestBroadcastOverLongPolling: --transport makes any scenario's clients
// HTTP clients, here long-polling ones.
func TestBroadcastOverLongPolling(t *testing.T) {
	r := run(t, "broadcast", "--conns", "20", "--in-process", "--transport", "poll", "--count", "10", "--rate", "200")
	if d := metricOf(t, r, "deliveries"); d != 200 {
		t.Errorf("deliveries %v, want 200", d)
	}
}

// TestHistoryOnOff runs targeted and docs pushes with history off, then on,
// against one JetStream-enabled NATS server: nothing lost in either phase,
// and with history every push carries a position, none twice.
func TestHistoryOnOff(t *testing.T) {
	r := run(t, "history", "--conns", "30", "--in-process", "--count", "120", "--rate", "1000", "--docs", "3", "--settle", "2s")
	for _, p := range []string{"off_", "on_", "off_docs_", "on_docs_"} {
		if l := metricOf(t, r, p+"lost"); l != 0 {
			t.Errorf("%slost = %v", p, l)
		}
		positive(t, r, p+"latency_p99")
	}
	if d := metricOf(t, r, "on_docs_delivered"); d != 120*10 {
		t.Errorf("docs delivered with history %v, want 1200", d)
	}
	// the NATS server is our child: its CPU is its own
	if _, ok := r.get("on_nats_cpu_per_delivery"); !ok {
		t.Error("no NATS CPU in the report")
	}
	// CPU is read in 10 ms ticks: at this size a phase may cost none, so
	// only its presence is checked (and the ratio may be missing).
	metricOf(t, r, "off_pushd_cpu_per_delivery")
	metricOf(t, r, "on_pushd_cpu_per_delivery")
}

// TestResumeStorm: every client drops, 3 pushes per user and per doc are
// stored, every client comes back with since and gets exactly those.
func TestResumeStorm(t *testing.T) {
	r := run(t, "resume", "--conns", "40", "--workers", "2", "--docs", "4", "--missed", "3", "--settle", "3s")
	if got, want := metricOf(t, r, "replayed_user"), metricOf(t, r, "expected_user"); got != want || want != 120 {
		t.Errorf("user pushes replayed %v, expected %v, want 120", got, want)
	}
	if got, want := metricOf(t, r, "replayed_doc"), metricOf(t, r, "expected_doc"); got != want || want != 120 {
		t.Errorf("doc pushes replayed %v, expected %v, want 120", got, want)
	}
	if rr := metricOf(t, r, "recovered_rate"); rr != 1 {
		t.Errorf("recovered rate %v", rr)
	}
	// 40 user resumes, each of which missed pushes, cost two round trips
	// each (the subject's last push, then the read); 40 doc resumes of 4
	// docs share reads: well under three per session in all.
	if reads := metricOf(t, r, "js_reads_per_session"); reads < 1 || reads >= 2.5 {
		t.Errorf("JetStream reads per resumed session %v, want [1, 2.5)", reads)
	}
}

// TestRollingRestart drains and restarts each of 3 nodes while pushes flow:
// every stored push reaches every client once after dedupe by seq.
func TestRollingRestart(t *testing.T) {
	r := run(t, "rolling", "--conns", "30", "--in-process", "--docs", "3", "--rate", "100", "--restart-gap", "500ms",
		"--reconnect-jitter", "300ms", "--settle", "3s")
	if p := metricOf(t, r, "delivery_pct"); p != 100 {
		t.Errorf("delivery %v%%", p)
	}
	positive(t, r, "closes_1012", "reconnects", "recovered_true", "pushes_stored")
	if n := metricOf(t, r, "nodes"); n != 3 {
		t.Errorf("nodes %v", n)
	}
}

// TestResumeAfterKill: the node is killed (SIGKILL) and started again with
// the same node id; its clients resume there without loss.
func TestResumeAfterKill(t *testing.T) {
	r := run(t, "resume", "--conns", "20", "--in-process", "--docs", "2", "--missed", "2", "--drop", "kill", "--settle", "3s")
	if got, want := metricOf(t, r, "replayed_user")+metricOf(t, r, "replayed_doc"), 80.0; got != want {
		t.Errorf("replayed %v, want %v", got, want)
	}
}

func TestDurableScenariosRefuseBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"history", "--jetstream=false"}, "needs history"},
		{[]string{"resume", "--drop", "unplug"}, `--drop "unplug"`},
		{[]string{"resume", "--missed", "0"}, "--missed 0"},
		{[]string{"rolling", "--target", "ws://127.0.0.1:1/ws", "--nats-url", "nats://127.0.0.1:1"}, "not --target"},
		{[]string{"chaos", "--target", "ws://127.0.0.1:1/ws", "--nats-url", "nats://127.0.0.1:1"}, "not --target"},
	} {
		var out bytes.Buffer
		cmd := newRootCmd(context.Background(), &out, &out, func(string) (string, bool) { return "", false })
		cmd.SetArgs(append(tc.args, "--pushd-bin", pushdBin, "--conns", "1"))
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one saying %q", tc.args, err, tc.want)
		}
	}
}

// TestSeedReceipts is seed 001's load test in miniature: 4 nodes, a
// broadcast asking for receipts every 400 ms, every client acknowledging it,
// 10% of the clients per second reconnecting. Every client that kept the
// connection a broadcast reached produced a receipt for it, every client
// that missed one was reconnecting at the time, and goroutines return flat.
func TestSeedReceipts(t *testing.T) {
	r := run(t, "seed", "--conns", "60", "--workers", "2", "--interval", "400ms", "--duration", "4s",
		"--churn-pct", "10", "--sample-every", "1s", "--settle", "1s")
	if n := metricOf(t, r, "nodes"); n != 4 {
		t.Errorf("nodes %v, want 4 (the seed scenario's default)", n)
	}
	if b := metricOf(t, r, "broadcasts"); b != 10 {
		t.Errorf("broadcasts %v, want 10", b)
	}
	positive(t, r, "churn_cycles", "receipts", "stable_deliveries", "rss_per_conn_end", "pushd_cpu_per_receipt")
	for _, m := range []string{"stable_without_receipt", "receipts_without_delivery", "missed_unexplained", "client_errors", "node_errors"} {
		if v := metricOf(t, r, m); v != 0 {
			t.Errorf("%s = %v, want 0", m, v)
		}
	}
	// Receipts never exceed deliveries, and the nodes published each one
	// the coordinator counted.
	if rc, d := metricOf(t, r, "receipts"), metricOf(t, r, "deliveries"); rc > d {
		t.Errorf("receipts %v > deliveries %v", rc, d)
	}
	if rc, pub := metricOf(t, r, "receipts"), metricOf(t, r, "receipts_published_by_nodes"); rc != pub {
		t.Errorf("receipts collected %v, published by the nodes %v", rc, pub)
	}
}

// TestSeedReceiptsWithoutChurn: with nobody reconnecting, every client gets
// every broadcast and every one yields exactly one receipt.
func TestSeedReceiptsWithoutChurn(t *testing.T) {
	r := run(t, "seed", "--conns", "40", "--in-process", "--spawn-nodes", "2", "--interval", "300ms", "--duration", "1500ms",
		"--churn-pct", "0", "--settle", "500ms")
	if d, rc := metricOf(t, r, "deliveries"), metricOf(t, r, "receipts"); d != 40*5 || rc != d {
		t.Errorf("deliveries %v, receipts %v, want 200 each", d, rc)
	}
	if v := metricOf(t, r, "missed_reconnecting"); v != 0 {
		t.Errorf("missed while reconnecting %v without churn", v)
	}
}

// TestChurnSameClientTwice: at 1,000 cycles/s over 8 clients a client is
// often picked again while its previous reconnect is in flight; the second
// cycle must not close the connection the first is still opening (which
// then waited its whole handshake timeout for a hello and failed).
func TestChurnSameClientTwice(t *testing.T) {
	r := run(t, "churn", "--conns", "8", "--in-process", "--churn-rate", "1000", "--duration", "1s", "--rate", "5", "--settle", "500ms",
		"--timeout", "2s")
	if e := metricOf(t, r, "reconnect_errors"); e != 0 {
		t.Errorf("reconnect errors %v, want 0", e)
	}
	if open := metricOf(t, r, "open_after"); open != 8 {
		t.Errorf("open after churn %v", open)
	}
}
