package main

import (
	"testing"
	"time"

	"github.com/pushd/pushd/internal/pushtest"
)

// A client that reconnects with the token it had is served from the
// verified-token cache; with --token-cache-size 0 every handshake checks the
// signature.
func TestReconnectWithTheSameTokenHitsTheCache(t *testing.T) {
	t.Parallel()
	ns := pushtest.RunNATS(t)
	for _, tc := range []struct {
		args       []string
		hits, miss float64
	}{{nil, 1, 1}, {[]string{"--token-cache-size", "0"}, 0, 0}} {
		n := startPushd(t, ns.URL(), append([]string{"--jwt-secret", testSecret}, tc.args...)...)
		tok := token(t, "ann", time.Hour)
		for range 2 {
			c := dialToken(t, n, tok)
			_ = c.Close()
		}
		if got := metric(t, n, `pushd_token_cache_lookups_total{result="hit"}`); got != tc.hits {
			t.Errorf("%v: hits = %v, want %v", tc.args, got, tc.hits)
		}
		if got := metric(t, n, `pushd_token_cache_lookups_total{result="miss"}`); got != tc.miss {
			t.Errorf("%v: misses = %v, want %v", tc.args, got, tc.miss)
		}
	}
}
