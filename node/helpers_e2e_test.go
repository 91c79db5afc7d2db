package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pushd/pushd/auth"
	"github.com/pushd/pushd/client"
	"github.com/pushd/pushd/internal/pushtest"
	"github.com/pushd/pushd/internal/testnode"
)

// Helpers of the tests that run a node through testnode: real NATS, a real
// WebSocket handshake, the node wired as cmd/pushd wires it.

// testSecret is the HS256 secret of the nodes that verify tokens.
const testSecret = "test-secret-do-not-use"

// hs256 is a verifier for tokens signed with testSecret, as pushd builds it
// from --jwt-secret.
func hs256(t testing.TB) *auth.Verifier {
	t.Helper()
	v, err := auth.New(auth.Config{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// signed signs claims with testSecret; exp defaults to an hour ahead.
func signed(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	if _, ok := claims["exp"]; !ok {
		claims["exp"] = time.Now().Add(time.Hour).Unix()
	}
	return mustSign(t, claims, testSecret)
}

// token is an HS256 token for sub that expires after ttl (negative: already
// expired).
func token(t testing.TB, sub string, ttl time.Duration) string {
	t.Helper()
	return signed(t, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()})
}

func mustSign(t testing.TB, claims jwt.MapClaims, secret string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dial opens a dev session for user.
func dial(t *testing.T, n *testnode.Node, user string) *client.Conn {
	t.Helper()
	return pushtest.Dial(t, n.WSURL(), user)
}

// dialToken opens a session with tok, closed when the test ends.
func dialToken(t *testing.T, n *testnode.Node, tok string) *client.Conn {
	t.Helper()
	c, err := client.Dial(pushtest.Ctx(t), n.WSURL(), client.Options{Token: tok})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// request sends a raw frame and returns the reply.
func request(t *testing.T, c *client.Conn, frame string) client.Frame {
	t.Helper()
	if err := c.Send([]byte(frame)); err != nil {
		t.Fatal(err)
	}
	f, err := c.Reply(pushtest.Ctx(t))
	if err != nil {
		t.Fatalf("%s: %v", frame, err)
	}
	return f
}

func joinFrame(doc, tok string) string {
	if tok == "" {
		return `{"type":"join","doc":` + jsonString(doc) + `}`
	}
	return `{"type":"join","doc":` + jsonString(doc) + `,"token":` + jsonString(tok) + `}`
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// handshake returns the HTTP status and body of a WebSocket upgrade request.
func handshake(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	return pushtest.Handshake(t, url, header)
}

func eventually(t *testing.T, fn func() error) {
	t.Helper()
	pushtest.Eventually(t, 10*time.Second, fn)
}

// metricIs waits until the node's series has the value want.
func metricIs(t *testing.T, n *testnode.Node, series string, want float64) {
	t.Helper()
	eventually(t, func() error {
		if got := n.Metric(t, series); got != want {
			return fmt.Errorf("%s = %v, want %v", series, got, want)
		}
		return nil
	})
}

// The wire-level helpers shared with the other packages' tests.
var (
	publish        = pushtest.Publish
	delivered      = pushtest.Delivered
	expectPush     = pushtest.ExpectPush
	marker         = pushtest.Marker
	sessionSubject = pushtest.SessionSubject
	hdr            = pushtest.Header
	closeCode      = pushtest.CloseCode
	ctxT           = pushtest.Ctx
)
