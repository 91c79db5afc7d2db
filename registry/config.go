package registry

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultServiceName is the Consul service name when Config.ServiceName is empty.
	DefaultServiceName = "pushd"
	// DefaultMaxNodeID is the largest node ID a snowflake generator accepts (10 bits).
	DefaultMaxNodeID = 1023
	// DefaultSessionTTL is the session TTL; Consul refuses anything below 10s.
	DefaultSessionTTL = 10 * time.Second
	// DefaultLockDelay is how long Consul keeps a node-ID key unacquirable
	// after the session holding it is invalidated.
	DefaultLockDelay = 15 * time.Second
	// DefaultCheckTTL is the TTL of the service health check.
	DefaultCheckTTL = 10 * time.Second
	// DefaultDeregisterCriticalAfter is Consul's minimum for
	// DeregisterCriticalServiceAfter; Consul's reaper runs every 30s on top.
	DefaultDeregisterCriticalAfter = time.Minute
	// DefaultKeyPrefix is the KV prefix of the node-ID lock keys.
	DefaultKeyPrefix = "pushd/node-ids/"
	// AutoNodeID in Config.NodeID asks the registry to lease any free ID.
	AutoNodeID = -1

	minSessionTTL = 10 * time.Second
	maxSessionTTL = 24 * time.Hour
)

// Service meta keys the registry sets on every registration.
const (
	// MetaNodeID holds the leased node ID in decimal.
	MetaNodeID = "node_id"
	// MetaNodeName holds Config.NodeName.
	MetaNodeName = "node_name"
	// MetaStartTime holds the time Start was called, RFC 3339 UTC.
	MetaStartTime = "start_time"
)

// Config configures a Registry. The zero value of every field except NodeID
// selects the documented default; NodeID's zero value means "exactly ID 0",
// so use AutoNodeID (-1) to lease automatically.
type Config struct {
	// Addr is the Consul HTTP address, e.g. "127.0.0.1:8500" or
	// "https://consul:8501". Zero means $CONSUL_HTTP_ADDR, else 127.0.0.1:8500.
	Addr string
	// Token is the Consul ACL token. Zero means $CONSUL_HTTP_TOKEN, else none.
	Token string
	// Datacenter is the Consul datacenter. Zero means the agent's own.
	Datacenter string

	// ServiceName is the Consul service name. Zero means "pushd".
	ServiceName string
	// NodeName is the stable identity used to get the same node ID back
	// after a restart. Zero means os.Hostname().
	NodeName string
	// NodeID selects the node ID. AutoNodeID (-1) leases the ID this
	// NodeName held last if it is free, else the lowest free one; a value
	// >= 0 takes exactly that ID or fails with ErrNodeIDTaken. Zero means ID 0.
	NodeID int
	// MaxNodeID is the largest ID handed out (at most 1023). Zero means 1023.
	MaxNodeID int

	// Address is the advertised WebSocket listener host. Zero means the
	// Consul agent's node address.
	Address string
	// Port is the advertised WebSocket listener port. Zero registers port 0.
	Port int
	// Meta is extra service meta (version, admin URL...). The registry adds
	// node_id, node_name and start_time, overriding keys of those names.
	// Zero means no extra meta.
	Meta map[string]string

	// SessionTTL is the TTL of the Consul session holding the node-ID key;
	// the registry renews it every SessionTTL/3 and considers the lease lost
	// once SessionTTL has passed without a successful renew. Zero means 10s,
	// which is also Consul's minimum.
	SessionTTL time.Duration
	// LockDelay is how long Consul refuses to hand the node-ID key to anyone
	// after the holding session is invalidated. Zero means 15s.
	LockDelay time.Duration
	// CheckTTL is the TTL of the service health check; the registry passes
	// it every CheckTTL/3 while the lease is held. Zero means 10s.
	CheckTTL time.Duration
	// DeregisterCriticalAfter is how long the check may stay critical before
	// Consul removes the service. Zero means 1m (Consul's minimum).
	DeregisterCriticalAfter time.Duration
	// KeyPrefix is the KV prefix of the node-ID keys ("<prefix><id>"). The
	// name->ID memory lives next to it, under "node-names/" in the parent
	// of KeyPrefix when KeyPrefix ends in "node-ids/", else under
	// "<prefix>names/". Zero means "pushd/node-ids/".
	KeyPrefix string

	// Logger receives the registry's logs. Zero means slog.Default().
	Logger *slog.Logger
	// OnLease is called whenever the lease state changes: true once Start
	// has leased an ID (delivered just after Start returns) and again after
	// every re-acquisition, false as soon as the lease is lost. Calls come
	// from the registry's goroutine, in order, never after Close returns;
	// the function must not block. Zero means no callback.
	OnLease func(held bool)
	// OnState is called with every change of State: StateHeld once Start
	// has leased an ID (delivered just after Start returns) and after every
	// re-acquisition, StateLost or StateTaken on a loss, and between those
	// two as Consul's answers change. Same goroutine and rules as OnLease,
	// which is called after it when held-ness changes. Zero means no
	// callback.
	OnState func(State)
}

// withDefaults returns a copy of c with defaults filled in, or an error for
// values Consul would refuse or that break snowflake uniqueness.
func (c Config) withDefaults() (Config, error) {
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return c, fmt.Errorf("pushd: registry: NodeName is empty and os.Hostname failed: %v", err)
		}
		c.NodeName = h
	}
	if c.MaxNodeID == 0 {
		c.MaxNodeID = DefaultMaxNodeID
	}
	if c.MaxNodeID < 0 || c.MaxNodeID > DefaultMaxNodeID {
		return c, fmt.Errorf("pushd: registry: MaxNodeID %d out of range 1..%d", c.MaxNodeID, DefaultMaxNodeID)
	}
	if c.NodeID < AutoNodeID || c.NodeID > c.MaxNodeID {
		return c, fmt.Errorf("pushd: registry: NodeID %d out of range (-1 for automatic, or 0..%d)", c.NodeID, c.MaxNodeID)
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	if c.SessionTTL < minSessionTTL || c.SessionTTL > maxSessionTTL {
		return c, fmt.Errorf("pushd: registry: SessionTTL %s out of Consul's range %s..%s", c.SessionTTL, minSessionTTL, maxSessionTTL)
	}
	if c.LockDelay == 0 {
		c.LockDelay = DefaultLockDelay
	}
	if c.LockDelay < 0 {
		return c, fmt.Errorf("pushd: registry: negative LockDelay %s", c.LockDelay)
	}
	if c.CheckTTL == 0 {
		c.CheckTTL = DefaultCheckTTL
	}
	if c.CheckTTL < 0 {
		return c, fmt.Errorf("pushd: registry: negative CheckTTL %s", c.CheckTTL)
	}
	if c.DeregisterCriticalAfter == 0 {
		c.DeregisterCriticalAfter = DefaultDeregisterCriticalAfter
	}
	if c.DeregisterCriticalAfter < 0 {
		return c, fmt.Errorf("pushd: registry: negative DeregisterCriticalAfter %s", c.DeregisterCriticalAfter)
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if !strings.HasSuffix(c.KeyPrefix, "/") {
		c.KeyPrefix += "/"
	}
	if c.Port < 0 || c.Port > 65535 {
		return c, fmt.Errorf("pushd: registry: Port %d out of range", c.Port)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// namePrefix is where the node-name -> node-ID memory lives.
func (c Config) namePrefix() string {
	if p, ok := strings.CutSuffix(c.KeyPrefix, "node-ids/"); ok {
		return p + "node-names/"
	}
	return c.KeyPrefix + "names/"
}
