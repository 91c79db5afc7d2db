package node

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushd/pushd/auth"
)

// Defaults for Config fields left at zero. They are exported so the flags
// of cmd/pushd show them without restating them.
const (
	DefaultPingInterval       = 20 * time.Second
	DefaultPingIntervalMax    = 120 * time.Second
	DefaultHealthyPings       = 3
	DefaultPingGrace          = 10 * time.Second
	DefaultSweepInterval      = time.Second
	DefaultMaxFrameSize       = 16 << 10
	DefaultMaxQueuedBytes     = 256 << 10
	DefaultMaxPushSize        = 1 << 20
	DefaultWriteTimeout       = 10 * time.Second
	DefaultAuthTimeout        = 5 * time.Second
	DefaultDrainTimeout       = 10 * time.Second
	DefaultMaxDocsPerSession  = 100
	DefaultMaxSessionsPerUser = 32
	DefaultMaxConnections     = 100_000
	DefaultUpstreamRate       = 50       // frames per second per session
	DefaultUpstreamBytesRate  = 64 << 10 // bytes per second per session
	DefaultPresenceRate       = 10       // presence requests per second per session
	DefaultMaxPresenceInfo    = 512      // bytes of a token's info claim
	DefaultPresenceTimeout    = 2 * time.Second

	defaultReadBufferSize    = 128
	defaultMaxQueuedFrames   = 1024
	defaultHandshakeTimeout  = 5 * time.Second
	closeFrameWriteTimeout   = time.Second
	maxConsecutiveBadFrames  = 20
	defaultSessionShardCount = 64
)

