package node

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pushd/pushd/contract"
)

func TestEncodePushEmbedsJSONAndQuotesTheRest(t *testing.T) {
	for _, tc := range []struct {
		data, want string
	}{
		{`{"a":1}`, `{"a":1}`},
		{` [1, 2] `, `[1, 2]`},
		{`hello`, `"hello"`},
		{``, `null`},
		{"{\"a\":\"\xff\"}", `"{\"a\":\"\ufffd\"}"`},
		{"line\nbreak\"quote\\", `"line\nbreak\"quote\\"`},
	} {
		f := encodePush(&contract.Push{Target: contract.TargetDoc, Key: `d"1`, Event: "e", ID: "i", Data: []byte(tc.data)})
		var got struct {
			Type, Target, Doc, Event, ID string
			Data                         json.RawMessage
		}
		if err := json.Unmarshal(f.payload(), &got); err != nil {
			t.Fatalf("data %q: frame %s is not JSON: %v", tc.data, f.payload(), err)
		}
		if got.Type != "push" || got.Target != "doc" || got.Doc != `d"1` || got.Event != "e" || got.ID != "i" || string(got.Data) != tc.want {
			t.Errorf("data %q: got %+v data=%s, want data=%s", tc.data, got, got.Data, tc.want)
		}
		f.release()
	}
}

func TestFrameHeaderLengths(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536, 70000} {
		f := newFrame()
		f.buf = append(f.buf, make([]byte, n)...)
		f.seal(opText)
		b := f.bytes()
		if b[0] != 0x81 {
			t.Fatalf("n=%d: first byte %x", n, b[0])
		}
		var got int
		switch b[1] {
		case 126:
			got = int(b[2])<<8 | int(b[3])
			b = b[4:]
		case 127:
			got = 0
			for _, c := range b[2:10] {
				got = got<<8 | int(c)
			}
			b = b[10:]
		default:
			got = int(b[1])
			b = b[2:]
		}
		if got != n || len(b) != n {
			t.Fatalf("n=%d: header says %d, payload %d", n, got, len(b))
		}
	}
}

func TestCloseFrameReasonFitsControlFrame(t *testing.T) {
	f := closeFrame(CloseKicked, strings.Repeat("r", 500))
	if len(f.payload()) != 125 || f.bytes()[0] != 0x88 {
		t.Fatalf("close frame payload %d bytes, opcode %x", len(f.payload()), f.bytes()[0])
	}
}

func FuzzDecodeClientFrame(f *testing.F) {
	for _, s := range []string{`{"type":"join","doc":"d"}`, `{"type":"publish","doc":"d","event":"e","data":{"x":[1,2]}}`,
		`{"type":"ping"}`, `{`, `[]`, `null`, `{"type":1}`, `{"type":"join","doc":"` + strings.Repeat("a", 200) + `"}`,
		`{"type":"join","doc":"d","presence":true}`, `{"type":"presence","doc":"d","limit":5,"cursor":"123"}`, `{"type":"presence_stats","doc":"d","limit":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeClientFrame(b)
		if err != nil {
			return
		}
		if fr.Type == "" {
			t.Fatal("decoded a frame without a type")
		}
		if len(fr.Data) > 0 && !json.Valid(fr.Data) {
			t.Fatalf("data %q is not valid JSON", fr.Data)
		}
		// What the node answers about a decoded frame must itself be valid JSON text.
		for _, out := range []*frame{encodeReply(typeJoined, ref{id: fr.ID, doc: fr.Doc}), encodeError(errUnknownType, "unknown frame type "+quote(fr.Type), ref{id: fr.ID, doc: fr.Doc})} {
			if !json.Valid(out.payload()) || !utf8.Valid(out.payload()) {
				t.Fatalf("reply %q is not valid JSON text", out.payload())
			}
			out.release()
		}
	})
}

func FuzzEncodePush(f *testing.F) {
	f.Add("evt", "id", "doc", []byte(`{"a":1}`))
	f.Add("", "", "", []byte("not json"))
	f.Add("e\x00", "\xff", "d", []byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, event, id, key string, data []byte) {
		fr := encodePush(&contract.Push{Target: contract.TargetDoc, Key: key, Event: event, ID: id, Data: data})
		defer fr.release()
		p := fr.payload()
		if !utf8.Valid(p) || !json.Valid(p) {
			t.Fatalf("push frame %q is not valid JSON text", p)
		}
		var got struct{ Event, Doc string }
		if err := json.Unmarshal(p, &got); err != nil {
			t.Fatal(err)
		}
		if utf8.ValidString(event) && got.Event != event {
			t.Fatalf("event %q came back as %q", event, got.Event)
		}
	})
}
