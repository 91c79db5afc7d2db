package node_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pushd/pushd/auth"
	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
	"github.com/pushd/pushd/node"
)

const httpSecret = "http-transport-test-secret"

// hsToken is an HS256 token for sub, expiring after ttl, with claims added.
func hsToken(t *testing.T, sub string, ttl time.Duration, claims jwt.MapClaims) string {
	t.Helper()
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(httpSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenNode runs a node that verifies HS256 tokens signed with httpSecret.
func tokenNode(t *testing.T, url string, id int64, cfg node.Config) *testnode.Node {
	t.Helper()
	v, err := auth.New(auth.Config{Secret: []byte(httpSecret)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Auth, cfg.NodeID = v, id
	return testnode.Start(t, url, cfg)
}

// connectAnswer decodes a connect answer.
func connectAnswer(t *testing.T, base, body string) *pushtest.HTTPSession {
	t.Helper()
	h := &pushtest.HTTPSession{Base: base}
	if err := json.Unmarshal([]byte(body), h); err != nil || h.SID == "" {
		t.Fatalf("connect answer %s: %v", body, err)
	}
	return h
}

// TestHTTPConnectAuthenticates: the token comes in Authorization or in the
// connect body, never needed in a URL; refusals are the WebSocket's, as
// HTTP statuses with JSON bodies; a session lives no longer than its token
// unless refreshed by a POST, and ends with 4001 in its close frame.
func TestHTTPConnectAuthenticates(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := tokenNode(t, ns.URL(), 1, node.Config{SweepInterval: 20 * time.Millisecond})
	base := n.URL() + "/http/connect"

	status, body := pushtest.HTTPDo(t, "POST", base, `{"transport":"poll"}`, "Authorization", "Bearer "+hsToken(t, "alice", time.Minute, nil))
	if status != http.StatusOK {
		t.Fatalf("connect with Authorization: %d %s", status, body)
	}
	if h := connectAnswer(t, n.URL(), body); h.User != "alice" {
		t.Fatalf("answer %+v", h)
	}
	short := hsToken(t, "bob", 1500*time.Millisecond, nil)
	status, body = pushtest.HTTPDo(t, "POST", base, `{"type":"connect","transport":"poll","token":"`+short+`"}`)
	if status != http.StatusOK {
		t.Fatalf("connect with the token in the body: %d %s", status, body)
	}
	bob := connectAnswer(t, n.URL(), body)
	hello := bob.Poll(t, "", 0)
	fresh := hsToken(t, "bob", 2*time.Second, nil)
	if got := bob.Send(t, `{"type":"refresh","token":"`+fresh+`","id":"r"}`); len(got) != 1 || got[0].Type != "refreshed" || got[0].ID != "r" {
		t.Fatalf("refresh answered %+v", got)
	}
	if got := bob.Send(t, `{"type":"refresh","token":"`+hsToken(t, "eve", time.Minute, nil)+`"}`); len(got) != 1 || got[0].Code != "forbidden" {
		t.Fatalf("refresh with another user's token answered %+v", got)
	}
	frames, _ := bob.PollUntil(t, hello.Cursor, func(fs []client.Frame) bool { return len(fs) > 0 })
	if len(frames) != 1 || frames[0].Type != "close" || frames[0].CloseCode != 4001 {
		t.Fatalf("after the token expired: %+v, want the close frame 4001", frames)
	}

	for _, tc := range []struct {
		name, body, auth string
		status           int
		code             string
	}{
		{"no token", `{"transport":"sse"}`, "", 401, "token_missing"},
		{"bad token", `{"transport":"sse","token":"x.y.z"}`, "", 401, "token_invalid"},
		{"expired token", `{"transport":"sse"}`, hsToken(t, "alice", -time.Minute, nil), 401, "token_expired"},
		{"a user without a token", `{"transport":"sse","user":"alice"}`, "", 401, "token_missing"},
	} {
		var hdr []string
		if tc.auth != "" {
			hdr = []string{"Authorization", "Bearer " + tc.auth}
		}
		status, body := pushtest.HTTPDo(t, "POST", base, tc.body, hdr...)
		expectError(t, tc.name, status, body, tc.status, tc.code)
	}
}

// TestHTTPBadInput: every bad request gets a clear HTTP status and a JSON
// error, reveals nothing of other sessions, and leaves the node and every
// other session working.
func TestHTTPBadInput(t *testing.T) {
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1, UpstreamRate: 5, UpstreamBurst: 5})
	other := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 2})
	ws := pushtest.Dial(t, n.WSURL(), "carol")
	alice := pushtest.HTTPConnect(t, n.URL(), "poll", "alice", "")
	bob := pushtest.HTTPConnect(t, n.URL(), "sse", "bob", "")
	u := n.URL()
	q := func(sid, secret string) string { return "?sid=" + sid + "&secret=" + secret }
	big := `{"type":"publish","doc":"d","data":"` + strings.Repeat("x", 17<<10) + `"}`

	for _, tc := range []struct {
		name, method, url, body string
		status                  int
		code                    string
	}{
		{"unknown endpoint", "GET", u + "/http/nope", "", 404, "not_found"},
		{"connect by GET", "GET", u + "/http/connect?transport=sse&user=x", "", 405, "method_not_allowed"},
		{"send by GET", "GET", u + "/http/send" + q(alice.SID, alice.Secret), "", 405, "method_not_allowed"},
		{"poll by POST", "POST", u + "/http/poll" + q(alice.SID, alice.Secret), "", 405, "method_not_allowed"},
		{"connect, malformed JSON", "POST", u + "/http/connect?user=x", `{"transport":`, 400, "bad_json"},
		{"connect, no transport", "POST", u + "/http/connect?user=x", ``, 400, "bad_transport"},
		{"connect, unknown transport", "POST", u + "/http/connect?user=x", `{"transport":"ws"}`, 400, "bad_transport"},
		{"connect, oversized body", "POST", u + "/http/connect?user=x", `{"token":"` + strings.Repeat("x", 20<<10) + `"}`, 413, "too_large"},
		{"connect, bad last_event_id", "POST", u + "/http/connect?user=x", `{"transport":"sse","last_event_id":"zz"}`, 400, "bad_cursor"},
		{"connect, bad user", "POST", u + "/http/connect?user=a*b", `{"transport":"sse"}`, 400, "invalid_user"},
		{"send without a sid", "POST", u + "/http/send?secret=" + alice.Secret, `{"type":"ping"}`, 400, "bad_session"},
		{"send without a secret", "POST", u + "/http/send?sid=" + alice.SID, `{"type":"ping"}`, 400, "bad_session"},
		{"send, sid not a number", "POST", u + "/http/send" + q("abc", alice.Secret), `{"type":"ping"}`, 400, "bad_session"},
		{"send, sid with a sign", "POST", u + "/http/send" + q("+"+alice.SID, alice.Secret), `{"type":"ping"}`, 400, "bad_session"},
		{"send, unknown sid", "POST", u + "/http/send" + q(alice.SID[:len(alice.SID)-1]+"9", alice.Secret), `{"type":"ping"}`, 404, "session_not_found"},
		{"send, wrong secret", "POST", u + "/http/send" + q(alice.SID, bob.Secret), `{"type":"ping"}`, 404, "session_not_found"},
		{"send, someone else's sid", "POST", u + "/http/send" + q(bob.SID, alice.Secret), `{"type":"join","doc":"d"}`, 404, "session_not_found"},
		{"send, a node that does not exist", "POST", u + "/http/send" + q("4398046511104000", alice.Secret), `{"type":"ping"}`, 404, "session_not_found"},
		{"send, malformed JSON", "POST", u + "/http/send" + q(alice.SID, alice.Secret), `{"type":`, 400, "bad_json"},
		{"send, no type", "POST", u + "/http/send" + q(alice.SID, alice.Secret), `{"doc":"d"}`, 400, "bad_json"},
		{"send, empty body", "POST", u + "/http/send" + q(alice.SID, alice.Secret), ``, 400, "bad_json"},
		{"send, oversized body", "POST", u + "/http/send" + q(alice.SID, alice.Secret), big, 413, "too_large"},
		{"send through another node, wrong secret", "POST", other.URL() + "/http/send" + q(alice.SID, bob.Secret), `{"type":"ping"}`, 404, "session_not_found"},
		{"poll an SSE session", "GET", u + "/http/poll" + q(bob.SID, bob.Secret), "", 409, "wrong_transport"},
		{"stream a poll session", "GET", u + "/http/sse" + q(alice.SID, alice.Secret), "", 409, "wrong_transport"},
		{"poll, bad wait", "GET", u + "/http/poll" + q(alice.SID, alice.Secret) + "&wait=soon", "", 400, "bad_wait"},
		{"poll, someone else's sid", "GET", u + "/http/poll" + q(bob.SID, alice.Secret), "", 404, "session_not_found"},
		{"sse, someone else's sid", "GET", u + "/http/sse" + q(alice.SID, bob.Secret), "", 404, "session_not_found"},
		{"close, wrong secret", "POST", u + "/http/close" + q(alice.SID, bob.Secret), "", 404, "session_not_found"},
	} {
		status, body := pushtest.HTTPDo(t, tc.method, tc.url, tc.body)
		expectError(t, tc.name, status, body, tc.status, tc.code)
	}

	// Over the upstream rate: 429 with Retry-After, until the strikes run
	// out and the session ends 4029, as on a WebSocket.
	limited := 0
	for range 30 {
		status, _ := alice.SendRaw(t, `{"type":"ping"}`)
		if status == http.StatusTooManyRequests {
			limited++
		}
		if status == http.StatusGone {
			break
		}
	}
	if limited == 0 {
		t.Fatal("30 frames at once over a rate of 5/s were never answered 429")
	}
	status, body := alice.SendRaw(t, `{"type":"ping"}`)
	expectError(t, "send after 4029", status, body, http.StatusGone, "session_closed")

	// Nobody else noticed.
	pushtest.Marker(t, nc, ws)
	stream := bob.Stream(t, "")
	stream.NextFrame(t)
	pushtest.Publish(t, nc, "push.user.bob", nil, `"still here"`, 1)
	if _, f := stream.NextFrame(t); string(f.Data) != `"still here"` {
		t.Fatalf("bob got %+v", f)
	}
	if n.Metric(t, `pushd_http_errors_total{error="session_not_found"}`) == 0 {
		t.Error("errors not counted")
	}
}

// TestHTTPCrossOrigin: a page from an allowed origin may use the HTTP
// transports (CORS, with the preflight its POSTs need); another origin is
// refused 403, like a WebSocket upgrade from it.
func TestHTTPCrossOrigin(t *testing.T) {
	ns := pushtest.RunNATS(t)
	n := testnode.Start(t, ns.URL(), node.Config{Dev: true, NodeID: 1, AllowedOrigins: []string{"https://app.example.com"}})
	req, _ := http.NewRequest("OPTIONS", n.URL()+"/http/connect", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	status, body := pushtest.HTTPDo(t, "POST", n.URL()+"/http/connect?user=alice&transport=sse", "", "Origin", "https://app.example.com")
	if status != http.StatusOK {
		t.Fatalf("connect from the allowed origin: %d %s", status, body)
	}
	status, body = pushtest.HTTPDo(t, "POST", n.URL()+"/http/connect?user=alice&transport=sse", "", "Origin", "https://evil.example.com")
	expectError(t, "connect from another origin", status, body, http.StatusForbidden, "forbidden_origin")
}
