package node

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The transport of an HTTP session (SSE or long-polling): a log of frames
// with cursors, read by at most one reader at a time.
//
// The session's writer hands frames to the log (write), which never blocks
// on the client. Each frame gets the next cursor (1, 2, ...). A reader, an
// SSE stream or a poll, on this node or forwarded from another, pulls the
// frames after the cursor it confirms: a poll's cursor acknowledges what the
// previous poll returned, which is released; an SSE stream's cursor is what
// it wrote, kept (up to the queue limits) so a stream that reconnects with
// Last-Event-ID continues where the browser stopped. Frames the client has
// not confirmed are the session's backlog, counted in its queue's limits:
// past --max-queued-bytes or 1024 frames the session is cut off as a slow
// consumer (4008), as on a WebSocket. When the session ends, a close frame ({"type":"close",...}) is
// the log's last frame; the log lingers (a tombstone) for ping_timeout so
// the client can still read it.

// Transport names.
const (
	transportSSE  = "sse"
	transportPoll = "poll"
)

// errLogClosed is a write to a session's log after the session ended.
var errLogClosed = errors.New("pushd: http session ended")

// logEntry is one frame of the log.
type logEntry struct {
	f *frame
	// upos is the user's position once the client processed f: the seq of
	// the last user push up to f (or hello's seq), 0 when unknown. Cursors
	// carry it so a client whose session is gone resumes from it.
	upos uint64
}

// httpTransport is an HTTP session's transport.
type httpTransport struct {
	s      *session
	kind   string // transportSSE or transportPoll
	secret string
	// userKey is the subjectKey of the session's user: pushes on it move
	// upos.
	userKey string

	// in serializes the session's upstream frames (send) and its end: it is
	// the session's read side (session.go's read-side fields are touched
	// under it). Never held while ending the transport.
	in sync.Mutex

	mu sync.Mutex
	// log holds the frames with cursors base+1 .. base+len(log).
	log  []logEntry
	base uint64
	// sent is the last cursor the reader confirmed; entries up to it are
	// retained (SSE) or already released (poll: base == sent).
	sent      uint64
	bytes     int // bytes of the log's frames
	pendBytes int // bytes of the entries after sent: the backlog
	upos      uint64
	// gen counts readers: a pull that starts an attachment gets the next
	// one, and a pull of an older one is told it was replaced.
	gen    uint64
	waiter chan struct{} // wakes the waiting pull; nil when none waits
	ended  bool
	// endedAt is when the session ended (UnixNano); the tombstone is
	// dropped ping_timeout later.
	endedAt int64
	// retry is the close frame's retry hint (ms), once ended.
	retry int64

	finished atomic.Bool
	// registered and endedEarly are guarded by httpSessions.mu: whether the
	// session is in the registry's live count, and whether it ended before
	// it got there.
	registered, endedEarly bool
}

func (t *httpTransport) name() string { return t.kind }

// write appends frames to the log. It takes whatever the session's queue
// admitted: the queue's limits count the log's backlog too (enqueue), and
// what skips them (hello, a replay) may take it past them once, as on a
// WebSocket.
func (t *httpTransport) write(frames []*frame) error {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return errLogClosed
	}
	for _, f := range frames {
		t.appendLocked(f)
	}
	t.trimLocked()
	t.backlogLocked()
	t.wakeLocked()
	t.mu.Unlock()
	return nil
}

// backlogLocked tells the session's queue what the log holds unconfirmed.
// Lock must be held.
func (t *httpTransport) backlogLocked() {
	t.s.backlog.Store(int64(t.pendBytes))
	t.s.backlogFrames.Store(int64(len(t.log)) - int64(t.sent-t.base))
}

// appendLocked adds f (a new reference) to the log. Lock must be held.
func (t *httpTransport) appendLocked(f *frame) {
	f.retain()
	switch {
	case f.seq != 0 && f.subject == t.userKey:
		t.upos = max(t.upos, f.seq)
	case t.base == 0 && len(t.log) == 0: // hello: where the user stands
		var h struct {
			Seq string `json:"seq"`
		}
		if json.Unmarshal(f.payload(), &h) == nil {
			if p, err := strconv.ParseUint(h.Seq, 10, 64); err == nil {
				t.upos = max(t.upos, p)
			}
		}
	}
	size := len(f.payload())
	t.log = append(t.log, logEntry{f: f, upos: t.upos})
	t.bytes += size
	t.pendBytes += size
}

