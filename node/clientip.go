package node

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// The client a handshake's per-IP limit counts (docs/SECURITY.md): the
// peer, unless the peer is a trusted proxy, in which case the right-most
// address of X-Forwarded-For that is not a trusted proxy (every proxy
// appends the address it got the request from, so the entries right of the
// first untrusted one were written by trusted proxies; the ones left of it
// are whatever the client sent). IPv6 clients count per /64, the smallest
// network one subscriber usually gets.

// xffWarnEvery spaces the warnings about an untrusted peer that sends
// X-Forwarded-For.
const xffWarnEvery = time.Minute

// limitKey is the key of the per-IP handshake limit for a request from
// remote (host:port) with the X-Forwarded-For values xff.
func limitKey(remote string, xff []string, trusted []netip.Prefix) (key string, viaUntrusted bool) {
	peer, ok := parseAddr(remote)
	if !ok {
		return remote, false
	}
	if !isTrusted(peer, trusted) {
		return keyOf(peer), len(xff) > 0
	}
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		hops := strings.Split(xff[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			a, ok := parseAddr(strings.TrimSpace(hops[j]))
			if !ok {
				return keyOf(client), false // garbage from the client: the last proxy is who we know
			}
			client = a
			if !isTrusted(a, trusted) {
				return keyOf(a), false
			}
		}
	}
	return keyOf(client), false
}

// parseAddr parses "ip", "ip:port" or "[ipv6]:port", unmapping IPv4 in
// IPv6.
func parseAddr(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// keyOf is an IPv4 address, or an IPv6 address's /64.
func keyOf(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// clientKey is the per-IP limit's key for r, warning (at most once a
// minute) when an untrusted peer sends X-Forwarded-For: its clients then
// share one budget.
func (n *Node) clientKey(r *http.Request) string {
	key, viaUntrusted := limitKey(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), n.cfg.TrustedProxies)
	if viaUntrusted {
		n.warnUntrustedProxy(key)
	}
	return key
}

func (n *Node) warnUntrustedProxy(peer string) {
	now := time.Now().UnixNano()
	last := n.xffWarned.Load()
	if now-last < int64(xffWarnEvery) || !n.xffWarned.CompareAndSwap(last, now) {
		return
	}
	n.log.Warn("handshakes arrive with X-Forwarded-For from a peer that --trusted-proxies does not list: "+
		"every client behind it shares one per-IP handshake budget; list the proxy's network in --trusted-proxies",
		"peer", peer, "handshake_rate_per_ip", n.cfg.HandshakeRatePerIP, "handshake_burst_per_ip", n.cfg.HandshakeBurstPerIP)
}
