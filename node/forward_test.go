package node

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestAnswerRoundTrip: what a node encodes for another node decodes to the
// same answer, whatever the frames hold.
func TestAnswerRoundTrip(t *testing.T) {
	a := answer{status: 200, gen: 7, ended: true, retry: 900, items: []item{
		{cursor: 1, upos: 40, data: []byte(`{"type":"hello"}`)},
		{cursor: 2, upos: 41, data: []byte("{\"type\":\"push\",\"data\":{\"a\":\n1}}")},
		{cursor: 3, data: []byte(`{"type":"close","close_code":1012}`)},
	}}
	got, err := decodeAnswer(encodeAnswer(a))
	if err != nil {
		t.Fatal(err)
	}
	if got.status != 200 || got.gen != 7 || !got.ended || got.retry != 900 || len(got.items) != 3 {
		t.Fatalf("decoded %+v", got)
	}
	for i, it := range got.items {
		if it.cursor != a.items[i].cursor || it.upos != a.items[i].upos || !bytes.Equal(it.data, a.items[i].data) {
			t.Fatalf("item %d: %+v, want %+v", i, it, a.items[i])
		}
	}
	e, err := decodeAnswer(encodeAnswer(answer{status: 404, code: errSessionNotFound, message: "no"}))
	if err != nil || e.status != 404 || e.code != errSessionNotFound || e.message != "no" || len(e.items) != 0 {
		t.Fatalf("error answer %+v %v", e, err)
	}
	s, err := decodeAnswer(encodeAnswer(answer{status: 200, body: []byte("[{\"type\":\"pong\"}]\n")}))
	if err != nil || string(s.body) != "[{\"type\":\"pong\"}]\n" {
		t.Fatalf("send answer %+v %v", s, err)
	}
}

// FuzzDecodeAnswer: any bytes from NATS decode or fail cleanly, and what
// decodes encodes back to the same answer.
func FuzzDecodeAnswer(f *testing.F) {
	f.Add(encodeAnswer(answer{status: 200, gen: 1, items: []item{{cursor: 1, upos: 2, data: []byte(`{}`)}}}))
	f.Add(encodeAnswer(answer{status: 409, code: errReplaced, message: "m"}))
	f.Add([]byte("{\"status\":200,\"items\":2}\n1 0 2\n{}9 9 99999\n"))
	f.Add([]byte("{\"status\":200,\"items\":1}\n1 0 -1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAnswer(b)
		if err != nil {
			return
		}
		again, err := decodeAnswer(encodeAnswer(a))
		if err != nil {
			t.Fatalf("re-encoded answer does not decode: %v", err)
		}
		if again.status != a.status || again.gen != a.gen || len(again.items) != len(a.items) || !bytes.Equal(again.body, a.body) {
			t.Fatalf("round trip: %+v != %+v", again, a)
		}
		for i := range a.items {
			if again.items[i].cursor != a.items[i].cursor || !bytes.Equal(again.items[i].data, a.items[i].data) {
				t.Fatalf("item %d differs", i)
			}
		}
	})
}

// FuzzDecodeRequest: a forwarded request decodes or fails cleanly; one
// that decodes names a valid session and operation.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(encodeRequest(request{Op: reqPull, SID: "1794519372618698752", Secret: "s", Kind: "sse", Gen: 2, Cursor: 9, WaitMS: 20000}))
	f.Add(encodeRequest(request{Op: reqSend, SID: "12", Secret: "s", Body: []byte(`{"type":"ping"}`)}))
	f.Add([]byte(`{"op":"close","sid":"007"}`))
	f.Add([]byte(`{"op":"pull","sid":"5","wait_ms":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeRequest(b)
		if err != nil {
			return
		}
		if !validSID(req.SID) || req.WaitMS < 0 || (req.Op != reqPull && req.Op != reqSend && req.Op != reqClose) {
			t.Fatalf("accepted %+v", req)
		}
	})
}

// FuzzParseCursor: cursors parse or fail cleanly, and what parses formats
// back to itself.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", "0", "1", "17-4031", "18446744073709551615-18446744073709551615", "1-", "-1", "+1", "1-2-3", " 1", "01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, u, err := parseCursor(s)
		if err != nil || s == "" {
			return
		}
		back := string(formatCursor(nil, c, u))
		c2, u2, err := parseCursor(back)
		if err != nil || c2 != c || u2 != u {
			t.Fatalf("%q parsed to %d,%d, formats to %q, which parses to %d,%d (%v)", s, c, u, back, c2, u2, err)
		}
	})
}

// FuzzAppendEvent: whatever a frame holds, its server-sent event parses
// back (as the WHATWG parser does) to the same JSON value and its ID.
func FuzzAppendEvent(f *testing.F) {
	f.Add([]byte(`{"type":"push","data":"x"}`), uint64(3), uint64(9))
	f.Add([]byte("{\"a\":\r\n1,\r\"b\":\n2}"), uint64(1), uint64(0))
	f.Add([]byte("[\n\n]"), uint64(2), uint64(5))
	f.Fuzz(func(t *testing.T, data []byte, cursor, upos uint64) {
		if !json.Valid(data) || !utf8.Valid(data) || cursor == 0 {
			return // frames are valid JSON text
		}
		ev := string(appendEvent(nil, item{cursor: cursor, upos: upos, data: data}, 0))
		if !strings.HasSuffix(ev, "\n\n") {
			t.Fatalf("event %q does not end with a blank line", ev)
		}
		id, got := parseEvent(t, ev)
		if id != string(formatCursor(nil, cursor, upos)) {
			t.Fatalf("id %q", id)
		}
		var a, b any
		if json.Unmarshal(data, &a) != nil || json.Unmarshal([]byte(got), &b) != nil {
			t.Fatalf("event data %q is not the JSON %q", got, data)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("event data %q, want the value of %q", got, data)
		}
	})
}

// parseEvent parses one event as the WHATWG event-stream parser does:
// lines end at CR, LF or CRLF; data lines are joined with LF.
func parseEvent(t *testing.T, ev string) (id, data string) {
	t.Helper()
	var lines []string
	for len(ev) > 0 {
		i := strings.IndexAny(ev, "\r\n")
		if i < 0 {
			t.Fatalf("unterminated line %q", ev)
		}
		lines = append(lines, ev[:i])
		if ev[i] == '\r' && i+1 < len(ev) && ev[i+1] == '\n' {
			i++
		}
		ev = ev[i+1:]
	}
	var datas []string
	for i, l := range lines {
		if l == "" {
			if i != len(lines)-1 {
				t.Fatalf("blank line inside the event: %q", lines)
			}
			break
		}
		field, value, _ := strings.Cut(l, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "data":
			datas = append(datas, value)
		default:
			t.Fatalf("unexpected line %q", l)
		}
	}
	return id, strings.Join(datas, "\n")
}
