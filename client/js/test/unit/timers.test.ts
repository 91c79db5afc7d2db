import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { FakeServer } from "../support/fake-server.js";
import { newClient, unhandled } from "../support/client.js";
import { activeTimers, within } from "../support/wait.js";
import { tokenFor } from "../support/jwt.js";

let server: FakeServer;
beforeEach(async () => void (server = await FakeServer.start()));
afterEach(async () => {
  await server.close();
});

test("disconnect() leaves no timer behind and nothing unhandled", async () => {
  const before = activeTimers();
  const client = newClient(server.url, { user: undefined, getToken: () => tokenFor("alice", 60) } as never);
  const sub = client.join("d1");
  client.connect();
  const conn = await server.nextConn();
  await conn.accept({ ping_interval: 30_000, ping_timeout: 40_000 });
  await conn.joined("d1");
  await sub.ready;
  const pub = client.publish("d1", "e", 1); // its timeout timer is running
  await conn.next("publish");
  assert.ok(activeTimers() >= before + 3, "ping, refresh and request timers run while connected");
  client.disconnect();
  await assert.rejects(pub, { code: "closed" });
  assert.equal(client.state, "disconnected");
  await conn.closed;
  assert.equal(activeTimers(), before);
  assert.deepEqual(unhandled, []);
});

test("a process that disconnects exits by itself", async () => {
  server.nextConn().then(async (c) => {
    await c.accept();
    await c.next("join");
  });
  const child = spawn(process.execPath, [fileURLToPath(new URL("../support/exit-child.js", import.meta.url)), server.url], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (b) => (out += b));
  const code = await within(5000, "child exit (a handle is keeping it alive)", new Promise((r) => child.on("exit", r))).catch((e) => {
    child.kill("SIGKILL");
    throw e;
  });
  assert.equal(code, 0);
  assert.equal(out.trim(), "disconnected; publish closed");
});
