package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTraceIDReachesTheDeliveryLog(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan started, 1)
	done := make(chan error, 1)
	cmd := newRootCmd(ctx, nil, logs, func(string) (string, bool) { return "", false }, func(s started) { ready <- s })
	cmd.SetArgs([]string{"--dev", "--listen", "127.0.0.1:0", "--admin-listen", "", "--nats-url", ns.URL(),
		"--log-level", "debug", "--log-format", "json"})
	go func() { done <- cmd.Execute() }()
	var s started
	select {
	case s = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	defer func() { cancel(); <-done }()
	c, err := client.Dial(ctxT(t), "ws://"+s.Listen+"/ws", client.Options{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	publish(t, nc, "push.user.alice", hdr("Push-Trace-Id", "trace-77"), `1`, 1)
	expectPush(t, c, "message", `1`)
	eventually(t, func() error {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			if rec["msg"] == "push delivered" && rec["trace_id"] == "trace-77" && rec["key"] == "alice" && rec["delivered"] == float64(1) {
				return nil
			}
		}
		return errTraceMissing
	})
	// Session logs carry sid and user.
	if !strings.Contains(logs.String(), `"sid":"`+c.SID()+`"`) {
		t.Error("session open log has no sid")
	}
}

type traceMissing struct{}

func (traceMissing) Error() string { return "no delivery log line with trace_id=trace-77" }

var errTraceMissing = traceMissing{}

// TestLogLinesAreClean runs a node with Consul and JSON logs through start,
// a session and a clean stop, and reads every line: no key twice in a line
// (every registry line once had "component" twice), durations written as
// durations ("10s", not 10000000000), and no NATS warning for our own close.
func TestLogLinesAreClean(t *testing.T) {
	ns := pushtest.RunNATS(t)
	consul := pushtest.RunConsul(t)
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan started, 1)
	done := make(chan error, 1)
	cmd := newRootCmd(ctx, nil, logs, func(string) (string, bool) { return "", false }, func(s started) { ready <- s })
	cmd.SetArgs([]string{"--dev", "--listen", "127.0.0.1:0", "--admin-listen", "", "--nats-url", ns.URL(),
		"--consul-addr", consul.Addr(), "--node-name", "clean", "--drain-timeout", "200ms",
		"--log-level", "debug", "--log-format", "json"})
	go func() { done <- cmd.Execute() }()
	var s started
	select {
	case s = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	c, err := client.Dial(ctxT(t), "ws://"+s.Listen+"/ws", client.Options{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-c.Done()

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	sawDuration, sawRegistry := false, false
	for _, line := range lines {
		keys, err := topLevelKeys(line)
		if err != nil {
			t.Fatalf("log line is not a JSON object: %v\n%s", err, line)
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k] {
				t.Errorf("key %q twice in %s", k, line)
			}
			seen[k] = true
		}
		var rec map[string]any
		_ = json.Unmarshal([]byte(line), &rec)
		if rec["component"] == "registry" {
			sawRegistry = true
		}
		if d, ok := rec["drain_timeout"]; ok {
			sawDuration = true
			if d != "200ms" {
				t.Errorf("drain_timeout logged as %v, want \"200ms\"", d)
			}
		}
		if rec["level"] == "WARN" && strings.Contains(line, "NATS disconnected") {
			t.Errorf("clean stop logged %s", line)
		}
	}
	if !sawDuration || !sawRegistry {
		t.Fatalf("the log had no drain_timeout (%v) or no registry line (%v): the test checked nothing\n%s", sawDuration, sawRegistry, logs.String())
	}
}

// topLevelKeys lists the keys of a JSON object in order, repeats included
// (encoding/json keeps only the last of a repeated key).
func topLevelKeys(line string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("want an object, got %v %v", tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// TestRefusalsAreLoggedRateLimited: a refused handshake is logged at info
// with its reason and remote address, but a flood of them cannot fill the
// log: past a burst, lines are left out and the next one says how many.
func TestRefusalsAreLoggedRateLimited(t *testing.T) {
	ns := pushtest.RunNATS(t)
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan started, 1)
	done := make(chan error, 1)
	cmd := newRootCmd(ctx, nil, logs, func(string) (string, bool) { return "", false }, func(s started) { ready <- s })
	cmd.SetArgs([]string{"--jwt-secret", testSecret, "--node-id", "1", "--listen", "127.0.0.1:0", "--admin-listen", "",
		"--nats-url", ns.URL(), "--log-format", "json", "--drain-timeout", "100ms"})
	go func() { done <- cmd.Execute() }()
	var s started
	select {
	case s = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	defer func() { cancel(); <-done }()
	url := "ws://" + s.Listen + "/ws?token=garbage"
	for range 200 {
		handshake(t, url, nil)
	}
	refusals := func() (lines int, suppressed float64) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "handshake refused" {
				continue
			}
			lines++
			if rec["level"] != "INFO" || rec["reason"] != "token_invalid" || !strings.HasPrefix(rec["remote"].(string), "127.0.0.1:") {
				t.Fatalf("refusal line %s", line)
			}
			if n, ok := rec["suppressed_before"].(float64); ok {
				suppressed += n
			}
		}
		return lines, suppressed
	}
	if lines, _ := refusals(); lines < 10 || lines > 40 {
		t.Fatalf("%d refusal lines for 200 refusals, want a burst of about 20", lines)
	}
	eventually(t, func() error { // the next line after the flood says how many were left out
		handshake(t, url, nil)
		if lines, suppressed := refusals(); suppressed == 0 || float64(lines)+suppressed < 200 {
			return fmt.Errorf("%d lines, %v reported suppressed", lines, suppressed)
		}
		return nil
	})
}
