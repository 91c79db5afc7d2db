package registry

// State is what the registry knows about its node-ID lease. Consul is the
// first source of truth for a node number: StateHeld means it vouches for
// the number; StateLost means it does not now, but as far as Consul last
// answered no other session holds the key, so another check (the NATS claim
// protocol, package cluster) may vouch instead; StateTaken means Consul
// answered that another session holds the key, and nothing may override
// that.
type State int32

// Lease states.
const (
	// StateNone: Start has not leased an ID yet.
	StateNone State = iota
	// StateHeld: the lease is held (renewed within SessionTTL).
	StateHeld
	// StateLost: the lease was lost (no successful renew for SessionTTL,
	// or the session was invalidated) and Consul has not said that another
	// session holds the key: it is unreachable, or the key is free or in
	// its lock delay. The registry keeps trying to re-acquire the same ID.
	StateLost
	// StateTaken: Consul answered that another session holds the key. The
	// registry keeps trying; the state changes when the key is free again
	// (StateLost) or re-acquired (StateHeld).
	StateTaken
)

// String is the state's name: "none", "held", "lost" or "taken".
func (s State) String() string {
	switch s {
	case StateHeld:
		return "held"
	case StateLost:
		return "lost"
	case StateTaken:
		return "taken"
	}
	return "none"
}
