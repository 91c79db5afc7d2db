package tlsreload

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/pushd/pushd/internal/pushtest"
)

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and
// localhost with common name cn.
func writeSelfSigned(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	if err := pushtest.WriteSelfSigned(certFile, keyFile, cn); err != nil {
		t.Fatal(err)
	}
}

func serverCN(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestReloadSwapsCertificateForNewHandshakes(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeSelfSigned(t, cert, key, "one")
	r, err := New(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	defer func() { _ = ln.Close(); <-done }()
	client := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test reads the served certificate
	if cn := serverCN(t, ln.Addr().String(), client); cn != "one" {
		t.Fatalf("cn %q", cn)
	}
	if changed, err := r.ReloadIfChanged(); changed || err != nil {
		t.Fatalf("unchanged files reloaded: %v %v", changed, err)
	}
	writeSelfSigned(t, cert, key, "two")
	if changed, err := r.ReloadIfChanged(); !changed || err != nil {
		t.Fatalf("reload: %v %v", changed, err)
	}
	if cn := serverCN(t, ln.Addr().String(), client); cn != "two" {
		t.Fatalf("after reload cn %q, want two", cn)
	}
	// A broken key file keeps the old pair.
	if err := os.WriteFile(key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReloadIfChanged(); err == nil {
		t.Fatal("broken key accepted")
	}
	if cn := serverCN(t, ln.Addr().String(), client); cn != "two" {
		t.Fatalf("after failed reload cn %q, want two", cn)
	}
	// Old protocol versions are refused.
	if _, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil { //nolint:gosec
		t.Fatal("TLS 1.1 handshake accepted")
	}
	// A CBC suite on 1.2 is refused.
	if _, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, //nolint:gosec
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}); err == nil {
		t.Fatal("CBC suite accepted")
	}
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err != nil {
		t.Fatal(err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("negotiated %x, want TLS 1.3", v)
	}
	_ = c.Close()
}
