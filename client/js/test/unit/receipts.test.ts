import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { FakeServer, type FakeConn } from "../support/fake-server.js";
import { disconnectAll, newClient } from "../support/client.js";
import { nextEvent } from "../support/wait.js";
import type { PushdClient, Push } from "../../src/index.js";

let server: FakeServer;
beforeEach(async () => void (server = await FakeServer.start()));
afterEach(async () => {
  disconnectAll();
  await server.close();
});

async function connected(opts = {}, hello = { seq: "10" }) {
  const client = newClient(server.url, opts);
  client.connect();
  const conn = await server.nextConn();
  await conn.accept(hello);
  await client.whenConnected();
  return { client, conn };
}

/** Sends a marker user push and waits for it: everything sent before it was handled. */
async function flush(client: PushdClient, conn: FakeConn) {
  const m = nextEvent(client, "push", (p) => p.event === "marker");
  conn.push({ target: "all", event: "marker" });
  await m;
}

test("auto: a receipt is sent once the listeners returned", async () => {
  const { client, conn } = await connected();
  client.on("push", () => {});
  conn.push({ target: "user", seq: "11", ack: true, data: 1 });
  assert.deepEqual(await conn.next("ack"), { type: "ack", seq: "11" });
  const sub = client.join("d1");
  await conn.joined("d1", { seq: "3" });
  await sub.ready;
  conn.push({ target: "doc", doc: "d1", seq: "4", ack: true, data: 2 });
  assert.deepEqual(await conn.next("ack"), { type: "ack", doc: "d1", seq: "4" });
  conn.push({ target: "user", seq: "12", data: 3 }); // no receipt asked
  await flush(client, conn);
  assert.deepEqual(conn.unread, []);
  assert.equal(client.cursor, "12");
});

test("auto: a listener's promise delays the receipt; a rejection withholds it", async () => {
  const { client, conn } = await connected();
  let finish!: () => void;
  const errors: string[] = [];
  client.on("error", (e) => void errors.push(e.code));
  client.on("push", (p) =>
    p.seq === "11" ? new Promise<void>((r) => (finish = r)) : p.seq === "12" ? Promise.reject(new Error("db down")) : undefined,
  );
  conn.push({ target: "user", seq: "11", ack: true, data: 1 });
  conn.push({ target: "user", seq: "12", ack: true, data: 2 });
  await flush(client, conn);
  assert.deepEqual(conn.unread, [], "no receipt while the handler works");
  finish();
  assert.deepEqual(await conn.next("ack"), { type: "ack", seq: "11" });
  assert.deepEqual(errors, ["listener"]);
  assert.equal(client.cursor, "11", "held below the push whose handler failed");
});

test("a listener that throws withholds the receipt", async () => {
  const { client, conn } = await connected();
  client.on("error", () => {});
  client.on("push", (p) => {
    if (p.seq === "11") throw new Error("boom");
  });
  conn.push({ target: "user", seq: "11", ack: true, data: 1 });
  await flush(client, conn);
  assert.deepEqual(conn.unread, []);
  assert.equal(client.cursor, "10");
});

test("an unacknowledged receipt is replayed on resume; pushes processed after it are not", async () => {
  const { client, conn } = await connected({ ack: "manual" });
  const got: Push[] = [];
  client.on("push", (p) => void (p.seq && got.push(p)));
  conn.push({ target: "user", seq: "11", data: "a" });
  conn.push({ target: "user", seq: "12", ack: true, data: "needs a receipt" });
  conn.push({ target: "user", seq: "14", data: "c" });
  conn.push({ target: "user", seq: "15", ack: true, data: "acked" });
  await flush(client, conn);
  got.find((p) => p.seq === "15")!.ack();
  assert.deepEqual(await conn.next("ack"), { type: "ack", seq: "15" });
  assert.equal(client.cursor, "11", "held below seq 12");

  conn.close(1012, "draining: bye");
  const again = await server.nextConn();
  const connect = await again.next("connect");
  assert.equal(connect.since, "11", "resume from below the unacknowledged push");
  again.send({ type: "hello", sid: "2", node: 4, user: "alice", ping_interval: 60000, ping_timeout: 70000, seq: "15", recovered: true, id: connect.id });
  for (const [seq, data] of [["12", "needs a receipt"], ["14", "c"], ["15", "acked"]] as const) {
    again.push({ target: "user", seq, ack: seq !== "14", data });
  }
  await flush(client, again);
  assert.deepEqual(got.map((p) => p.seq), ["11", "12", "14", "15", "12"], "only the unacknowledged push came again");
  got.at(-1)!.ack();
  assert.deepEqual(await again.next("ack"), { type: "ack", seq: "12" });
  assert.equal(client.cursor, "15");
  got[1]!.ack(); // the first copy's ack: already given
  await flush(client, again);
  assert.deepEqual(again.unread, []);
});

