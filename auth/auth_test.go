package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pushd/pushd/internal/pushtest"
)

const secret = "auth-test-secret-0123456789"

func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(sub string, ttl time.Duration, extra ...any) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i].(string)] = extra[i+1]
	}
	return c
}

func mustVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var rsaKey, _ = rsa.GenerateKey(rand.Reader, 2048)

func TestVerifyAttacks(t *testing.T) {
	dir := t.TempDir()
	pubPath := filepath.Join(dir, "rsa.pem")
	pushtest.WritePublicKeyPEM(t, pubPath, &rsaKey.PublicKey)
	pemBytes, _ := os.ReadFile(pubPath)
	v := mustVerifier(t, Config{Secret: []byte(secret), PublicKeyFiles: []string{pubPath}, Audience: "pushd", Issuer: "https://auth.example"})
	good := claims("alice", time.Hour, "aud", "pushd", "iss", "https://auth.example")

	valid := sign(t, jwt.SigningMethodHS256, []byte(secret), "", good)
	parts := strings.Split(valid, ".")
	tamperedPayload, _ := json.Marshal(claims("mallory", time.Hour, "aud", "pushd", "iss", "https://auth.example"))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedPayload) + "." + parts[2]
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", good)
	noneNoSig := strings.TrimSuffix(none, ".") + "."
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)

	for _, tc := range []struct {
		name, token string
		want        error
	}{
		{"valid HS256", valid, nil},
		{"valid RS256", sign(t, jwt.SigningMethodRS256, rsaKey, "", good), nil},
		{"empty", "", ErrTokenMissing},
		{"garbage", "not.a.jwt", ErrTokenInvalid},
		{"alg none", none, ErrTokenInvalid},
		{"alg none without signature", noneNoSig, ErrTokenInvalid},
		{"HS256 signed with the RSA public key (confusion)", sign(t, jwt.SigningMethodHS256, pemBytes, "", good), ErrTokenInvalid},
		{"RS256 signed by another key", sign(t, jwt.SigningMethodRS256, otherRSA, "", good), ErrTokenInvalid},
		{"RS512 (not accepted)", sign(t, jwt.SigningMethodRS512, rsaKey, "", good), ErrTokenInvalid},
		{"tampered payload", tampered, ErrTokenInvalid},
		{"tampered signature", valid[:len(valid)-2] + "AA", ErrTokenInvalid},
		{"expired", sign(t, jwt.SigningMethodHS256, []byte(secret), "", claims("alice", -time.Minute, "aud", "pushd", "iss", "https://auth.example")), ErrTokenExpired},
		{"expired and wrongly signed", sign(t, jwt.SigningMethodHS256, []byte("nope-nope-nope-nope"), "", claims("alice", -time.Minute, "aud", "pushd", "iss", "https://auth.example")), ErrTokenInvalid},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, []byte(secret), "", claims("alice", time.Hour, "aud", "pushd", "iss", "https://auth.example", "nbf", time.Now().Add(time.Hour).Unix())), ErrTokenInvalid},
		{"no exp", sign(t, jwt.SigningMethodHS256, []byte(secret), "", jwt.MapClaims{"sub": "alice", "aud": "pushd", "iss": "https://auth.example"}), ErrTokenInvalid},
		{"no sub", sign(t, jwt.SigningMethodHS256, []byte(secret), "", claims("", time.Hour, "aud", "pushd", "iss", "https://auth.example")), ErrTokenInvalid},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, []byte(secret), "", claims("alice", time.Hour, "aud", "other", "iss", "https://auth.example")), ErrTokenInvalid},
		{"no audience", sign(t, jwt.SigningMethodHS256, []byte(secret), "", claims("alice", time.Hour, "iss", "https://auth.example")), ErrTokenInvalid},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, []byte(secret), "", claims("alice", time.Hour, "aud", "pushd", "iss", "https://evil.example")), ErrTokenInvalid},
		{"too long", valid + strings.Repeat("A", MaxTokenLength), ErrTokenInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.token)
			if tc.want == nil {
				if err != nil || c.Subject != "alice" {
					t.Fatalf("Verify: %v, %+v", err, c)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDocsClaims(t *testing.T) {
	v := mustVerifier(t, Config{Secret: []byte(secret)})
	c, err := v.Verify(sign(t, jwt.SigningMethodHS256, []byte(secret), "", claims("bob", time.Hour, "docs", []string{"d1", "team-7/*"}, "doc", "d2")))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Docs) != 2 || c.Docs[1] != "team-7/*" || c.Doc != "d2" || c.Expiry().IsZero() {
		t.Fatalf("claims %+v", c)
	}
}

func jwkEC(kid string, pub *ecdsa.PublicKey) map[string]string {
	b, _ := pub.Bytes()
	return map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "x": base64.RawURLEncoding.EncodeToString(b[1:33]), "y": base64.RawURLEncoding.EncodeToString(b[33:])}
}

func jwkRSA(kid string, pub *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())}
}

