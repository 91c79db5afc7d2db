package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/pushd/pushd/contract"
)

// DefaultTimeout is how long a Client collects answers when its config sets
// no timeout.
const DefaultTimeout = 2 * time.Second

// Errors a Client returns; match them with errors.Is.
var (
	// ErrNoNodes means no pushd node answered.
	ErrNoNodes = errors.New("no pushd node answered")
	// ErrNotFound means no node holds the session asked for.
	ErrNotFound = errors.New("not found")
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Conn is the NATS connection. Required.
	Conn *nats.Conn
	// Prefix is the subject prefix; empty means "push".
	Prefix string
	// Timeout is how long answers are collected. Zero means DefaultTimeout.
	Timeout time.Duration
	// Known are the node IDs expected to answer, e.g. from Consul. When set,
	// collecting stops as soon as all of them answered; when nil, it goes on
	// until Timeout, since there is no telling who else might answer.
	Known []int64
}

// Client sends admin requests and gathers the nodes' answers. It is safe for
// concurrent use.
type Client struct {
	nc       *nats.Conn
	subjects contract.Subjects
	timeout  time.Duration
	known    []int64
}

// NewClient returns a Client for cfg.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Client{nc: cfg.Conn, subjects: contract.NewSubjects(cfg.Prefix), timeout: cfg.Timeout, known: slices.Clone(cfg.Known)}
}

// Subjects is the subject scheme the client uses.
func (c *Client) Subjects() contract.Subjects { return c.subjects }

// NodesResult is the answer to Nodes.
type NodesResult struct {
	// Nodes answered, ordered by ID.
	Nodes []NodeInfo `json:"nodes"`
	// Missing are known nodes (ClientConfig.Known) that did not answer in
	// time, ordered by ID; never null.
	Missing []int64 `json:"not_answering"`
}

// Nodes asks every node to describe itself. It returns ErrNoNodes when none
// answers.
func (c *Client) Nodes(ctx context.Context) (NodesResult, error) {
	var res NodesResult
	msgs, expected, err := c.gather(ctx, VerbNodes, Request{}, c.known, nil)
	if err != nil && !errors.Is(err, ErrNoNodes) {
		return res, err
	}
	seen := map[int64]bool{}
	for _, m := range msgs {
		var info NodeInfo
		if err := json.Unmarshal(m.Data, &info); err != nil {
			return res, fmt.Errorf("bad nodes reply %q: %w", m.Data, err)
		}
		seen[info.Node] = true
		res.Nodes = append(res.Nodes, info)
	}
	slices.SortFunc(res.Nodes, func(a, b NodeInfo) int { return cmp64(a.Node, b.Node) })
	res.Missing = []int64{}
	for _, id := range expected {
		if !seen[id] {
			res.Missing = append(res.Missing, id)
		}
	}
	slices.Sort(res.Missing)
	if len(res.Nodes) == 0 {
		return res, c.noNodes(VerbNodes)
	}
	return res, nil
}

// SessionsQuery selects sessions.
type SessionsQuery struct {
	// User and Doc filter; both set means the user's sessions in the doc.
	User string
	Doc  string
	// Node, when set, asks only that node.
	Node *int64
	// Limit is the page size; zero means DefaultLimit, at most MaxLimit.
	Limit int
	// Cursor is Next of the previous page.
	Cursor string
}

// SessionsPage is one page of sessions across the cluster.
type SessionsPage struct {
	// Sessions are ordered by session ID; at most the query's limit.
	Sessions []SessionInfo `json:"sessions"`
	// Next is the cursor of the next page; empty on the last page.
	Next string `json:"next,omitempty"`
	// Total is how many sessions match across the nodes that answered.
	Total int `json:"total"`
	// Nodes is how many nodes answered.
	Nodes int `json:"nodes"`
}

