// Command pushd runs a pushd push node: it holds client WebSocket sessions and
// delivers to them what backends publish on NATS.
//
//	go run ./cmd/pushd --dev
//
// starts a node on :8080 with an embedded NATS server on 127.0.0.1:4222.
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
	defer stop()
	cmd := newRootCmd(ctx, os.Stdout, os.Stderr, os.LookupEnv, nil)
	cmd.SetArgs(os.Args[1:])
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "pushd: "+err.Error())
		os.Exit(1)
	}
}
