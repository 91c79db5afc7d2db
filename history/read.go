package history

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/pushd/pushd/contract"
)

// Msg is one stored push as read back from a stream.
type Msg struct {
	// Seq is its position in the stream.
	Seq uint64
	// Header holds the publisher's headers.
	Header nats.Header
	// Data is its body.
	Data []byte
}

// Replay is what Replay found after a position.
type Replay struct {
	// Msgs are the pushes after the position, in order.
	Msgs []Msg
	// Recovered says Msgs are all the pushes after the position.
	Recovered bool
	// Position is the subject's position once Msgs are delivered.
	Position uint64
}

// Replay reads the pushes to target and key stored after position since,
// and whether that is all of them. Every call reads the stream: sharing
// reads among sessions is the router's job (router/replay.go), which knows
// when a read is recent enough for a session. It is false (the client must refetch its
// state) when history may have lost some: the stream was reset since (since
// is below the stream's first sequence), the subject's history is full (at
// MaxMsgsPerSubject a push after since may have been trimmed), since is older
// than MaxAge, the stream hit its byte limit past since, or more pushes follow
// since than a replay carries. A since ahead of the stream is ErrFuture.
func (h *History) Replay(ctx context.Context, t contract.Target, key string, since uint64) (Replay, error) {
	if !h.Available() {
		h.metrics.replays.WithLabelValues("unavailable").Inc()
		return Replay{}, ErrUnavailable
	}
	st := h.stream(t)
	info, err := h.streamInfo(ctx, st, since)
	if err != nil {
		h.metrics.replays.WithLabelValues("error").Inc()
		return Replay{}, err
	}
	if since > info.lastSeq {
		h.metrics.replays.WithLabelValues("future").Inc()
		return Replay{}, ErrFuture
	}
	msgs, pending, full, err := h.read(ctx, st, h.subjects.For(t, key), since+1, h.cfg.ReplayMaxMsgs, h.cfg.ReplayMaxBytes)
	r := Replay{Msgs: msgs, Position: max(since, info.lastSeq)}
	if n := len(msgs); n > 0 {
		r.Position = max(r.Position, msgs[n-1].Seq)
	}
	r.Recovered = err == nil && !full && since+1 >= st.firstSeq.Load() && // no reset, and not more than a replay carries
		pending < uint64(st.limits.MaxMsgsPerSubject) && // nothing trimmed by the per-subject limit
		since+1 >= info.ageSeq && // nothing expired
		!(since+1 < info.firstSeq && h.cfg.MaxBytes > 0 && info.bytes*10 >= uint64(h.cfg.MaxBytes)*9) // nor pushed out
	switch {
	case err != nil:
		h.metrics.replays.WithLabelValues("error").Inc()
	case r.Recovered:
		h.metrics.replays.WithLabelValues("recovered").Inc()
		h.metrics.replayed.Add(float64(len(r.Msgs)))
	default:
		h.metrics.replays.WithLabelValues("not_recovered").Inc()
	}
	return r, err
}

// Range returns the pushes to target and key with after < seq <= through:
// a node fills a gap in what it received with it.
func (h *History) Range(ctx context.Context, t contract.Target, key string, after, through uint64) ([]Msg, error) {
	if through <= after {
		return nil, nil
	}
	if !h.Available() {
		return nil, ErrUnavailable
	}
	limit := int(min(through-after, uint64(h.cfg.ReplayMaxMsgs)))
	msgs, _, _, err := h.read(ctx, h.stream(t), h.subjects.For(t, key), after+1, limit, h.cfg.ReplayMaxBytes)
	for i, m := range msgs {
		if m.Seq > through {
			return msgs[:i], err
		}
	}
	return msgs, err
}

// Read returns up to limit pushes to target t and key stored after
// position after, oldest first, and whether more follow, for tools such as
// pushctl; nodes read through their History. prefix is the subject prefix
// ("" means "push"). It costs one subscription and one batched direct get
// on nc.
func Read(ctx context.Context, nc *nats.Conn, prefix string, t contract.Target, key string, after uint64, limit int) (msgs []Msg, more bool, err error) {
	if t != contract.TargetUser && t != contract.TargetDoc {
		return nil, false, fmt.Errorf("pushd: history: only user and doc pushes are kept, not %s", t)
	}
	var reqs requests
	if err := reqs.start(nc); err != nil {
		return nil, false, err
	}
	defer reqs.close()
	users, docs := StreamNames(prefix)
	stream := users
	if t == contract.TargetDoc {
		stream = docs
	}
	msgs, _, more, err = reqs.fetch(ctx, nc, stream, contract.NewSubjects(prefix).For(t, key), after+1, limit, DefaultReplayMaxBytes)
	return msgs, more, err
}

