package admin

import "time"

// Admin verbs; the subject of a verb is <prefix>.admin.<verb>.
const (
	VerbNodes    = "nodes"
	VerbSessions = "sessions"
	VerbSession  = "session"
	VerbKick     = "kick"
	VerbStats    = "stats"
)

// Verbs lists every verb a Server answers.
func Verbs() []string {
	return []string{VerbNodes, VerbSessions, VerbSession, VerbKick, VerbStats}
}

// DefaultLimit is the page size of sessions when a request sets none.
const DefaultLimit = 100

// MaxLimit is the largest page a node returns, so a reply stays well under
// NATS's default 1 MiB payload limit.
const MaxLimit = 1000

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

// SessionInfo describes one session.
type SessionInfo struct {
	// SID is the session ID.
	SID string `json:"sid"`
	// User is the authenticated user.
	User string `json:"user"`
	// Node is the node holding the session.
	Node int64 `json:"node"`
	// Remote is the client's address as the node sees it.
	Remote string `json:"remote"`
	// Docs are the docs joined, never null.
	Docs []string `json:"docs"`
	// ConnectedAt is when the session opened.
	ConnectedAt time.Time `json:"connected_at"`
	// LastHeartbeat is the last heartbeat (ping); absent if none yet.
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
	// LastSeen is the last frame of any kind from the client.
	LastSeen time.Time `json:"last_seen"`
	// MsgsIn and BytesIn count frames read from the client.
	MsgsIn  uint64 `json:"msgs_in"`
	BytesIn uint64 `json:"bytes_in"`
	// MsgsOut and BytesOut count frames written to the client.
	MsgsOut  uint64 `json:"msgs_out"`
	BytesOut uint64 `json:"bytes_out"`
	// QueueDepth and QueueBytes are what is queued and not yet written.
	QueueDepth int `json:"queue_depth"`
	QueueBytes int `json:"queue_bytes"`
}

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

// Stats answers "stats": a node's counters at one instant. Counters only
// grow while the node runs; rates come from two samples (see Rates).
type Stats struct {
	Reply
	// At is when the sample was taken.
	At time.Time `json:"at"`
	// Connections, Users and Docs are gauges.
	Connections int `json:"connections"`
	Users       int `json:"users"`
	Docs        int `json:"docs"`
	// Accepted counts sessions that completed the handshake.
	Accepted uint64 `json:"accepted"`
	// Closed counts sessions closed for any reason; Kicked those an admin
	// closed.
	Closed uint64 `json:"closed"`
	Kicked uint64 `json:"kicked"`
	// PushesReceived counts NATS messages received for delivery.
	PushesReceived uint64 `json:"pushes_received"`
	// FramesWritten and BytesWritten count push frames written to sockets.
	FramesWritten uint64 `json:"frames_written"`
	BytesWritten  uint64 `json:"bytes_written"`
	// SlowConsumers counts sessions cut off because they did not keep up.
	SlowConsumers uint64 `json:"slow_consumers"`
	// Upstream counts client publish frames forwarded to NATS.
	Upstream uint64 `json:"upstream"`
}
