package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/spf13/pflag"

	"github.com/pushd/pushd/node"
)

// The flags of the cluster-wide and per-user limits (docs/SECURITY.md).

// addLimitFlags declares them.
func addLimitFlags(f *pflag.FlagSet, cfg *config) {
	f.StringSliceVar(&cfg.TrustedProxies, "trusted-proxies", nil, "networks (CIDR, or single IPs) of proxies whose X-Forwarded-For names the client for the per-IP handshake limit, e.g. 10.0.0.0/8")
	f.Float64Var(&cfg.JoinRate, "join-rate", node.DefaultJoinRate, "joins and leaves per second per session; more are refused rate_limited and steady excess ends in 4029 (0: no limit)")
	f.IntVar(&cfg.JoinBurst, "join-burst", 0, "joins and leaves a session may make at once (0: the larger of --max-docs-per-session and twice --join-rate)")
	f.IntVar(&cfg.MaxDocsPerUser, "max-docs-per-user", node.DefaultMaxDocsPerUser, "distinct docs one user's sessions on this node may join together (0: no limit)")
	f.IntVar(&cfg.MaxClusterSessionsPerUser, "max-cluster-sessions-per-user", node.DefaultMaxClusterSessionsPerUser, "sessions one user may hold across the cluster, best effort over NATS; more are refused with 429 (0: no limit)")
}

// validateLimits checks them. --max-docs-per-user left at its default
// follows --max-docs-per-session: twice it when that is higher than the
// default, off when that is off.
func (c *config) validateLimits() error {
	if c.JoinRate < 0 || c.JoinBurst < 0 || c.MaxDocsPerUser < 0 || c.MaxClusterSessionsPerUser < 0 || c.HandshakeBurstPerIP < 0 {
		return fmt.Errorf("--join-rate, --join-burst, --max-docs-per-user, --max-cluster-sessions-per-user and --handshake-burst-per-ip must not be negative (0 disables)")
	}
	if c.MaxDocsPerUser > 0 && c.MaxDocsPerSession > c.MaxDocsPerUser {
		if !c.defaults["max-docs-per-user"] {
			return fmt.Errorf("--max-docs-per-user %d is below --max-docs-per-session %d: a user's one session could not reach its own limit; raise it, or 0 for no limit",
				c.MaxDocsPerUser, c.MaxDocsPerSession)
		}
		c.MaxDocsPerUser = 2 * c.MaxDocsPerSession
	}
	if c.MaxDocsPerSession == 0 && c.defaults["max-docs-per-user"] {
		c.MaxDocsPerUser = 0 // no per-session limit asked for: no implicit one per user either
	}
	_, err := parseTrustedProxies(c.TrustedProxies)
	return err
}

// parseTrustedProxies parses CIDRs and single addresses.
func parseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies %q: want a network (10.0.0.0/8) or an address", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// limitsToNode copies them into a node config (0 means off on the command
// line, negative in node.Config).
func (c *config) limitsToNode(nc *node.Config) {
	off := func(v int) int {
		if v == 0 {
			return -1
		}
		return v
	}
	nc.TrustedProxies, _ = parseTrustedProxies(c.TrustedProxies) // validated
	nc.JoinRate = c.JoinRate
	if nc.JoinRate == 0 {
		nc.JoinRate = -1
	}
	nc.JoinBurst = c.JoinBurst
	nc.MaxDocsPerUser = off(c.MaxDocsPerUser)
	nc.MaxClusterSessionsPerUser = off(c.MaxClusterSessionsPerUser)
	if c.HandshakeRatePerIP == 0 {
		nc.HandshakeRatePerIP = -1
	}
}

// warnLimits logs, loudly, the limits that are off although they protect
// the node from one abusive client.
func (c *config) warnLimits(log *slog.Logger) {
	if c.HandshakeRatePerIP == 0 {
		log.Warn("PER-IP HANDSHAKE LIMIT OFF (--handshake-rate-per-ip 0): one address can make this node verify tokens as fast as it can send handshakes. " +
			"Behind a proxy, keep the limit and list the proxy in --trusted-proxies instead (docs/SECURITY.md)")
	}
}
