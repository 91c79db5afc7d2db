// Package history keeps pushes in NATS JetStream so a client that was away
// (a network blip, a deploy, a node crash) gets what it missed, and gives
// every push its position ("seq").
//
// Two streams per subject prefix hold the user and the doc pushes
// (<PREFIX>_USERS on <prefix>.user.>, <PREFIX>_DOCS on <prefix>.doc.>),
// bounded per subject (MaxMsgsPerSubject, MaxAge) rather than one stream per
// user or doc. Backends keep publishing with plain NATS; the streams capture
// those publishes and republish each stored push to <prefix>.seq.<kind>.<key>
// with its stream sequence (Nats-Sequence) and the sequence of the previous
// push on the same subject (Nats-Last-Sequence). Nodes subscribe there, so a
// push's position costs no extra round trip, and the chain of previous
// sequences shows a node any push it missed.
//
// A node learns whether the streams work from its own heartbeat: every
// second it publishes on <prefix>.history.<kind>.<node>, which each stream
// stores and republishes back. No echo for three seconds means history is
// unavailable: the router then subscribes to the plain subjects so live
// delivery goes on, and clients resuming are told recovered:false.
//
// Reads (a client's replay, a node's gap fill) are batched direct gets: one
// request, up to ReplayMaxMsgs pushes back, from any replica of the stream.
package history
