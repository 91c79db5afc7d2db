// Clients for the unit tests: fast backoff, no browser window, Node's ws as the WebSocket and no
// other transport (the fake server speaks WebSocket only; fallback.test.ts tests the others).
import WebSocket from "ws";
import { PushdClient, type ClientOptions } from "../../src/index.js";

export const fastBackoff = { min: 20, max: 200, restart: 40 };

/** A dev-user WebSocket client of url with fast backoff; stopped by the caller (see track). */
export function newClient(url: ClientOptions["url"], opts: Partial<ClientOptions> = {}): PushdClient {
  const c = new PushdClient({ url, user: "alice", WebSocket, window: null, backoff: fastBackoff, transports: ["websocket"], ...opts } as ClientOptions);
  clients.push(c);
  return c;
}

const clients: PushdClient[] = [];

/** Disconnects every client newClient made (for after/afterEach). */
export function disconnectAll(): void {
  for (const c of clients.splice(0)) c.disconnect();
}

/** Fails the test run on an unhandled rejection anywhere. */
export const unhandled: unknown[] = [];
process.on("unhandledRejection", (err) => {
  unhandled.push(err);
  console.error("UNHANDLED REJECTION", err);
  process.exitCode = 1;
});
