// Presence in the SDK against a scripted server: the join's presence flag (and on rejoin), the
// presence and presence_stats requests with their pages, and presence_diff frames as typed events.
import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { FakeServer } from "../support/fake-server.js";
import { disconnectAll, newClient } from "../support/client.js";
import { record } from "../support/wait.js";
import type { PresenceMember } from "../../src/index.js";

let server: FakeServer;
beforeEach(async () => void (server = await FakeServer.start()));
afterEach(async () => {
  disconnectAll();
  await server.close();
});

const alice: PresenceMember = { sid: "11", user: "alice", node: 1, joined_at: "2026-11-29T08:31:02.118Z", info: { name: "Alice" } };
const bob: PresenceMember = { sid: "12", user: "bob", node: 2, joined_at: "2026-11-29T08:31:04.5Z" };

test("join with presence sends presence:true, again on rejoin; diffs arrive as typed events", async () => {
  const client = newClient(server.url);
  client.connect();
  const conn = await server.nextConn();
  await conn.accept();
  const sub = client.join("d", { presence: true });
  const plain = client.join("quiet");
  assert.equal((await conn.joined("d")).presence, true);
  assert.equal((await conn.joined("quiet")).presence, undefined);
  await Promise.all([sub.ready, plain.ready]);
  const diffs = record(sub, "presence");
  const joins = record(sub, "presence_join");
  const leaves = record(sub, "presence_leave");
  const joined = new Promise((r) => sub.on("presence_join", r));
  conn.send({ type: "presence_diff", doc: "d", sessions: 2, users: 2, events: [{ event: "join", ...bob }, { event: "leave", sid: "9", user: "carol", node: 3, reason: "node_lost" }] });
  conn.send({ type: "presence_diff", doc: "other", sessions: 1, users: 1, events: [{ event: "join", ...alice }] }); // not joined: ignored
  await joined;
  assert.deepEqual(joins, [bob]);
  assert.deepEqual(leaves, [{ sid: "9", user: "carol", node: 3, reason: "node_lost" }]);
  conn.send({ type: "presence_diff", doc: "d", sessions: 1000, users: 987, joined: 12, left: 9 });
  await new Promise((r) => sub.once("presence", r));
  assert.equal(diffs.length, 2);
  assert.deepEqual(diffs[1], { doc: "d", sessions: 1000, users: 987, joined: 12, left: 9 });
  assert.equal(joins.length, 1, "counts-only frames carry no member");

  conn.close(4008, "slow_consumer: x");
  const next = await server.nextConn();
  await next.accept();
  const rejoins = [await next.next("join"), await next.next("join")];
  assert.deepEqual(rejoins.map((j) => [j.doc, j.presence]), [["d", true], ["quiet", undefined]]);
});

test("presence pages, members() follows next, presenceStats; errors reject with the server's code", async () => {
  const client = newClient(server.url);
  client.connect();
  const conn = await server.nextConn();
  await conn.accept();
  const sub = client.join("d", { token: "join.token.d" });
  await conn.joined("d");
  await sub.ready;

  const page = sub.presence({ limit: 1 });
  const q = await conn.next("presence");
  assert.deepEqual(q, { type: "presence", doc: "d", limit: 1, token: "join.token.d", id: q.id });
  conn.send({ type: "presence", doc: "d", sessions: 2, users: 2, members: [alice], next: "11", id: q.id });
  assert.deepEqual(await page, { doc: "d", sessions: 2, users: 2, members: [alice], next: "11" });

  const all = sub.members();
  const q1 = await conn.next("presence");
  assert.equal(q1.cursor, undefined);
  conn.send({ type: "presence", doc: "d", sessions: 2, users: 2, members: [alice], next: "11", id: q1.id });
  const q2 = await conn.next("presence");
  assert.equal(q2.cursor, "11");
  conn.send({ type: "presence", doc: "d", sessions: 2, users: 2, members: [bob], id: q2.id });
  assert.deepEqual(await all, [alice, bob]);

  const stats = sub.presenceStats();
  const s = await conn.next("presence_stats");
  conn.send({ type: "presence_stats", doc: "d", sessions: 2, users: 2, id: s.id });
  assert.deepEqual(await stats, { doc: "d", sessions: 2, users: 2 });

  const bad = sub.presence({ cursor: "the-end" });
  const b = await conn.next("presence");
  conn.send({ type: "error", code: "bad_cursor", message: "not a session ID", doc: "d", id: b.id });
  await assert.rejects(bad, { code: "bad_cursor", doc: "d" });

  client.disconnect();
  await assert.rejects(sub.presenceStats(), { code: "closed" });
});