// Sessions lists one page of the sessions matching q, merged across nodes.
func (c *Client) Sessions(ctx context.Context, q SessionsQuery) (SessionsPage, error) {
	if q.Limit <= 0 {
		q.Limit = DefaultLimit
	}
	q.Limit = min(q.Limit, MaxLimit)
	req := Request{Node: q.Node, User: q.User, Doc: q.Doc, Limit: q.Limit, Cursor: q.Cursor}
	expect := c.known
	if q.Node != nil {
		expect = []int64{*q.Node}
	}
	page := SessionsPage{Sessions: []SessionInfo{}}
	msgs, _, err := c.gather(ctx, VerbSessions, req, expect, nil)
	if err != nil {
		return page, err
	}
	more := false
	for _, m := range msgs {
		var r SessionsReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return page, fmt.Errorf("bad sessions reply %q: %w", m.Data, err)
		}
		if r.Error != "" {
			return page, fmt.Errorf("node %d: %s", r.Node, r.Error)
		}
		page.Nodes++
		page.Total += r.Total
		page.Sessions = append(page.Sessions, r.Sessions...)
		more = more || r.Next != ""
	}
	if page.Nodes == 0 {
		return page, c.noNodes(VerbSessions)
	}
	slices.SortFunc(page.Sessions, func(a, b SessionInfo) int { return cmp64(sidNum(a.SID), sidNum(b.SID)) })
	if len(page.Sessions) > q.Limit {
		page.Sessions = page.Sessions[:q.Limit]
		more = true
	}
	if more && len(page.Sessions) > 0 {
		page.Next = page.Sessions[len(page.Sessions)-1].SID
	}
	return page, nil
}

// Session finds one session. It returns ErrNotFound when no node answers
// within the timeout.
func (c *Client) Session(ctx context.Context, sid string) (SessionInfo, error) {
	found := func(b []byte) bool {
		var r SessionReply
		return json.Unmarshal(b, &r) == nil && r.Found
	}
	msgs, _, err := c.gather(ctx, VerbSession, Request{SID: sid}, c.known, found)
	if err != nil && !errors.Is(err, ErrNoNodes) {
		return SessionInfo{}, err
	}
	for _, m := range msgs { // every node answers; the holder with found
		var r SessionReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return SessionInfo{}, fmt.Errorf("bad session reply %q: %w", m.Data, err)
		}
		if r.Found {
			return r.Session, nil
		}
	}
	if errors.Is(err, ErrNoNodes) {
		return SessionInfo{}, err
	}
	return SessionInfo{}, fmt.Errorf("session %s: %w on any node that answered within %s", sid, ErrNotFound, c.timeout)
}

// KickResult is the answer to Kick.
type KickResult struct {
	// Closed is how many sessions were closed across the cluster.
	Closed int `json:"closed"`
	// SIDs are the closed sessions, never null.
	SIDs []string `json:"sids"`
	// Nodes is how many nodes answered.
	Nodes int `json:"nodes"`
}

// Kick closes session sid or every session of user, with close code 4010 and
// reason.
func (c *Client) Kick(ctx context.Context, sid, user, reason string) (KickResult, error) {
	res := KickResult{SIDs: []string{}}
	if sid == "" && user == "" {
		return res, errors.New("kick needs a session ID or a user")
	}
	msgs, _, err := c.gather(ctx, VerbKick, Request{SID: sid, User: user, Reason: reason}, c.known, nil)
	if err != nil {
		return res, err
	}
	for _, m := range msgs {
		var r KickReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return res, fmt.Errorf("bad kick reply %q: %w", m.Data, err)
		}
		if r.Error != "" {
			return res, fmt.Errorf("node %d: %s", r.Node, r.Error)
		}
		res.Nodes++
		res.Closed += r.Closed
		res.SIDs = append(res.SIDs, r.SIDs...)
	}
	slices.SortFunc(res.SIDs, func(a, b string) int { return cmp64(sidNum(a), sidNum(b)) })
	if res.Nodes == 0 {
		return res, c.noNodes(VerbKick)
	}
	return res, nil
}

