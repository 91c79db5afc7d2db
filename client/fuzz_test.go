package client

import (
	"bytes"
	"context"
	"testing"
)

// What a server sends never panics the client: the frame decoder, and the
// whole frame handling (hello, joined, pushes, receipts, errors, replies)
// of a client on a connection without a socket.

var fuzzSeeds = []string{
	`{"type":"hello","sid":"1794519372618698752","node":3,"user":"alice","ping_interval":20000,"ping_timeout":30000,"seq":"17"}`,
	`{"type":"hello","sid":"1","user":"a","ping_interval":1,"ping_timeout":2,"seq":"3","recovered":true}` + "\n" +
		`{"type":"joined","id":"j1","doc":"d","seq":"9"}` + "\n" +
		`{"type":"push","target":"doc","doc":"d","seq":"10","ack":true,"data":{"x":1}}` + "\n" +
		`{"type":"push","target":"user","seq":"4","ack":true,"data":[1]}` + "\n" +
		`{"type":"push","target":"user","seq":"4","ack":true,"data":[1]}`,
	`{"type":"hello","sid":"1","user":"a","ping_interval":20000,"ping_timeout":30000}` + "\n" +
		`{"type":"error","code":"bad_since","id":"j1","doc":"d"}` + "\n" +
		`{"type":"joined","id":"j2","doc":"d","recovered":false}`,
	`{"type":"push","target":"all","event":"news","data":"plain"}`,
	`{"type":"pong","ping_interval":40000,"ping_timeout":50000}`,
	`{"type":"error","code":"unavailable","id":"j1","doc":"d","message":"nats"}`,
	`{"type":"refreshed","exp":1900000000,"id":"r1"}`,
	`{"type":"published","doc":"d","id":"p1"}`,
	`not json`,
	`{"type":"push","seq":"18446744073709551615","target":"user","ack":true}`,
}

func FuzzDecodeFrame(f *testing.F) {
	for _, s := range fuzzSeeds {
		for _, line := range bytes.Split([]byte(s), []byte("\n")) {
			f.Add(line)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeFrame(b)
		if err == nil && fr.Type == "" {
			t.Fatal("a frame without a type decoded")
		}
		if seq, ok := parseSeq(fr.Seq); ok && formatSeq(seq) != fr.Seq && fr.Seq[0] != '0' {
			t.Fatalf("seq %q read as %d", fr.Seq, seq)
		}
	})
}

// FuzzClientFrames feeds each line of the input, as a frame, to a client
// that joined doc "d" and runs its handlers; then checks that no cursor
// passed a push still waiting for its receipt.
func FuzzClientFrames(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, input string, manual bool) {
		c := New(Config{URL: "ws://127.0.0.1:1/ws", User: "a", ManualAck: manual, PushBuffer: 4,
			OnPush: func(p *Push) error {
				if len(p.Data)%3 == 0 {
					return context.Canceled // a failing handler withholds the receipt
				}
				return nil
			}})
		defer c.Close()
		sub := c.Join("d", JoinOptions{})
		c.mu.Lock()
		c.state = Connecting
		c.gen++
		a := &attempt{gen: c.gen, out: newOutbox()}
		a.ctx, a.cancel = context.WithCancel(c.ctx)
		c.conn = a
		c.mu.Unlock()
		for _, line := range bytes.Split([]byte(input), []byte("\n")) {
			c.onFrame(a, line)
			c.runHandlers()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, cur := range []*cursor{c.user, sub.cur} {
			base, known := cur.since()
			for p := range cur.pending {
				if known && base >= p {
					t.Fatalf("cursor %d passed the unacknowledged push %d", base, p)
				}
			}
			for q := range cur.queued {
				if known && base >= q {
					t.Fatalf("cursor %d passed the queued push %d", base, q)
				}
			}
		}
	})
}

// runHandlers runs the queued events on the calling goroutine, as the
// dispatcher would.
func (c *Client) runHandlers() {
	for {
		c.mu.Lock()
		if len(c.events) == 0 {
			c.mu.Unlock()
			return
		}
		it := c.events[0]
		c.events = c.events[1:]
		c.mu.Unlock()
		it.run()
		if it.push {
			c.mu.Lock()
			c.queuedPushes--
			c.mu.Unlock()
		}
	}
}
