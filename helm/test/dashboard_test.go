package chart_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const (
	metricsDoc    = "../../docs/METRICS.md"
	dashboardFile = "../pushd/dashboards/pushd.json"
)

// metricsContract parses the table in docs/METRICS.md: | `name` | type | labels | meaning |.
func metricsContract(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(metricsDoc)
	if err != nil {
		t.Fatalf("the metrics contract is required: %v", err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\|\\s*`(pushd_[a-z0-9_]+)`\\s*\\|\\s*([a-z]+)\\s*\\|")
	types := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := row.FindStringSubmatch(sc.Text()); m != nil {
			types[m[1]] = m[2]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(types) < 5 {
		t.Fatalf("parsed only %d metrics from %s; has the table format changed?", len(types), metricsDoc)
	}
	return types
}

// collectExprs walks any JSON value and returns every string under an "expr", "query" or
// "definition" key (panel targets and templating variables).
func collectExprs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && (k == "expr" || k == "query" || k == "definition") {
				*out = append(*out, s)
				continue
			}
			collectExprs(val, out)
		}
	case []any:
		for _, e := range x {
			collectExprs(e, out)
		}
	}
}

var metricName = regexp.MustCompile(`\bpushd_[a-zA-Z0-9_:]+`)

// resolve maps a queried series name to its documented metric: histograms are queried through
// their _bucket/_sum/_count series; nothing else may carry a suffix that is not documented.
func resolve(name string, contract map[string]string) (string, bool) {
	if _, ok := contract[name]; ok {
		return name, true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok && contract[base] == "histogram" {
			return base, true
		}
	}
	return "", false
}

func TestDashboardQueriesOnlyDocumentedMetrics(t *testing.T) {
	contract := metricsContract(t)
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(raw) {
		t.Fatalf("%s is not valid JSON", dashboardFile)
	}
	var dash map[string]any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"uid", "title", "panels"} {
		if _, ok := dash[k]; !ok {
			t.Errorf("dashboard has no %q", k)
		}
	}
	if _, ok := dash["id"]; ok && dash["id"] != nil {
		t.Errorf("dashboard must not pin a numeric id (Grafana assigns it on import)")
	}

	// Panel ids must be unique or Grafana silently merges panels.
	ids := map[float64]string{}
	for _, p := range dash["panels"].([]any) {
		pm := p.(map[string]any)
		id, _ := pm["id"].(float64)
		if prev, dup := ids[id]; dup {
			t.Errorf("panel id %v used by %q and %q", id, prev, pm["title"])
		}
		ids[id] = pm["title"].(string)
	}

	var exprs []string
	collectExprs(dash, &exprs)
	if len(exprs) == 0 {
		t.Fatalf("no queries found in %s", dashboardFile)
	}
	used := map[string]bool{}
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			base, ok := resolve(n, contract)
			if !ok {
				t.Errorf("dashboard queries %s, which docs/METRICS.md does not list (query: %s)", n, e)
				continue
			}
			used[base] = true
		}
	}

	// The dashboard must show what the issue asks for.
	for _, m := range []string{
		"pushd_connections",              // connections and per-node spread
		"pushd_pushes_received_total",    // push rate
		"pushd_delivery_latency_seconds", // latency percentiles
		"pushd_slow_consumers_total",     // slow consumers
		"pushd_nats_dropped_total",       // drops
	} {
		if !used[m] {
			t.Errorf("dashboard never queries %s", m)
		}
	}
	var quantiles []string
	for _, e := range exprs {
		if strings.Contains(e, "histogram_quantile") && strings.Contains(e, "pushd_delivery_latency_seconds_bucket") {
			quantiles = append(quantiles, e)
		}
	}
	if len(quantiles) < 3 {
		t.Errorf("want >= 3 delivery latency percentiles, got %d", len(quantiles))
	}
	perPod := false
	for _, e := range exprs {
		if strings.Contains(e, "by (pod)") && strings.Contains(e, "pushd_connections{") {
			perPod = true
		}
	}
	if !perPod {
		t.Errorf("no per-node (by pod) connections panel")
	}

	var unused []string
	for m := range contract {
		if !used[m] {
			unused = append(unused, m)
		}
	}
	sort.Strings(unused)
	t.Logf("documented metrics not on the dashboard: %v", unused)
}

func TestMetricsContractParser(t *testing.T) {
	// Guard the resolver itself: a counter is never queried through histogram suffixes.
	contract := map[string]string{"pushd_x_seconds": "histogram", "pushd_y_total": "counter"}
	for name, want := range map[string]bool{
		"pushd_x_seconds_bucket": true,
		"pushd_x_seconds_count":  true,
		"pushd_y_total":          true,
		"pushd_y_total_bucket":   false,
		"pushd_z":                false,
	} {
		if _, got := resolve(name, contract); got != want {
			t.Errorf("resolve(%s) = %v, want %v", name, got, want)
		}
	}
	if filepath.Base(metricsDoc) != "METRICS.md" {
		t.Fatal("unexpected contract path")
	}
}
