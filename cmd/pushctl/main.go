// Command pushctl is pushd's admin CLI: it inspects sessions and steers a
// pushd cluster over NATS (the admin protocol of package admin).
//
//	pushctl nodes
//	pushctl sessions --user alice
//	pushctl publish --user alice '{"title":"hi"}'
//	pushctl kick --session 1790000000000000 --reason "account locked"
//
// See docs/PUSHCTL.md for every command, the JSON fields and exit codes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Set by the linker (-X main.version=...).
var (
	version = "dev"
	commit  = "none"
	date    = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	cmd := newRootCmd(ctx, streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.LookupEnv)
	cmd.SetArgs(os.Args[1:])
	err := cmd.Execute()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, errorLine(err))
	}
	os.Exit(exitCode(err))
}
