// The SDK against a real pushd --dev and a real NATS server, with a backend on NATS.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { PushdClient, type Push } from "../../src/index.js";
import { Cluster, type PushdNode } from "../support/cluster.js";
import { Backend } from "../support/backend.js";
import { nextEvent } from "../support/wait.js";

const cluster = new Cluster();
let node: PushdNode;
let backend: Backend;
const clients: PushdClient[] = [];

before(async () => {
  await cluster.nats();
  node = await cluster.pushd(1);
  backend = await Backend.connect(cluster.natsURL);
});
after(async () => {
  for (const c of clients) c.disconnect();
  await backend?.close();
  const logs = await cluster.stop();
  if (process.exitCode) console.log(logs);
});

function client(user: string): PushdClient {
  const c = new PushdClient({ url: node.url, user, WebSocket, window: null });
  clients.push(c);
  c.connect();
  return c;
}

test("connect with the connect frame; user, broadcast and session pushes arrive", async () => {
  const c = client("e2e-alice");
  const hello = await c.whenConnected();
  assert.equal(hello.user, "e2e-alice");
  assert.equal(hello.node, 1);
  assert.match(hello.sid, /^\d+$/);

  const got = nextEvent(c, "push");
  const reports = await backend.push("push.user.e2e-alice", { text: "hi" }, { event: "greet", id: "m-1" });
  assert.deepEqual(reports.map((r) => [r.node, r.delivered]), [[1, 1]]);
  const p = await got;
  assert.deepEqual([p.target, p.event, p.id, p.data], ["user", "greet", "m-1", { text: "hi" }]);

  const all = nextEvent(c, "push");
  await backend.push("push.all", "everyone", { event: "news" });
  assert.deepEqual([(await all).target, (await all).data], ["all", "everyone"]);

  const mine = nextEvent(c, "push");
  await backend.push(`push.session.${hello.node}.${hello.sid}`, null, { event: "just-you" });
  assert.deepEqual([(await mine).target, (await mine).event], ["session", "just-you"]);
});

test("join, doc pushes, publish upstream, leave", async () => {
  const c = client("e2e-bob");
  const sub = c.join("e2e/doc.1");
  const s = await sub.ready;
  assert.deepEqual([s.first, s.gap], [true, false]);

  const got = nextEvent(sub, "push");
  await backend.push("push.doc.e2e/doc.1", [1, 2, 3], { event: "edit" });
  const p: Push = await got;
  assert.deepEqual([p.target, p.doc, p.event, p.data], ["doc", "e2e/doc.1", "edit", [1, 2, 3]]);

  const upstream = await backend.subscribe("push.up.doc.e2e/doc.1");
  await c.publish("e2e/doc.1", "cursor", { x: 4 });
  const m = await upstream.next;
  assert.equal(m.headers?.get("Push-User"), "e2e-bob");
  assert.equal(m.headers?.get("Push-Event"), "cursor");
  assert.equal(m.headers?.get("Push-Session"), c.session?.sid);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(m.data)), { x: 4 });

  await assert.rejects(c.publish("not-joined", "e", 1), { code: "not_joined", doc: "not-joined" });

  await sub.leave();
  assert.equal(sub.state, "left");
  const reports = await backend.push("push.doc.e2e/doc.1", "after leave", { want: 0 });
  assert.deepEqual(reports, [], "no session holds the doc any more");
});

test("an invalid doc is refused for good", async () => {
  const c = client("e2e-carol");
  const sub = c.join("bad doc");
  await assert.rejects(sub.ready, { code: "invalid_doc" });
  assert.equal(sub.state, "failed");
});

test("an invalid dev user is refused with 4003 and the client stops", async () => {
  const c = client("bad user");
  const stopped = await nextEvent(c, "state", (s) => s.state === "disconnected");
  assert.equal(stopped.code, 4003);
  assert.match(stopped.reason!, /^invalid_user: /);
});
