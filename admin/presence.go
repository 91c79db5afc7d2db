package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/pushd/pushd/contract"
)

// PresencePage is a page of a doc's presence (docs/NATS.md).
type PresencePage = contract.PresencePage

// Presence asks for a page of doc's members, or with q.Stats its counts
// only. Presence is not an admin verb: the request goes where backends ask
// too, <prefix>.presence.query.<doc>, and one node holding the doc answers
// from its copy of the cluster's members. No node holding it is an empty
// presence at once (Node -1), not an error.
func (c *Client) Presence(ctx context.Context, doc string, q contract.PresenceQuery) (PresencePage, error) {
	empty := PresencePage{Doc: doc, Node: -1}
	if !q.Stats {
		empty.Members = []contract.Member{}
	}
	body, err := json.Marshal(q)
	if err != nil {
		return empty, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	subject := c.subjects.PresenceQuery(doc)
	m, err := c.nc.RequestWithContext(ctx, subject, body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return empty, nil
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return empty, fmt.Errorf("%w on %s within %s (a node holds the doc but did not answer; is it overloaded?)", ErrNoNodes, subject, c.timeout)
	case err != nil:
		return empty, fmt.Errorf("presence of %s: %w", doc, err)
	}
	var p PresencePage
	if err := json.Unmarshal(m.Data, &p); err != nil {
		return empty, fmt.Errorf("bad presence reply %q: %w", m.Data, err)
	}
	if p.Error != "" {
		return p, fmt.Errorf("node %d: %s: %s", p.Node, p.Error, p.Message)
	}
	if p.Members == nil && !q.Stats {
		p.Members = []contract.Member{}
	}
	return p, nil
}
