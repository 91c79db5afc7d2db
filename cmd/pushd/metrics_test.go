package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/pushd/pushd/internal/pushtest"
)

// TestMetricsMatchTheirDocumentation checks both ways that docs/METRICS.md
// lists exactly the pushd_ metrics a node exports, and that the runtime and
// process collectors are on.
func TestMetricsMatchTheirDocumentation(t *testing.T) {
	doc, err := os.ReadFile("../../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(pushd_[a-z_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	ns := pushtest.RunNATS(t)
	// With a key configured, so the key-reload metric is registered too.
	n := startPushd(t, ns.URL(), "--jwt-secret", testSecret)
	_, body := httpGet(t, n.httpURL("/metrics"))
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# HELP (\S+) `).FindAllStringSubmatch(body, -1) {
		exported[m[1]] = true
	}
	for name := range documented {
		if !exported[name] {
			t.Errorf("%s is documented but not exported", name)
		}
	}
	for name := range exported {
		if strings.HasPrefix(name, "pushd_") && !documented[name] {
			t.Errorf("%s is exported but not documented in docs/METRICS.md", name)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !exported[name] {
			t.Errorf("%s missing: runtime and process collectors must be on", name)
		}
	}
	// The admin listener serves the same metrics and pprof.
	if status, body := httpGet(t, "http://"+n.AdminListen+"/metrics"); status != 200 || !strings.Contains(body, "pushd_connections ") {
		t.Errorf("admin /metrics: %d", status)
	}
	if status, _ := httpGet(t, "http://"+n.AdminListen+"/debug/pprof/"); status != 200 {
		t.Errorf("admin pprof: %d", status)
	}
	if status, _ := httpGet(t, n.httpURL("/debug/pprof/")); status != 404 {
		t.Errorf("pprof on the public listener: %d, want 404", status)
	}
}
