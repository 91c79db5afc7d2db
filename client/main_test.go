package client_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/auth"
	"github.com/pushd/pushd/history"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// The examples (example_test.go) run against one real node, with history on
// a real JetStream server, started here for the whole test binary; the
// tests start their own.
var (
	// pushdURL is the examples' node: wss://push.example.com/ws in
	// production.
	pushdURL string
	// exampleNode and exampleNATS are the examples' node and the NATS
	// connection their backend publishes on.
	exampleNode *testnode.Node
	exampleNATS *nats.Conn
)

// bins builds the pushd binary for the tests that need a real process.
var bins = pushtest.NewBinaries()

func TestMain(m *testing.M) { pushtest.ExitAfter(run(m), bins.Remove) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "client-test-js-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: dir, ServerName: "examples"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "client test: NATS did not become ready")
		return 1
	}
	v, err := auth.New(auth.Config{Secret: []byte(secret)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	n, err := testnode.Run(ns.ClientURL(), node.Config{NodeID: 7, Auth: v}, testnode.Options{History: &history.Config{}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer n.Stop()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	pushdURL, exampleNode, exampleNATS = n.WSURL(), n, nc
	return m.Run()
}

// signToken is an HS256 token for sub that lives ttl, granted every doc.
func signToken(sub string, ttl time.Duration) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix(), "docs": []string{"*"}}).
		SignedString([]byte(secret))
}
