// Package auth verifies the JSON Web Tokens that clients present to pushd.
//
// A token's "sub" claim is the user ID. HS256 tokens are checked against
// shared secrets; RS256 and ES256 tokens against public keys. "exp" is
// required and enforced; "nbf" is honoured when present; "aud" and "iss" are
// enforced when the Verifier is configured with them. The accepted algorithm
// of every key is fixed by the key's type, so "alg: none" and HS/RS confusion
// are refused.
//
// Several keys can be active at once (rotation): a secret, PEM public key
// files, and a directory holding PEM public keys and JWKS files. A token whose
// header names a "kid" is checked only against the keys with that ID (or, when
// no key has it, against the keys that have no ID, that is --jwt-secret and
// --jwt-public-key); a token without "kid" is checked against every key of its
// algorithm. Reload re-reads the files, so keys rotate without a restart.
package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors returned by Verify. They are stable so the node can map them to
// handshake statuses and metrics.
var (
	ErrTokenMissing = errors.New("pushd: token missing")
	ErrTokenExpired = errors.New("pushd: token expired")
	ErrTokenInvalid = errors.New("pushd: token invalid")
	ErrNoKeys       = errors.New("pushd: no verification key configured")
)

// MaxTokenLength is the longest token Verify parses; longer ones are invalid
// without being decoded.
const MaxTokenLength = 8 << 10

// Config says which keys verify tokens. At least one key must come out of
// Secret, PublicKeyFiles and KeysDir.
type Config struct {
	// Secret is an HS256 shared secret without a key ID. Empty means none.
	Secret []byte
	// PublicKeyFiles are files holding one RSA or ECDSA public key in PEM form
	// (RS256/ES256), without a key ID, or JWKS documents when the name ends in
	// ".json". Empty means none.
	PublicKeyFiles []string
	// KeysDir is a directory of verification keys: "<kid>.pem" files (an RSA or
	// ECDSA public key whose key ID is the file name without ".pem") and
	// "*.json" JWKS documents (RSA, EC P-256 and "oct" HS256 keys, each with
	// its "kid"). Other files are ignored. Empty means no directory.
	KeysDir string
	// Audience, when not empty, must be one of the token's "aud" values.
	Audience string
	// Issuer, when not empty, must equal the token's "iss".
	Issuer string
	// Leeway is the clock skew tolerated on exp and nbf. Zero means none.
	Leeway time.Duration
	// CacheSize is how many verified tokens the Verifier remembers, so that
	// a client coming back with the same token skips the signature check
	// and the claims decoding (expiry is still checked every time, and a
	// key reload forgets them all). Zero means DefaultCacheSize; negative
	// turns the cache off.
	CacheSize int
}

// Claims are the token claims pushd reads.
type Claims struct {
	jwt.RegisteredClaims
	// Docs are the documents a connection token grants: exact doc IDs, or
	// prefixes ending in "*" ("team-7/*"); "*" alone grants every doc.
	Docs []string `json:"docs,omitempty"`
	// Doc is the single document a join token grants.
	Doc string `json:"doc,omitempty"`
	// Info is what the session shows about itself in the presence of the
	// docs it joins (a display name, an avatar URL): any JSON value, kept
	// verbatim; the node bounds its size.
	Info json.RawMessage `json:"info,omitempty"`
}

// Verifier checks tokens. It is safe for concurrent use, also with Reload.
type Verifier struct {
	cfg  Config
	keys atomic.Pointer[keySet]
	fp   atomic.Value // string: fingerprint of the key files last loaded
	// parser is built once: it only reads its options, so concurrent
	// parses share it.
	parser *jwt.Parser
	// now is the clock cached tokens' expiry is checked against.
	now func() time.Time
	// hits and misses count the verified-token cache's lookups.
	hits, misses atomic.Uint64
}

type key struct {
	kid string
	alg string // HS256, RS256 or ES256
	key any
}

type keySet struct {
	keys  []key
	cache *tokenCache // tokens these keys verified; nil when off
}

// New loads the keys named in cfg.
func New(cfg Config) (*Verifier, error) {
	v := &Verifier{cfg: cfg, now: time.Now}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"HS256", "RS256", "ES256"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	if err := v.Reload(); err != nil {
		return nil, err
	}
	return v, nil
}

