package main

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/pushd/pushd/internal/pushtest"
	"go.uber.org/goleak"
)

// pushctl's tests run the real pushctl binary against real pushd processes
// on a real NATS server (and, for discovery, a real Consul agent), as an
// operator would.

// bins holds the pushd and pushctl binaries, built once when a test first
// asks; TestMain removes them.
var bins = pushtest.NewBinaries()

func TestMain(m *testing.M) {
	code := m.Run()
	bins.Remove()
	if code == 0 {
		// The NATS client's package-level flusher/timer helpers, and the
		// in-process NATS servers' shared pools, are global by design.
		if err := goleak.Find(goleak.IgnoreTopFunction("time.Sleep"),
			goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine")); err != nil {
			fmt.Fprintln(os.Stderr, "pushctl test: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// startPushd runs pushd --dev on the NATS server at natsURL as node id, with
// extra flags, until the test ends.
func startPushd(t *testing.T, natsURL string, id int, extra ...string) *pushtest.Pushd {
	t.Helper()
	return pushtest.StartPushd(t, bins.Path(t, "pushd"), append([]string{"--dev", "--nats-url", natsURL,
		"--node-id", strconv.Itoa(id), "--drain-timeout", "300ms"}, extra...)...)
}
