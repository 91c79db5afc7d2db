// Package contract is what every part of a pushd cluster agrees on: the NATS
// subjects and headers backends publish with, the kinds of push target, the
// one Push type that travels from the router to the node, and what a valid
// user or document ID is. It is a leaf: router, node, admin and pushctl
// import it, and it imports nothing of pushd's.
//
// docs/NATS.md is the contract written for backends; docs/PROTOCOL.md the one
// written for clients.
package contract
