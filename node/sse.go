package node

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/pushd/pushd/contract"
)

// SSE: GET /http/sse?sid=&secret= streams a session's frames as
// server-sent events (text/event-stream), each frame one event:
//
//	id: 7-4031
//	data: {"type":"push","target":"user","seq":"4031",...}
//
// The id is the frame's cursor (httplog.go). A browser's EventSource sends
// the last one back as Last-Event-ID when it reconnects on its own, and the
// stream continues after it: nothing lost, nothing twice. A comment line
// (": keepalive") goes out when there was nothing to send for ping_interval,
// so proxies see traffic, and the open stream is the session's heartbeat.
// The session's close frame is the last event; the stream ends after it.
//
// The stream may reach any node: one for a session elsewhere is relayed,
// each batch of frames a forwarded pull (forward.go).

// serveSSE serves GET /http/sse.
func (n *Node) serveSSE(w http.ResponseWriter, r *http.Request) {
	sid, secret, ok := n.sessionParams(w, r)
	if !ok {
		return
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	cursor, _, err := parseCursor(last)
	if err != nil {
		n.httpError(w, http.StatusBadRequest, errBadCursor, "Last-Event-ID "+quote(last)+" is not an event ID of this stream")
		return
	}
	ctx := r.Context()
	if contract.SessionNode(sid) != n.cfg.NodeID {
		// A relayed stream ends when this node drains: its client
		// reconnects (with Last-Event-ID) to another node.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(n.http.ctx, cancel)()
	}
	req := request{Op: reqPull, SID: sid, Secret: secret, Kind: transportSSE, Cursor: cursor}
	a := n.dispatch(ctx, req)
	if a.status != http.StatusOK {
		n.answerError(w, a)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events on at once
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	n.http.streams.Add(1)
	defer n.http.streams.Add(-1)
	// The browser's reconnection delay, well within ping_timeout, so a
	// dropped stream comes back before its session expires.
	buf := strconv.AppendInt(append(make([]byte, 0, 1024), "retry: "...), ms(reconnectHint(n.cfg.PingInterval+n.cfg.PingGrace)), 10)
	buf = append(buf, '\n')
	req.WaitMS = ms(n.cfg.PingInterval)
	for first := true; ; first = false {
		if !first {
			buf = buf[:0]
		}
		if len(a.items) == 0 {
			buf = append(buf, ": keepalive\n\n"...)
		}
		for i, it := range a.items {
			retry := int64(0)
			if a.ended && i == len(a.items)-1 {
				retry = a.retry
			}
			buf = appendEvent(buf, it, retry)
			req.Cursor = it.cursor
		}
		ended := a.ended
		req.Gen = a.gen
		a.done()
		_ = rc.SetWriteDeadline(time.Now().Add(n.cfg.WriteTimeout))
		if _, err := w.Write(buf); err != nil {
			return
		}
		if rc.Flush() != nil || ended {
			return
		}
		if a = n.dispatch(ctx, req); a.status != http.StatusOK {
			a.done()
			if a.code == errReplaced {
				cf := encodeClose(CloseReplaced, "replaced: another stream or poll reads this session now; do not reconnect this one", 0)
				_, _ = w.Write(appendEvent(buf[:0], item{data: cf.payload()}, 0))
				cf.release()
				_ = rc.Flush()
			} else if ctx.Err() != nil && r.Context().Err() == nil {
				// This node drains: reconnect elsewhere soon.
				_, _ = w.Write([]byte("retry: " + strconv.FormatInt(retryHint(CloseServiceRestart), 10) + "\n\n"))
				_ = rc.Flush()
			}
			return
		}
	}
}

// reconnectHint is the retry an SSE stream starts with: a quarter of the
// session's ping_timeout, between 250ms and 3s (browsers wait 3s by
// default).
func reconnectHint(timeout time.Duration) time.Duration {
	return min(max(timeout/4, 250*time.Millisecond), 3*time.Second)
}

// appendEvent appends one server-sent event: retry (when set), the item's
// cursor as its id (when it has one) and its frame as data. A frame's JSON
// can hold line breaks only as whitespace (a push's data is embedded
// verbatim), so each line becomes a data line, which the client's parser
// joins back with "\n": the same JSON.
func appendEvent(b []byte, it item, retry int64) []byte {
	if retry > 0 {
		b = strconv.AppendInt(append(b, "retry: "...), retry, 10)
		b = append(b, '\n')
	}
	if it.cursor != 0 {
		b = formatCursor(append(b, "id: "...), it.cursor, it.upos)
		b = append(b, '\n')
	}
	data := it.data
	for {
		b = append(b, "data: "...)
		i := 0
		for i < len(data) && data[i] != '\n' && data[i] != '\r' {
			i++
		}
		b = append(append(b, data[:i]...), '\n')
		if i == len(data) {
			break
		}
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(b, '\n')
}