// trimLocked drops confirmed frames an SSE stream keeps for a reconnect
// once the log is past the queue limits. Lock must be held.
func (t *httpTransport) trimLocked() {
	cfg := &t.s.node.cfg
	for t.base < t.sent && (t.bytes > cfg.MaxQueuedBytes || len(t.log) > cfg.MaxQueuedFrames) {
		t.dropFirstLocked()
	}
}

// dropFirstLocked releases the log's first frame. Lock must be held.
func (t *httpTransport) dropFirstLocked() {
	e := t.log[0]
	t.log[0] = logEntry{}
	t.log = t.log[1:]
	t.base++
	t.bytes -= len(e.f.payload())
	e.f.release()
}

// wakeLocked wakes the waiting pull, if any. Lock must be held.
func (t *httpTransport) wakeLocked() {
	if t.waiter != nil {
		select {
		case t.waiter <- struct{}{}:
		default:
		}
	}
}

// last is the cursor of the log's last frame. Lock must be held.
func (t *httpTransport) lastLocked() uint64 { return t.base + uint64(len(t.log)) }

// end appends the close frame and ends the session.
func (t *httpTransport) end(code CloseCode, reason string) { t.finish(code, reason) }

// abort is end: the log never blocks, so there is nothing to cut short.
func (t *httpTransport) abort(code CloseCode, reason string) { t.finish(code, reason) }

// close ends the session with a close frame saying why, from the reason
// the session recorded.
func (t *httpTransport) close() {
	code, reason := CloseCode(1006), "session closed"
	switch t.s.endReasonOr(ReasonClient) {
	case ReasonDrain:
		code, reason = CloseServiceRestart, t.s.node.drainReason()
	case ReasonRebalance:
		code, reason = CloseServiceRestart, t.s.node.rebalanceReason()
	case ReasonSlowConsumer:
		code, reason = CloseSlowConsumer, "slow consumer: outbound queue full"
	case ReasonError:
		code, reason = 1011, "server error"
	}
	t.finish(code, reason)
}

// finish ends the session once: the close frame goes last in the log, a
// waiting reader wakes to read it, and the session leaves the node.
func (t *httpTransport) finish(code CloseCode, reason string) {
	if !t.finished.CompareAndSwap(false, true) {
		return
	}
	n := t.s.node
	if code == CloseHeartbeatTimeout {
		reason = "no stream or poll within ping_timeout"
	}
	retry := retryHint(code)
	cf := encodeClose(code, reason, retry)
	t.mu.Lock()
	t.appendLocked(cf)
	cf.release()
	t.ended, t.endedAt, t.retry = true, time.Now().UnixNano(), retry
	t.wakeLocked()
	t.mu.Unlock()
	// The read side must not be in a frame while the session leaves its
	// indexes (a join would re-add it to a doc).
	t.in.Lock()
	n.closed(t.s)
	t.in.Unlock()
	n.http.ended(t)
	n.readers.Done()
}

// encodeClose builds the close frame HTTP sessions end with, where a
// WebSocket has its close frame:
// {"type":"close","close_code":4008,"reason":"..."}, with "retry"
// (milliseconds) when the client should reconnect after a pause. The
// field is not "code", which error frames use for a string.
func encodeClose(code CloseCode, reason string, retry int64) *frame {
	f := newFrame()
	b := strconv.AppendUint(append(f.buf, `{"type":"close","close_code":`...), uint64(code), 10)
	b = appendString(append(b, `,"reason":`...), reason)
	if retry > 0 {
		b = strconv.AppendInt(append(b, `,"retry":`...), retry, 10)
	}
	f.buf = append(b, '}')
	f.seal(opText)
	return f
}

