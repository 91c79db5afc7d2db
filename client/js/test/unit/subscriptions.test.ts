import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { FakeServer } from "../support/fake-server.js";
import { disconnectAll, newClient } from "../support/client.js";
import { nextEvent, record } from "../support/wait.js";
import { PushdError } from "../../src/index.js";

let server: FakeServer;
beforeEach(async () => void (server = await FakeServer.start()));
afterEach(async () => {
  disconnectAll();
  await server.close();
});

async function connected(opts = {}) {
  const client = newClient(server.url, opts);
  client.connect();
  const conn = await server.nextConn();
  await conn.accept();
  await client.whenConnected();
  return { client, conn };
}

test("join before connecting is sent after hello; pushes reach the subscription", async () => {
  const client = newClient(server.url);
  const sub = client.join("d1");
  assert.equal(sub.state, "joining");
  assert.equal(client.join("d1"), sub, "joining twice returns the same subscription");
  client.connect();
  const conn = await server.nextConn();
  await conn.accept();
  const join = await conn.joined("d1");
  assert.equal(join.since, undefined);
  const s = await sub.ready;
  assert.deepEqual(s, { doc: "d1", first: true, recovered: undefined, gap: false });
  assert.equal(sub.state, "joined");
  const pushes = record(sub, "push");
  const all = record(client, "push");
  const got = nextEvent(sub, "push");
  conn.push({ target: "doc", doc: "d1", event: "edit", data: [1, 2] });
  await got;
  conn.push({ target: "doc", doc: "other", event: "edit", data: 0 }); // not joined: dropped
  const marker = nextEvent(client, "push", (p) => p.target === "user");
  conn.push({ target: "user", data: "marker" });
  await marker;
  assert.deepEqual(pushes.map((p) => [p.doc, p.event, p.data]), [["d1", "edit", [1, 2]]]);
  assert.deepEqual(all.map((p) => p.target), ["doc", "user"]);
});

test("a reconnect rejoins every doc with its cursor and drops pushes it saw", async () => {
  const { client, conn } = await connected();
  const sub = client.join("d1");
  await conn.joined("d1", { seq: "100" });
  assert.deepEqual(await sub.ready, { doc: "d1", seq: "100", first: true, recovered: undefined, gap: false });
  const seqs: string[] = [];
  sub.on("push", (p) => void seqs.push(p.seq!));
  conn.push({ target: "doc", doc: "d1", seq: "105", data: 1 });
  conn.push({ target: "doc", doc: "d1", seq: "109", data: 2 });
  await nextEvent(sub, "push", (p) => p.seq === "109");
  assert.equal(sub.cursor, "109");

  conn.close(1012, "draining: bye");
  const again = await server.nextConn();
  await again.accept();
  const rejoin = await again.next("join");
  assert.equal(rejoin.since, "109");
  const resubscribed = nextEvent(sub, "subscribed");
  again.send({ type: "joined", doc: "d1", id: rejoin.id, seq: "120", recovered: true });
  assert.deepEqual(await resubscribed, { doc: "d1", seq: "120", first: false, recovered: true, gap: false });
  again.push({ target: "doc", doc: "d1", seq: "109", data: 2 }); // a duplicate at the seam
  again.push({ target: "doc", doc: "d1", seq: "115", data: 3 });
  again.push({ target: "doc", doc: "d1", seq: "120", data: 4 });
  await nextEvent(sub, "push", (p) => p.seq === "120");
  assert.deepEqual(seqs, ["105", "109", "115", "120"]);
  assert.equal(sub.cursor, "120");
});

test("recovered:false reports a gap and restarts the cursor at the reply's seq", async () => {
  const { client, conn } = await connected();
  const sub = client.join("d1", { since: "50" });
  const join = await conn.joined("d1", { seq: "900", recovered: false });
  assert.equal(join.since, "50", "a saved cursor is sent");
  assert.deepEqual(await sub.ready, { doc: "d1", seq: "900", first: true, recovered: false, gap: true });
  assert.equal(sub.cursor, "900");
  const got = nextEvent(sub, "push");
  conn.push({ target: "doc", doc: "d1", seq: "899", data: "old" }); // at or below the cursor: dropped
  conn.push({ target: "doc", doc: "d1", seq: "901", data: "new" });
  assert.equal((await got).data, "new");
});

test("a rejoin without a cursor (no durable delivery) reports a gap", async () => {
  const { client, conn } = await connected();
  const sub = client.join("d1");
  await conn.joined("d1");
  await sub.ready;
  conn.close(4008, "slow consumer");
  const again = await server.nextConn();
  await again.accept();
  const s = nextEvent(sub, "subscribed");
  assert.equal((await again.joined("d1")).since, undefined);
  assert.deepEqual(await s, { doc: "d1", first: false, recovered: undefined, gap: true });
});

