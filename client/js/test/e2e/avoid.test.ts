// Drain hints against two real pushd processes (docs/PROTOCOL.md, "Going elsewhere"): node A
// drains (SIGTERM) and names itself in its 1012; the client's next session is on B at the first
// attempt, and while the hint lasts a later reconnect skips A's URL (A is gone by then: without
// the hint each of the three transports would be tried there first).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { PushdClient, type DisconnectEvent, type HelloEvent } from "../../src/index.js";
import { Cluster, type PushdNode } from "../support/cluster.js";
import { Proxy } from "../support/proxy.js";
import { nextEvent } from "../support/wait.js";

const cluster = new Cluster();
let a: PushdNode;
let b: PushdNode;
let proxyB: Proxy;

before(async () => {
  await cluster.nats();
  [a, b] = await Promise.all([cluster.pushd(31), cluster.pushd(32)]);
  proxyB = await Proxy.start(b.http);
});
after(async () => {
  await proxyB?.close();
  const logs = await cluster.stop();
  if (process.exitCode) console.log(logs);
});

test("a drained node is skipped: the next session is on the other node first try, and later reconnects skip its URL", async () => {
  const client = new PushdClient({ url: [a.url, proxyB.ws], user: "avoid-alice", WebSocket, window: null, backoff: { min: 50, max: 500, restart: 200 } });
  const closes: DisconnectEvent[] = [];
  const hellos: HelloEvent[] = [];
  client.on("disconnect", (d) => void closes.push(d));
  client.on("hello", (h) => void hellos.push(h));
  client.connect();
  try {
    assert.equal((await client.whenConnected()).node, 31);

    const onB = nextEvent(client, "hello", () => true, 10_000);
    const exited = a.proc.term();
    const h = await onB;
    assert.deepEqual([h.node, h.url, h.transport], [32, proxyB.ws, "websocket"]);
    assert.deepEqual(closes.map((d) => [d.code, d.reason]), [[1012, "draining: node 31; reconnect elsewhere"]], "one close, then B at the first attempt");
    assert.equal(proxyB.count("/ws"), 1);
    assert.equal(await exited, 0);

    // B's connection breaks (1006); the rotation's next URL is A's, dead now but avoided.
    const again = nextEvent(client, "hello", () => true, 10_000);
    assert.equal(proxyB.cutUpgrades(), 1);
    const h2 = await again;
    assert.equal(h2.node, 32);
    assert.deepEqual(closes.slice(1).map((d) => [d.code, d.url]), [[1006, proxyB.ws]], "no attempt on A's URL");
    assert.equal(proxyB.count("/ws"), 2);
    assert.deepEqual(hellos.map((x) => x.node), [31, 32, 32]);
  } finally {
    client.disconnect();
  }
});