// retryHint is how long (ms) a client should wait before reconnecting after
// a close with code: a draining node's clients spread over a second or so.
func retryHint(code CloseCode) int64 {
	if code == CloseServiceRestart {
		return 500 + rand.Int64N(1000)
	}
	return 0
}

// pullRequest is a reader's request for the frames after a cursor.
type pullRequest struct {
	// gen is the reader's attachment, 0 for a new one (a poll, or a
	// stream's first pull).
	gen    uint64
	cursor uint64
	// wait is how long to hold the pull when there is nothing to read.
	wait time.Duration
	// poll: the cursor acknowledges, and the frames up to it are released;
	// else (SSE) they are kept for a reconnect.
	poll bool
	// maxBytes bounds the frames returned (at least one is), 0 for no
	// bound: a forwarded answer must fit a NATS message.
	maxBytes int
}

// item is one frame a pull returns.
type item struct {
	cursor, upos uint64
	data         []byte
}

// answer is what a node answers a request for an HTTP session (a pull, a
// send or a close), here or forwarded from another node. An answer that is
// not OK carries an error code and message.
type answer struct {
	status        int
	code, message string
	// A pull's: the reader's attachment, the frames, whether the last is
	// the close frame, and the close frame's retry hint (ms).
	gen     uint64
	items   []item
	ended   bool
	retry   int64
	release func()
	// body is a send's: the reply frames, a JSON array.
	body []byte
}

func (p *answer) done() {
	if p.release != nil {
		p.release()
		p.release = nil
	}
}

func pullError(status int, code, message string) answer {
	return answer{status: status, code: code, message: message}
}

// pull answers a reader: the frames after req.cursor, at once when there
// are some (or the session ended), else when some come, within req.wait.
// A pull of a reader that another replaced is answered 409 replaced.
func (t *httpTransport) pull(ctx context.Context, req pullRequest) answer {
	t.mu.Lock()
	gen := req.gen
	if gen == 0 {
		t.gen++
		gen = t.gen
		t.wakeLocked() // a waiting reader learns it was replaced
	} else if gen != t.gen {
		t.mu.Unlock()
		return pullError(http.StatusConflict, errReplaced, "another stream or poll took over this session")
	}
	last := t.lastLocked()
	switch {
	case req.cursor > last:
		t.mu.Unlock()
		return pullError(http.StatusBadRequest, errBadCursor, "cursor "+strconv.FormatUint(req.cursor, 10)+" is ahead of this session")
	case req.cursor < t.base:
		t.mu.Unlock()
		return pullError(http.StatusConflict, errCursorLost, "the frames after cursor "+strconv.FormatUint(req.cursor, 10)+
			" are no longer kept: open a new session with last_event_id (or since) to resume")
	case t.ended && req.cursor == last:
		t.mu.Unlock()
		return pullError(http.StatusGone, errSessionClosed, "the session is closed and its close frame was read")
	}
	t.confirmLocked(req.cursor, req.poll)
	if req.cursor == last && !t.ended && req.wait > 0 {
		ch := make(chan struct{}, 1)
		t.waiter = ch
		t.mu.Unlock()
		t.s.lastSeen.Store(time.Now().UnixNano())
		if req.poll {
			t.s.node.http.polls.Add(1)
		}
		timer := time.NewTimer(req.wait)
		for waiting := true; waiting; {
			select {
			case <-ch:
			case <-timer.C:
				waiting = false
			case <-ctx.Done():
				waiting = false
			}
			if waiting {
				t.mu.Lock()
				waiting = t.gen == gen && !t.ended && t.lastLocked() == req.cursor
				t.mu.Unlock()
			}
		}
		timer.Stop()
		if req.poll {
			t.s.node.http.polls.Add(-1)
		}
		t.s.lastSeen.Store(time.Now().UnixNano())
		t.mu.Lock()
		if t.waiter == ch {
			t.waiter = nil
		}
		if t.gen != gen {
			t.mu.Unlock()
			return pullError(http.StatusConflict, errReplaced, "another stream or poll took over this session")
		}
		// Only this reader confirms, and trimming keeps what is after its
		// cursor: base <= cursor still.
	}
	p := t.takeLocked(req.cursor, req.maxBytes)
	p.gen = gen
	t.mu.Unlock()
	t.s.lastSeen.Store(time.Now().UnixNano())
	return p
}

