import { PushdClient, type Push } from "@pushd/client";
import WebSocket from "ws";

// Acknowledges a push only once it is stored: until then a resume replays it (at least once).
export function storeThenAck(url: string, getToken: () => Promise<string>, store: (push: Push) => Promise<void>): PushdClient {
  const client = new PushdClient({ url, getToken, WebSocket, ack: "manual" });
  client.on("push", async (push) => {
    await store(push);
    push.ack(); // sends {"type":"ack","seq":...} when the backend asked for a receipt
  });
  client.connect();
  return client;
}