// directRequest is JetStream's direct get request (batch form).
type directRequest struct {
	Seq       uint64     `json:"seq,omitempty"`
	NextFor   string     `json:"next_by_subj,omitempty"`
	Batch     int        `json:"batch,omitempty"`
	MaxBytes  int        `json:"max_bytes,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
}

// read fetches up to limit pushes (and about maxBytes) on subject from
// sequence from on, in one batched direct get. pending is how many pushes
// on subject there are from from on in all; full says there were more than
// limit or maxBytes allowed.
func (h *History) read(ctx context.Context, st *stream, subject string, from uint64, limit, maxBytes int) (msgs []Msg, pending uint64, full bool, err error) {
	h.metrics.reads.Inc()
	return h.reqs.fetch(ctx, h.nc, st.name, subject, from, limit, maxBytes)
}

// fetch is read on any stream, for History and Read alike.
func (r *requests) fetch(ctx context.Context, nc *nats.Conn, stream, subject string, from uint64, limit, maxBytes int) (msgs []Msg, pending uint64, full bool, err error) {
	// One more than limit tells "exactly limit" from "more".
	body, _ := json.Marshal(directRequest{Seq: from, NextFor: subject, Batch: limit + 1, MaxBytes: maxBytes})
	replies, err := r.do(ctx, nc, "$JS.API.DIRECT.GET."+stream, body)
	if err != nil {
		return nil, 0, false, err
	}
	size := 0
	for i, m := range replies {
		seq, err := strconv.ParseUint(m.Header.Get(contract.HeaderStreamSequence), 10, 64)
		if err != nil {
			return nil, 0, false, fmt.Errorf("pushd: history: direct get answered without a sequence")
		}
		if i == 0 {
			np, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			pending = np + 1
		}
		if len(msgs) == limit {
			full = true
			break
		}
		size += len(m.Data)
		msgs = append(msgs, Msg{Seq: seq, Header: m.Header, Data: m.Data})
	}
	if uint64(len(msgs)) < pending && !full {
		full = size >= maxBytes // cut by max_bytes
	}
	return msgs, pending, full, nil
}

// streamInfo returns what a replay from since needs to know of st, fetched
// again once infoTTL old, or at once when since is ahead of what is known
// (another node may have given the client a fresher position).
func (h *History) streamInfo(ctx context.Context, st *stream, since uint64) (streamInfo, error) {
	st.infoMu.Lock()
	defer st.infoMu.Unlock()
	if time.Since(st.info.at) < infoTTL && since <= st.info.lastSeq {
		return st.info, nil
	}
	h.metrics.reads.Inc()
	s, err := h.js.Stream(ctx, st.name)
	if err != nil {
		return streamInfo{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return streamInfo{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	in := streamInfo{at: time.Now(), firstSeq: info.State.FirstSeq, lastSeq: info.State.LastSeq, bytes: info.State.Bytes}
	st.see(in.lastSeq)
	if in.ageSeq, err = h.ageSeq(ctx, st); err != nil {
		return streamInfo{}, err
	}
	st.info = in
	return in, nil
}

// ageSeq is the first sequence stored within st's MaxAge (less a tenth, so
// a push about to expire counts as gone): pushes before it may have expired.
func (h *History) ageSeq(ctx context.Context, st *stream) (uint64, error) {
	since := time.Now().Add(-st.limits.MaxAge * 9 / 10).UTC()
	h.metrics.reads.Inc()
	body, _ := json.Marshal(directRequest{StartTime: &since})
	replies, err := h.reqs.do(ctx, h.nc, "$JS.API.DIRECT.GET."+st.name, body)
	if err != nil {
		return 0, err
	}
	if len(replies) == 0 { // nothing stored that recently
		return st.position.Load() + 1, nil
	}
	return strconv.ParseUint(replies[0].Header.Get(contract.HeaderStreamSequence), 10, 64)
}

// requests multiplexes multi-message replies over one inbox subscription,
// the way nats.go multiplexes requests, so a replay costs one publish and
// no subscription of its own.
type requests struct {
	mu     sync.Mutex
	prefix string
	sub    *nats.Subscription
	open   map[string]chan *nats.Msg
}

func (r *requests) start(nc *nats.Conn) error {
	r.prefix = nc.NewInbox() + "."
	r.open = make(map[string]chan *nats.Msg)
	sub, err := nc.Subscribe(r.prefix+"*", func(m *nats.Msg) {
		r.mu.Lock()
		ch := r.open[m.Subject[len(r.prefix):]]
		r.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default: // a reply beyond the batch asked for; ignore
			}
		}
	})
	if err != nil {
		return fmt.Errorf("pushd: history: %w", err)
	}
	r.mu.Lock()
	r.sub = sub
	r.mu.Unlock()
	return nil
}

func (r *requests) close() {
	r.mu.Lock()
	sub := r.sub
	r.sub = nil
	r.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
}

// do publishes a direct get and collects the messages it answers, up to
// the end of the batch (status 204), none (404), or an error status.
func (r *requests) do(ctx context.Context, nc *nats.Conn, subject string, body []byte) ([]*nats.Msg, error) {
	var req directRequest
	_ = json.Unmarshal(body, &req)
	token := nuid.Next()
	ch := make(chan *nats.Msg, max(req.Batch, 1)+2)
	r.mu.Lock()
	if r.sub == nil {
		r.mu.Unlock()
		return nil, ErrUnavailable
	}
	r.open[token] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.open, token)
		r.mu.Unlock()
	}()
	if err := nc.PublishRequest(subject, r.prefix+token, body); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var out []*nats.Msg
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: direct get: %v", ErrUnavailable, ctx.Err())
		case m := <-ch:
			switch status := m.Header.Get("Status"); status {
			case "":
				out = append(out, m)
				if req.Batch == 0 {
					return out, nil // a single get
				}
			case "204": // end of batch
				return out, nil
			case "404": // nothing there
				return out, nil
			case "503": // no responders: no stream, or no direct access
				return nil, ErrUnavailable
			default:
				return nil, fmt.Errorf("%w: direct get: %s %s", ErrUnavailable, status, m.Header.Get("Description"))
			}
		}
	}
}
