// Package cluster keeps track of the live pushd nodes over NATS, the bus
// every node already shares, independently of Consul.
//
// Every node publishes a heartbeat each Interval on
// <prefix>.nodes.heartbeat.<node> and listens to everyone's, so it knows
// which nodes are alive (seen within three intervals) and notices at once
// when two live nodes use the same node number, which would make their
// snowflake session IDs collide. Before serving, a node Claims its number: a
// request on <prefix>.nodes.claim.<node>, which the live holder of that
// number answers; NATS's "no responders" means the number is free.
package cluster
