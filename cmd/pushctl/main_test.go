package main

import (
	"strconv"
	"testing"

	"github.com/pushd/pushd/internal/pushtest"
)

// pushctl's tests run the real pushctl binary against real pushd processes
// on a real NATS server (and, for discovery, a real Consul agent), as an
// operator would.

// bins holds the pushd and pushctl binaries, built once when a test first
// asks; TestMain removes them.
var bins = pushtest.NewBinaries()

func TestMain(m *testing.M) { pushtest.ExitAfter(m.Run(), bins.Remove) }

// startPushd runs pushd --dev on the NATS server at natsURL as node id, with
// extra flags, until the test ends.
func startPushd(t *testing.T, natsURL string, id int, extra ...string) *pushtest.Pushd {
	t.Helper()
	return pushtest.StartPushd(t, bins.Path(t, "pushd"), append([]string{"--dev", "--nats-url", natsURL,
		"--node-id", strconv.Itoa(id), "--drain-timeout", "300ms"}, extra...)...)
}