// confirmLocked records that the reader holds everything up to cursor:
// a poll's frames are released, a stream's kept for a reconnect. A stream
// that reconnects from an earlier cursor gets the frames after it again.
// Lock must be held.
func (t *httpTransport) confirmLocked(cursor uint64, poll bool) {
	// pendBytes counts the entries after sent.
	for c := t.sent; c < cursor; c++ {
		t.pendBytes -= len(t.log[c-t.base].f.payload())
	}
	for c := t.sent; c > cursor; c-- {
		t.pendBytes += len(t.log[c-1-t.base].f.payload())
	}
	t.sent = cursor
	if poll {
		for t.base < cursor {
			t.dropFirstLocked()
		}
	} else {
		t.trimLocked()
	}
	t.backlogLocked()
}

// takeLocked returns the frames after cursor, at least one and at most
// maxBytes of them when maxBytes is set, each with a new reference that the
// result's release drops. Lock must be held.
func (t *httpTransport) takeLocked(cursor uint64, maxBytes int) answer {
	p := answer{status: http.StatusOK}
	k := int(cursor - t.base)
	if k >= len(t.log) {
		return p
	}
	entries := t.log[k:]
	if maxBytes > 0 {
		size := 0
		for i, e := range entries {
			if size += len(e.f.payload()) + itemOverhead; i > 0 && size > maxBytes {
				entries = entries[:i]
				break
			}
		}
	}
	p.items = make([]item, len(entries))
	frames := make([]*frame, len(entries))
	for i, e := range entries {
		e.f.retain()
		frames[i] = e.f
		p.items[i] = item{cursor: cursor + uint64(i) + 1, upos: e.upos, data: e.f.payload()}
	}
	if k+len(entries) == len(t.log) { // the close frame, if any, is in
		p.ended, p.retry = t.ended, t.retry
	}
	p.release = func() {
		for _, f := range frames {
			f.release()
		}
	}
	return p
}

// itemOverhead is what an item costs in a forwarded answer besides its
// frame (encodeAnswer's item line), at most.
const itemOverhead = 64

// drop releases the whole log once the tombstone is forgotten.
func (t *httpTransport) drop() {
	t.mu.Lock()
	for len(t.log) > 0 {
		t.dropFirstLocked()
	}
	t.mu.Unlock()
}

// Cursors as clients see them: "<cursor>" or "<cursor>-<upos>", where upos
// is the user's position once the client processed that frame, so a client
// whose session is gone can resume its user's pushes from its last cursor
// alone (an SSE event ID, which a browser keeps for us).

// formatCursor appends the cursor string of an item.
func formatCursor(b []byte, cursor, upos uint64) []byte {
	b = strconv.AppendUint(b, cursor, 10)
	if upos != 0 {
		b = strconv.AppendUint(append(b, '-'), upos, 10)
	}
	return b
}

// maxCursorLength bounds a cursor string: two uint64s and a dash.
const maxCursorLength = 41

// parseCursor parses "<cursor>[-<upos>]"; the empty string is cursor 0.
func parseCursor(s string) (cursor, upos uint64, err error) {
	if s == "" {
		return 0, 0, nil
	}
	if len(s) > maxCursorLength {
		return 0, 0, errors.New("cursor too long")
	}
	c, u, dash := cutByte(s, '-')
	if cursor, err = parseDecimal(c); err != nil {
		return 0, 0, err
	}
	if dash {
		if upos, err = parseDecimal(u); err != nil {
			return 0, 0, err
		}
	}
	return cursor, upos, nil
}

// parseDecimal parses a plain unsigned decimal: no sign, no spaces.
func parseDecimal(s string) (uint64, error) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, errors.New("not a decimal number")
	}
	return strconv.ParseUint(s, 10, 64)
}

func cutByte(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
