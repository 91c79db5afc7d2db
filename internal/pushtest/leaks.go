package pushtest

import (
	"fmt"
	"os"

	"go.uber.org/goleak"
)

// IgnoredLeaks are the goroutines goleak must not count in pushd's tests:
// the NATS client's package-level flusher and timer helpers, and the
// in-process NATS servers' shared pools, are global by design.
func IgnoredLeaks() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("time.Sleep"),
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine"),
	}
}

// ExitAfter ends a TestMain whose tests returned code: it runs cleanups
// (removing built binaries, say), then, when the tests passed, fails the run
// if goroutines leaked, and exits.
func ExitAfter(code int, cleanups ...func()) {
	for _, c := range cleanups {
		c()
	}
	if code == 0 {
		if err := goleak.Find(IgnoredLeaks()...); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}
