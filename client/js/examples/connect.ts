import { PushdClient } from "@pushd/client";
import WebSocket from "ws"; // Node only: browsers have their own WebSocket

// getToken asks your backend for a pushd token (a JWT whose sub is the user).
export function connect(url: string, getToken: () => Promise<string>): PushdClient {
  const client = new PushdClient({ url, getToken, WebSocket });
  client.on("state", (e) => console.log(`pushd ${e.state}`, e.code ?? "", e.reason ?? ""));
  client.on("push", (push) => console.log(`pushd ${push.target} push`, push.event, push.data));
  client.connect();
  return client;
}
