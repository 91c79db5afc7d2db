package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/pushd/pushd/auth"
	"github.com/pushd/pushd/history"
	"github.com/pushd/pushd/internal/cliutil"
	"github.com/pushd/pushd/node"
)

// envPrefix is the prefix of every flag's environment variable.
const envPrefix = "PUSHD"

// config is pushd's command line.
type config struct {
	Listen             string
	AdminListen        string
	NATSURL            string
	NATSEmbeddedListen string
	NATSCreds          string
	NodeID             int
	NodeName           string
	ConsulAddr         string
	ConsulToken        string
	ConsulDatacenter   string
	ConsulService      string
	ConsulSessionTTL   time.Duration
	ConsulLockDelay    time.Duration
	AdvertiseAddress   string
	SubjectPrefix      string
	JWTSecret          string
	JWTPublicKeys      []string
	Dev                bool
	DrainTimeout       time.Duration
	AuthTimeout        time.Duration
	PingInterval       time.Duration
	PingIntervalMax    time.Duration
	PingGrace          time.Duration
	PingStep           time.Duration
	PingHealthy        int
	HeartbeatSweep     time.Duration
	MaxFrameSize       int
	MaxQueuedBytes     int
	MaxPushSize        int
	WriteTimeout       time.Duration
	WriteCoalesce      time.Duration
	ParkIdle           bool
	LogFormat          string
	LogLevel           string

	// History flags (docs/OPERATIONS.md, "History").
	History                bool
	HistoryReplicas        int
	HistoryStorage         string
	HistoryMaxBytes        int64
	HistoryUserMaxMsgs     int64
	HistoryUserMaxAge      time.Duration
	HistoryDocMaxMsgs      int64
	HistoryDocMaxAge       time.Duration
	HistoryDuplicateWindow time.Duration
	ReplayMaxMsgs          int
	ReplayMaxBytes         int

	// defaults names the flags left at their default (neither set on the
	// command line nor by the environment).
	defaults map[string]bool

	// Security flags (docs/SECURITY.md).
	JWTKeysDir          string
	JWTAudience         string
	JWTIssuer           string
	JWTLeeway           time.Duration
	TokenCacheSize      int
	KeysReload          time.Duration
	JoinAuthorization   string
	TLSCert             string
	TLSKey              string
	AllowedOrigins      []string
	MaxDocsPerSession   int
	MaxSessionsPerUser  int
	MaxConnections      int
	UpstreamRate        float64
	UpstreamBurst       int
	UpstreamBytesRate   int
	HandshakeRatePerIP  float64
	HandshakeBurstPerIP int

	// Presence flags (presence.go).
	Presence presenceConfig
	// Rebalancing flags (rebalance.go).
	Rebalance rebalanceConfig

	// Cluster-wide and per-user limits (docs/SECURITY.md, limits.go).
	TrustedProxies            []string
	JoinRate                  float64
	JoinBurst                 int
	MaxDocsPerUser            int
	MaxClusterSessionsPerUser int
}

// started reports the addresses a running pushd bound, for tests.
type started struct {
	Listen      string
	AdminListen string
	NATSURL     string
	NodeID      int64
}

