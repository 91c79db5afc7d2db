package node

import (
	"net/http"
	"net/url"
	"strings"
)

// originAllowed checks a handshake's Origin header. Requests without one
// (non-browser clients) are allowed: the check protects browser users from
// cross-site WebSocket hijacking, which needs a browser, and a browser always
// sends Origin. With no AllowedOrigins configured, production nodes accept
// only the request's own host and dev nodes accept any origin.
func (n *Node) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	patterns := n.cfg.AllowedOrigins
	if len(patterns) == 0 {
		if n.cfg.Dev {
			return true
		}
		u, err := url.Parse(origin)
		return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
	}
	return matchOrigin(patterns, origin)
}

// matchOrigin reports whether origin ("scheme://host[:port]") matches one of
// patterns: "*" (any), an exact origin, or one with a leading "*." in the
// host ("https://*.example.com" matches https://a.example.com and
// https://a.b.example.com but not https://example.com). Comparison is
// case-insensitive.
func matchOrigin(patterns []string, origin string) bool {
	origin = strings.ToLower(origin)
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "*" || p == origin {
			return true
		}
		scheme, host, ok := strings.Cut(p, "://*.")
		if !ok {
			continue
		}
		oScheme, oHost, ok := strings.Cut(origin, "://")
		if ok && oScheme == scheme && !strings.ContainsAny(oHost, "/@") && strings.HasSuffix(oHost, "."+host) && len(oHost) > len(host)+1 {
			return true
		}
	}
	return false
}
