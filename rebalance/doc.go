// Package rebalance evens the cluster's sessions: a node well above the
// average of the live nodes that accept sessions asks a small fraction of
// its sessions a second to reconnect elsewhere (node.Shed: 1012, naming the
// node so clients skip it), and an operator can ask a node to shed now
// (pushctl rebalance). With recovery (since, receipts) a move loses nothing
// for clients that resume. docs/OPERATIONS.md, "Rebalancing", says what it
// does and guarantees.
//
// The load comes from the node heartbeats on NATS (package cluster): every
// node knows every other node's session count within a heartbeat, without
// Consul. The policy is a pure function of that view (plan.go); one
// goroutine per node applies it every interval (rebalance.go).
package rebalance
