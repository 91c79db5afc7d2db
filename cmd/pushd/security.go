package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushd/pushd/auth"
	"github.com/pushd/pushd/internal/tlsreload"
	"github.com/pushd/pushd/node"
)

// hasKeys reports whether any token key is configured.
func (c *config) hasKeys() bool {
	return c.JWTSecret != "" || len(c.JWTPublicKeys) > 0 || c.JWTKeysDir != ""
}

// validateSecurity checks the security flags (docs/SECURITY.md).
func (c *config) validateSecurity() error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	switch node.JoinAuthorization(c.JoinAuthorization) {
	case node.JoinRequired, node.JoinOff:
	default:
		return fmt.Errorf("--join-authorization %q: want required or off", c.JoinAuthorization)
	}
	if c.UpstreamRate < 0 || c.HandshakeRatePerIP < 0 {
		return errors.New("--upstream-rate and --handshake-rate-per-ip must not be negative (0 disables)")
	}
	return c.validateLimits()
}

// nodeLimits copies the security flags into a node config. The flags'
// defaults are node's own (node.Default*); a flag set to 0 turns its limit
// off, which node.Config spells with a negative value (its zero means the
// default), so 0 becomes -1 here and nowhere else.
func (c *config) nodeLimits(nc *node.Config) {
	off := func(v int) int {
		if v == 0 {
			return -1
		}
		return v
	}
	nc.JoinAuthorization = node.JoinAuthorization(c.JoinAuthorization)
	nc.MaxDocsPerSession = off(c.MaxDocsPerSession)
	nc.MaxSessionsPerUser = off(c.MaxSessionsPerUser)
	nc.MaxConnections = off(c.MaxConnections)
	nc.UpstreamRate = c.UpstreamRate
	if nc.UpstreamRate == 0 {
		nc.UpstreamRate = -1
	}
	nc.UpstreamBurst = c.UpstreamBurst
	nc.UpstreamBytesRate = off(c.UpstreamBytesRate)
	nc.HandshakeRatePerIP = c.HandshakeRatePerIP
	nc.HandshakeBurstPerIP = c.HandshakeBurstPerIP
	c.limitsToNode(nc)
	for _, o := range c.AllowedOrigins {
		if o = strings.TrimSpace(o); o != "" {
			nc.AllowedOrigins = append(nc.AllowedOrigins, o)
		}
	}
}

// newVerifier builds the token verifier, or nil when no key is configured.
func newVerifier(c config) (*auth.Verifier, error) {
	if !c.hasKeys() {
		return nil, nil
	}
	return auth.New(auth.Config{
		Secret:         []byte(c.JWTSecret),
		PublicKeyFiles: c.JWTPublicKeys,
		KeysDir:        c.JWTKeysDir,
		Audience:       c.JWTAudience,
		Issuer:         c.JWTIssuer,
		Leeway:         c.JWTLeeway,
		CacheSize:      cmp.Or(c.TokenCacheSize, -1), // the flag's 0 is off
	})
}

// registerTokenCache exports the verified-token cache's counters.
func registerTokenCache(reg prometheus.Registerer, v *auth.Verifier) {
	if v == nil {
		return
	}
	for _, result := range []string{"hit", "miss"} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pushd_token_cache_lookups_total", ConstLabels: prometheus.Labels{"result": result},
			Help: "Token verifications by whether the verified-token cache answered (hit) or the signature was checked (miss).",
		}, func() float64 {
			s := v.CacheStats()
			if result == "hit" {
				return float64(s.Hits)
			}
			return float64(s.Misses)
		}))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pushd_token_cache_entries", Help: "Verified tokens the cache holds (--token-cache-size bounds it).",
	}, func() float64 { return float64(v.CacheStats().Entries) }))
}

// newTLS loads the TLS key pair, or returns nil without --tls-cert.
func newTLS(c config) (*tlsreload.Reloader, error) {
	if c.TLSCert == "" {
		return nil, nil
	}
	return tlsreload.New(c.TLSCert, c.TLSKey)
}

// reloadable is a verifier or a TLS key pair.
type reloadable interface {
	Reload() error
	ReloadIfChanged() (bool, error)
}

// startReloader reloads token keys and the TLS key pair on SIGHUP and when
// their files change (polled every interval; 0 polls never). Connections stay
// up: only new handshakes and new tokens see the new keys. The returned stop
// function ends the goroutine and may be called more than once.
func startReloader(log *slog.Logger, reg prometheus.Registerer, interval time.Duration, v *auth.Verifier, t *tlsreload.Reloader) func() {
	items := map[string]reloadable{}
	if v != nil {
		items["jwt"] = v
	}
	if t != nil {
		items["tls"] = t
	}
	if len(items) == 0 {
		return func() {}
	}
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushd_key_reloads_total",
		Help: "Reloads of token keys (kind jwt) and the TLS key pair (kind tls), by result."}, []string{"kind", "result"})
	for k := range items {
		reloads.WithLabelValues(k, "ok")
		reloads.WithLabelValues(k, "error")
	}
	reg.MustRegister(reloads)
	report := func(kind string, err error) {
		if err != nil {
			reloads.WithLabelValues(kind, "error").Inc()
			log.Error("key reload failed; keeping the keys in use", "kind", kind, "err", err)
			return
		}
		reloads.WithLabelValues(kind, "ok").Inc()
		log.Info("keys reloaded", "kind", kind)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var tick <-chan time.Time
	var ticker *time.Ticker
	if interval > 0 {
		ticker = time.NewTicker(interval)
		tick = ticker.C
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-hup:
				for kind, it := range items {
					report(kind, it.Reload())
				}
			case <-tick:
				for kind, it := range items {
					if changed, err := it.ReloadIfChanged(); changed || err != nil {
						report(kind, err)
					}
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(hup)
			close(stop)
			wg.Wait()
			if ticker != nil {
				ticker.Stop()
			}
		})
	}
}
