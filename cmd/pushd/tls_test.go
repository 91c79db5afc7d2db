package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pushd/pushd/internal/pushtest"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with common name cn.
func writeCert(t testing.TB, certFile, keyFile, cn string) {
	t.Helper()
	if err := pushtest.WriteSelfSigned(certFile, keyFile, cn); err != nil {
		t.Fatal(err)
	}
}

func TestTLSWithHotReload(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, cert, key, "first")
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := startPushd(t, ns.URL(), "--dev", "--tls-cert", cert, "--tls-key", key, "--keys-reload-interval", "50ms")
	insecure := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // self-signed test certificate, checked by name below

	old := pushtest.RawDial(t, n.Listen, "?user=alice", insecure)
	if hello := old.TextFrame(t); !strings.Contains(hello, `"user":"alice"`) {
		t.Fatalf("hello over TLS: %s", hello)
	}
	cn := func() string {
		c, err := tls.Dial("tcp", n.Listen, insecure)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Fatalf("negotiated TLS %x, want 1.3", v)
		}
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := cn(); got != "first" {
		t.Fatalf("certificate %q", got)
	}
	// Plain HTTP on the TLS port gets nowhere.
	if resp, err := http.Get("http://" + n.Listen + "/healthz"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS listener")
		}
	}
	writeCert(t, cert, key, "second")
	eventually(t, func() error {
		if got := cn(); got != "second" {
			return errors.New("certificate not reloaded yet: " + got)
		}
		return nil
	})
	// The connection made before the rotation is untouched.
	if err := old.Text(`{"type":"ping"}`); err != nil {
		t.Fatal(err)
	}
	if f := old.TextFrame(t); !strings.Contains(f, "pong") {
		t.Fatalf("old connection: %s", f)
	}
	publish(t, nc, "push.user.alice", nil, `"over tls"`, 1)
	if f := old.TextFrame(t); !strings.Contains(f, `"over tls"`) {
		t.Fatalf("push over TLS: %s", f)
	}
	// TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", n.Listen, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil { //nolint:gosec
		_ = c.Close()
		t.Fatal("TLS 1.1 accepted")
	}
	// The admin listener stays plain HTTP.
	admin := &testNode{started: started{Listen: n.AdminListen}}
	if got := metric(t, admin, `pushd_key_reloads_total{kind="tls",result="ok"}`); got < 1 {
		t.Fatalf("tls reloads = %v", got)
	}
}

func TestTLSFlagsGoTogether(t *testing.T) {
	cmd := newRootCmd(t.Context(), nil, devNull{}, func(string) (string, bool) { return "", false }, nil)
	cmd.SetArgs([]string{"--dev", "--tls-cert", "x.crt"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("cert without key: %v", err)
	}
	cmd = newRootCmd(t.Context(), nil, devNull{}, func(string) (string, bool) { return "", false }, nil)
	cmd.SetArgs([]string{"--dev", "--join-authorization", "maybe"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "join-authorization") {
		t.Fatalf("bad join authorization: %v", err)
	}
}

func TestKeyRotationKeepsSessions(t *testing.T) {
	dir := t.TempDir()
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pushtest.WritePublicKeyPEM(t, filepath.Join(dir, "k1.pem"), &k1.PublicKey)
	ns := pushtest.RunNATS(t)
	nc := ns.Connect(t)
	n := startPushd(t, ns.URL(), "--jwt-keys-dir", dir, "--keys-reload-interval", "50ms", "--jwt-audience", "pushd", "--jwt-issuer", "https://auth.test")
	es := func(key *ecdsa.PrivateKey, kid string, claims jwt.MapClaims) string {
		t.Helper()
		base := jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix(), "aud": "pushd", "iss": "https://auth.test"}
		for k, v := range claims {
			base[k] = v
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, base)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	status := func(tok string) int {
		s, _ := handshake(t, n.wsURL()+"?token="+tok, nil)
		return s
	}
	old := dialToken(t, n, es(k1, "k1", jwt.MapClaims{"sub": "alice"}))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "eve", "exp": time.Now().Add(time.Hour).Unix(), "aud": "pushd", "iss": "https://auth.test"}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, tc := range map[string]struct {
		tok  string
		want int
	}{
		"unknown kid":         {es(k2, "k2", jwt.MapClaims{"sub": "bob"}), 401},
		"wrong audience":      {es(k1, "k1", jwt.MapClaims{"sub": "bob", "aud": "other"}), 401},
		"wrong issuer":        {es(k1, "k1", jwt.MapClaims{"sub": "bob", "iss": "https://evil.test"}), 401},
		"not yet valid":       {es(k1, "k1", jwt.MapClaims{"sub": "bob", "nbf": time.Now().Add(time.Hour).Unix()}), 401},
		"alg none":            {none, 401},
		"HS256 (no such key)": {mustSign(t, jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix(), "aud": "pushd", "iss": "https://auth.test"}, testSecret), 401},
		"valid":               {es(k1, "k1", jwt.MapClaims{"sub": "bob"}), 101},
	} {
		if got := status(tc.tok); got != tc.want {
			t.Errorf("%s: status %d, want %d", name, got, tc.want)
		}
	}
	// Rotate: add k2, then retire k1. Sessions opened with k1 stay.
	pushtest.WritePublicKeyPEM(t, filepath.Join(dir, "k2.pem"), &k2.PublicKey)
	eventually(t, func() error {
		if status(es(k2, "k2", jwt.MapClaims{"sub": "bob"})) != 101 {
			return errors.New("k2 not loaded yet")
		}
		return nil
	})
	if err := os.Remove(filepath.Join(dir, "k1.pem")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if status(es(k1, "k1", jwt.MapClaims{"sub": "bob"})) != 401 {
			return errors.New("k1 still accepted")
		}
		return nil
	})
	publish(t, nc, "push.user.alice", nil, `"rotated"`, 1)
	expectPush(t, old, "message", `"rotated"`)
}
