package client

import (
	"encoding/json"
	"errors"
	"strconv"
)

// The frames a Client reads and writes (docs/PROTOCOL.md). Server frames are
// decoded into Frame; fields a frame does not know are ignored, as the
// protocol asks.

// errNoType is a frame that is not a JSON object with a string type.
var errNoType = errors.New("not a JSON object with a type")

// decodeFrame decodes one server frame. It never panics, whatever b holds.
func decodeFrame(b []byte) (Frame, error) {
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return Frame{}, err
	}
	if f.Type == "" {
		return Frame{}, errNoType
	}
	return f, nil
}

// parseSeq reads a position: a decimal string of at most 20 digits that fits
// a uint64. ok is false for anything else (absent, signed, too big).
func parseSeq(s string) (seq uint64, ok bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// clientFrame is a frame the client sends; empty fields are left out.
type clientFrame struct {
	Type  string          `json:"type"`
	ID    string          `json:"id,omitempty"`
	Token string          `json:"token,omitempty"`
	User  string          `json:"user,omitempty"`
	Doc   string          `json:"doc,omitempty"`
	Since string          `json:"since,omitempty"`
	Seq   string          `json:"seq,omitempty"`
	Event string          `json:"event,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// encode marshals f; it cannot fail (strings and raw JSON checked by the
// caller).
func (f clientFrame) encode() []byte {
	b, err := json.Marshal(f)
	if err != nil { // only an invalid Data, which Publish checks first
		panic("pushd: encode " + f.Type + ": " + err.Error())
	}
	return b
}

// formatSeq is a position as the protocol writes it.
func formatSeq(seq uint64) string { return strconv.FormatUint(seq, 10) }

// pingFrame is the JSON heartbeat.
var pingFrame = []byte(`{"type":"ping"}`)
