package auth

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A token verified once is served from the cache the next times, as the
// same claims, until it expires; a tampered copy is not a hit.
func TestCacheServesVerifiedTokensUntilTheyExpire(t *testing.T) {
	v := mustVerifier(t, Config{Secret: []byte(secret)})
	tok := sign(t, jwt.SigningMethodHS256, []byte(secret), "", claims("ann", time.Minute, "docs", []string{"d1"}))
	first, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	again, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if again != first || again.Subject != "ann" || len(again.Docs) != 1 {
		t.Fatalf("second verify = %+v, want the cached claims %+v", again, first)
	}
	if s := v.CacheStats(); s.Hits != 1 || s.Misses != 1 || s.Entries != 1 {
		t.Fatalf("stats = %+v, want 1 hit, 1 miss, 1 entry", s)
	}

	tampered := tok[:len(tok)-2] + flip(tok[len(tok)-2]) + tok[len(tok)-1:]
	if _, err := v.Verify(tampered); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("tampered token: %v, want invalid", err)
	}

	v.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, err := v.Verify(tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("cached token past its exp: %v, want expired", err)
	}
	if s := v.CacheStats(); s.Entries != 0 {
		t.Fatalf("an expired token stays cached: %+v", s)
	}
}

// The leeway applies to cached tokens as it does to fresh ones.
func TestCacheHonoursLeeway(t *testing.T) {
	v := mustVerifier(t, Config{Secret: []byte(secret), Leeway: time.Minute})
	tok := sign(t, jwt.SigningMethodHS256, []byte(secret), "", claims("ann", time.Minute))
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	v.now = func() time.Time { return time.Now().Add(90 * time.Second) }
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	v.now = func() time.Time { return time.Now().Add(3 * time.Minute) }
	if _, err := v.Verify(tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("past the leeway: %v, want expired", err)
	}
}

// A reload that drops the key a token was verified with forgets the token.
func TestCacheForgetsTokensOfARemovedKey(t *testing.T) {
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	h1 := map[string]string{"kty": "oct", "kid": "h1", "k": base64.RawURLEncoding.EncodeToString([]byte(secret))}
	h2 := map[string]string{"kty": "oct", "kid": "h2", "k": base64.RawURLEncoding.EncodeToString([]byte("another-secret-0123456789"))}
	writeJWKS(t, jwks, h1, h2)
	v := mustVerifier(t, Config{KeysDir: dir})
	tok := sign(t, jwt.SigningMethodHS256, []byte(secret), "h1", claims("ann", time.Hour))
	for range 2 {
		if _, err := v.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(jwks); err != nil {
		t.Fatal(err)
	}
	writeJWKS(t, filepath.Join(dir, "rotated.json"), h2)
	if _, err := v.ReloadIfChanged(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("token of a removed key: %v, want invalid", err)
	}
}

// The cache holds at most CacheSize tokens; a negative size turns it off.
func TestCacheIsBounded(t *testing.T) {
	v := mustVerifier(t, Config{Secret: []byte(secret), CacheSize: 2})
	for _, u := range []string{"a", "b", "c", "d"} {
		if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, []byte(secret), "", claims(u, time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	if s := v.CacheStats(); s.Entries != 2 || s.Misses != 4 {
		t.Fatalf("stats = %+v, want 2 entries after 4 misses", s)
	}

	off := mustVerifier(t, Config{Secret: []byte(secret), CacheSize: -1})
	tok := sign(t, jwt.SigningMethodHS256, []byte(secret), "", claims("a", time.Hour))
	for range 2 {
		if _, err := off.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	if s := off.CacheStats(); s != (CacheStats{}) {
		t.Fatalf("cache off: stats = %+v, want zero", s)
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// BenchmarkVerify compares a fresh HS256 verification with a cached one.
func BenchmarkVerify(b *testing.B) {
	for _, tc := range []struct {
		name string
		size int
	}{{"fresh", -1}, {"cached", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			v := mustVerifier(b, Config{Secret: []byte(secret), CacheSize: tc.size})
			tok := sign(b, jwt.SigningMethodHS256, []byte(secret), "", claims("ann", time.Hour, "docs", []string{"team-7/*"}))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
