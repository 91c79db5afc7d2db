package client

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"time"
)

// tokenExpiry is the exp claim of a JWT, read without verifying it (the
// client only needs to know when to refresh); ok is false when the token is
// not a JWT or has no numeric exp.
func tokenExpiry(token string) (exp time.Time, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(b, &claims) != nil || claims.Exp == nil || math.IsNaN(*claims.Exp) ||
		*claims.Exp < 0 || *claims.Exp > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(*claims.Exp)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// refreshDelay is when to refresh a token that expires at exp, from now: a
// fifth of its remaining life before exp, but at most margin before it.
func refreshDelay(exp, now time.Time, margin time.Duration) time.Duration {
	left := exp.Sub(now)
	return max(0, left-min(margin, left/5))
}