// Stats samples every node's counters, ordered by node ID.
func (c *Client) Stats(ctx context.Context) ([]Stats, error) {
	msgs, _, err := c.gather(ctx, VerbStats, Request{}, c.known, nil)
	if err != nil {
		return nil, err
	}
	out := make([]Stats, 0, len(msgs))
	for _, m := range msgs {
		var s Stats
		if err := json.Unmarshal(m.Data, &s); err != nil {
			return nil, fmt.Errorf("bad stats reply %q: %w", m.Data, err)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, c.noNodes(VerbStats)
	}
	slices.SortFunc(out, func(a, b Stats) int { return cmp64(a.Node, b.Node) })
	return out, nil
}

// RebalanceQuery asks nodes to shed sessions now.
type RebalanceQuery struct {
	// Node, when set, asks only that node; otherwise every node sheds.
	Node *int64
	// Count is how many sessions each node asked sheds; with ToAverage,
	// each sheds what it holds above the cluster's average instead.
	Count     int
	ToAverage bool
	// DryRun picks the sessions without closing them.
	DryRun bool
}

// RebalanceResult is the answer to Rebalance.
type RebalanceResult struct {
	// Nodes are the answers, ordered by node; never null.
	Nodes []RebalanceReply `json:"nodes"`
	// Shed is how many sessions were shed (or would be) in all.
	Shed int `json:"shed"`
	// DryRun says nothing was closed.
	DryRun bool `json:"dry_run,omitempty"`
}

// Rebalance asks the nodes to shed sessions now: each closes the ones it
// picks with 1012 so their clients reconnect elsewhere. A node that could
// not serve the request answers with Error set; that is not an error of
// Rebalance's.
func (c *Client) Rebalance(ctx context.Context, q RebalanceQuery) (RebalanceResult, error) {
	res := RebalanceResult{Nodes: []RebalanceReply{}, DryRun: q.DryRun}
	if q.Count < 0 || (q.Count > 0) == q.ToAverage {
		return res, errors.New("rebalance needs a positive count or to-average, not both")
	}
	expect := c.known
	if q.Node != nil {
		expect = []int64{*q.Node}
	}
	msgs, _, err := c.gather(ctx, VerbRebalance, Request{Node: q.Node, Count: q.Count, ToAverage: q.ToAverage, DryRun: q.DryRun}, expect, nil)
	if err != nil {
		return res, err
	}
	for _, m := range msgs {
		var r RebalanceReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return res, fmt.Errorf("bad rebalance reply %q: %w", m.Data, err)
		}
		if r.SIDs == nil {
			r.SIDs = []string{}
		}
		res.Nodes = append(res.Nodes, r)
		res.Shed += r.Shed
	}
	if len(res.Nodes) == 0 {
		return res, c.noNodes(VerbRebalance)
	}
	slices.SortFunc(res.Nodes, func(a, b RebalanceReply) int { return cmp64(a.Node, b.Node) })
	return res, nil
}

// Message is a push to publish.
type Message struct {
	// Target is who gets the push.
	Target contract.Target
	// Key is the user, doc or session ID; empty for TargetAll.
	Key string
	// Event is the Push-Event header; empty means the default ("message").
	Event string
	// ID is the Push-Id header; empty means a fresh unique one.
	ID string
	// Data is the body, sent to clients as is (JSON) or as a JSON string.
	Data []byte
}

// PublishResult is the answer to Publish.
type PublishResult struct {
	// Subject the push was published on.
	Subject string `json:"subject"`
	// ID is the Push-Id sent.
	ID string `json:"id"`
	// Matched is how many sessions the push targeted, on the nodes that
	// reported; zero means no session matched anywhere.
	Matched int `json:"matched"`
	// Delivered is how many of them it was queued for.
	Delivered int `json:"delivered"`
	// CutOff is how many of them it cut off as slow consumers.
	CutOff int `json:"cut_off"`
	// Refused counts the nodes that refused the push on purpose, by reason
	// (contract.RefusedTooLarge); never null.
	Refused map[string]int `json:"refused"`
	// Nodes is how many nodes reported (a node reports when a session of
	// its matched).
	Nodes int `json:"nodes"`
	// Reports are the nodes' delivery reports, ordered by node; never null.
	Reports []contract.Report `json:"reports"`
	// Stream and Seq say where history stored the push (user and doc pushes
	// with history on): its position, which clients see as "seq".
	Stream string `json:"stream,omitempty"`
	Seq    string `json:"seq,omitempty"`
}

