// Package auth verifies the JSON Web Tokens that clients present to pushd.
//
// A token's "sub" claim is the user ID. HS256 tokens are checked against a shared
// secret; RS256 and ES256 tokens against PEM public keys. "exp" is required and
// enforced; "nbf" is honoured when present. The accepted algorithms are fixed by
// the configured keys, so "alg: none" and HS/RS confusion are refused.
package auth

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
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

// Config says which keys verify tokens. At least one of Secret or
// PublicKeyFiles must be set.
type Config struct {
	// Secret is the HS256 shared secret. Empty means HS256 tokens are refused.
	Secret []byte
	// PublicKeyFiles are PEM files holding RSA or ECDSA public keys (RS256/ES256).
	// Empty means RS256 and ES256 tokens are refused.
	PublicKeyFiles []string
	// Leeway is the clock skew tolerated on exp and nbf. Zero means none.
	Leeway time.Duration
}

// Claims are the token claims pushd reads.
type Claims struct {
	jwt.RegisteredClaims
}

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	secret []byte
	rsa    []*rsa.PublicKey
	ecdsa  []*ecdsa.PublicKey
	leeway time.Duration
}

// New loads the keys named in cfg.
func New(cfg Config) (*Verifier, error) {
	v := &Verifier{secret: cfg.Secret, leeway: cfg.Leeway}
	for _, f := range cfg.PublicKeyFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("pushd: read public key: %w", err)
		}
		if k, err := jwt.ParseRSAPublicKeyFromPEM(pem); err == nil {
			v.rsa = append(v.rsa, k)
			continue
		}
		k, err := jwt.ParseECPublicKeyFromPEM(pem)
		if err != nil {
			return nil, fmt.Errorf("pushd: %s: not an RSA or ECDSA public key in PEM form", f)
		}
		v.ecdsa = append(v.ecdsa, k)
	}
	if len(v.secret) == 0 && len(v.rsa) == 0 && len(v.ecdsa) == 0 {
		return nil, ErrNoKeys
	}
	return v, nil
}

// Verify parses token, checks its signature and time claims and returns its
// claims. The error is one of ErrTokenMissing, ErrTokenExpired or
// ErrTokenInvalid, wrapping the parser's detail.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrTokenMissing
	}
	var lastErr error
	for _, cand := range v.candidates() {
		claims := new(Claims)
		_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return cand.key, nil },
			jwt.WithValidMethods(cand.methods), jwt.WithExpirationRequired(), jwt.WithLeeway(v.leeway))
		if err == nil {
			if claims.Subject == "" {
				return nil, fmt.Errorf("%w: no sub claim", ErrTokenInvalid)
			}
			return claims, nil
		}
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, fmt.Errorf("%w: %v", ErrTokenExpired, err)
		}
		lastErr = err
	}
	return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, lastErr)
}

type candidate struct {
	key     any
	methods []string
}

func (v *Verifier) candidates() []candidate {
	var c []candidate
	if len(v.secret) > 0 {
		c = append(c, candidate{v.secret, []string{"HS256"}})
	}
	for _, k := range v.rsa {
		c = append(c, candidate{k, []string{"RS256"}})
	}
	for _, k := range v.ecdsa {
		c = append(c, candidate{k, []string{"ES256"}})
	}
	return c
}
