package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SSE and long-poll clients (--transport sse|poll): one TCP connection per
// client, kept alive for the connect POST and then the event stream or the
// polls, read by one goroutine. HTTP/1.1 is written by hand and answers are
// read with net/http's response parser (chunked streams included), so a
// client costs a goroutine, two small buffers and the socket.

// Transports pushbench drives.
const (
	transportWS   = "ws"
	transportSSE  = "sse"
	transportPoll = "poll"
)

var (
	pfxClose = []byte(`{"type":"close"`)
	keyType  = []byte(`{"type":"`)
)

// connectHTTP opens client c's session over nc: POST /http/connect, then
// the stream (SSE) or the first poll. It returns once hello arrived.
func (w *worker) connectHTTP(c *benchClient, nc net.Conn, host string, timeout time.Duration) error {
	s := w.spec
	br := bufio.NewReaderSize(nc, max(s.ReadBuf, 512))
	_ = nc.SetDeadline(time.Now().Add(timeout))
	q := "transport=" + s.Transport
	auth := ""
	if s.Secret != "" {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": c.user, "exp": time.Now().Add(24 * time.Hour).Unix()}).SignedString([]byte(s.Secret))
		if err != nil {
			return err
		}
		auth = "Authorization: Bearer " + tok + "\r\n"
	} else {
		q += "&user=" + url.QueryEscape(c.user)
	}
	req := "POST /http/connect?" + q + " HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Content-Length: 0\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		return err
	}
	w.bytesOut.Add(uint64(len(req)))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("connect: %d %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	var sess struct{ SID, Secret string }
	if err := json.Unmarshal(body, &sess); err != nil || sess.SID == "" {
		return fmt.Errorf("connect answer %q: %v", body, err)
	}
	c.session = "sid=" + sess.SID + "&secret=" + sess.Secret
	_ = nc.SetDeadline(time.Time{})
	if s.Transport == transportSSE {
		go c.readSSE(nc, br, host)
	} else {
		go c.pollLoop(nc, br, host)
	}
	return nil
}

// readSSE opens the event stream and reads it until the connection ends.
func (c *benchClient) readSSE(nc net.Conn, br *bufio.Reader, host string) {
	defer c.httpClosed()
	req := "GET /http/sse?" + c.session + " HTTP/1.1\r\nHost: " + host + "\r\nAccept: text/event-stream\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		return
	}
	c.w.bytesOut.Add(uint64(len(req)))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.w.errs.Add(1)
		return
	}
	lines := bufio.NewReaderSize(resp.Body, max(c.w.spec.ReadBuf, 512))
	for {
		line, err := lines.ReadSlice('\n')
		if err != nil {
			return
		}
		c.w.bytesIn.Add(uint64(len(line)))
		if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
			if !c.httpFrame(data) {
				return
			}
		}
	}
}

// pollLoop polls with the last cursor until the session or the connection
// ends.
func (c *benchClient) pollLoop(nc net.Conn, br *bufio.Reader, host string) {
	defer c.httpClosed()
	cursor := "0"
	var body bytes.Buffer
	for {
		req := "GET /http/poll?" + c.session + "&cursor=" + cursor + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
		if _, err := io.WriteString(nc, req); err != nil {
			return
		}
		c.w.bytesOut.Add(uint64(len(req)))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return
		}
		body.Reset()
		_, err = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil {
			return
		}
		b := body.Bytes()
		c.w.bytesIn.Add(uint64(len(b)))
		if resp.StatusCode != http.StatusOK {
			c.w.errs.Add(1)
			return
		}
		next, err := pollCursor(b)
		if err != nil {
			c.w.errs.Add(1)
			return
		}
		cursor = next
		// Frames start with {"type":"; a push's data (the bench body) holds
		// none, so each frame runs to the next one.
		_, frames, _ := bytes.Cut(b, []byte(`"frames":[`))
		for len(frames) > 0 {
			i := bytes.Index(frames, keyType)
			if i < 0 {
				break
			}
			f := frames[i:]
			j := bytes.Index(f[1:], keyType)
			if j >= 0 {
				f = f[:j+1]
			}
			if !c.httpFrame(f) {
				return
			}
			frames = frames[i+len(f):]
		}
	}
}

// pollCursor is the "cursor" of a poll's answer.
func pollCursor(b []byte) (string, error) {
	const key = `{"cursor":"`
	if !bytes.HasPrefix(b, []byte(key)) {
		return "", errors.New("no cursor")
	}
	b = b[len(key):]
	i := bytes.IndexByte(b, '"')
	if i < 0 {
		return "", errors.New("no cursor")
	}
	return string(b[:i]), nil
}

// httpFrame handles one frame of an HTTP session; false once the session
// ended.
func (c *benchClient) httpFrame(f []byte) bool {
	c.w.framesIn.Add(1)
	switch {
	case bytes.HasPrefix(f, pfxPush):
		c.w.gotPush(f)
	case bytes.HasPrefix(f, pfxHello):
		c.markReady()
	case bytes.HasPrefix(f, pfxClose):
		return false
	case bytes.HasPrefix(f, pfxError):
		c.w.errs.Add(1)
	}
	return true
}

// httpClosed marks the client closed when its reader ends.
func (c *benchClient) httpClosed() {
	c.closed.Store(true)
	if !c.leaving.Load() && c.w.ctx.Err() == nil {
		c.w.dropped.Add(1)
	}
	_ = c.raw.Close()
}
