package main

import (
	"bytes"
	"context"
	"encoding/json"
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
