// The client's transport fallback with scripted transports: what moves on to the next transport
// (a failure before hello without a close code, no hello in time), what does not (a server's close
// code), where a round starts (the transport remembered for the URL) and how it wraps around.
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { PushdClient, type ClientOptions, type StorageLike, type TransportFactory, type TransportName } from "../../src/index.js";
import { disconnectAll, newClient } from "../support/client.js";
import { nextEvent, record } from "../support/wait.js";
import { signJWT } from "../support/jwt.js";

afterEach(() => disconnectAll());

const url = "wss://push.example.com/ws";
const names: TransportName[] = ["websocket", "sse", "poll"];

/** What a scripted transport does: fail before opening, never answer, say hello, or close with a code. */
type Plan = "refuse" | "hang" | "hello" | { code: number; reason: string };

/** Transports that follow plans (one per attempt, the last one repeating); attempts lists them. */
function scripted(plans: Partial<Record<TransportName, Plan[]>>) {
  const attempts: string[] = [];
  const live: { name: TransportName; close: (code: number) => void }[] = [];
  const factories: Partial<Record<TransportName, TransportFactory>> = {};
  for (const name of names) {
    factories[name] = (u, on) => {
      attempts.push(name);
      const list = plans[name] ?? ["refuse"];
      const plan = list.length > 1 ? list.shift()! : list[0]!;
      let done = false;
      live.push({ name, close: (code) => !done && ((done = true), on.close(code, "")) });
      queueMicrotask(() => {
        if (done) return;
        if (plan === "refuse") return (done = true), on.close(1006, "");
        if (typeof plan === "object") return (done = true), on.close(plan.code, plan.reason);
        if (plan === "hello") on.open();
      });
      return {
        heartbeat: name === "websocket" ? "ping" : "stream",
        send(frame) {
          if (JSON.parse(frame).type === "connect") on.message({ type: "hello", sid: "1", node: 1, user: "alice", ping_interval: 60_000, ping_timeout: 70_000 });
          void u;
        },
        close() {
          done = true;
        },
      };
    };
  }
  return { attempts, factories, live };
}

function client(plans: Partial<Record<TransportName, Plan[]>>, opts: Partial<ClientOptions> = {}) {
  const s = scripted(plans);
  const c = newClient(url, { transports: names, transportFactories: s.factories, storage: null, ...opts });
  const disconnects = record(c, "disconnect");
  c.connect();
  return { c, disconnects, ...s };
}

test("a transport that fails before hello without a close code: the next one, at once, on the same URL", async () => {
  const { c, disconnects, attempts } = client({ websocket: ["refuse"], sse: ["hello"] });
  const h = await c.whenConnected();
  assert.deepEqual([h.transport, h.url], ["sse", url]);
  assert.deepEqual(attempts, ["websocket", "sse"]);
  assert.deepEqual(disconnects.map((d) => [d.transport, d.code, d.delay, d.willReconnect, d.url]), [["websocket", 1006, 0, true, url]]);
  assert.equal(c.state, "connected");
});

test("no hello within transportTimeout: the next transport; the last one gets connectTimeout", async () => {
  const { c, disconnects, attempts } = client({ websocket: ["hang", "hello"], sse: ["hang"], poll: ["hang"] }, { transportTimeout: 30, connectTimeout: 120, random: () => 0.5 });
  await c.whenConnected();
  assert.deepEqual(attempts, ["websocket", "sse", "poll", "websocket"], "a round that failed starts over from the first");
  assert.deepEqual(
    disconnects.map((d) => [d.transport, d.reason]),
    [
      ["websocket", "connect_timeout: no hello within 30ms"],
      ["sse", "connect_timeout: no hello within 30ms"],
      ["poll", "connect_timeout: no hello within 120ms"],
    ],
  );
  assert.ok(disconnects[2]!.delay! > 0, "a round that failed backs off");
});

