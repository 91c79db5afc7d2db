import { PushdClient } from "@pushd/client";

// A browser page behind a proxy that breaks WebSockets: the client falls back to server-sent
// events, then long-polling, and remembers what worked. Two nodes' URLs: a node that drains names
// itself, and the client skips its URL for a while.
export function connectAnyhow(getToken: () => Promise<string>, onlyHttp: boolean, urls = ["wss://a.example.com/ws", "wss://b.example.com/ws"]): PushdClient {
  const client = new PushdClient({
    url: urls,
    getToken,
    // The default is all three, in this order; list fewer to force one (here: no WebSocket).
    ...(onlyHttp && { transports: ["sse", "poll"] as const }),
  });
  client.on("hello", (h) => console.log(`pushd on node ${h.node} over ${h.transport}`));
  client.connect();
  return client;
}
