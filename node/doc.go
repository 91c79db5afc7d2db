// Package node owns a pushd node's client side: WebSocket upgrades (with
// github.com/lxzan/gws), sessions and their snowflake IDs, the JSON client
// protocol, heartbeats, and delivery of pushes to the sockets that hold a user,
// a document, a session or everyone.
//
// The node knows nothing about NATS. It asks a Bus to subscribe to a user or
// document while it holds one and to publish client events, and the router
// hands it pushes through Deliver. cmd/pushd connects the two.
//
// Lock order is recorded in LOCKS.md.
package node
