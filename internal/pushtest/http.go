package pushtest

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushd/pushd/client"
)

// Helpers for a node's HTTP transports (SSE and long-polling), as a plain
// net/http client uses them: POST /http/connect, then GET /http/sse or
// /http/poll and POST /http/send with the session's sid and secret.

// HTTPSession is one HTTP session, reached through Base (any node: requests
// for a session elsewhere are forwarded).
type HTTPSession struct {
	Base      string // http://host:port
	SID       string `json:"sid"`
	Secret    string `json:"secret"`
	Node      int64  `json:"node"`
	User      string `json:"user"`
	Transport string `json:"transport"`
	URL       string `json:"url"`
}

// HTTPConnect opens a dev session for user on the node at base, with
// transport "sse" or "poll" and the extra connect body fields in body
// (JSON, may be empty).
func HTTPConnect(t testing.TB, base, transport, user, body string) *HTTPSession {
	t.Helper()
	status, resp := HTTPDo(t, "POST", base+"/http/connect?transport="+transport+"&user="+url.QueryEscape(user), body)
	if status != http.StatusOK {
		t.Fatalf("connect %s %s: %d %s", transport, user, status, resp)
	}
	h := &HTTPSession{Base: base}
	if err := json.Unmarshal([]byte(resp), h); err != nil || h.SID == "" || h.Secret == "" {
		t.Fatalf("connect answer %s: %v", resp, err)
	}
	return h
}

// Via is the same session reached through another node.
func (h *HTTPSession) Via(base string) *HTTPSession {
	c := *h
	c.Base = base
	return &c
}

// query is the session's sid and secret as query parameters.
func (h *HTTPSession) query() string {
	return "sid=" + h.SID + "&secret=" + url.QueryEscape(h.Secret)
}

// HTTPDo sends a request with body (none when empty) and returns the status
// and the body.
func HTTPDo(t testing.TB, method, u, body string, header ...string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(Ctx(t), method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, u, err)
	}
	return resp.StatusCode, string(b)
}

// SendRaw posts body to /http/send and returns the status and the answer.
func (h *HTTPSession) SendRaw(t testing.TB, body string) (int, string) {
	t.Helper()
	return HTTPDo(t, "POST", h.Base+"/http/send?"+h.query(), body)
}

// Send posts one frame and returns the replies; anything but 200 fails the
// test.
func (h *HTTPSession) Send(t testing.TB, frame string) []client.Frame {
	t.Helper()
	status, body := h.SendRaw(t, frame)
	if status != http.StatusOK {
		t.Fatalf("send %s: %d %s", frame, status, body)
	}
	var out []client.Frame
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("send %s: answer %s: %v", frame, body, err)
	}
	return out
}

// PollAnswer is a poll's answer.
type PollAnswer struct {
	Cursor string            `json:"cursor"`
	Frames []json.RawMessage `json:"frames"`
}

// Decoded is the answer's frames, decoded.
func (p PollAnswer) Decoded(t testing.TB) []client.Frame {
	t.Helper()
	out := make([]client.Frame, len(p.Frames))
	for i, raw := range p.Frames {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			t.Fatalf("frame %s: %v", raw, err)
		}
	}
	return out
}

// PollRaw polls with cursor and wait (ms; negative leaves it out).
func (h *HTTPSession) PollRaw(t testing.TB, cursor string, waitMS int) (int, string) {
	t.Helper()
	u := h.Base + "/http/poll?" + h.query() + "&cursor=" + url.QueryEscape(cursor)
	if waitMS >= 0 {
		u += "&wait=" + strconv.Itoa(waitMS)
	}
	return HTTPDo(t, "GET", u, "")
}

// Poll polls and decodes the answer; anything but 200 fails the test.
func (h *HTTPSession) Poll(t testing.TB, cursor string, waitMS int) PollAnswer {
	t.Helper()
	status, body := h.PollRaw(t, cursor, waitMS)
	if status != http.StatusOK {
		t.Fatalf("poll cursor %q: %d %s", cursor, status, body)
	}
	var p PollAnswer
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("poll answer %s: %v", body, err)
	}
	return p
}

