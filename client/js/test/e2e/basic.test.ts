// The SDK against a real pushd --dev and a real NATS server, with a backend on NATS.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { PushdClient, type Push } from "../../src/index.js";
import { E2E } from "../support/e2e.js";
import { nextEvent } from "../support/wait.js";

const e2e = new E2E();

before(() => e2e.start(1));
after(() => e2e.stop());

function client(user: string): PushdClient {
  const c = new PushdClient({ url: e2e.node.url, user, WebSocket, window: null });
  e2e.clients.push(c);
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
  const reports = await e2e.backend.push("push.user.e2e-alice", { text: "hi" }, { event: "greet", id: "m-1" });
  assert.deepEqual(reports.map((r) => [r.node, r.delivered]), [[1, 1]]);
  const p = await got;
  assert.deepEqual([p.target, p.event, p.id, p.data], ["user", "greet", "m-1", { text: "hi" }]);

  const all = nextEvent(c, "push");
  await e2e.backend.push("push.all", "everyone", { event: "news" });
  assert.deepEqual([(await all).target, (await all).data], ["all", "everyone"]);

  const mine = nextEvent(c, "push");
  await e2e.backend.push(`push.session.${hello.node}.${hello.sid}`, null, { event: "just-you" });
  assert.deepEqual([(await mine).target, (await mine).event], ["session", "just-you"]);
});

test("join, doc pushes, publish upstream, leave", async () => {
  const c = client("e2e-bob");
  const sub = c.join("e2e/doc.1");
  const s = await sub.ready;
  assert.deepEqual([s.first, s.gap], [true, false]);

  const got = nextEvent(sub, "push");
  await e2e.backend.push("push.doc.e2e/doc.1", [1, 2, 3], { event: "edit" });
  const p: Push = await got;
  assert.deepEqual([p.target, p.doc, p.event, p.data], ["doc", "e2e/doc.1", "edit", [1, 2, 3]]);

  const upstream = await e2e.backend.subscribe("push.up.doc.e2e/doc.1");
  await c.publish("e2e/doc.1", "cursor", { x: 4 });
  const m = await upstream.next;
  assert.equal(m.headers?.get("Push-User"), "e2e-bob");
  assert.equal(m.headers?.get("Push-Event"), "cursor");
  assert.equal(m.headers?.get("Push-Session"), c.session?.sid);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(m.data)), { x: 4 });

  await assert.rejects(c.publish("not-joined", "e", 1), { code: "not_joined", doc: "not-joined" });

  await sub.leave();
  assert.equal(sub.state, "left");
  const reports = await e2e.backend.push("push.doc.e2e/doc.1", "after leave", { want: 0 });
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