test("a receipt given while disconnected is sent when the resume replays the push, which is not delivered again", async () => {
  const { client, conn } = await connected({ ack: "manual" });
  const sub = client.join("d1");
  await conn.joined("d1", { seq: "100" });
  await sub.ready;
  const got = nextEvent(sub, "push");
  conn.push({ target: "doc", doc: "d1", seq: "101", ack: true, data: 1 });
  const p = await got;
  const closed = nextEvent(client, "disconnect");
  conn.close(4008, "slow consumer");
  await closed;
  p.ack(); // offline
  const again = await server.nextConn();
  await again.accept({ seq: "10", recovered: true });
  const j = await again.next("join");
  assert.equal(j.since, "100", "resumed from below the push");
  const pushes: Push[] = [];
  sub.on("push", (x) => void pushes.push(x));
  again.send({ type: "joined", doc: "d1", id: j.id, seq: "101", recovered: true });
  await nextEvent(sub, "subscribed");
  again.push({ target: "doc", doc: "d1", seq: "101", ack: true, data: 1 }); // the replay: this session owes the receipt now
  assert.deepEqual(await again.next("ack"), { type: "ack", doc: "d1", seq: "101" });
  await flush(client, again);
  assert.deepEqual(pushes, [], "acknowledged already: not delivered again");
  assert.equal(sub.cursor, "101");
});

test("a receipt for a copy delivered on an earlier session waits for the replay on this one", async () => {
  const { client, conn } = await connected({ ack: "manual" });
  const got = nextEvent(client, "push");
  conn.push({ target: "user", seq: "11", ack: true, data: "x" });
  const old = await got;
  conn.close(1012);
  const again = await server.nextConn();
  const c = await again.accept({ seq: "11", recovered: true });
  assert.equal(c.since, "10");
  await client.whenConnected();
  old.ack(); // connected, but this session has not delivered seq 11 (yet)
  await flush(client, again);
  assert.deepEqual(again.unread, [], "not sent on a session that does not owe it");
  const replayed: Push[] = [];
  client.on("push", (p) => void (p.seq && replayed.push(p)));
  again.push({ target: "user", seq: "11", ack: true, data: "x" });
  assert.deepEqual(await again.next("ack"), { type: "ack", seq: "11" });
  await flush(client, again);
  assert.deepEqual(replayed, []);
  assert.equal(client.cursor, "11");
});

test("hello's seq starts the user cursor; connect sends it as since", async () => {
  const { client, conn } = await connected({}, { seq: "18446744073709551600" });
  assert.equal(client.cursor, "18446744073709551600");
  conn.push({ target: "user", seq: "18446744073709551601", data: 1 });
  await flush(client, conn);
  conn.close(1012);
  const again = await server.nextConn();
  const hello = nextEvent(client, "hello");
  const c = await again.accept({ seq: "18446744073709551601", recovered: true });
  assert.equal(c.since, "18446744073709551601");
  const h = await hello;
  assert.deepEqual([h.first, h.recovered, h.gap], [false, true, false]);
});

test("a saved user cursor is resumed from; recovered:false is a gap", async () => {
  const client = newClient(server.url, { since: "77" });
  client.connect();
  const conn = await server.nextConn();
  const hello = nextEvent(client, "hello");
  const c = await conn.accept({ seq: "500", recovered: false });
  assert.equal(c.since, "77");
  const h = await hello;
  assert.deepEqual([h.first, h.recovered, h.gap, h.seq], [true, false, true, "500"]);
  assert.equal(client.cursor, "500");
});

test("a broadcast or session push without seq is acknowledged by its push_id, on the session that got it", async () => {
  const { client, conn } = await connected();
  client.on("push", () => {});
  conn.push({ target: "all", ack: true, id: "b-1", data: 1 });
  assert.deepEqual(await conn.next("ack"), { type: "ack", push_id: "b-1" });
  conn.push({ target: "session", ack: true, id: "s-1", data: 2 });
  assert.deepEqual(await conn.next("ack"), { type: "ack", push_id: "s-1" });
  conn.push({ target: "all", ack: true, data: 3 }); // no id: nothing to acknowledge it by
  await flush(client, conn);
  assert.deepEqual(conn.unread, []);
  assert.equal(client.cursor, "10", "pushes without seq do not move the cursor");
});

test("manual: a push_id receipt for a session that is gone is dropped (such pushes are not replayed)", async () => {
  const { client, conn } = await connected({ ack: "manual" });
  const got: Push[] = [];
  client.on("push", (p) => void (p.id && got.push(p)));
  conn.push({ target: "all", ack: true, id: "b-2", data: 1 });
  conn.push({ target: "session", ack: true, id: "s-2", data: 2 });
  await flush(client, conn);
  assert.deepEqual(got.map((p) => p.needsAck), [true, true]);
  got[0]!.ack();
  got[0]!.ack(); // once only
  assert.deepEqual(await conn.next("ack"), { type: "ack", push_id: "b-2" });
  conn.close(4008, "slow_consumer: x");
  const next = await server.nextConn();
  await next.accept({ seq: "10" });
  await client.whenConnected();
  got[1]!.ack();
  await flush(client, next);
  assert.deepEqual(next.unread, [], "the new session was not given s-2");
});
