package client

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// The drain hint (docs/PROTOCOL.md, "Going elsewhere"). A node that sends a
// client away for a reason of its own (it drains, it is full, it gave way to
// another node with its number) names itself: in the close reason,
// "<error>: node <n>; <text>", and in a refused upgrade's JSON body,
// "avoid_node": <n>. The client remembers which of Config.URLs led to which
// node (every hello says, and so does a refusal that names its node), and
// skips for Config.AvoidFor the URLs known to lead to a node that sent it
// away, trying them again only when every other URL failed too.

// avoider remembers where URLs lead and which nodes to avoid until when.
// Guarded by the client's mutex.
type avoider struct {
	urlNode map[string]int64    // URL -> the node its latest session or refusal came from
	until   map[int64]time.Time // node -> avoid it until then
	misses  int                 // attempts in a row that got no hello
}

// learn records that rawURL led to node.
func (v *avoider) learn(rawURL string, node int64) {
	if rawURL == "" {
		return
	}
	if v.urlNode == nil {
		v.urlNode = map[string]int64{}
	}
	v.urlNode[rawURL] = node
}

// avoid records that node sent the client away (from rawURL) and is to be
// skipped until the time given.
func (v *avoider) avoid(rawURL string, node int64, until time.Time) {
	v.learn(rawURL, node)
	if v.until == nil {
		v.until = map[int64]time.Time{}
	}
	v.until[node] = until
}

// avoided says whether rawURL leads to a node to avoid now.
func (v *avoider) avoided(rawURL string, now time.Time) bool {
	n, ok := v.urlNode[rawURL]
	if !ok {
		return false
	}
	until, ok := v.until[n]
	if !ok {
		return false
	}
	if !now.Before(until) {
		delete(v.until, n)
		return false
	}
	return true
}

// next returns the index of the URL to try from index i on: the first one,
// in turn, that leads to no node to avoid; i itself when every URL does, or
// when the attempts since the last hello have tried each URL once already
// (nothing else answers: try the avoided ones again).
func (v *avoider) next(urls []string, i int, now time.Time) int {
	if len(urls) < 2 || len(v.until) == 0 || v.misses >= len(urls) {
		return i
	}
	for k := range len(urls) {
		if !v.avoided(urls[(i+k)%len(urls)], now) {
			return i + k
		}
	}
	return i
}

// avoidNodeOf reads the node a close reason names, "<error>: node <n>;
// <text>" (the regex `^([a-z_]+): node ([0-9]+); `).
func avoidNodeOf(reason string) (int64, bool) {
	code, msg := ParseReason(reason)
	if code == "" {
		return 0, false
	}
	rest, ok := strings.CutPrefix(msg, "node ")
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, "; ")
	if !ok || digits == "" || len(digits) > 18 {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	return n, err == nil
}

// avoidNodeOfBody reads "avoid_node" from a refused upgrade's JSON body.
func avoidNodeOfBody(body []byte) (int64, bool) {
	var b struct {
		AvoidNode *int64 `json:"avoid_node"`
	}
	if json.Unmarshal(body, &b) != nil || b.AvoidNode == nil || *b.AvoidNode < 0 {
		return 0, false
	}
	return *b.AvoidNode, true
}
