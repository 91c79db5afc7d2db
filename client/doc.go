// Package client is the Go SDK of pushd (docs/SDK.md): a Client speaks the
// client protocol (docs/PROTOCOL.md) for an application. It connects with the
// token in the first frame, keeps the session alive with heartbeats at the
// server's interval, reconnects as each close code asks (backoff with full
// jitter, failover to the next URL, a new token after an auth refusal),
// rejoins its docs after a reconnect, resumes from the last push handled
// when the server keeps history, drops duplicates, sends receipts and
// refreshes the token before it expires. It behaves as the TypeScript SDK
// (client/js) does, with the same vocabulary.
//
//	c := client.New(client.Config{
//		URL:      "wss://push.example.com/ws",
//		GetToken: getToken, // asks your backend for a pushd token
//		OnPush: func(p *client.Push) error {
//			log.Printf("%s push %s: %s", p.Target, p.Event, p.Data)
//			return nil
//		},
//	})
//	defer c.Close()
//	if err := c.Connect(ctx); err != nil { ... }
//	sub := c.Join("doc-1", client.JoinOptions{OnSubscribed: ..., OnPush: ...})
//
// Events reach the application through handlers set in Config and
// JoinOptions rather than channels: they run one at a time, in order, on one
// goroutine the client owns, never on the one reading the socket; a push's
// receipt is sent when its handlers return nil (which a channel could not
// tell); and the handlers are in place before the first event, so none is
// missed. A slow handler delays the next events, not heartbeats or replies;
// past Config.PushBuffer waiting pushes the client drops the connection and
// resumes once the handlers caught up.
//
// Conn is the other client here: one WebSocket with no reconnect, driven
// frame by frame, for tools and tests.
//
//	c, err := client.Dial(ctx, "ws://localhost:8080/ws", client.Options{Token: tok})
//	if err != nil { ... }
//	defer c.Close()
//	_ = c.Join(ctx, "doc-1")
//	for {
//		p, err := c.Next(ctx)
//		...
//	}
package client
