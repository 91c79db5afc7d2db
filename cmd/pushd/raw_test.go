package main

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

// rawConn is a WebSocket client written by hand, for frames no well-behaved
// library would send.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

// rawDial upgrades a plain (or, with tlsCfg, TLS) connection to addr with
// path and query q and returns it after the 101; it fails the test for any
// other status.
func rawDial(t *testing.T, addr, q string, tlsCfg *tls.Config, header ...string) *rawConn {
	t.Helper()
	c, status, err := rawUpgrade(addr, q, tlsCfg, header...)
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

func rawUpgrade(addr, q string, tlsCfg *tls.Config, header ...string) (*rawConn, int, error) {
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
	return &rawConn{Conn: nc, br: br}, resp.StatusCode, nil
}

// frame writes one masked client frame; rsv1 marks it compressed.
func (c *rawConn) frame(fin, rsv1 bool, opcode byte, payload []byte) error {
	return c.frameHeader(fin, rsv1, opcode, uint64(len(payload)), payload)
}

// frameHeader writes a frame header declaring length and then payload,
// which may be shorter than length (a lie the server must not trust).
func (c *rawConn) frameHeader(fin, rsv1 bool, opcode byte, length uint64, payload []byte) error {
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Write(maskedFrame(fin, rsv1, opcode, length, payload))
	return err
}

// maskedFrame is a client frame: a header declaring length, then payload
// masked.
func maskedFrame(fin, rsv1 bool, opcode byte, length uint64, payload []byte) []byte {
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

// text sends one text frame.
func (c *rawConn) text(s string) error { return c.frame(true, false, 0x1, []byte(s)) }

// next reads one server frame.
func (c *rawConn) next(timeout time.Duration) (byte, []byte, error) {
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

// closeCode reads frames until a close frame and returns its code; 0 means
// the socket ended without one.
func (c *rawConn) closeCode(t *testing.T, timeout time.Duration) uint16 {
	t.Helper()
	code, _ := c.closeFrame(t, timeout)
	return code
}

// closeFrame reads frames until a close frame and returns its code and
// reason; code 0 means the socket ended without one.
func (c *rawConn) closeFrame(t *testing.T, timeout time.Duration) (uint16, string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		op, p, err := c.next(time.Until(deadline))
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

// textFrame reads frames until a text frame and returns it.
func (c *rawConn) textFrame(t *testing.T) string {
	t.Helper()
	for {
		op, p, err := c.next(10 * time.Second)
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