// Publish sends m on its push subject with a reply inbox and collects
// delivery reports for wait (zero means the client timeout). Nodes report
// only when at least one of their sessions matched, so with Known nodes set
// it stops early only once every known node reported.
func (c *Client) Publish(ctx context.Context, m Message, wait time.Duration) (PublishResult, error) {
	if m.ID == "" {
		m.ID = nuid.Next()
	}
	res := PublishResult{Subject: c.subjects.For(m.Target, m.Key), ID: m.ID, Refused: map[string]int{}, Reports: []contract.Report{}}
	hdr := nats.Header{}
	if m.Event != "" {
		hdr.Set(contract.HeaderEvent, m.Event)
	}
	hdr.Set(contract.HeaderID, m.ID)
	hdr.Set(contract.HeaderTimestamp, strconv.FormatInt(time.Now().UnixNano(), 10))
	if wait <= 0 {
		wait = c.timeout
	}
	// Reports go to the Push-Report header's subject; the NATS reply is
	// answered by JetStream with where it stored the push (user and doc
	// pushes, when history is on), or by the nodes otherwise.
	hdr.Set(contract.HeaderReport, reportToReply)
	msgs, _, err := c.collect(ctx, &nats.Msg{Subject: res.Subject, Header: hdr, Data: m.Data}, wait, c.known, nil)
	if err != nil && !errors.Is(err, ErrNoNodes) {
		return res, err
	}
	for _, msg := range msgs {
		var ack struct {
			Stream string `json:"stream"`
			Seq    uint64 `json:"seq"`
		}
		if json.Unmarshal(msg.Data, &ack) == nil && ack.Stream != "" {
			res.Stream, res.Seq = ack.Stream, strconv.FormatUint(ack.Seq, 10)
			continue
		}
		var r contract.Report
		if err := json.Unmarshal(msg.Data, &r); err != nil {
			return res, fmt.Errorf("bad delivery report %q: %w", msg.Data, err)
		}
		res.Reports = append(res.Reports, r)
		res.Matched += r.Matched
		res.Delivered += r.Delivered
		res.CutOff += r.CutOff
		if r.Refused != "" {
			res.Refused[r.Refused]++
		}
		res.Nodes++
	}
	slices.SortFunc(res.Reports, func(a, b contract.Report) int { return cmp64(a.Node, b.Node) })
	return res, nil
}

func (c *Client) noNodes(verb string) error {
	return fmt.Errorf("%w on %s within %s (is pushd running against this NATS with the same subject prefix?)",
		ErrNoNodes, c.subjects.Admin(verb), c.timeout)
}

// gather sends an admin request and collects replies, and the nodes that
// were expected to answer.
func (c *Client) gather(ctx context.Context, verb string, req Request, expect []int64, enough func([]byte) bool) ([]*nats.Msg, []int64, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	msgs, expected, err := c.collect(ctx, &nats.Msg{Subject: c.subjects.Admin(verb), Data: body}, c.timeout, expect, enough)
	if errors.Is(err, ErrNoNodes) {
		err = c.noNodes(verb)
	}
	return msgs, expected, err
}

// collect publishes m with a fresh reply inbox and returns the replies that
// arrive within wait, and the nodes expected to answer: those in expect plus
// the peers the replies name (every admin reply lists the live nodes its
// sender knows of). It stops early at a reply enough says is enough (nil:
// none is), or once every expected node answered, so without Consul a
// request takes a round trip, not the whole timeout. It returns ErrNoNodes
// when NATS says nobody subscribes to the subject.
func (c *Client) collect(ctx context.Context, m *nats.Msg, wait time.Duration, expect []int64, enough func([]byte) bool) ([]*nats.Msg, []int64, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	inbox := c.nc.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, nil, fmt.Errorf("subscribe to reply inbox: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	m.Reply = inbox
	if m.Header.Get(contract.HeaderReport) == reportToReply {
		m.Header.Set(contract.HeaderReport, inbox)
	}
	if err := c.nc.PublishMsg(m); err != nil {
		return nil, nil, fmt.Errorf("publish on %s: %w", m.Subject, err)
	}
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return nil, nil, fmt.Errorf("publish on %s: %w", m.Subject, err)
	}
	expected := map[int64]bool{}
	answered := map[int64]int{}
	shared := map[int64]bool{} // numbers two live nodes use: both answer
	for _, id := range expect {
		expected[id] = true
	}
	done := func() bool {
		if len(expected) == 0 {
			return false // nobody to wait for is known: wait it out
		}
		for id := range expected {
			if answered[id] == 0 || (shared[id] && answered[id] < 2) {
				return false
			}
		}
		return true
	}
	var out []*nats.Msg
	for !done() {
		r, err := sub.NextMsgWithContext(ctx)
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return out, keys(expected), ErrNoNodes
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			return out, keys(expected), nil
		case err != nil:
			return out, keys(expected), err
		}
		var who struct {
			Node   *int64  `json:"node"`
			Peers  []int64 `json:"peers"`
			Shared bool    `json:"shared"`
		}
		if json.Unmarshal(r.Data, &who) == nil && who.Node != nil {
			answered[*who.Node]++
			if who.Shared {
				shared[*who.Node] = true
			}
			for _, p := range who.Peers {
				expected[p] = true
			}
		}
		out = append(out, r)
		if enough != nil && enough(r.Data) {
			break
		}
	}
	return out, keys(expected), nil
}

func keys(m map[int64]bool) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// reportToReply in a Push-Report header stands for collect's reply inbox.
const reportToReply = "\x00reply"

func sidNum(sid string) int64 {
	n, err := strconv.ParseInt(sid, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
