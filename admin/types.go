package admin

import (
	"time"

	"github.com/pushd/pushd/contract"
)

// Admin verbs; the subject of a verb is <prefix>.admin.<verb>.
const (
	VerbNodes    = "nodes"
	VerbSessions = "sessions"
	VerbSession  = "session"
	VerbKick     = "kick"
	VerbStats    = "stats"
	// VerbRebalance asks nodes to shed sessions now (pushctl rebalance).
	VerbRebalance = "rebalance"
)

// Verbs lists every verb a Server answers.
func Verbs() []string {
	return []string{VerbNodes, VerbSessions, VerbSession, VerbKick, VerbStats, VerbRebalance}
}

// DefaultLimit is the page size of sessions when a request sets none, and
// MaxLimit the largest page a node returns.
const (
	DefaultLimit = contract.DefaultPageSize
	MaxLimit     = contract.MaxPageSize
)

// Request is the body of every admin request. Fields a verb does not use are
// ignored.
type Request struct {
	// Node, when set, is the only node that answers; the others skip the
	// request without doing any work.
	Node *int64 `json:"node,omitempty"`
	// User selects a user's sessions (sessions, kick).
	User string `json:"user,omitempty"`
	// Doc selects the sessions that joined a doc (sessions).
	Doc string `json:"doc,omitempty"`
	// SID selects one session (session, kick).
	SID string `json:"sid,omitempty"`
	// Limit is the page size (sessions); zero means DefaultLimit, more than
	// MaxLimit means MaxLimit.
	Limit int `json:"limit,omitempty"`
	// Cursor asks for sessions with a session ID greater than it (sessions).
	Cursor string `json:"cursor,omitempty"`
	// Reason is sent to kicked clients in the close frame (kick).
	Reason string `json:"reason,omitempty"`
	// Count is how many sessions to shed (rebalance).
	Count int `json:"count,omitempty"`
	// ToAverage sheds what the node holds above the cluster's average
	// instead of Count (rebalance).
	ToAverage bool `json:"to_average,omitempty"`
	// DryRun picks the sessions without closing them (rebalance).
	DryRun bool `json:"dry_run,omitempty"`
}

// Reply is the part every reply starts with.
type Reply struct {
	// Node is the ID of the answering node.
	Node int64 `json:"node"`
	// Peers are the numbers of the live nodes the answering node knows of,
	// itself included (from NATS heartbeats): a client waits for their
	// answers and no longer. Absent when the node cannot tell yet (it just
	// started).
	Peers []int64 `json:"peers,omitempty"`
	// Shared is set when the answering node knows of another live node
	// using its number (a healed partition): a client waits for both
	// answers instead of stopping at the first one with that number.
	Shared bool `json:"shared,omitempty"`
	// Error is set when the node could not serve the request.
	Error string `json:"error,omitempty"`
}

// NodeInfo answers "nodes".
type NodeInfo struct {
	Reply
	// Address is the node's public WebSocket listener.
	Address string `json:"address"`
	// Version is the pushd version.
	Version string `json:"version"`
	// StartedAt is when the node started.
	StartedAt time.Time `json:"started_at"`
	// UptimeSeconds is how long the node has been running.
	UptimeSeconds float64 `json:"uptime_seconds"`
	// Sessions, Users and Docs count what the node holds now.
	Sessions int `json:"sessions"`
	Users    int `json:"users"`
	Docs     int `json:"docs"`
	// Ready reports whether the node accepts new sessions.
	Ready bool `json:"ready"`
	// Health is "ready", or why the node is not: "draining", "not_leased",
	// "duplicate_node_id", "nats_disconnected".
	Health string `json:"health"`
	// NATS is the node's NATS connection.
	NATS NATSInfo `json:"nats"`
	// Instance is unique per pushd process; two answers with one Node and
	// different instances mean two live nodes share a number.
	Instance string `json:"instance"`
	// Duplicate is set when the node knows of another live node using its
	// number.
	Duplicate bool `json:"duplicate,omitempty"`
}

// NATSInfo describes a node's NATS connection.
type NATSInfo struct {
	// Status is the connection state: CONNECTED, RECONNECTING, ...
	Status string `json:"status"`
	// Server is the URL of the server the node is connected to, without
	// credentials.
	Server string `json:"server"`
	// Subscriptions is the number of push subscriptions the node holds.
	Subscriptions int `json:"subscriptions"`
	// Reconnects counts reconnections since the node started.
	Reconnects uint64 `json:"reconnects"`
}

// SessionInfo describes one session (the node's own vocabulary).
type SessionInfo = contract.SessionInfo

// SessionsReply answers "sessions": one node's page.
type SessionsReply struct {
	Reply
	// Sessions are ordered by session ID (numerically).
	Sessions []SessionInfo `json:"sessions"`
	// Next is the cursor of the node's next page; empty on the last page.
	Next string `json:"next,omitempty"`
	// Total is how many sessions on the node match the filter.
	Total int `json:"total"`
}

// SessionReply answers "session". Every node answers, so a client knows when
// all have; only the one holding the session sets Found.
type SessionReply struct {
	Reply
	// Found says whether this node holds the session.
	Found bool `json:"found"`
	// Session is the session asked for, when Found.
	Session SessionInfo `json:"session"`
}

// KickReply answers "kick".
type KickReply struct {
	Reply
	// Closed is how many sessions the node closed.
	Closed int `json:"closed"`
	// SIDs are the closed sessions.
	SIDs []string `json:"sids"`
}

// Stats answers "stats": a node's counters at one instant (contract.Stats).
// Counters only grow while the node runs; rates come from two samples (see
// Rates).
type Stats struct {
	Reply
	contract.Stats
}

// RebalanceReply answers "rebalance": what one node shed.
type RebalanceReply struct {
	Reply
	// Sessions is what the node held before shedding.
	Sessions int `json:"sessions"`
	// Average is the sessions per accepting node, from the heartbeats.
	Average float64 `json:"average"`
	// Accepting is how many nodes accept sessions, this one included.
	Accepting int `json:"accepting"`
	// Known says whether the node can tell the average; Why says why not
	// ("not_watching", "not_accepting", "no_other_nodes").
	Known bool   `json:"known"`
	Why   string `json:"why,omitempty"`
	// Shed is how many sessions the node asked to reconnect elsewhere (or
	// would, with DryRun); SIDs are they, never null.
	Shed   int      `json:"shed"`
	SIDs   []string `json:"sids"`
	DryRun bool     `json:"dry_run,omitempty"`
}