test("a close code from the server before hello is no reason to change transports", async () => {
  const token = signJWT({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 3600 });
  const { c, disconnects, attempts } = client(
    { websocket: [{ code: 4003, reason: "token_invalid: bad signature" }, { code: 1013, reason: "over_capacity: full" }, "hello"] },
    { user: undefined, getToken: async () => token } as never,
  );
  await c.whenConnected();
  assert.deepEqual(attempts, ["websocket", "websocket", "websocket"]);
  assert.deepEqual(disconnects.map((d) => d.code), [4003, 1013]);
  assert.ok(disconnects.every((d) => d.delay! > 0), "backoff, as on any close");
});

test("a round starts with the transport that last worked on the URL, and wraps around", async () => {
  const { c, attempts, live } = client({ websocket: ["refuse", "hello"], sse: ["hello", "refuse"], poll: ["refuse"] });
  assert.equal((await c.whenConnected()).transport, "sse");
  // The connection drops after hello: the reconnect starts with SSE, which now fails, then
  // long-polling, then the WebSocket, which works again.
  const back = nextEvent(c, "hello");
  live.at(-1)!.close(1006);
  assert.equal((await back).transport, "websocket");
  assert.deepEqual(attempts, ["websocket", "sse", "sse", "poll", "websocket"]);
});

test("every transport failed: the round backs off, then starts over", async () => {
  const { c, disconnects, attempts } = client({ websocket: ["refuse", "hello"] }, { random: () => 0.5 });
  await c.whenConnected();
  assert.deepEqual(attempts, ["websocket", "sse", "poll", "websocket"]);
  assert.deepEqual(disconnects.map((d) => d.delay! > 0), [false, false, true]);
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

test("the storage carries the memory to the next client (a page load) until it expires", async () => {
  const storage = new MapStorage();
  const key = `pushd:transport:${url}`;
  const one = client({ websocket: ["refuse"], sse: ["refuse"], poll: ["hello"] }, { storage });
  await one.c.whenConnected();
  const saved = JSON.parse(storage.getItem(key)!);
  assert.equal(saved.t, "poll");
  assert.ok(saved.until > Date.now() + 3_500_000 && saved.until <= Date.now() + 3_600_000, "an hour by default");
  one.c.disconnect();

  const two = client({ poll: ["hello"] }, { storage });
  await two.c.whenConnected();
  assert.deepEqual(two.attempts, ["poll"]);
  two.c.disconnect();

  storage.setItem(key, JSON.stringify({ t: "poll", until: Date.now() - 1 }));
  const three = client({ websocket: ["hello"] }, { storage });
  assert.equal((await three.c.whenConnected()).transport, "websocket");
  assert.deepEqual(three.attempts, ["websocket"]);
  assert.equal(JSON.parse(storage.getItem(key)!).t, "websocket");
});

test("an unreadable or failing storage is as good as none; rememberTransport 0 remembers nothing", async () => {
  const broken: StorageLike = {
    getItem: () => "{not json",
    setItem: () => {
      throw new Error("QuotaExceededError");
    },
  };
  const one = client({ websocket: ["refuse"], sse: ["hello"] }, { storage: broken });
  assert.equal((await one.c.whenConnected()).transport, "sse");
  const storage = new MapStorage();
  const two = client({ websocket: ["refuse", "hello"], sse: ["hello"] }, { storage, rememberTransport: 0 });
  await two.c.whenConnected();
  two.c.disconnect();
  two.c.connect();
  assert.equal((await two.c.whenConnected()).transport, "websocket", "nothing remembered: the WebSocket first again");
  assert.equal(storage.m.size, 0);
});

test("without WebSocket the client uses what fetch allows; with nothing at all it says so", () => {
  const c = new PushdClient({ url, user: "alice", window: null });
  c.connect(); // Node 20 has fetch but no WebSocket: SSE first
  c.disconnect();
  assert.throws(() => new PushdClient({ url, user: "alice", window: null, transports: ["websocket"] }), /no transport here: pass the ws package/);
});
