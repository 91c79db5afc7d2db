// The examples docs/SDK.md shows that need durable delivery (seqs, receipts), against the fake server.
import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import type { PushdClient, Push } from "@pushd/client";
import { resumable } from "../../examples/resume.js";
import { storeThenAck } from "../../examples/receipts.js";
import { FakeServer } from "../support/fake-server.js";
import { within } from "../support/wait.js";

let server: FakeServer;
const clients: PushdClient[] = [];
beforeEach(async () => void (server = await FakeServer.start()));
afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await server.close();
});

const getToken = async () => "header.e30.sig"; // no exp: never refreshed

test("resume.ts: cursors are saved, and sent again after a reload", async () => {
  const store = new Map<string, string>();
  const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) };
  const logSilently = console.log;
  console.log = () => {};
  try {
    const first = resumable(server.url, getToken, storage, "d1");
    clients.push(first.client);
    const conn = await server.nextConn();
    assert.equal((await conn.accept({ seq: "5" })).since, undefined);
    assert.equal((await conn.joined("d1", { seq: "40" })).since, undefined);
    await first.sub.ready;
    const pushed = new Promise((r) => first.sub.once("push", r));
    conn.push({ target: "doc", doc: "d1", seq: "41", data: 1 });
    await within(5000, "a push", pushed);
    assert.deepEqual(Object.fromEntries(store), { "pushd:user": "5", "pushd:doc:d1": "41" });
    first.client.disconnect();

    const second = resumable(server.url, getToken, storage, "d1"); // the page loads again
    clients.push(second.client);
    const again = await server.nextConn();
    assert.equal((await again.accept({ seq: "5", recovered: true })).since, "5");
    assert.equal((await again.joined("d1", { seq: "41", recovered: true })).since, "41");
    assert.deepEqual(await second.sub.ready, { doc: "d1", seq: "41", first: true, recovered: true, gap: false });
  } finally {
    console.log = logSilently;
  }
});

test("receipts.ts: the receipt goes out once the push is stored", async () => {
  let stored!: () => void;
  const storing = new Promise<void>((r) => (stored = r));
  const seen: Push[] = [];
  const client = storeThenAck(server.url, getToken, async (p) => {
    seen.push(p);
    await storing;
  });
  clients.push(client);
  const conn = await server.nextConn();
  await conn.accept({ seq: "1" });
  const handled = within(5000, "the push", new Promise<void>((r) => client.on("push", () => r())));
  conn.push({ target: "user", seq: "2", ack: true, data: "order #7" });
  await handled;
  assert.equal(seen.length, 1);
  // Frames from the client arrive in order: a receipt sent already would come before this one.
  client.publish("d", "e", null).catch(() => {});
  await conn.next("publish");
  stored();
  assert.deepEqual(await conn.next("ack"), { type: "ack", seq: "2" });
});