// Config configures a Node. The zero value of every optional field means the
// documented default.
type Config struct {
	// NodeID seeds snowflake session IDs; 0..1023. It must be unique among live
	// nodes (the registry leases it).
	NodeID int64

	// Bus subscribes to subjects and publishes client events. Required.
	Bus Bus

	// Auth verifies client tokens. Nil is allowed only with Dev.
	Auth *auth.Verifier

	// Dev accepts /ws?user=<id> without a token. Never use it in production.
	Dev bool

	// PingInterval is the base heartbeat interval sent in hello. Zero means 20s.
	PingInterval time.Duration
	// PingIntervalMax is the ceiling the adaptive interval rises to. Zero means
	// 120s. A value equal to PingInterval turns adaptation off.
	PingIntervalMax time.Duration
	// PingIntervalStep is how much the interval rises after HealthyPings
	// on-time heartbeats in a row. Zero means PingInterval.
	PingIntervalStep time.Duration
	// HealthyPings is the run of on-time heartbeats that earns a longer
	// interval. Zero means 3.
	HealthyPings int
	// PingGrace is how long past the current interval a silent session is kept
	// before it is closed; a heartbeat later than interval+PingGrace/2 counts as
	// a miss. Zero means 10s.
	PingGrace time.Duration
	// SweepInterval is how often the single heartbeat sweeper runs. Zero means 1s.
	SweepInterval time.Duration

	// MaxFrameSize caps an inbound frame (and a reassembled fragmented message)
	// before it is read. Zero means 16 KiB.
	MaxFrameSize int
	// ReadBufferSize is the per-connection read buffer. Zero means 128 bytes:
	// enough for a ping, join, leave or ack in one read (a join with a join
	// token takes two), and longer payloads are
	// read straight into their message buffer.
	ReadBufferSize int
	// MaxQueuedBytes caps a session's unwritten outbound bytes: a session
	// whose queue already holds this much when a frame comes is closed as a
	// slow consumer. One frame may take the queue past it, so a push up to
	// MaxPushSize always reaches a client that reads. Zero means 256 KiB.
	MaxQueuedBytes int
	// MaxQueuedFrames caps a session's unwritten outbound frames. Zero means 1024.
	MaxQueuedFrames int
	// MaxPushSize is the largest push body the node delivers. A bigger push
	// is refused whole (delivery report refused "too_large") instead of
	// being written to anyone. Zero means 1 MiB, NATS's default payload limit.
	MaxPushSize int
	// WriteTimeout bounds one socket write: the sweeper closes a session whose
	// write has been blocked longer (so up to SweepInterval later) as a slow
	// consumer. Zero means 10s.
	WriteTimeout time.Duration
	// WriteCoalesce, when positive, makes the writer of a session written to
	// less than WriteCoalesce ago wait that long before writing again, so
	// pushes streaming to it go out several per writev (fewer syscalls, more
	// latency). The first push after a quiet spell is written at once. Zero,
	// the default, never waits.
	WriteCoalesce time.Duration
	// NoParking keeps one read goroutine per session. By default (on Linux,
	// for plain TCP) a session idle between frames parks: the poller watches
	// its socket and it holds no goroutine until a frame arrives (park.go).
	NoParking bool
	// HandshakeTimeout bounds writing the upgrade response. Zero means 5s.
	HandshakeTimeout time.Duration
	// AuthTimeout is how long an upgraded connection that presented no token
	// may take to send its connect frame before it is closed (4003
	// auth_timeout). Zero means 5s.
	AuthTimeout time.Duration
	// DrainTimeout is the time over which Drain spreads closing sessions. Zero
	// means 10s.
	DrainTimeout time.Duration

	// JoinAuthorization says whether joins need a grant (docs/SECURITY.md).
	// Empty means JoinRequired.
	JoinAuthorization JoinAuthorization
	// MaxDocsPerSession caps the docs one session has joined; a join past it
	// is answered too_many_docs. Zero means 100; negative means no limit.
	MaxDocsPerSession int
	// MaxSessionsPerUser caps one user's sessions on this node; an upgrade
	// past it is refused with 429 too_many_sessions. Zero means 32; negative
	// means no limit.
	MaxSessionsPerUser int
	// MaxConnections caps the node's sessions; an upgrade past it is refused
	// with 503 over_capacity. Zero means 100,000; negative means no limit.
	MaxConnections int
	// UpstreamRate is the sustained client frames per second per session
	// (every text frame counts). Zero means 50; negative means no limit.
	UpstreamRate float64
	// UpstreamBurst is how many frames a session may send at once above
	// UpstreamRate, and how many dropped frames in a row close it (4029).
	// Zero means twice UpstreamRate.
	UpstreamBurst int
	// UpstreamBytesRate is the sustained client bytes per second per session;
	// the burst is twice that, and at least two MaxFrameSize frames. Zero
	// means 64 KiB/s; negative means no limit.
	UpstreamBytesRate int
	// HandshakeRatePerIP caps upgrade requests per second per client IP
	// (answered 429 rate_limited past it), with a burst of
	// HandshakeBurstPerIP. The client IP is the peer's, or the one a
	// TrustedProxies peer names in X-Forwarded-For; IPv6 addresses count
	// per /64. Zero means 500; negative means no limit.
	HandshakeRatePerIP float64
	// HandshakeBurstPerIP is the per-IP handshake burst. Zero means ten
	// times HandshakeRatePerIP (at least 1), so a reconnect wave through
	// one proxy or NAT passes.
	HandshakeBurstPerIP int
	// TrustedProxies are the networks of proxies whose X-Forwarded-For is
	// believed for the per-IP handshake limit: the client is the right-most
	// address in it that is not a trusted proxy. Empty means none: the
	// peer's address counts, and every client behind a proxy shares the
	// proxy's budget (a warning is logged when such a peer sends
	// X-Forwarded-For).
	TrustedProxies []netip.Prefix
	// JoinRate is the joins and leaves per second a session may make, with
	// a burst of JoinBurst: each is a NATS subscription change, which the
	// frame rate alone does not bound well. One over it is answered
	// rate_limited (with the frame's id) and weighs UpstreamRate/JoinRate
	// strikes, so steady churn over it ends in 4029 like steady frames over
	// UpstreamRate do (limits.go). Zero means 10; negative means no limit.
	JoinRate float64
	// JoinBurst is how many joins and leaves a session may make at once,
	// as when it rejoins its docs after a reconnect. Zero means the larger
	// of MaxDocsPerSession and twice JoinRate.
	JoinBurst int
	// MaxDocsPerUser caps the distinct docs one user's sessions on this
	// node have joined together (each is a NATS subscription the user
	// makes the node hold); a join past it is answered too_many_docs. Zero
	// means 200 (at least MaxDocsPerSession); negative means no limit.
	MaxDocsPerUser int
	// MaxClusterSessionsPerUser caps one user's sessions across the
	// cluster, as far as Census knows: this node's count plus what the
	// other nodes last reported; an upgrade past it is refused with 429
	// too_many_sessions. Best effort (docs/SECURITY.md): nodes report only
	// users with at least ClusterReportAt sessions, once a second. Zero
	// means 64; negative means no limit. Without a Census it is not
	// enforced.
	MaxClusterSessionsPerUser int
	// Census tells how many sessions a user holds on the other nodes
	// (package cluster, over NATS). Nil means this node knows only its own.
	Census Census
	// AllowedOrigins are the browser origins allowed to connect: "*",
	// "https://app.example.com" or "https://*.example.com". Requests without
	// an Origin header are always allowed. Empty means the request's own host
	// only, or any origin with Dev.
	AllowedOrigins []string

	// Forwarder carries requests for HTTP sessions held by other nodes
	// (forward.go). Nil means such requests are answered 404
	// session_not_found, as for a session that does not exist.
	Forwarder Forwarder
	// Presence keeps who is in the docs the node holds (package presence).
	// Nil turns presence off: presence requests are answered unavailable
	// and joins are tracked nowhere.
	Presence Presence
	// PresenceEvents are doc patterns, as in a token's docs claim ("room/*",
	// "*"), whose joins all get presence events, as if each asked with
	// "presence":true. Empty means only joins that ask.
	PresenceEvents []string
	// PresenceRate is the presence and presence_stats requests per second a
	// session may make (burst twice that); more are refused rate_limited
	// and count as strikes, like frames over the upstream rate. Zero means
	// 10; negative means no limit.
	PresenceRate float64
	// MaxPresenceInfo bounds a token's info claim, in bytes of compact JSON;
	// a token with a longer one is refused (token_invalid). Zero means 512.
	MaxPresenceInfo int
	// PresenceTimeout bounds answering one presence request (a holder on
	// another node answers over NATS). Zero means 2s.
	PresenceTimeout time.Duration

	// Logger receives the node's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the node's metrics. Nil means they are not registered.
	Registerer prometheus.Registerer

	// Version is reported in admin answers. Empty means "dev".
	Version string

	upstreamBytesBurst int // derived by setDefaults
}