// Keys is the number of verification keys loaded.
func (v *Verifier) Keys() int { return len(v.keys.Load().keys) }

// Reload re-reads the key files. On error the keys in use stay as they were,
// so a half-written file never locks clients out.
func (v *Verifier) Reload() error {
	fp := v.fingerprint()
	ks, err := load(v.cfg)
	if err != nil {
		return err
	}
	v.keys.Store(ks)
	v.fp.Store(fp)
	return nil
}

// ReloadIfChanged reloads the keys when a key file or the keys directory
// changed (name, size or modification time) since the last load. It reports
// whether it reloaded.
func (v *Verifier) ReloadIfChanged() (bool, error) {
	if fp := v.fingerprint(); fp == v.fp.Load() {
		return false, nil
	}
	return true, v.Reload()
}

func (v *Verifier) fingerprint() string {
	var b strings.Builder
	stat := func(p string) {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
		} else {
			b.WriteString(p + ":missing;")
		}
	}
	for _, f := range v.cfg.PublicKeyFiles {
		stat(f)
	}
	if v.cfg.KeysDir != "" {
		stat(v.cfg.KeysDir)
		entries, _ := os.ReadDir(v.cfg.KeysDir)
		for _, e := range entries {
			stat(filepath.Join(v.cfg.KeysDir, e.Name()))
		}
	}
	return b.String()
}

func load(cfg Config) (*keySet, error) {
	size := cfg.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	ks := &keySet{cache: newTokenCache(size)}
	if len(cfg.Secret) > 0 {
		ks.keys = append(ks.keys, key{alg: "HS256", key: cfg.Secret})
	}
	for _, f := range cfg.PublicKeyFiles {
		keys, err := loadFile(f, "")
		if err != nil {
			return nil, err
		}
		ks.keys = append(ks.keys, keys...)
	}
	if cfg.KeysDir != "" {
		entries, err := os.ReadDir(cfg.KeysDir)
		if err != nil {
			return nil, fmt.Errorf("pushd: keys dir: %w", err)
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, name := range names {
			var kid string
			switch {
			case strings.HasSuffix(name, ".pem"):
				kid = strings.TrimSuffix(name, ".pem")
			case strings.HasSuffix(name, ".json"):
			default:
				continue
			}
			keys, err := loadFile(filepath.Join(cfg.KeysDir, name), kid)
			if err != nil {
				return nil, err
			}
			ks.keys = append(ks.keys, keys...)
		}
	}
	if len(ks.keys) == 0 {
		return nil, ErrNoKeys
	}
	return ks, nil
}

// loadFile reads a PEM public key (with key ID kid) or a JWKS document.
func loadFile(path, kid string) ([]key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pushd: read key: %w", err)
	}
	if strings.HasSuffix(path, ".json") {
		keys, err := parseJWKS(b)
		if err != nil {
			return nil, fmt.Errorf("pushd: %s: %w", path, err)
		}
		return keys, nil
	}
	if k, err := jwt.ParseRSAPublicKeyFromPEM(b); err == nil {
		return []key{{kid: kid, alg: "RS256", key: k}}, nil
	}
	k, err := jwt.ParseECPublicKeyFromPEM(b)
	if err != nil {
		return nil, fmt.Errorf("pushd: %s: not an RSA or ECDSA public key in PEM form", path)
	}
	if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("pushd: %s: ECDSA key is not P-256 (ES256)", path)
	}
	return []key{{kid: kid, alg: "ES256", key: k}}, nil
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	K   string `json:"k"`
}

// parseJWKS reads the signature keys of a JWKS document ({"keys":[...]}):
// RSA keys (RS256), EC P-256 keys (ES256) and "oct" keys (HS256). Keys marked
// "use":"enc" are skipped; a key with an "alg" other than its type's is an
// error.
func parseJWKS(b []byte) ([]key, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	var out []key
	for i, j := range doc.Keys {
		if j.Use == "enc" {
			continue
		}
		k, err := j.key()
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, j.Kid, err)
		}
		if j.Alg != "" && j.Alg != k.alg {
			return nil, fmt.Errorf("key %d (kid %q): alg %q, want %s for a %s key", i, j.Kid, j.Alg, k.alg, j.Kty)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("JWKS document has no signature keys")
	}
	return out, nil
}

