// Package router owns pushd's side of NATS: the subject scheme, the
// subscriptions a node holds for the users, documents and sessions it serves,
// decoding routing headers, and handing pushes to a Deliverer.
//
// Subjects (with the default prefix "push", see docs/NATS.md):
//
//	push.user.<uid>       to every session of a user
//	push.doc.<doc>        to every session that joined a doc
//	push.all              to every session
//	push.session.<node>.<sid> to one session (node: the node holding it)
//	push.events.connect   node -> backends: a session opened
//	push.events.disconnect node -> backends: a session closed
//	push.up.doc.<doc>     node -> backends: a client's publish frame
//
// A node subscribes only to what it holds, so NATS interest routes each push
// to exactly the nodes that need it; its sessions share one subscription,
// push.session.<node>.*.
package router
