// Resume without gap against real pushd nodes with durable delivery (JetStream), over each
// transport: WebSocket, SSE (read with fetch) and long-polling. PUSHD_DURABLE_ARGS adds pushd
// flags (space separated). Every test fails, saying so, against a pushd without durable delivery.
import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { PushdClient, type ClientOptions, type Push, type TransportName } from "../../src/index.js";
import { Cluster, type PushdNode } from "../support/cluster.js";
import { Backend } from "../support/backend.js";
import { nextEvent, within } from "../support/wait.js";

const extra = (process.env["PUSHD_DURABLE_ARGS"] ?? "").split(" ").filter(Boolean);
let cluster: Cluster;
let a: PushdNode;
let b: PushdNode;
let backend: Backend;
let client: PushdClient;
let openGate: () => void;
let makeClient: (transport: TransportName, opts?: Partial<ClientOptions>) => PushdClient;

beforeEach(async () => {
  cluster = new Cluster();
  await cluster.nats(true);
  [a, b] = await Promise.all([cluster.pushd(31, ["--dev", ...extra]), cluster.pushd(32, ["--dev", ...extra])]);
  backend = await Backend.connect(cluster.natsURL);
  // The first connection goes to a; every later one waits for the gate, then goes to b: pushes
  // published meanwhile are missed by the session and must be replayed.
  const gate = new Promise<void>((resolve) => (openGate = resolve));
  makeClient = (transport, opts = {}) =>
    new PushdClient({
      url: async (attempt) => (attempt === 0 ? a.url : (await gate, b.url)),
      user: "dur-alice",
      WebSocket,
      transports: [transport],
      window: null,
      backoff: { min: 50, max: 200 },
      ...opts,
    });
});

/** Connects a client over transport to node a. */
async function start(transport: TransportName, opts: Partial<ClientOptions> = {}): Promise<void> {
  client = makeClient(transport, opts);
  client.connect();
  const hello = await client.whenConnected();
  assert.equal(hello.transport, transport);
  assert.ok(hello.seq !== undefined, "hello has no seq: this pushd has no durable delivery (docs/PROTOCOL.md)");
}

afterEach(async () => {
  client?.disconnect();
  await backend.close();
  const logs = await cluster.stop();
  if (process.exitCode) console.log(logs);
});

/** Records the data of user and doc pushes; count(n) resolves once n arrived. */
class Collector {
  readonly data: unknown[] = [];
  private waiters: [number, () => void][] = [];
  add(p: Push): void {
    if (p.target === "all" || p.target === "session") return;
    this.data.push(p.data);
    for (const [n, resolve] of this.waiters) if (this.data.length >= n) resolve();
  }
  count(n: number): Promise<void> {
    if (this.data.length >= n) return Promise.resolve();
    return within(10_000, `${n} pushes (have ${JSON.stringify(this.data)})`, new Promise((resolve) => void this.waiters.push([n, resolve])));
  }
}

const transports: TransportName[] = ["websocket", "sse", "poll"];

for (const transport of transports) {
  test(`${transport}: user pushes missed while reconnecting (kill -9) are replayed in order, with no gap and no duplicate`, async () => {
    await start(transport);
    const got = new Collector();
    client.on("push", (p) => got.add(p));
    for (const i of [1, 2, 3]) await backend.push("push.user.dur-alice", i);
    await got.count(3);
    const gone = nextEvent(client, "disconnect");
    await a.proc.kill9();
    await gone;
    for (const i of [4, 5, 6]) await backend.push("push.user.dur-alice", i, { want: 0 }); // nobody holds the user now
    const hello = nextEvent(client, "hello");
    openGate();
    const h = await hello;
    assert.deepEqual([h.recovered, h.gap, h.node, h.transport], [true, false, 32, transport]);
    await backend.push("push.user.dur-alice", 7);
    await got.count(7);
    assert.deepEqual(got.data, [1, 2, 3, 4, 5, 6, 7]);
  });

  test(`${transport}: doc pushes missed while reconnecting (drain) are replayed after the rejoin`, async () => {
    await start(transport);
    const sub = client.join("dur-doc");
    const first = await sub.ready;
    assert.ok(first.seq !== undefined, "joined has no seq");
    const got = new Collector();
    sub.on("push", (p) => got.add(p));
    for (const i of [1, 2]) await backend.push("push.doc.dur-doc", i);
    await got.count(2);
    const gone = nextEvent(client, "disconnect");
    await a.proc.term(); // drain: 1012
    const d = await gone;
    assert.equal(d.code, 1012);
    // Over HTTP the close frame carries the node's retry hint (a jittered second or so).
    if (transport !== "websocket") assert.ok(d.delay! >= 500 && d.delay! <= 1500, `delay ${d.delay} is the close frame's retry`);
    for (const i of [3, 4]) await backend.push("push.doc.dur-doc", i, { want: 0 });
    const again = nextEvent(sub, "subscribed");
    openGate();
    const s = await again;
    assert.deepEqual([s.first, s.recovered, s.gap], [false, true, false]);
    await backend.push("push.doc.dur-doc", 5);
    await got.count(5);
    assert.deepEqual(got.data, [1, 2, 3, 4, 5]);
  });

  test(`${transport}: receipts: an unacknowledged push is replayed after a reconnect, and its receipt reaches the backend`, async () => {
    await start(transport, { ack: "manual" });
    const receipts = await backend.subscribe("receipts.dur-alice", 10_000);
    const first = nextEvent(client, "push");
    await backend.push("push.user.dur-alice", { order: 7 }, { receipt: "receipts.dur-alice" });
    const p = await first;
    assert.equal(p.needsAck, true);
    const held = client.cursor;
    assert.ok(held !== undefined && BigInt(held) < BigInt(p.seq!), "the cursor stays below the unacknowledged push");
    const gone = nextEvent(client, "disconnect");
    await a.proc.kill9();
    await gone;
    const replayed = nextEvent(client, "push");
    openGate();
    const again = await replayed;
    assert.deepEqual([again.seq, again.data, again.needsAck], [p.seq, { order: 7 }, true], "replayed because it was not acknowledged");
    again.ack();
    const r = await receipts.next;
    assert.equal(JSON.parse(new TextDecoder().decode(r.data)).seq, p.seq);
    assert.equal(client.cursor, p.seq);
  });
}