func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

func (j jwk) key() (key, error) {
	switch j.Kty {
	case "RSA":
		n, err1 := b64(j.N)
		e, err2 := b64(j.E)
		if err1 != nil || err2 != nil || len(n) < 256 || len(e) == 0 || len(e) > 4 {
			return key{}, errors.New("bad RSA n or e (RSA keys must be 2048 bits or more)")
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		return key{kid: j.Kid, alg: "RS256", key: &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}}, nil
	case "EC":
		if j.Crv != "P-256" {
			return key{}, fmt.Errorf("curve %q not supported (want P-256)", j.Crv)
		}
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return key{}, errors.New("bad EC x or y")
		}
		raw := append(append([]byte{4}, x...), y...)
		pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return key{}, fmt.Errorf("EC point: %w", err)
		}
		return key{kid: j.Kid, alg: "ES256", key: pk}, nil
	case "oct":
		k, err := b64(j.K)
		if err != nil || len(k) < 16 {
			return key{}, errors.New("bad oct k (at least 16 bytes)")
		}
		return key{kid: j.Kid, alg: "HS256", key: k}, nil
	}
	return key{}, fmt.Errorf("kty %q not supported", j.Kty)
}

// pick returns the keys that may verify t: those of its algorithm, narrowed
// to its kid when it names one.
func (ks *keySet) pick(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, hasKid := t.Header["kid"].(string)
	var byKid, anon, all []jwt.VerificationKey
	for _, k := range ks.keys {
		if k.alg != alg {
			continue
		}
		all = append(all, k.key)
		switch {
		case k.kid == "":
			anon = append(anon, k.key)
		case hasKid && k.kid == kid:
			byKid = append(byKid, k.key)
		}
	}
	keys := all
	if hasKid {
		keys = byKid
		if len(keys) == 0 {
			keys = anon
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("unknown kid %q for %s", kid, alg)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no %s key configured", alg)
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// Verify parses token, checks its signature and claims and returns them. The
// error is one of ErrTokenMissing, ErrTokenExpired or ErrTokenInvalid,
// wrapping the parser's detail. A token that verified before (see
// Config.CacheSize) returns the same Claims as then: callers must not modify
// them.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrTokenMissing
	}
	if len(token) > MaxTokenLength {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrTokenInvalid, MaxTokenLength)
	}
	ks := v.keys.Load()
	if ks.cache == nil {
		return v.verify(ks, token)
	}
	k := sha256.Sum256([]byte(token))
	if cl := ks.cache.get(k); cl != nil {
		v.hits.Add(1)
		// The parser's own test: expired when now is past exp + leeway.
		if v.now().After(cl.ExpiresAt.Add(v.cfg.Leeway)) {
			ks.cache.forget(k)
			return nil, fmt.Errorf("%w: token has invalid claims: token is expired", ErrTokenExpired)
		}
		return cl, nil
	}
	v.misses.Add(1)
	cl, err := v.verify(ks, token)
	if err == nil {
		ks.cache.put(k, cl)
	}
	return cl, err
}

func (v *Verifier) verify(ks *keySet, token string) (*Claims, error) {
	claims := new(Claims)
	_, err := v.parser.ParseWithClaims(token, claims, ks.pick)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) && !errors.Is(err, jwt.ErrTokenSignatureInvalid) && !errors.Is(err, jwt.ErrTokenUnverifiable) {
			return nil, fmt.Errorf("%w: %v", ErrTokenExpired, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	if claims.Subject == "" {
		return nil, fmt.Errorf("%w: no sub claim", ErrTokenInvalid)
	}
	return claims, nil
}

// Expiry is the token's exp as a time (zero when absent, which Verify never
// returns).
func (c *Claims) Expiry() time.Time {
	if c.ExpiresAt == nil {
		return time.Time{}
	}
	return c.ExpiresAt.Time
}

// String is a short description for logs; it never includes the signature.
func (c *Claims) String() string {
	return "sub=" + strconv.Quote(c.Subject) + " exp=" + c.Expiry().UTC().Format(time.RFC3339)
}