func newRootCmd(ctx context.Context, stdout, stderr io.Writer, lookupEnv func(string) (string, bool), onStart func(started)) *cobra.Command {
	var cfg config
	cmd := &cobra.Command{
		Use:   "pushd",
		Short: "pushd push node: WebSocket sessions fed by NATS",
		Long: `pushd holds client WebSocket sessions and delivers to them what backends publish
on NATS subjects <prefix>.user.<uid>, <prefix>.doc.<doc>, <prefix>.all and
<prefix>.session.<node>.<sid>. Every flag can also be set with the environment
variable shown next to it. See docs/ for the protocol and operations.`,
		Example: `  # laptop: embedded NATS on 127.0.0.1:4222, no token needed (?user=alice)
  pushd --dev

  # production: external NATS, HS256 tokens
  PUSHD_JWT_SECRET=... pushd --nats-url nats://nats:4222`,
		Version:       fmt.Sprintf("%s (commit %s, built %s)", version, commit, date),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cliutil.BindEnv(cmd.Flags(), envPrefix, lookupEnv); err != nil {
				return err
			}
			cfg.defaults = map[string]bool{}
			for _, f := range []string{"listen", "admin-listen", "max-docs-per-user"} {
				cfg.defaults[f] = !cmd.Flags().Changed(f)
			}
			if cfg.Dev && cfg.defaults["listen"] {
				cfg.Listen = devListen // a laptop node is not reachable from the network by default
			}
			if err := cfg.validate(); err != nil {
				return err
			}
			log, err := cliutil.NewLogger(stderr, cfg.LogFormat, cfg.LogLevel)
			if err != nil {
				return err
			}
			return serve(ctx, cfg, log, onStart)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", ":8080", "public address: /ws, /http/ (SSE and long-polling), /healthz, /readyz, /metrics (with --dev and not set: "+devListen+")")
	f.StringVar(&cfg.AdminListen, "admin-listen", "127.0.0.1:6060", "admin address: pprof and /metrics; empty disables it")
	f.StringVar(&cfg.NATSURL, "nats-url", "", "NATS server URL(s), comma separated; empty starts an embedded NATS server")
	f.StringVar(&cfg.NATSEmbeddedListen, "nats-embedded-listen", "127.0.0.1:4222", "where the embedded NATS server listens for backends and pushctl")
	f.StringVar(&cfg.NATSCreds, "nats-creds", "", "NATS credentials file")
	f.IntVar(&cfg.NodeID, "node-id", -1, "snowflake node number 0..1023, unique among live nodes; -1 leases one from Consul (--consul-addr) or, with --dev, takes the lowest one no live node uses")
	f.StringVar(&cfg.NodeName, "node-name", "", "stable node name (pod name) used to reclaim the same node ID; empty means the hostname")
	f.StringVar(&cfg.ConsulAddr, "consul-addr", "", "Consul HTTP address (e.g. 127.0.0.1:8500); enables registration and node-ID leasing")
	f.StringVar(&cfg.ConsulToken, "consul-token", "", "Consul ACL token")
	f.StringVar(&cfg.ConsulDatacenter, "consul-datacenter", "", "Consul datacenter (empty: the agent's)")
	f.StringVar(&cfg.ConsulService, "consul-service", "pushd", "Consul service name")
	f.DurationVar(&cfg.ConsulSessionTTL, "consul-session-ttl", 10*time.Second, "TTL of the Consul session holding the node-ID lease (min 10s); the node stops accepting once it has not renewed for this long")
	f.DurationVar(&cfg.ConsulLockDelay, "consul-lock-delay", 15*time.Second, "how long a dead node's ID stays unavailable after its session is invalidated")
	f.StringVar(&cfg.AdvertiseAddress, "advertise-address", "", "host registered in Consul for the WebSocket listener (empty: the Consul agent's node address)")
	f.StringVar(&cfg.SubjectPrefix, "subject-prefix", "push", "NATS subject prefix")
	f.StringVar(&cfg.JWTSecret, "jwt-secret", "", "HS256 secret that client tokens are signed with")
	f.StringSliceVar(&cfg.JWTPublicKeys, "jwt-public-key", nil, "PEM public key file(s) for RS256/ES256 client tokens")
	f.BoolVar(&cfg.Dev, "dev", false, "development mode: accepts /ws?user=<id> (and /http/connect?user=<id>) without a token (never in production)")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", node.DefaultDrainTimeout, "on SIGTERM, time over which sessions are closed with 1012")
	f.DurationVar(&cfg.AuthTimeout, "auth-timeout", node.DefaultAuthTimeout, "how long a connection upgraded without a token may take to send its connect frame (then closed with 4003)")
	f.DurationVar(&cfg.PingInterval, "ping-interval", node.DefaultPingInterval, "base heartbeat interval told to clients")
	f.DurationVar(&cfg.PingIntervalMax, "ping-interval-max", node.DefaultPingIntervalMax, "ceiling of the adaptive heartbeat interval")
	f.DurationVar(&cfg.PingGrace, "ping-grace", node.DefaultPingGrace, "silence allowed past the heartbeat interval before a session is closed")
	f.DurationVar(&cfg.PingStep, "ping-interval-step", 0, "how much the interval rises after a run of on-time heartbeats (0 means --ping-interval)")
	f.IntVar(&cfg.PingHealthy, "ping-healthy-runs", node.DefaultHealthyPings, "on-time heartbeats in a row that earn a longer interval")
	f.DurationVar(&cfg.HeartbeatSweep, "heartbeat-sweep", node.DefaultSweepInterval, "how often the heartbeat sweeper looks for silent sessions")
	f.IntVar(&cfg.MaxFrameSize, "max-frame-size", node.DefaultMaxFrameSize, "largest client frame in bytes")
	f.IntVar(&cfg.MaxQueuedBytes, "max-queued-bytes", node.DefaultMaxQueuedBytes, "per-session outbound backlog in bytes; a client whose queue already holds this much when a push comes is cut off")
	f.IntVar(&cfg.MaxPushSize, "max-push-size", node.DefaultMaxPushSize, "largest push body delivered; bigger pushes are refused whole (delivery report refused: too_large)")
	f.DurationVar(&cfg.WriteTimeout, "write-timeout", node.DefaultWriteTimeout, "a socket write slower than this cuts the client off")
	f.DurationVar(&cfg.WriteCoalesce, "write-coalesce", 0, "a session written to less than this ago waits this long before its next write, so streamed pushes share one writev (0: off)")
	f.BoolVar(&cfg.ParkIdle, "park-idle-sessions", true, "a session idle between frames holds no read goroutine: one epoll poller watches its socket (Linux, plain TCP)")
	f.BoolVar(&cfg.History, "history", true, "keep user and doc pushes in NATS JetStream so clients resume without loss; needs a JetStream-enabled NATS (live delivery goes on without it)")
	f.IntVar(&cfg.HistoryReplicas, "history-replicas", 1, "replicas of each history stream (3 on a production NATS cluster)")
	f.StringVar(&cfg.HistoryStorage, "history-storage", "file", "history stream storage: file or memory (the embedded NATS of --dev uses memory)")
	f.Int64Var(&cfg.HistoryMaxBytes, "history-max-bytes", history.DefaultMaxBytes, "bytes each history stream keeps at most, oldest pushes first out (-1: no limit); size it never to be reached")
	f.Int64Var(&cfg.HistoryUserMaxMsgs, "history-user-max-msgs", history.DefaultMaxMsgsPerSubject, "pushes kept per user")
	f.DurationVar(&cfg.HistoryUserMaxAge, "history-user-max-age", history.DefaultMaxAge, "how long a user push is kept")
	f.Int64Var(&cfg.HistoryDocMaxMsgs, "history-doc-max-msgs", history.DefaultMaxMsgsPerSubject, "pushes kept per doc")
	f.DurationVar(&cfg.HistoryDocMaxAge, "history-doc-max-age", history.DefaultMaxAge, "how long a doc push is kept")
	f.DurationVar(&cfg.HistoryDuplicateWindow, "history-duplicate-window", history.DefaultDuplicateWindow, "how long a Nats-Msg-Id de-duplicates a retried publish")
	f.IntVar(&cfg.ReplayMaxMsgs, "replay-max-msgs", history.DefaultReplayMaxMsgs, "pushes one resume replays at most; a client further behind is told recovered:false")
	f.IntVar(&cfg.ReplayMaxBytes, "replay-max-bytes", history.DefaultReplayMaxBytes, "bytes one resume replays at most")
	f.StringVar(&cfg.LogFormat, "log-format", "", "log format: json or text (default: text on a terminal, json otherwise)")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&cfg.JWTKeysDir, "jwt-keys-dir", "", "directory of token keys for rotation: <kid>.pem public keys and *.json JWKS files")
	f.StringVar(&cfg.JWTAudience, "jwt-audience", "", "when set, tokens must carry this aud")
	f.StringVar(&cfg.JWTIssuer, "jwt-issuer", "", "when set, tokens must carry this iss")
	f.DurationVar(&cfg.JWTLeeway, "jwt-leeway", 0, "clock skew tolerated on exp and nbf")
	f.IntVar(&cfg.TokenCacheSize, "token-cache-size", auth.DefaultCacheSize, "verified tokens remembered, so a client reconnecting with the same token skips the signature check (expiry is checked every time; a key reload forgets them); 0 disables")
	f.DurationVar(&cfg.KeysReload, "keys-reload-interval", 10*time.Second, "how often key and TLS files are checked for changes (SIGHUP reloads at once); 0 disables polling")
	f.StringVar(&cfg.JoinAuthorization, "join-authorization", "required", "required: joining a doc needs a docs grant in the token or a join token; off: any session joins any doc")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate chain: serve wss:// on --listen (reloaded on change and SIGHUP)")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key for --tls-cert")
	f.StringSliceVar(&cfg.AllowedOrigins, "allowed-origins", nil, "browser origins allowed to connect (*, https://app.example.com, https://*.example.com); empty: same host only, any with --dev")
	f.IntVar(&cfg.MaxDocsPerSession, "max-docs-per-session", node.DefaultMaxDocsPerSession, "docs one session may join (0: no limit)")
	f.IntVar(&cfg.MaxSessionsPerUser, "max-sessions-per-user", node.DefaultMaxSessionsPerUser, "sessions one user may hold on this node; more are refused with 429 (0: no limit)")
	f.IntVar(&cfg.MaxConnections, "max-connections", node.DefaultMaxConnections, "sessions this node holds at most; more are refused with 503 (0: no limit)")
	f.Float64Var(&cfg.UpstreamRate, "upstream-rate", node.DefaultUpstreamRate, "client frames per second per session; over it frames are dropped, then the session is closed with 4029 (0: no limit)")
	f.IntVar(&cfg.UpstreamBurst, "upstream-burst", 0, "client frames a session may send at once (0: twice --upstream-rate)")
	f.IntVar(&cfg.UpstreamBytesRate, "upstream-bytes-rate", node.DefaultUpstreamBytesRate, "client bytes per second per session (0: no limit)")
	f.Float64Var(&cfg.HandshakeRatePerIP, "handshake-rate-per-ip", node.DefaultHandshakeRatePerIP, "WebSocket handshakes per second per client IP (IPv6: per /64); more are refused with 429 (0: no limit, with a warning at start)")
	f.IntVar(&cfg.HandshakeBurstPerIP, "handshake-burst-per-ip", 0, "handshake burst per client IP (0: ten times --handshake-rate-per-ip)")
	addLimitFlags(f, &cfg)
	presenceFlags(f, &cfg.Presence)
	rebalanceFlags(f, &cfg.Rebalance)
	cliutil.AnnotateEnv(f, envPrefix)
	return cmd
}

