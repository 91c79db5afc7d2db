package pushtest

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// RawConn is a WebSocket client written by hand, for frames no well-behaved
// library would send.
type RawConn struct {
	net.Conn
	br *bufio.Reader
}

// NewRawConn wraps a connection whose upgrade the caller did by hand; br
// holds what was read past the response.
func NewRawConn(c net.Conn, br *bufio.Reader) *RawConn { return &RawConn{Conn: c, br: br} }

// RawDial upgrades a plain (or, with tlsCfg, TLS) connection to addr with
// path /ws and query q and returns it after the 101; it fails the test for
// any other status. header lines ("Origin: x") are added to the request.
func RawDial(t testing.TB, addr, q string, tlsCfg *tls.Config, header ...string) *RawConn {
	t.Helper()
	c, status, err := RawUpgrade(addr, q, tlsCfg, header...)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusSwitchingProtocols {
		_ = c.Close()
		t.Fatalf("upgrade %s: status %d", q, status)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// RawUpgrade sends an upgrade request like RawDial and returns the
// connection and the response status, whatever it is.
func RawUpgrade(addr, q string, tlsCfg *tls.Config, header ...string) (*RawConn, int, error) {
	var nc net.Conn
	var err error
	if tlsCfg != nil {
		nc, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tlsCfg)
	} else {
		nc, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		return nil, 0, err
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /ws" + q + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		_ = nc.Close()
		return nil, 0, err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		_ = nc.Close()
		return nil, 0, err
	}
	_ = nc.SetDeadline(time.Time{})
	return &RawConn{Conn: nc, br: br}, resp.StatusCode, nil
}

// Frame writes one masked client frame; rsv1 marks it compressed.
func (c *RawConn) Frame(fin, rsv1 bool, opcode byte, payload []byte) error {
	return c.FrameHeader(fin, rsv1, opcode, uint64(len(payload)), payload)
}

// FrameHeader writes a frame header declaring length and then payload,
// which may be shorter than length (a lie the server must not trust).
func (c *RawConn) FrameHeader(fin, rsv1 bool, opcode byte, length uint64, payload []byte) error {
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Write(MaskedFrame(fin, rsv1, opcode, length, payload))
	return err
}

// MaskedFrame is a client frame: a header declaring length, then payload
// masked.
func MaskedFrame(fin, rsv1 bool, opcode byte, length uint64, payload []byte) []byte {
	b := []byte{opcode, 0x80}
	if fin {
		b[0] |= 0x80
	}
	if rsv1 {
		b[0] |= 0x40
	}
	switch {
	case length < 126:
		b[1] |= byte(length)
	case length <= 0xFFFF:
		b[1] |= 126
		b = binary.BigEndian.AppendUint16(b, uint16(length))
	default:
		b[1] |= 127
		b = binary.BigEndian.AppendUint64(b, length)
	}
	mask := [4]byte{1, 2, 3, 4}
	b = append(b, mask[:]...)
	for i, x := range payload {
		b = append(b, x^mask[i%4])
	}
	return b
}

// Text sends one text frame.
func (c *RawConn) Text(s string) error { return c.Frame(true, false, 0x1, []byte(s)) }

// Next reads one server frame: its opcode and payload.
func (c *RawConn) Next(timeout time.Duration) (byte, []byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(c.br, l[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(c.br, l[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0F, p, nil
}

// CloseCode reads frames until a close frame and returns its code; 0 means
// the socket ended without one.
func (c *RawConn) CloseCode(t testing.TB, timeout time.Duration) uint16 {
	t.Helper()
	code, _ := c.CloseFrame(t, timeout)
	return code
}

// CloseFrame reads frames until a close frame and returns its code and
// reason; code 0 means the socket ended without one.
func (c *RawConn) CloseFrame(t testing.TB, timeout time.Duration) (uint16, string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		op, p, err := c.Next(time.Until(deadline))
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("no close within %s", timeout)
			}
			return 0, ""
		}
		if op == 0x8 {
			if len(p) < 2 {
				return 1005, ""
			}
			return binary.BigEndian.Uint16(p), string(p[2:])
		}
	}
}

// TextFrame reads frames until a text frame and returns it.
func (c *RawConn) TextFrame(t testing.TB) string {
	t.Helper()
	for {
		op, p, err := c.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("reading a text frame: %v", err)
		}
		if op == 0x8 {
			t.Fatalf("closed while waiting for a text frame: %x", p)
		}
		if op == 0x1 {
			return string(p)
		}
	}
}
