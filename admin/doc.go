// Package admin is pushd's admin protocol over NATS: the wire types, the
// Server every node runs, and the Client pushctl (and any other tool) uses.
//
// Requests go to <prefix>.admin.<verb> with a reply subject; the body is a
// JSON Request (empty means no filter). Every node subscribes, so a request
// is scatter-gathered: the client collects replies until every node it
// expects answered (those Consul lists, and the live peers every reply
// names), or until its timeout.
//
//	verb      request fields             who answers          reply
//	nodes     node                       every node           NodeInfo
//	sessions  node user doc limit cursor every node           SessionsReply
//	session   sid                        every node           SessionReply (found: the holder)
//	kick      node sid|user reason       every node           KickReply
//	stats     node                       every node           Stats
//
// A request with "node" set is answered only by that node. Times are RFC 3339
// strings. Field names are documented in docs/PUSHCTL.md.
//
// Pushes are not an admin verb: Client.Publish publishes on the ordinary push
// subjects with a reply inbox and counts the routers' delivery reports.
// Neither is presence: Client.Presence asks <prefix>.presence.query.<doc>, as
// backends do, and one node holding the doc answers (docs/NATS.md).
//
// Client sockets cannot reach admin subjects: the only subject a client frame
// produces is <prefix>.up.doc.<doc>, with a validated doc ID.
package admin
