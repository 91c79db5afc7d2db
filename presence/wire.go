package presence

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/pushd/pushd/contract"
)

// What nodes say to each other about presence, as JSON on NATS. Only nodes
// publish and read these; decode checks every message, since anything with
// publish rights on the subjects can send one.

// Ops of a message on the doc subject.
const (
	opJoin  = "join"
	opLeave = "leave"
	opSync  = "sync"
)

// maxSnapshotPage bounds the members in one snapshot message: 500 members
// with the longest IDs and info stay far under NATS's 1 MiB payload limit.
const maxSnapshotPage = 500

// maxInfo bounds a member's info from another node: no token carries more.
const maxInfo = 8 << 10

// message is anything on the doc subject: a delta (join, leave) or a sync
// request (with a reply subject).
type message struct {
	Op string `json:"op"`
	// Node and Inst are the sender's node number and instance.
	Node int64  `json:"node"`
	Inst string `json:"inst"`
	// Epoch and Seq number a delta among the sender's deltas for the doc:
	// Seq is 1 for the first delta of an epoch, which starts when the
	// sender starts holding the doc.
	Epoch uint64 `json:"epoch,omitempty"`
	Seq   uint64 `json:"seq,omitempty"`
	// Member joined (join); for a leave, SID is who left and Reason why.
	Member *contract.Member     `json:"member,omitempty"`
	SID    string               `json:"sid,omitempty"`
	Reason contract.LeaveReason `json:"reason,omitempty"`
}

// holder names a node holding a doc.
type holder struct {
	Node int64  `json:"node"`
	Inst string `json:"inst"`
}

// snapshot is one holder's own members of a doc, a page at a time: the
// answer to a sync request (with Holders) and to a fetch.
type snapshot struct {
	Node int64  `json:"node"`
	Inst string `json:"inst"`
	// Epoch is 0 when the node does not hold the doc; Seq is the last delta
	// published before the page was read.
	Epoch   uint64            `json:"epoch"`
	Seq     uint64            `json:"seq"`
	Members []contract.Member `json:"members"`
	// More says a page follows: fetch it after the last member's SID.
	More bool `json:"more,omitempty"`
	// Holders are the instances the node knows hold the doc, itself
	// included (sync answers only).
	Holders []holder `json:"holders,omitempty"`
}

// fetchRequest asks a node, on its PresenceNode subject, for a page of its
// members of Doc after the SID After. Inst is the instance the asker
// expects; an answer from another one means that one is gone.
type fetchRequest struct {
	Doc   string `json:"doc"`
	Inst  string `json:"inst"`
	After string `json:"after,omitempty"`
}

var errNoOp = errors.New("presence: message without a known op")

// decodeMessage parses a message of the doc subject and checks what the
// tracker relies on.
func decodeMessage(b []byte) (message, error) {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return message{}, err
	}
	if m.Inst == "" || m.Node < 0 || m.Node > 1023 {
		return message{}, errors.New("presence: message without a sender")
	}
	switch m.Op {
	case opJoin:
		if m.Member == nil {
			return message{}, errors.New("presence: join without a member")
		}
		if err := checkMember(m.Member, m.Node); err != nil {
			return message{}, err
		}
	case opLeave:
		if m.SID == "" {
			return message{}, errors.New("presence: leave without a sid")
		}
		switch m.Reason {
		case contract.LeaveLeft, contract.LeaveDisconnected:
		default:
			m.Reason = contract.LeaveDisconnected
		}
	case opSync:
		return m, nil
	default:
		return message{}, errNoOp
	}
	if m.Epoch == 0 || m.Seq == 0 {
		return message{}, errors.New("presence: delta without epoch and seq")
	}
	return m, nil
}

// decodeSnapshot parses a sync or fetch answer.
func decodeSnapshot(b []byte) (snapshot, error) {
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return snapshot{}, err
	}
	if s.Inst == "" || s.Node < 0 || s.Node > 1023 {
		return snapshot{}, errors.New("presence: snapshot without a sender")
	}
	if len(s.Members) > maxSnapshotPage {
		return snapshot{}, fmt.Errorf("presence: snapshot of %d members, more than a page", len(s.Members))
	}
	for i := range s.Members {
		if err := checkMember(&s.Members[i], s.Node); err != nil {
			return snapshot{}, err
		}
	}
	if s.Epoch == 0 && len(s.Members) > 0 {
		return snapshot{}, errors.New("presence: members without an epoch")
	}
	return s, nil
}

// checkMember checks a remote member: a session ID, a valid user, the
// sender's node.
func checkMember(m *contract.Member, node int64) error {
	if m.SIDNum() <= 0 {
		return fmt.Errorf("presence: member sid %q is not a session ID", m.SID)
	}
	if err := contract.ValidateID(m.User); err != nil {
		return fmt.Errorf("presence: member user: %w", err)
	}
	if m.Node != node {
		return fmt.Errorf("presence: member of node %d sent by node %d", m.Node, node)
	}
	if len(m.Info) > maxInfo || len(m.Info) > 0 && (!json.Valid(m.Info) || !utf8.Valid(m.Info)) {
		return errors.New("presence: member info is not JSON of at most 8 KiB")
	}
	return nil
}

// DecodeQuery parses the body of a presence query; an empty body is the
// first page of the default size.
func DecodeQuery(b []byte) (contract.PresenceQuery, error) {
	var q contract.PresenceQuery
	if len(b) == 0 {
		return q, nil
	}
	if err := json.Unmarshal(b, &q); err != nil {
		return q, fmt.Errorf("the body is not a presence query (%v); send {\"limit\":N,\"cursor\":\"<sid>\"} or {\"stats\":true}", err)
	}
	if q.Cursor != "" && q.After() <= 0 {
		return q, fmt.Errorf("cursor %q is not a session ID: pass the \"next\" of the previous page", q.Cursor)
	}
	return q, nil
}
