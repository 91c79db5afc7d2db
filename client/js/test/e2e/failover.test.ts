// Two pushd nodes on one NATS: the client fails over when its node dies (kill -9) or drains
// (SIGTERM: 1012), rejoins its docs on the other node, and pushes reach it there.
import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { PushdClient } from "../../src/index.js";
import { Cluster, type PushdNode } from "../support/cluster.js";
import { Backend } from "../support/backend.js";
import { nextEvent } from "../support/wait.js";

let cluster: Cluster;
let a: PushdNode;
let b: PushdNode;
let backend: Backend;
let client: PushdClient;

beforeEach(async () => {
  cluster = new Cluster();
  await cluster.nats();
  [a, b] = await Promise.all([cluster.pushd(11), cluster.pushd(12)]);
  backend = await Backend.connect(cluster.natsURL);
  client = new PushdClient({ url: [a.url, b.url], user: "fo-alice", WebSocket, window: null, backoff: { min: 100, max: 1000, restart: 300 } });
  client.connect();
});
afterEach(async () => {
  client.disconnect();
  await backend.close();
  const logs = await cluster.stop();
  if (process.exitCode) console.log(logs);
});

async function onNodeA() {
  const hello = await client.whenConnected();
  assert.equal(hello.node, 11);
  const sub = client.join("fo-doc");
  await sub.ready;
  return sub;
}

async function pushesArriveOnB(sub: ReturnType<PushdClient["join"]>) {
  const hello = await client.whenConnected();
  assert.equal(hello.node, 12);
  assert.equal(hello.url, b.url);
  const again = await nextEvent(sub, "subscribed");
  assert.deepEqual([again.first, again.gap], [false, true], "rejoined; without durable delivery a gap is reported");
  const user = nextEvent(client, "push");
  assert.deepEqual((await backend.push("push.user.fo-alice", 1)).map((r) => r.node), [12]);
  assert.equal((await user).data, 1);
  const doc = nextEvent(sub, "push");
  await backend.push("push.doc.fo-doc", 2);
  assert.equal((await doc).data, 2);
}

test("kill -9 of the node: the client reconnects to the other one and rejoins", async () => {
  const sub = await onNodeA();
  const gone = nextEvent(client, "disconnect");
  const back = nextEvent(client, "hello", () => true, 10_000);
  await a.proc.kill9();
  const d = await gone;
  assert.equal(d.code, 1006);
  assert.ok(d.willReconnect);
  await back;
  await pushesArriveOnB(sub);
});

test("drain (SIGTERM): 1012 names the node, the client reconnects elsewhere at once", async () => {
  const sub = await onNodeA();
  const gone = nextEvent(client, "disconnect");
  const back = nextEvent(client, "hello", () => true, 10_000);
  const exited = a.proc.term();
  const d = await gone;
  assert.equal(d.code, 1012);
  assert.equal(d.reason, "draining: node 11; reconnect elsewhere");
  assert.equal(d.error, "draining");
  assert.ok(d.delay! <= 300, `reconnect delay ${d.delay}ms is the restart jitter`);
  const t0 = Date.now();
  await back;
  assert.ok(Date.now() - t0 < 2000, "reconnected soon");
  assert.equal(await exited, 0, "the drained node exits 0");
  await pushesArriveOnB(sub);
});
