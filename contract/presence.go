package contract

import (
	"encoding/json"
	"strconv"
	"time"
)

// Presence: who is in a doc, across the cluster (docs/PROTOCOL.md,
// docs/NATS.md). The vocabulary is shared by the node (client frames), the
// presence tracker (replication between nodes) and the admin client
// (pushctl presence).

// Member is one session that joined a doc.
type Member struct {
	// SID is the session ID; members are unique and ordered by it.
	SID string `json:"sid"`
	// User is the session's user.
	User string `json:"user"`
	// Node is the number of the node holding the session.
	Node int64 `json:"node"`
	// JoinedAt is when the session joined the doc.
	JoinedAt time.Time `json:"joined_at"`
	// Info is the "info" claim of the session's connection token, verbatim
	// JSON; absent when the token had none.
	Info json.RawMessage `json:"info,omitempty"`
}

// SIDNum is the member's session ID as a number, the order of pages; -1
// when it is not one.
func (m *Member) SIDNum() int64 { return sidNum(m.SID) }

func sidNum(sid string) int64 {
	n, err := strconv.ParseInt(sid, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// LeaveReason says why a member left a doc.
type LeaveReason string

// Leave reasons, as clients see them in presence events.
const (
	// LeaveLeft: the session sent leave.
	LeaveLeft LeaveReason = "left"
	// LeaveDisconnected: the session ended, for whatever reason (the
	// disconnect event for backends says which).
	LeaveDisconnected LeaveReason = "disconnected"
	// LeaveNodeLost: the node holding the session stopped heartbeating (it
	// crashed, or lost NATS); its members are dropped everywhere.
	LeaveNodeLost LeaveReason = "node_lost"
)

// PresenceQuery asks for one page of a doc's members, or for its counts
// only. It is the JSON body of a request on Subjects.PresenceQuery; an
// empty body asks for the first page of DefaultPageSize members.
type PresenceQuery struct {
	// Limit is the page size; zero means DefaultPageSize, more than
	// MaxPageSize means MaxPageSize.
	Limit int `json:"limit,omitempty"`
	// Cursor asks for members with a session ID greater than it: the Next
	// of the previous page.
	Cursor string `json:"cursor,omitempty"`
	// Stats asks for the counts only, no members.
	Stats bool `json:"stats,omitempty"`
}

// PageSize is the page size a query asks for, within the bounds.
func (q PresenceQuery) PageSize() int {
	return SessionFilter{Limit: q.Limit}.PageSize()
}

// After is the cursor as a session ID number: members with a greater one
// are on the page; -1 without a cursor (or with one that is not a session
// ID).
func (q PresenceQuery) After() int64 {
	if q.Cursor == "" {
		return -1
	}
	return sidNum(q.Cursor)
}

// PresencePage answers a PresenceQuery.
type PresencePage struct {
	// Doc is the doc asked about.
	Doc string `json:"doc"`
	// Sessions and Users count the doc's members and their distinct users,
	// over the whole doc, not the page.
	Sessions int `json:"sessions"`
	Users    int `json:"users"`
	// Members is the page, ordered by session ID (numerically); absent when
	// the query asked for stats only.
	Members []Member `json:"members,omitempty"`
	// Next is the cursor of the next page; empty on the last page.
	Next string `json:"next,omitempty"`
	// Node is the node that answered, -1 when none holds the doc (the
	// presence is empty).
	Node int64 `json:"node"`
	// Error and Message are set when the request could not be served:
	// "bad_request" (a body that is not a PresenceQuery) or "invalid_doc".
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
}

// PresenceChange is one member joining or leaving, as the node hands it to
// sessions that asked for presence events.
type PresenceChange struct {
	// Seq orders the changes of one doc on one node; a session that asked
	// for events when its own join had Seq s gets only changes after s.
	Seq uint64
	// Join is true for a join, false for a leave.
	Join bool
	// Member is who joined or left (for a leave, at least SID, User and
	// Node).
	Member Member
	// Reason is why a member left.
	Reason LeaveReason
}

// PresenceEvents is one coalesced batch of a doc's changes, delivered to
// the local sessions of the doc that asked for events as one frame each.
type PresenceEvents struct {
	// Doc is the doc the changes are about.
	Doc string
	// Changes are in order; nil when CountsOnly.
	Changes []PresenceChange
	// First and Last are the Seq of the first and the last change in the
	// batch (also when CountsOnly).
	First, Last uint64
	// Sessions and Users count the doc's members after the batch.
	Sessions, Users int
	// CountsOnly is set for a doc too large for member lists: the frame
	// carries the counts, and how many joined and left, only.
	CountsOnly   bool
	Joined, Left int
}

// PresenceQueueGroup is the queue group nodes holding a doc answer presence
// queries in, so exactly one of them answers each.
const PresenceQueueGroup = "pushd-presence"

// PresenceDoc is the subject nodes holding doc replicate its members on:
// join and leave deltas, and sync requests from a node that starts holding
// it. Nodes only.
func (s Subjects) PresenceDoc(doc string) string { return s.prefix + ".presence.doc." + doc }

// PresenceQuery is the subject a doc's presence is asked on (request/reply,
// body a PresenceQuery, reply a PresencePage); the nodes holding the doc
// answer in PresenceQueueGroup, so one answers, and NATS answers "no
// responders" when none holds it: the presence is empty.
func (s Subjects) PresenceQuery(doc string) string { return s.prefix + ".presence.query." + doc }

// PresenceNode is the subject node answers resync requests on: the members
// it holds in a list of docs. Nodes only.
func (s Subjects) PresenceNode(node int64) string {
	return s.prefix + ".presence.node." + strconv.FormatInt(node, 10)
}
