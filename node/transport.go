package node

// A transport carries one session's frames to its client. The session owns
// everything else: its queue, heartbeats, joins and limits, so a transport is
// small: the WebSocket (ws.go) is the first, and fan-out never knows which
// one a session uses.
//
// The session calls write from its single writer goroutine, and end or
// abort once; close may come from any goroutine (the sweeper ending a
// blocked write, Drain's deadline, Close).
type transport interface {
	// name is the transport's name in admin answers: "ws".
	name() string
	// write writes frames to the client, in order. It may block on a client
	// that does not read; the sweeper then calls close.
	write(frames []*frame) error
	// end writes a close with code and reason after the frames already
	// written and ends the stream gracefully, so the client learns why.
	end(code CloseCode, reason string)
	// abort makes one short, best-effort attempt to tell the client why
	// (it is likely not reading) and closes the connection.
	abort(code CloseCode, reason string)
	// close closes the connection at once; the read side sees the end.
	close()
}
