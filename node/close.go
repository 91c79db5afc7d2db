package node

// CloseCode is a WebSocket close code the node sends. Codes 1000-1015 are the
// RFC 6455 ones; 4000-4999 are pushd's own and documented in docs/PROTOCOL.md.
type CloseCode uint16

// Close codes pushd sends.
const (
	CloseNormal           CloseCode = 1000 // the client closed normally
	CloseUnsupportedData  CloseCode = 1003 // a binary frame arrived; the protocol is JSON text
	CloseInvalidPayload   CloseCode = 1007 // a text frame was not valid UTF-8
	CloseMessageTooBig    CloseCode = 1009 // a frame exceeded the size limit
	CloseServiceRestart   CloseCode = 1012 // the node is draining or rebalancing; reconnect elsewhere
	CloseTryAgainLater    CloseCode = 1013 // the node is full or cannot mint session IDs now; try another
	CloseProtocolError    CloseCode = 4000 // too many bad frames in a row
	CloseTokenExpired     CloseCode = 4001 // the token expired (at the handshake, or without a refresh)
	CloseHeartbeatTimeout CloseCode = 4002 // no frame and no heartbeat within ping_timeout
	CloseUnauthorized     CloseCode = 4003 // no token, a bad token or user ID, or no connect frame in time
	CloseForbiddenOrigin  CloseCode = 4004 // the browser's origin is not allowed
	CloseSlowConsumer     CloseCode = 4008 // the outbound queue overflowed or a write timed out
	CloseTooManySessions  CloseCode = 4009 // the user has too many sessions on the node
	CloseKicked           CloseCode = 4010 // an admin closed the session
	CloseRateLimited      CloseCode = 4029 // the client kept sending over its rate limit, or handshakes came too fast
)

// Reason is why a session ended, as counted in metrics and reported in
// disconnect events.
type Reason string

// Reasons a session ends.
const (
	ReasonClient           Reason = "client"
	ReasonHeartbeatTimeout Reason = "heartbeat_timeout"
	ReasonSlowConsumer     Reason = "slow_consumer" // the outbound queue was full
	ReasonWriteTimeout     Reason = "write_timeout" // a write blocked past WriteTimeout
	ReasonKicked           Reason = "kicked"
	ReasonDrain            Reason = "drain"
	// ReasonRebalance: the node asked the session to reconnect elsewhere
	// (1012) because it holds more than its share (Shed).
	ReasonRebalance     Reason = "rebalance"
	ReasonProtocolError Reason = "protocol_error"
	ReasonTokenExpired  Reason = "token_expired"
	ReasonRateLimited   Reason = "rate_limited"
	ReasonError         Reason = "error"
	// ReasonUnauthenticated: a connection that never became a session (no
	// or a bad connect frame); it has no disconnect event.
	ReasonUnauthenticated Reason = "unauthenticated"
)