// PollUntil polls from cursor until the frames gathered satisfy done, and
// returns them with the last cursor.
func (h *HTTPSession) PollUntil(t testing.TB, cursor string, done func([]client.Frame) bool) ([]client.Frame, string) {
	t.Helper()
	var got []client.Frame
	deadline := time.Now().Add(10 * time.Second)
	for !done(got) {
		if time.Now().After(deadline) {
			t.Fatalf("poll: gave up after 10s with %d frames: %+v", len(got), got)
		}
		p := h.Poll(t, cursor, 1000)
		got = append(got, p.Decoded(t)...)
		cursor = p.Cursor
	}
	return got, cursor
}

// SSEEvent is one server-sent event.
type SSEEvent struct {
	ID    string
	Data  string
	Retry string
}

// Frame decodes the event's data.
func (e SSEEvent) Frame(t testing.TB) client.Frame {
	t.Helper()
	var f client.Frame
	if err := json.Unmarshal([]byte(e.Data), &f); err != nil {
		t.Fatalf("event data %q: %v", e.Data, err)
	}
	return f
}

// SSE is an open event stream.
type SSE struct {
	Resp     *http.Response
	events   chan SSEEvent
	comments chan struct{}
	done     chan struct{}
	stop     chan struct{}
	once     sync.Once
}

// Stream opens the session's event stream, with Last-Event-ID when
// lastEventID is not empty; it fails the test unless the answer is 200
// text/event-stream. The stream is closed at the end of the test.
func (h *HTTPSession) Stream(t testing.TB, lastEventID string) *SSE {
	t.Helper()
	status, resp, s := h.StreamRaw(t, lastEventID)
	if s == nil {
		t.Fatalf("sse: %d %s", status, resp)
	}
	return s
}

// StreamRaw is Stream returning the status and body of an answer that is
// not a stream instead of failing.
func (h *HTTPSession) StreamRaw(t testing.TB, lastEventID string) (int, string, *SSE) {
	t.Helper()
	req, err := http.NewRequest("GET", h.Base+"/http/sse?"+h.query(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("sse: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), nil
	}
	s := &SSE{Resp: resp, events: make(chan SSEEvent, 1024), comments: make(chan struct{}, 1024), done: make(chan struct{}), stop: make(chan struct{})}
	go s.read()
	t.Cleanup(s.Close)
	return resp.StatusCode, "", s
}

// read parses the stream (the WHATWG event-stream format) until it ends.
func (s *SSE) read() {
	defer close(s.done)
	defer close(s.events)
	br := bufio.NewReader(s.Resp.Body)
	var ev SSEEvent
	var data []string
	hasData := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch {
		case line == "":
			if hasData {
				ev.Data = strings.Join(data, "\n")
				select {
				case s.events <- ev:
				case <-s.stop:
					return
				}
			}
			ev, data, hasData = SSEEvent{ID: ev.ID}, nil, false
		case field == "":
			select {
			case s.comments <- struct{}{}:
			default:
			}
		case field == "id":
			ev.ID = value
		case field == "data":
			data, hasData = append(data, value), true
		case field == "retry":
			ev.Retry = value
		}
	}
}

// Next returns the next event; the test fails after 10s or if the stream
// ends first.
func (s *SSE) Next(t testing.TB) SSEEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("sse: the stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("sse: no event within 10s")
	}
	return SSEEvent{}
}

// NextFrame returns the next event's frame and its ID.
func (s *SSE) NextFrame(t testing.TB) (string, client.Frame) {
	t.Helper()
	ev := s.Next(t)
	return ev.ID, ev.Frame(t)
}

// Comment waits for a comment line (a keep-alive).
func (s *SSE) Comment(t testing.TB, within time.Duration) {
	t.Helper()
	select {
	case <-s.comments:
	case <-time.After(within):
		t.Fatalf("sse: no comment line within %v", within)
	}
}

// Ended waits for the stream to end after its last event, and fails the
// test if an event comes first.
func (s *SSE) Ended(t testing.TB) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if ok {
			t.Fatalf("sse: event %+v, want the end of the stream", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sse: the stream did not end within 10s")
	}
}

// Close closes the stream.
func (s *SSE) Close() {
	s.once.Do(func() {
		close(s.stop)
		s.Resp.Body.Close()
		<-s.done
	})
}
