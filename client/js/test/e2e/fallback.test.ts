// Transport fallback against a real pushd behind a proxy that refuses what some networks refuse:
// WebSocket upgrades (403), then event streams too. The client (all transports, WebSocket first)
// lands on SSE, then on long-polling, remembers what worked per URL (in memory and in a storage
// like localStorage) so that later connections skip what is blocked, and tries WebSocket again
// once the memory expires.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { PushdClient, type ClientOptions, type DisconnectEvent, type StorageLike } from "../../src/index.js";
import { E2E } from "../support/e2e.js";
import { Proxy } from "../support/proxy.js";
import { nextEvent, record } from "../support/wait.js";

const e2e = new E2E();
let proxy: Proxy;

before(async () => {
  await e2e.start(61);
  proxy = await Proxy.start(e2e.node.http);
});
after(async () => {
  for (const c of e2e.clients) c.disconnect();
  await proxy?.close();
  await e2e.stop();
});

/** A storage like the browser's localStorage. */
class MapStorage implements StorageLike {
  readonly m = new Map<string, string>();
  getItem(k: string): string | null {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.m.set(k, v);
  }
}

function client(storage: StorageLike, opts: Partial<ClientOptions> = {}): { c: PushdClient; disconnects: DisconnectEvent[] } {
  const c = new PushdClient({ url: proxy.ws, user: "fb-alice", WebSocket, window: null, storage, backoff: { min: 50, max: 200 }, ...opts });
  e2e.clients.push(c);
  const disconnects = record(c, "disconnect");
  c.connect();
  return { c, disconnects };
}

async function pushArrives(c: PushdClient, data: string): Promise<void> {
  const got = nextEvent(c, "push");
  await e2e.backend.push("push.user.fb-alice", data);
  assert.equal((await got).data, data);
}

test("WebSocket refused by a proxy: SSE, then long-polling when event streams are refused too; each remembered", async () => {
  const storage = new MapStorage();
  proxy.blocked.add("/ws");

  const first = client(storage);
  const h1 = await first.c.whenConnected();
  assert.equal(h1.transport, "sse");
  assert.deepEqual(first.disconnects.map((d) => [d.transport, d.code, d.delay, d.willReconnect]), [["websocket", 1006, 0, true]], "the WebSocket failed, SSE was tried at once");
  assert.equal(proxy.count("/ws"), 1);
  await pushArrives(first.c, "over sse");
  const key = `pushd:transport:${proxy.ws}`;
  assert.equal(JSON.parse(storage.getItem(key)!).t, "sse");

  // A reconnect of the same client starts with what worked: no WebSocket attempt.
  first.c.disconnect();
  first.c.connect();
  assert.equal((await first.c.whenConnected()).transport, "sse");
  assert.equal(proxy.count("/ws"), 1);
  first.c.disconnect();

  // The network now refuses event streams as well. A new client (a page load) reads the storage:
  // SSE first, then long-polling; never the WebSocket.
  proxy.blocked.add("/http/sse");
  const second = client(storage);
  const h2 = await second.c.whenConnected();
  assert.equal(h2.transport, "poll");
  assert.deepEqual(second.disconnects.map((d) => [d.transport, d.code, d.delay]), [["sse", 1006, 0]]);
  assert.equal(proxy.count("/ws"), 1);
  await pushArrives(second.c, "over poll");
  assert.equal(JSON.parse(storage.getItem(key)!).t, "poll");
  second.c.disconnect();

  const third = client(storage);
  assert.equal((await third.c.whenConnected()).transport, "poll");
  assert.deepEqual(third.disconnects, [], "straight to long-polling");
  assert.equal(proxy.count("/ws"), 1);
  third.c.disconnect();
});

test("once the memory expires the WebSocket is tried again, and kept when it works", async () => {
  const storage = new MapStorage();
  const key = `pushd:transport:${proxy.ws}`;
  storage.setItem(key, JSON.stringify({ t: "poll", until: Date.now() - 1 })); // remembered an hour ago
  proxy.blocked.clear(); // the network lets WebSockets through now
  const wsBefore = proxy.count("/ws");
  const { c, disconnects } = client(storage);
  const h = await c.whenConnected();
  assert.equal(h.transport, "websocket");
  assert.deepEqual(disconnects, []);
  assert.equal(proxy.count("/ws"), wsBefore + 1);
  assert.equal(JSON.parse(storage.getItem(key)!).t, "websocket");
  await pushArrives(c, "over websocket");
});