func writeJWKS(t testing.TB, path string, keys ...map[string]string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"keys": keys})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestKeysDirKidAndRotation(t *testing.T) {
	dir := t.TempDir()
	ec1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pushtest.WritePublicKeyPEM(t, filepath.Join(dir, "k1.pem"), &ec1.PublicKey)
	writeJWKS(t, filepath.Join(dir, "jwks.json"), jwkRSA("r1", &rsaKey.PublicKey),
		map[string]string{"kty": "oct", "kid": "h1", "k": base64.RawURLEncoding.EncodeToString([]byte(secret))})
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("ignored"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := mustVerifier(t, Config{KeysDir: dir})
	if v.Keys() != 3 {
		t.Fatalf("keys = %d, want 3", v.Keys())
	}
	ok := func(tok string) {
		t.Helper()
		if _, err := v.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	bad := func(tok, why string) {
		t.Helper()
		if _, err := v.Verify(tok); !errors.Is(err, ErrTokenInvalid) {
			t.Fatalf("%s: %v, want invalid", why, err)
		}
	}
	ok(sign(t, jwt.SigningMethodES256, ec1, "k1", claims("a", time.Hour)))
	ok(sign(t, jwt.SigningMethodES256, ec1, "", claims("a", time.Hour)))
	ok(sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims("a", time.Hour)))
	ok(sign(t, jwt.SigningMethodHS256, []byte(secret), "h1", claims("a", time.Hour)))
	bad(sign(t, jwt.SigningMethodES256, ec1, "nope", claims("a", time.Hour)), "unknown kid")
	bad(sign(t, jwt.SigningMethodES256, ec1, "r1", claims("a", time.Hour)), "kid of a key of another algorithm")
	bad(sign(t, jwt.SigningMethodES256, ec2, "k1", claims("a", time.Hour)), "right kid, wrong key")

	// Rotation: add k2, then drop k1; a broken file keeps the old keys.
	pushtest.WritePublicKeyPEM(t, filepath.Join(dir, "k2.pem"), &ec2.PublicKey)
	if changed, err := v.ReloadIfChanged(); !changed || err != nil {
		t.Fatalf("reload: %v %v", changed, err)
	}
	ok(sign(t, jwt.SigningMethodES256, ec2, "k2", claims("a", time.Hour)))
	ok(sign(t, jwt.SigningMethodES256, ec1, "k1", claims("a", time.Hour)))
	if changed, err := v.ReloadIfChanged(); changed || err != nil {
		t.Fatalf("reload without change: %v %v", changed, err)
	}
	if err := os.Remove(filepath.Join(dir, "k1.pem")); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ReloadIfChanged(); err != nil {
		t.Fatal(err)
	}
	bad(sign(t, jwt.SigningMethodES256, ec1, "k1", claims("a", time.Hour)), "removed key")
	if err := os.WriteFile(filepath.Join(dir, "k3.pem"), []byte("-----BEGIN PUBLIC KEY-----\ntruncated"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ReloadIfChanged(); err == nil {
		t.Fatal("a broken key file should fail the reload")
	}
	ok(sign(t, jwt.SigningMethodES256, ec2, "k2", claims("a", time.Hour)))
}

func TestBadKeyConfig(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(Config{}); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("no keys: %v", err)
	}
	if _, err := New(Config{KeysDir: dir}); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("empty dir: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pushtest.WritePublicKeyPEM(t, filepath.Join(dir, "p384.pem"), &p384.PublicKey)
	if _, err := New(Config{KeysDir: dir}); err == nil {
		t.Fatal("P-384 key accepted for ES256")
	}
	for name, doc := range map[string]string{
		"not json":   `{`,
		"no keys":    `{"keys":[]}`,
		"short oct":  `{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}`,
		"bad kty":    `{"keys":[{"kty":"OKP"}]}`,
		"alg clash":  `{"keys":[{"kty":"oct","alg":"RS256","k":"` + base64.RawURLEncoding.EncodeToString([]byte(secret)) + `"}]}`,
		"small RSA":  `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		"bad EC":     `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`,
		"only enc":   `{"keys":[{"kty":"oct","use":"enc","k":"` + base64.RawURLEncoding.EncodeToString([]byte(secret)) + `"}]}`,
		"off-curve":  `{"keys":[{"kty":"EC","crv":"P-256","x":"` + strings.Repeat("A", 43) + `","y":"` + strings.Repeat("A", 43) + `"}]}`,
		"P-521 JWKS": `{"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}]}`,
	} {
		if _, err := parseJWKS([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if keys, err := parseJWKS(mustJSON(map[string]any{"keys": []any{jwkEC("e", &ec.PublicKey)}})); err != nil || len(keys) != 1 {
		t.Fatalf("EC JWK: %v", err)
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// FuzzVerify feeds arbitrary tokens to a verifier holding HS256, RS256 and
// ES256 keys: it must never panic, and anything it accepts must carry a
// subject and an exp in the future.
func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pushtest.WritePublicKeyPEM(f, filepath.Join(dir, "ec.pem"), &ec.PublicKey)
	pushtest.WritePublicKeyPEM(f, filepath.Join(dir, "rsa.pem"), &rsaKey.PublicKey)
	v := mustVerifier(f, Config{Secret: []byte(secret), KeysDir: dir})
	f.Add(sign(f, jwt.SigningMethodHS256, []byte(secret), "", claims("alice", time.Hour, "docs", []string{"a/*"})))
	f.Add(sign(f, jwt.SigningMethodES256, ec, "ec", claims("bob", time.Hour)))
	f.Add(sign(f, jwt.SigningMethodRS256, rsaKey, "rsa", claims("carol", time.Hour)))
	f.Add(sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims("eve", time.Hour)))
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(tok)
		if err != nil {
			if !errors.Is(err, ErrTokenInvalid) && !errors.Is(err, ErrTokenExpired) && !errors.Is(err, ErrTokenMissing) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if c.Subject == "" || c.ExpiresAt == nil {
			t.Fatalf("accepted token without sub or exp: %+v", c)
		}
	})
}
