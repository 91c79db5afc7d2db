package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

// avoidPattern is how a client finds the node to avoid in a close reason
// (docs/PROTOCOL.md, "Going elsewhere").
var avoidPattern = regexp.MustCompile(`^([a-z_]+): node ([0-9]+); `)

// refusal is a refused upgrade's JSON body.
type refusal struct {
	Error     string `json:"error"`
	Message   string `json:"message"`
	AvoidNode *int64 `json:"avoid_node"`
}

// upgrade sends a non-browser WebSocket upgrade and decodes a refusal.
func upgrade(t *testing.T, n *testnode.Node, query string) (int, refusal) {
	t.Helper()
	status, body := pushtest.Handshake(t, n.WSURL()+query, nil)
	var r refusal
	if status != http.StatusSwitchingProtocols {
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("refusal %d %q: %v", status, body, err)
		}
	}
	return status, r
}

// TestDrainNamesTheNodeToAvoid: a drained session's 1012, a refused
// upgrade's JSON and a browser's refused upgrade all name the draining
// node, in a form a client can parse.
func TestDrainNamesTheNodeToAvoid(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 3})
	c := pushtest.Dial(t, n.WSURL(), "alice")
	drained := make(chan error, 1)
	go func() { drained <- n.Drain(context.Background()) }()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("session not closed by the drain")
	}
	var ce *client.CloseError
	if !errors.As(c.Err(), &ce) || ce.Code != 1012 || ce.Reason != "draining: node 3; reconnect elsewhere" {
		t.Fatalf("drained session closed with %v", c.Err())
	}
	if m := avoidPattern.FindStringSubmatch(ce.Reason); m == nil || m[1] != "draining" || m[2] != "3" {
		t.Fatalf("close reason %q does not parse as <error>: node <n>; ...", ce.Reason)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}

	status, r := upgrade(t, n, "?user=bob")
	if status != http.StatusServiceUnavailable || r.Error != "draining" || r.AvoidNode == nil || *r.AvoidNode != 3 {
		t.Fatalf("upgrade while draining: %d %+v, want 503 draining with avoid_node 3", status, r)
	}
	browser := pushtest.RawDial(t, n.Addr(), "?user=carol", nil, "Origin: "+n.Server.URL)
	code, reason := browser.CloseFrame(t, 5*time.Second)
	if m := avoidPattern.FindStringSubmatch(reason); code != 1012 || m == nil || m[1] != "draining" || m[2] != "3" {
		t.Fatalf("browser upgrade while draining: %d %q", code, reason)
	}
}

// TestFullNodeNamesItself: a node at its connection limit names itself
// too; a refusal that is about the client does not.
func TestFullNodeNamesItself(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 12, MaxConnections: 1})
	pushtest.Dial(t, n.WSURL(), "alice")
	status, r := upgrade(t, n, "?user=bob")
	if status != http.StatusServiceUnavailable || r.Error != "over_capacity" || r.AvoidNode == nil || *r.AvoidNode != 12 {
		t.Fatalf("upgrade to a full node: %d %+v", status, r)
	}
	if status, r := upgrade(t, n, "?token=x"); status != http.StatusUnauthorized || r.AvoidNode != nil {
		t.Fatalf("a bad token is the client's problem, not the node's: %d %+v", status, r)
	}
}
