package contract

// Report is a node's delivery report: its answer to a push published with a
// reply subject (docs/NATS.md). A node answers only when at least one of its
// sessions matched the push, so "no report" means "no session matched here".
type Report struct {
	// Node is the reporting node's number.
	Node int64 `json:"node"`
	// Matched is how many of the node's sessions the push targeted.
	Matched int `json:"matched"`
	// Delivered is how many of them it was queued for.
	Delivered int `json:"delivered"`
	// CutOff is how many of them this push cut off as slow consumers (their
	// outbound queue was already full).
	CutOff int `json:"cut_off,omitempty"`
	// Refused says why the node delivered the push to none of its matched
	// sessions on purpose: RefusedTooLarge.
	Refused string `json:"refused,omitempty"`
}

// RefusedTooLarge means the push's body was larger than the node's maximum
// push size; no session was sent it and none was disconnected for it.
const RefusedTooLarge = "too_large"
