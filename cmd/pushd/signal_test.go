package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
)

// TestSIGTERMDrainsAndExitsZero runs the real binary, as an orchestrator
// would, and stops it with SIGTERM.
func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	bin := binary(t)
	cmd := exec.Command(bin, "--dev", "--listen", "127.0.0.1:0", "--admin-listen", "", "--nats-embedded-listen", "127.0.0.1:0",
		"--drain-timeout", "200ms", "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	logs := bufio.NewScanner(stderr)
	var listen string
	var lines []string
	for listen == "" && logs.Scan() {
		lines = append(lines, logs.Text())
		var rec struct {
			Msg    string `json:"msg"`
			Listen string `json:"listen"`
		}
		if json.Unmarshal(logs.Bytes(), &rec) == nil && rec.Msg == "pushd started" {
			listen = rec.Listen
		}
	}
	if listen == "" {
		t.Fatalf("pushd did not log its start:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.Contains(strings.Join(lines, "\n"), "DEV MODE") {
		t.Error("dev mode did not log a warning")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+listen+"/ws", client.Options{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for logs.Scan() { // keep draining stderr so the process never blocks on it
		}
	}()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	if code := closeCode(c.Err()); code != 1012 {
		t.Fatalf("client closed with %v, want 1012", c.Err())
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("pushd exited with %v, want 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("pushd did not exit after SIGTERM")
	}
}
