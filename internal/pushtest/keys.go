package pushtest

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
)

// WritePublicKeyPEM writes pub (an *rsa.PublicKey or *ecdsa.PublicKey) to
// path as a PKIX "PUBLIC KEY" PEM block, as pushd's --jwt-public-key reads it.
func WritePublicKeyPEM(t testing.TB, path string, pub any) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
