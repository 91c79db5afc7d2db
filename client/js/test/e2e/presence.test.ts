// Presence and receipts by push_id against a real pushd on a real NATS server: who is in a doc
// (members, counts), join and leave events as typed subscription events, and the receipts of a
// broadcast and of a session push (no seq: acknowledged by their Push-Id) reaching the backend.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { PushdClient, type PresenceDiff } from "../../src/index.js";
import { E2E } from "../support/e2e.js";
import { nextEvent } from "../support/wait.js";

const e2e = new E2E();

before(() => e2e.start(41, ["--dev", "--presence-window", "50ms"]));
after(() => e2e.stop());

function client(user: string): PushdClient {
  const c = new PushdClient({ url: e2e.node.url, user, WebSocket, window: null });
  e2e.clients.push(c);
  c.connect();
  return c;
}

test("presence: members, counts, and join/leave events on the subscription", async () => {
  const alice = client("pr-alice");
  const sub = alice.join("pr-doc", { presence: true });
  await sub.ready;
  const bob = client("pr-bob");
  const bobHello = await bob.whenConnected();
  const joined = nextEvent(sub, "presence_join");
  const bobSub = bob.join("pr-doc");
  await bobSub.ready;
  const j = await joined;
  assert.deepEqual([j.user, j.sid, j.node], ["pr-bob", bobHello.sid, 41]);
  assert.match(j.joined_at, /^\d{4}-\d\d-\d\dT/);

  const members = await sub.members();
  assert.deepEqual(members.map((m) => m.user).sort(), ["pr-alice", "pr-bob"]);
  assert.deepEqual(await sub.presenceStats(), { doc: "pr-doc", sessions: 2, users: 2 });
  const page = await sub.presence({ limit: 1 });
  assert.equal(page.members.length, 1);
  assert.equal(page.sessions, 2);
  assert.equal(page.next, page.members[0]!.sid);

  const left = nextEvent(sub, "presence_leave");
  const diff = nextEvent(sub, "presence", (d: PresenceDiff) => d.events?.some((e) => e.event === "leave") === true);
  await bobSub.leave();
  assert.deepEqual(await left, { user: "pr-bob", sid: bobHello.sid, node: 41, reason: "left" });
  const d = await diff;
  assert.deepEqual([d.doc, d.sessions, d.users], ["pr-doc", 1, 1]);

  await assert.rejects(sub.presence({ cursor: "the-end" }), { code: "bad_cursor" });
});

test("receipts: a broadcast and a session push are acknowledged by push_id", async () => {
  const c = client("rc-erin");
  const hello = await c.whenConnected();
  const got = nextEvent(c, "push", (p) => p.id === "bc-1");
  const all = await e2e.backend.subscribe("receipts.bc");
  await e2e.backend.push("push.all", { news: 1 }, { id: "bc-1", receipt: "receipts.bc" });
  const p = await got;
  assert.equal(p.needsAck, true);
  assert.equal(p.seq, undefined);
  const r = JSON.parse(new TextDecoder().decode((await all.next).data));
  assert.deepEqual([r.id, r.sid, r.user, r.target], ["bc-1", hello.sid, "rc-erin", "all"]);

  const mine = await e2e.backend.subscribe("receipts.session");
  await e2e.backend.push(`push.session.${hello.node}.${hello.sid}`, "just you", { id: "s-1", receipt: "receipts.session" });
  const r2 = JSON.parse(new TextDecoder().decode((await mine.next).data));
  assert.deepEqual([r2.id, r2.sid, r2.target], ["s-1", hello.sid, "session"]);
});
