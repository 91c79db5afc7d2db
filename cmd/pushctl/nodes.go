package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/pushd/pushd/admin"
)

// nodesOutput is the JSON document of `pushctl nodes -o json`.
type nodesOutput struct {
	Nodes        []admin.NodeInfo `json:"nodes"`
	NotAnswering []missingNode    `json:"not_answering"`
	// DuplicateNumbers are node numbers that two live nodes use at once:
	// their session IDs can collide. Never null.
	DuplicateNumbers []int64 `json:"duplicate_numbers"`
}

// missingNode is a node Consul lists that did not answer.
type missingNode struct {
	ID      int64  `json:"id"`
	Address string `json:"address"`
}

func newNodesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "List the nodes of the cluster and how each is doing",
		Long: `List every pushd node: ID, address, version, uptime, sessions, users, docs,
health (ready, draining, not_leased, nats_disconnected) and NATS status.

Without --consul-addr the list is whoever answers within --timeout. With
--consul-addr, the nodes Consul lists are expected: pushctl stops as soon as
all of them answered, and a listed node that stays silent is shown as
"not answering" (it exits 0 as long as one node answered; 3 if none did).`,
		Example: `  pushctl nodes
  pushctl nodes -o wide
  pushctl --consul-addr 127.0.0.1:8500 nodes -o json | jq '.not_answering'`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			return g.run(func(c *conn) error { return runNodes(g, c) })
		},
	}
}

func runNodes(g *globals, c *conn) error {
	res, err := c.client.Nodes(g.ctx)
	if err != nil && !errors.Is(err, admin.ErrNoNodes) {
		return err
	}
	if len(res.Nodes) == 0 && len(res.Missing) == 0 {
		return err
	}
	out := nodesOutput{Nodes: res.Nodes, NotAnswering: []missingNode{}}
	if out.Nodes == nil {
		out.Nodes = []admin.NodeInfo{}
	}
	for _, id := range res.Missing {
		out.NotAnswering = append(out.NotAnswering, missingNode{ID: id, Address: c.knownAddress(id)})
	}
	out.DuplicateNumbers = duplicateNumbers(out.Nodes)
	for _, d := range out.DuplicateNumbers {
		fmt.Fprintf(g.err, "pushctl: WARNING: more than one live node uses node number %d: their session IDs can collide; give each a unique --node-id or lease numbers from Consul\n", d)
	}
	if g.output == outJSON {
		if perr := printJSON(g.out, out); perr != nil {
			return perr
		}
		return err
	}
	wide := g.output == outWide
	header := []string{"NODE", "ADDRESS", "VERSION", "UPTIME", "SESSIONS", "USERS", "DOCS", "HEALTH", "NATS"}
	if wide {
		header = append(header, "STARTED", "NATS SERVER", "SUBS", "RECONNECTS")
	}
	t := newTable(g.out, header...)
	for _, n := range out.Nodes {
		health := n.Health
		if slices.Contains(out.DuplicateNumbers, n.Node) {
			health = "DUPLICATE-NUMBER," + health
		}
		row := []string{itoa(n.Node), n.Address, n.Version, human(time.Duration(n.UptimeSeconds * float64(time.Second))),
			itoa(n.Sessions), itoa(n.Users), itoa(n.Docs), health, n.NATS.Status}
		if wide {
			row = append(row, n.StartedAt.Local().Format(time.DateTime), n.NATS.Server, itoa(n.NATS.Subscriptions), itoa(n.NATS.Reconnects))
		}
		t.row(row...)
	}
	for _, m := range out.NotAnswering {
		row := []string{itoa(m.ID), m.Address, "-", "-", "-", "-", "-", "not answering", "-"}
		if wide {
			row = append(row, "-", "-", "-", "-")
		}
		t.row(row...)
	}
	if ferr := t.flush(); ferr != nil {
		return ferr
	}
	return err
}

// duplicateNumbers lists the node numbers used by more than one answering
// node, or flagged by a node that hears another instance with its number.
func duplicateNumbers(nodes []admin.NodeInfo) []int64 {
	count := map[int64]int{}
	out := []int64{}
	for _, n := range nodes {
		count[n.Node]++
		if (count[n.Node] == 2 || n.Duplicate) && !slices.Contains(out, n.Node) {
			out = append(out, n.Node)
		}
	}
	slices.Sort(out)
	return out
}
