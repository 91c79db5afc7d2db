package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushtest"
)

// TestTLSMemoryCost measures what an idle TLS session costs a pushd process
// over a plain one: it runs a real pushd binary per mode, opens
// PUSHD_TLSMEM_CONNS (2000) idle sessions and reads VmRSS from /proc and the
// Go heap from /metrics before and after. It is a measurement, not a check,
// so it only runs when PUSHD_TLSMEM=1 (BENCHMARKS.md has the command).
func TestTLSMemoryCost(t *testing.T) {
	if os.Getenv("PUSHD_TLSMEM") != "1" {
		t.Skip("set PUSHD_TLSMEM=1 to measure")
	}
	conns := 2000
	if v, err := strconv.Atoi(os.Getenv("PUSHD_TLSMEM_CONNS")); err == nil && v > 0 {
		conns = v
	}
	dir := t.TempDir()
	bin := binary(t)
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, cert, key, "mem")
	for _, mode := range []string{"plain", "tls"} {
		rssBefore, heapBefore, rssAfter, heapAfter := measure(t, bin, mode, cert, key, conns)
		t.Logf("%-5s %d idle sessions: RSS %.1f -> %.1f MiB (%.1f KiB/session), heap in use %.1f -> %.1f MiB (%.1f KiB/session)",
			mode, conns, mib(rssBefore), mib(rssAfter), float64(rssAfter-rssBefore)/1024/float64(conns),
			mib(heapBefore), mib(heapAfter), float64(heapAfter-heapBefore)/1024/float64(conns))
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func measure(t *testing.T, bin, mode, cert, key string, conns int) (rss0, heap0, rss1, heap1 int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	adminLn, _ := net.Listen("tcp", "127.0.0.1:0")
	admin := adminLn.Addr().String()
	_ = adminLn.Close()
	args := []string{"--dev", "--listen", addr, "--admin-listen", admin, "--nats-embedded-listen", "127.0.0.1:0",
		"--ping-interval", "10m", "--ping-interval-max", "10m", "--max-sessions-per-user", "0", "--log-level", "error"}
	var tlsCfg *tls.Config
	if mode == "tls" {
		args = append(args, "--tls-cert", cert, "--tls-key", key)
		tlsCfg = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // self-signed measurement certificate
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	admNode := &testNode{started: started{Listen: admin}}
	eventually(t, func() error {
		c, err := net.Dial("tcp", admin)
		if err == nil {
			_ = c.Close()
		}
		return err
	})
	settle := func() (int64, int64) {
		time.Sleep(2 * time.Second) // let the process settle; a measurement, not a synchronisation
		return vmRSS(t, cmd.Process.Pid), int64(metric(t, admNode, "go_memstats_heap_inuse_bytes"))
	}
	rss0, heap0 = settle()
	var open []*pushtest.RawConn
	for i := range conns {
		c, status, err := pushtest.RawUpgrade(addr, "?user=u"+strconv.Itoa(i), tlsCfg)
		if err != nil || status != 101 {
			t.Fatalf("session %d: %v %d", i, err, status)
		}
		if _, _, err := c.Next(10 * time.Second); err != nil { // hello
			t.Fatal(err)
		}
		open = append(open, c)
	}
	rss1, heap1 = settle()
	for _, c := range open {
		_ = c.Close()
	}
	return rss0, heap0, rss1, heap1
}

func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
