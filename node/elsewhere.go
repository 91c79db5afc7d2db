package node

import "strconv"

// Sending a client elsewhere (docs/PROTOCOL.md, "Going elsewhere"): a node
// that closes sessions so they reconnect to other nodes (a drain, a
// node-number conflict), or refuses a handshake for a reason of its own (not
// ready, full), names itself so a client can avoid it on its next attempt:
//
//   - a close reason, and the close reason of a browser's refused upgrade,
//     reads "<error>: node <n>; <text>";
//   - a refusal's JSON body carries "avoid_node": <n>.
//
// <n> is the node number the client saw in hello's "node". Clients match
// `^([a-z_]+): node ([0-9]+); ` and treat the node as one to skip for a while.

// elsewhere is the message "node <n>; <text>" of a close or refusal that
// sends a client to another node.
func (n *Node) elsewhere(text string) string {
	return "node " + strconv.FormatInt(n.cfg.NodeID, 10) + "; " + text
}

// drainReason is the close reason of a session the node closes while it
// drains.
func (n *Node) drainReason() string { return "draining: " + n.elsewhere("reconnect elsewhere") }

// notReadyMessage explains a handshake refused because the node is not
// accepting (Ready's reason), naming the node.
func (n *Node) notReadyMessage(why string) string {
	switch why {
	case "draining":
		return n.elsewhere("draining, reconnect elsewhere")
	case "duplicate_node_id":
		return n.elsewhere("another live node uses this node's number, reconnect elsewhere")
	case "nats_disconnected":
		return n.elsewhere("not connected to NATS, reconnect elsewhere")
	case "not_leased":
		return n.elsewhere("its node number is vouched for by neither Consul nor NATS now, reconnect elsewhere")
	}
	return n.elsewhere(why + ", reconnect elsewhere")
}
