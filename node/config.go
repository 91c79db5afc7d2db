package node

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushd/pushd/auth"
)

// Defaults for Config fields left at zero.
const (
	defaultPingInterval      = 20 * time.Second
	defaultPingIntervalMax   = 120 * time.Second
	defaultHealthyPings      = 3
	defaultPingGrace         = 10 * time.Second
	defaultSweepInterval     = time.Second
	defaultMaxFrameSize      = 16 << 10
	defaultReadBufferSize    = 512
	defaultMaxQueuedBytes    = 256 << 10
	defaultMaxQueuedFrames   = 1024
	defaultWriteTimeout      = 10 * time.Second
	defaultHandshakeTimeout  = 5 * time.Second
	defaultDrainTimeout      = 10 * time.Second
	defaultMaxIDLength       = 128
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
	// ReadBufferSize is the per-connection read buffer. Zero means 512 bytes.
	ReadBufferSize int
	// MaxQueuedBytes caps a session's unwritten outbound bytes; past it the
	// session is closed as a slow consumer. Zero means 256 KiB.
	MaxQueuedBytes int
	// MaxQueuedFrames caps a session's unwritten outbound frames. Zero means 1024.
	MaxQueuedFrames int
	// WriteTimeout bounds one socket write; a write that times out closes the
	// session as a slow consumer. Zero means 10s.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds writing the upgrade response. Zero means 5s.
	HandshakeTimeout time.Duration
	// DrainTimeout is the time over which Drain spreads closing sessions. Zero
	// means 10s.
	DrainTimeout time.Duration

	// Logger receives the node's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the node's metrics. Nil means they are not registered.
	Registerer prometheus.Registerer

	// Version is reported in admin answers. Empty means "dev".
	Version string
}

func (c *Config) setDefaults() {
	if c.PingInterval <= 0 {
		c.PingInterval = defaultPingInterval
	}
	if c.PingIntervalMax <= 0 {
		c.PingIntervalMax = defaultPingIntervalMax
	}
	if c.PingIntervalMax < c.PingInterval {
		c.PingIntervalMax = c.PingInterval
	}
	if c.PingIntervalStep <= 0 {
		c.PingIntervalStep = c.PingInterval
	}
	if c.HealthyPings <= 0 {
		c.HealthyPings = defaultHealthyPings
	}
	if c.PingGrace <= 0 {
		c.PingGrace = defaultPingGrace
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = defaultSweepInterval
	}
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = defaultMaxFrameSize
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = defaultReadBufferSize
	}
	if c.MaxQueuedBytes <= 0 {
		c.MaxQueuedBytes = defaultMaxQueuedBytes
	}
	if c.MaxQueuedFrames <= 0 {
		c.MaxQueuedFrames = defaultMaxQueuedFrames
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = defaultWriteTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = defaultHandshakeTimeout
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = defaultDrainTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Version == "" {
		c.Version = "dev"
	}
}