// limitDefault maps a zero limit to def and a negative one to 0 (off).
func limitDefault(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

func (c *Config) setDefaults() {
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PingIntervalMax <= 0 {
		c.PingIntervalMax = DefaultPingIntervalMax
	}
	if c.PingIntervalMax < c.PingInterval {
		c.PingIntervalMax = c.PingInterval
	}
	if c.PingIntervalStep <= 0 {
		c.PingIntervalStep = c.PingInterval
	}
	if c.HealthyPings <= 0 {
		c.HealthyPings = DefaultHealthyPings
	}
	if c.PingGrace <= 0 {
		c.PingGrace = DefaultPingGrace
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = defaultReadBufferSize
	}
	if c.MaxQueuedBytes <= 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if c.MaxQueuedFrames <= 0 {
		c.MaxQueuedFrames = defaultMaxQueuedFrames
	}
	if c.MaxPushSize <= 0 {
		c.MaxPushSize = DefaultMaxPushSize
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = defaultHandshakeTimeout
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = DefaultAuthTimeout
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.JoinAuthorization == "" {
		c.JoinAuthorization = JoinRequired
	}
	c.MaxDocsPerSession = limitDefault(c.MaxDocsPerSession, DefaultMaxDocsPerSession)
	c.MaxSessionsPerUser = limitDefault(c.MaxSessionsPerUser, DefaultMaxSessionsPerUser)
	c.MaxConnections = limitDefault(c.MaxConnections, DefaultMaxConnections)
	c.UpstreamBytesRate = limitDefault(c.UpstreamBytesRate, DefaultUpstreamBytesRate)
	if c.UpstreamRate == 0 {
		c.UpstreamRate = DefaultUpstreamRate
	}
	if c.UpstreamBurst <= 0 {
		c.UpstreamBurst = max(1, int(2*c.UpstreamRate))
	}
	c.upstreamBytesBurst = max(2*c.UpstreamBytesRate, 2*c.MaxFrameSize)
	if c.PresenceRate == 0 {
		c.PresenceRate = DefaultPresenceRate
	}
	if c.MaxPresenceInfo <= 0 {
		c.MaxPresenceInfo = DefaultMaxPresenceInfo
	}
	if c.PresenceTimeout <= 0 {
		c.PresenceTimeout = DefaultPresenceTimeout
	}
	c.setUserLimitDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Version == "" {
		c.Version = "dev"
	}
}
