package client

import (
	"errors"
	"fmt"
)

// ServerError is an error frame from the server: a refused join, publish,
// leave or refresh (docs/PROTOCOL.md lists the codes: forbidden, not_joined,
// invalid_doc, invalid_event, unavailable, rate_limited, too_many_docs,
// token_expired, token_invalid, bad_since, ...).
type ServerError struct {
	// Code is the error code, e.g. "not_joined".
	Code string
	// Message says why, for people.
	Message string
	// Doc is the doc the error is about, when it is about one.
	Doc string
}

func (e *ServerError) Error() string {
	if e.Doc != "" {
		return "pushd: " + e.Code + " (doc " + e.Doc + "): " + e.Message
	}
	return "pushd: " + e.Code + ": " + e.Message
}

// CloseError is how the server closed the socket (Conn), or the close that
// made a Client stop for good (Connect returns it then).
type CloseError struct {
	Code   uint16
	Reason string
}

func (e *CloseError) Error() string { return fmt.Sprintf("pushd: closed %d %s", e.Code, e.Reason) }

// HandshakeError is returned by Dial when the server refused the upgrade.
type HandshakeError struct {
	Status int
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("pushd: handshake refused with HTTP %d", e.Status)
}

// ErrClosed is returned by a Conn once its socket is gone without a close
// frame.
var ErrClosed = errors.New("pushd: connection closed")

// Errors of a Client.
var (
	// ErrClientClosed: Close was called.
	ErrClientClosed = errors.New("pushd: the client is closed")
	// ErrStopped: the client is not connecting: Connect was not called, or
	// the client stopped after a close that forbids reconnecting (Connect
	// returns that close as a *CloseError).
	ErrStopped = errors.New("pushd: the client is stopped; call Connect")
	// ErrDisconnected: the connection closed before the reply came; the
	// request may or may not have taken effect.
	ErrDisconnected = errors.New("pushd: disconnected before the reply")
)
