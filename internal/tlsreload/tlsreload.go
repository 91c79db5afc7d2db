// Package tlsreload serves a TLS certificate that can be replaced while the
// server runs: Reload (on SIGHUP) or ReloadIfChanged (polling the files'
// modification times) swap the key pair that new handshakes get, and
// connections already established keep theirs.
package tlsreload

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync/atomic"
)

// Reloader holds the current key pair. It is safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
	fp                atomic.Value // string: fingerprint of the files last loaded
}

// New loads the PEM certificate chain and key.
func New(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload re-reads the key pair. On error the pair in use is kept, so a
// half-written file never takes the listener down.
func (r *Reloader) Reload() error {
	fp := r.fingerprint()
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert.Store(&c)
	r.fp.Store(fp)
	return nil
}

// ReloadIfChanged reloads when either file's size or modification time
// changed since the last load, and reports whether it did.
func (r *Reloader) ReloadIfChanged() (bool, error) {
	if r.fingerprint() == r.fp.Load() {
		return false, nil
	}
	return true, r.Reload()
}

func (r *Reloader) fingerprint() string {
	s := ""
	for _, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%d:%d;", fi.Size(), fi.ModTime().UnixNano())
		} else {
			s += "missing;"
		}
	}
	return s
}

// Certificate is the key pair new handshakes get.
func (r *Reloader) Certificate() *tls.Certificate { return r.cert.Load() }

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// ServerConfig is a modern server configuration serving r's certificate:
// TLS 1.2 and 1.3 only (1.3 preferred, as Go always does), ECDHE with AEAD
// ciphers only for 1.2, X25519 (and its post-quantum hybrid) first, and
// HTTP/1.1 over ALPN because WebSocket upgrades need it.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
		NextProtos:       []string{"http/1.1"},
		GetCertificate:   r.GetCertificate,
	}
}