test("a refused join fails the subscription for good", async () => {
  const { client, conn } = await connected();
  const sub = client.join("secret");
  const error = nextEvent(sub, "error");
  const j = await conn.next("join");
  conn.send({ type: "error", code: "forbidden", message: "not allowed to join", doc: "secret", id: j.id });
  const err = await error;
  assert.ok(err instanceof PushdError);
  assert.equal(err.code, "forbidden");
  assert.equal(err.doc, "secret");
  await assert.rejects(sub.ready, { code: "forbidden" });
  assert.equal(sub.state, "failed");
  assert.equal(client.subscription("secret"), undefined);
  conn.close(1012);
  const again = await server.nextConn();
  await again.accept();
  await client.whenConnected();
  const ping = nextEvent(client, "push");
  again.push({ target: "user", data: "marker" });
  await ping;
  assert.deepEqual(again.unread, [], "no rejoin of a refused doc");
});

test("a refused join nobody listens to is reported on the client", async () => {
  const { client, conn } = await connected();
  client.join("secret");
  const error = nextEvent(client, "error");
  const j = await conn.next("join");
  conn.send({ type: "error", code: "too_many_docs", message: "limit", doc: "secret", id: j.id });
  assert.equal((await error).code, "too_many_docs");
});

test("bad_since drops the cursor and joins again without it", async () => {
  const { client, conn } = await connected();
  const sub = client.join("d1", { since: "999999" });
  const j = await conn.next("join");
  assert.equal(j.since, "999999");
  conn.send({ type: "error", code: "bad_since", message: "ahead of the stream", doc: "d1", id: j.id });
  const j2 = await conn.joined("d1", { seq: "7" });
  assert.equal(j2.since, undefined);
  assert.equal((await sub.ready).seq, "7");
});

test("a join token function is called for every join", async () => {
  let n = 0;
  const { client, conn } = await connected();
  const sub = client.join("d1", { token: async () => `jt-${++n}` });
  assert.equal((await conn.joined("d1")).token, "jt-1");
  await sub.ready;
  conn.close(1012);
  const again = await server.nextConn();
  await again.accept();
  assert.equal((await again.joined("d1")).token, "jt-2");
});

test("leave sends leave, stops pushes and is not rejoined", async () => {
  const { client, conn } = await connected();
  const sub = client.join("d1");
  await conn.joined("d1");
  await sub.ready;
  const left = sub.leave();
  const l = await conn.next("leave");
  assert.equal(l.doc, "d1");
  conn.send({ type: "left", doc: "d1", id: l.id });
  await left;
  assert.equal(sub.state, "left");
  const pushes = record(sub, "push");
  conn.push({ target: "doc", doc: "d1", data: "late" });
  const marker = nextEvent(client, "push");
  conn.push({ target: "user", data: "marker" });
  await marker;
  assert.deepEqual(pushes, []);
  client.disconnect();
  const offline = client.join("d2");
  await offline.leave(); // never sent: leaving is local
  assert.equal(offline.state, "left");
  assert.deepEqual(conn.unread, []);
});

test("publish resolves on published and rejects with the server's error", async () => {
  const { client, conn } = await connected();
  const ok = client.publish("d1", "edit", { x: 1 });
  const p = await conn.next("publish");
  assert.deepEqual({ ...p, id: undefined }, { type: "publish", doc: "d1", event: "edit", data: { x: 1 }, id: undefined });
  conn.send({ type: "published", doc: "d1", id: p.id });
  await ok;
  const bad = client.publish("d2", "edit", null);
  const p2 = await conn.next("publish");
  conn.send({ type: "error", code: "not_joined", message: "join first", doc: "d2", id: p2.id });
  await assert.rejects(bad, (e: any) => e instanceof PushdError && e.code === "not_joined" && e.doc === "d2");
});

test("publish while connecting waits for the session; in flight at a close it fails with disconnected", async () => {
  const client = newClient(server.url);
  client.connect();
  const queued = client.publish("d1", "e", 1);
  const conn = await server.nextConn();
  await conn.accept();
  const p = await conn.next("publish");
  const inFlight = client.publish("d1", "e", 2);
  await conn.next("publish");
  conn.send({ type: "published", doc: "d1", id: p.id });
  await queued;
  conn.close(1012);
  await assert.rejects(inFlight, { code: "disconnected" });
});

test("publish times out, and fails at once when disconnected", async () => {
  const { client, conn } = await connected({ requestTimeout: 50 });
  const slow = client.publish("d1", "e", 1);
  await conn.next("publish");
  await assert.rejects(slow, { code: "timeout" });
  client.disconnect();
  await assert.rejects(client.publish("d1", "e", 1), { code: "closed" });
});