// devListen is where a dev node listens unless told otherwise: loopback only,
// since it accepts anyone as any user.
const devListen = "127.0.0.1:8080"

// maxNodeID is the largest snowflake node number.
const maxNodeID = 1023

func (c *config) validate() error {
	if c.NodeID < -1 || c.NodeID > maxNodeID {
		return fmt.Errorf("--node-id %d: want 0..1023, or -1 to lease one", c.NodeID)
	}
	if c.NodeName == "" {
		c.NodeName, _ = os.Hostname()
	}
	if !c.Dev && !c.hasKeys() {
		return errors.New("no token key: set --jwt-secret, --jwt-public-key or --jwt-keys-dir (or --dev on a laptop)")
	}
	if c.NodeID < 0 && c.ConsulAddr == "" && !c.Dev {
		return errors.New("no node number: set --consul-addr to lease one, or --node-id to a number (0..1023) no other node uses")
	}
	if err := c.validateSecurity(); err != nil {
		return err
	}
	if c.DrainTimeout <= 0 {
		return errors.New("--drain-timeout must be positive")
	}
	if c.HistoryStorage != "file" && c.HistoryStorage != "memory" {
		return fmt.Errorf("--history-storage %q: want file or memory", c.HistoryStorage)
	}
	if c.HistoryReplicas < 1 || c.HistoryReplicas > 5 || c.HistoryUserMaxMsgs < 1 || c.HistoryDocMaxMsgs < 1 || c.ReplayMaxMsgs < 1 || c.ReplayMaxBytes < 1 {
		return errors.New("--history-replicas (1..5), --history-*-max-msgs, --replay-max-msgs and --replay-max-bytes must be positive")
	}
	if err := c.Presence.validate(); err != nil {
		return err
	}
	if err := c.Rebalance.validate(); err != nil {
		return err
	}
	if c.MaxPushSize <= 0 {
		return fmt.Errorf("--max-push-size %d: want a positive number of bytes", c.MaxPushSize)
	}
	return nil
}
