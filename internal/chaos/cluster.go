package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/pushd/pushd/internal/pushtest"
)

// cluster is the system under test: three pushd processes, a three-server
// JetStream cluster (in process), one Consul agent, and the Toxiproxy
// proxies on every link the scenario cuts: each node reaches each NATS
// server through its own proxy, and each group of clients reaches each
// node through its own.
type cluster struct {
	t      testing.TB
	cfg    *Config
	nats   []*pushtest.NATS
	consul *pushtest.Consul
	tox    *toxics
	nodes  []*pushtest.Pushd
	args   [][]string           // each node's arguments, for restarts
	listen []string             // each node's address, kept across restarts
	links  [][]*toxiproxy.Proxy // node -> its proxy to each NATS server
	groups [][]*toxiproxy.Proxy // client group -> its proxy to each node

	all    []*pushtest.Pushd  // every process started, for their logs
	counts map[string]float64 // resume and replay counters of the processes gone
}

// nodeCount and natsCount are the cluster's shape.
const (
	nodeCount = 3
	natsCount = 3
)

func startCluster(t testing.TB, cfg *Config) *cluster {
	t.Helper()
	c := &cluster{t: t, cfg: cfg, tox: newToxics()}
	t.Cleanup(c.tox.close)
	// NoAdvertise: a node's NATS client keeps to the proxies it was given
	// instead of learning the servers' own addresses from the cluster.
	c.nats = pushtest.RunJetStreamClusterWith(t, natsCount, func(o *server.Options) { o.Cluster.NoAdvertise = true })
	c.consul = pushtest.RunConsul(t)
	for i := range nodeCount {
		var urls []string
		var links []*toxiproxy.Proxy
		for j, ns := range c.nats {
			p, err := c.tox.proxy(fmt.Sprintf("node%d-nats%d", i, j), "127.0.0.1:"+strconv.Itoa(ns.Port()))
			if err != nil {
				t.Fatal(err)
			}
			links = append(links, p)
			urls = append(urls, "nats://"+p.Listen)
		}
		c.links = append(c.links, links)
		c.args = append(c.args, []string{"--dev", "--nats-url", strings.Join(urls, ","),
			"--consul-addr", c.consul.Addr(), "--consul-lock-delay", "1s", "--node-name", fmt.Sprintf("chaos-%d", i),
			"--history-replicas", strconv.Itoa(natsCount), "--history-doc-max-msgs", strconv.Itoa(cfg.HistoryPerDoc),
			"--drain-timeout", cfg.DrainTimeout.String()})
		c.args[i] = append(c.args[i], cfg.Rebalance.args()...)
		p := pushtest.StartPushd(t, cfg.PushdBin, c.args[i]...)
		c.nodes = append(c.nodes, p)
		c.all = append(c.all, p)
		c.listen = append(c.listen, p.Listen)
	}
	for g := range cfg.groups() {
		var ps []*toxiproxy.Proxy
		for i := range nodeCount {
			p, err := c.tox.proxy(fmt.Sprintf("group%d-node%d", g, i), c.listen[i])
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		c.groups = append(c.groups, ps)
	}
	return c
}

// urls are the WebSocket URLs of client k: through its group's proxies,
// starting at a different node for each client so sessions spread.
func (c *cluster) urls(k int) []string {
	ps := c.groups[k%len(c.groups)]
	var urls []string
	for i := range ps {
		urls = append(urls, "ws://"+ps[(k+i)%len(ps)].Listen+"/ws")
	}
	return urls
}

// natsURLs are the NATS servers' own client URLs (the publisher's).
func (c *cluster) natsURLs() string {
	var urls []string
	for _, ns := range c.nats {
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(ns.Port()))
	}
	return strings.Join(urls, ",")
}

// restartNode starts node i again, on the same address.
func (c *cluster) restartNode(i int) {
	c.t.Helper()
	c.nodes[i] = pushtest.StartPushd(c.t, c.cfg.PushdBin, append(append([]string{}, c.args[i]...), "--listen", c.listen[i])...)
	c.all = append(c.all, c.nodes[i])
}

// tallied are the counters the report sums over every node process: how
// resumes went (a resume not recovered loses the client what it missed).
var tallied = []string{"pushd_resumes_total{", "pushd_history_replays_total{"}

// tally adds node i's counters to the run's, before its process ends (and
// for every node at the end of the run).
func (c *cluster) tally(i int) {
	m, err := scrapeAll("http://" + c.nodes[i].Listen + "/metrics")
	if err != nil {
		c.t.Logf("chaos: node %d counters: %v", i+1, err)
		return
	}
	if c.counts == nil {
		c.counts = map[string]float64{}
	}
	for name, v := range m {
		for _, p := range tallied {
			if strings.HasPrefix(name, p) && v != 0 {
				c.counts[name] += v
			}
		}
	}
}

// warnings counts the warnings and errors every node process logged, by
// message.
func (c *cluster) warnings() map[string]int {
	out := map[string]int{}
	for _, p := range c.all {
		for _, line := range strings.Split(p.Log(), "\n") {
			var rec struct{ Level, Msg string }
			if json.Unmarshal([]byte(line), &rec) == nil && (rec.Level == "WARN" || rec.Level == "ERROR") {
				out[rec.Msg]++
			}
		}
	}
	return out
}

// NodeSample is what a node's /metrics said at one moment.
type NodeSample struct {
	Node       int     `json:"node"`
	RSS        float64 `json:"rss_bytes"`
	Goroutines float64 `json:"goroutines"`
	Sessions   float64 `json:"sessions"`
	Shedding   bool    `json:"shedding"` // shedding sessions to rebalance
}

// sample reads every node's /metrics.
func (c *cluster) sample() ([]NodeSample, error) {
	var out []NodeSample
	for i, p := range c.nodes {
		m, err := scrape("http://" + p.Listen + "/metrics")
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		out = append(out, NodeSample{Node: i, RSS: m["process_resident_memory_bytes"], Goroutines: m["go_goroutines"], Sessions: m["pushd_connections"],
			Shedding: m["pushd_rebalance_shedding"] == 1})
	}
	return out, nil
}

// waitBalanced polls the nodes until they hold clients sessions in all (no
// client between two nodes), none more than ceiling, and none sheds; it
// returns how long that took, and false if the wait gave up after within.
func (c *cluster) waitBalanced(ctx context.Context, clients int, ceiling float64, within time.Duration) (time.Duration, bool) {
	start := time.Now()
	deadline := start.Add(within)
	for {
		if s, err := c.sample(); err == nil && balanced(s, clients, ceiling) {
			return time.Since(start), true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(start), false
		}
		select {
		case <-time.After(50 * time.Millisecond): // polling a condition
		case <-ctx.Done():
		}
	}
}

// balanced says whether the nodes hold clients sessions in all, none more
// than ceiling, and none sheds.
func balanced(s []NodeSample, clients int, ceiling float64) bool {
	var sum float64
	for _, n := range s {
		if n.Sessions > ceiling || n.Shedding {
			return false
		}
		sum += n.Sessions
	}
	return sum == float64(clients)
}

// scrape reads the unlabelled samples of a Prometheus text page.
func scrape(url string) (map[string]float64, error) {
	all, err := scrapeAll(url)
	for name := range all {
		if strings.Contains(name, "{") {
			delete(all, name)
		}
	}
	return all, err
}

// scrapeAll reads every sample of a Prometheus text page, by series.
func scrapeAll(url string) (map[string]float64, error) {
	hc := http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		name, v := line[:i], line[i+1:]
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			m[name] = f
		}
	}
	return m, nil
}
