// Package presence keeps, on every node, the cluster-wide member map of the
// docs that node holds (a doc is held while one of the node's sessions has
// joined it), answers who is in a doc, and hands coalesced join/leave
// events to the node for its sessions (docs/PROTOCOL.md, docs/NATS.md).
//
// Interest-only, like the push subscriptions: only the nodes holding a doc
// take part in its presence. A holder subscribes to
//
//	<prefix>.presence.doc.<doc>     deltas and sync requests (nodes only)
//	<prefix>.presence.query.<doc>   queries, in queue group "pushd-presence"
//
// and drops both when its last session leaves the doc.
//
// Each node is the authority for its own members. It publishes a delta for
// each local join and leave, numbered per doc and holding epoch (the
// (instance, epoch, seq) triple), and every other holder applies it to its
// copy. A node that starts holding a doc subscribes, then asks the doc
// subject for the current members: every holder answers with its own
// members and names the holders it knows of, and the new holder is ready
// once every named holder answered (or after Config.SyncTimeout). Nobody
// holding it means "no responders" at once. A gap in a holder's deltas (a
// dropped message) or a snapshot too large for one message is repaired by
// fetching that holder's members page by page from
// <prefix>.presence.node.<n>, with the deltas that arrive meanwhile held back
// and applied on top.
//
// No ghosts: remote members are keyed by the instance (process) that holds
// them. When the cluster's heartbeats declare an instance gone (Peer), every
// holder drops its members and emits leaves with reason node_lost; its late
// deltas are ignored from then on (tombstone), so a restarted node, which is
// a new instance, never brings them back. An instance that the heartbeats
// never confirm is dropped the same way after Config.GoneAfter. An instance
// that was declared gone and heartbeats again (a partition healed, a NATS
// reconnect) is fetched again for every doc held.
//
// Queries are answered from the local copy: by the node for its sessions
// (Query), and in the queue group for everybody else (backends, pushctl,
// other nodes' sessions), so exactly one holder answers and nothing waits for
// a scatter-gather timeout.
//
// Events are coalesced per doc: changes wait up to Config.Window and go out
// as one batch (one frame per listening session); a join and a leave of one
// session in the same window cancel out. A doc with more than
// Config.LargeDoc members sends counts only and stretches its window in
// proportion to its size (up to ten windows), so its event frames per second
// stay near LargeDoc/Window per node whatever its churn.
package presence
