import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { FakeServer } from "../support/fake-server.js";
import { disconnectAll, newClient } from "../support/client.js";
import { activeTimers, nextEvent } from "../support/wait.js";

let server: FakeServer;
beforeEach(async () => void (server = await FakeServer.start()));
afterEach(async () => {
  disconnectAll();
  await server.close();
});

test("pings every ping_interval, taking the interval from the latest pong", async () => {
  const client = newClient(server.url);
  client.connect();
  const conn = await server.nextConn();
  conn.autoPong = false;
  await conn.accept({ ping_interval: 60, ping_timeout: 5000 });
  const t0 = performance.now();
  await conn.next("ping");
  const t1 = performance.now();
  assert.ok(t1 - t0 >= 55, `first ping after ${t1 - t0}ms, want ~60`);
  conn.send({ type: "pong", ping_interval: 250, ping_timeout: 5000 });
  await conn.next("ping"); // scheduled before the pong: still 60 ms
  const t2 = performance.now();
  conn.send({ type: "pong", ping_interval: 250, ping_timeout: 5000 });
  await conn.next("ping");
  const t3 = performance.now();
  assert.ok(t3 - t2 >= 240, `ping ${t3 - t2}ms after the previous, want the pong's 250`);
  assert.deepEqual(conn.unread, []);
});

test("a silent server is declared dead within the grace after a ping, and the client reconnects", async () => {
  const client = newClient(server.url);
  client.connect();
  const conn = await server.nextConn();
  conn.autoPong = false; // the server stops answering
  await conn.accept({ ping_interval: 50, ping_timeout: 150 });
  await client.whenConnected();
  const gone = nextEvent(client, "disconnect");
  await conn.next("ping");
  const t0 = performance.now();
  const d = await gone;
  const waited = performance.now() - t0;
  assert.equal(d.code, 1006);
  assert.match(d.reason, /^heartbeat_timeout: no frame from the server within 100ms/);
  assert.ok(waited >= 90 && waited < 1000, `gave up ${waited}ms after the ping, want ~100`);
  assert.ok(d.willReconnect);
  assert.equal((await conn.closed).code, 1000, "the client closed the dead socket");
  await (await server.nextConn()).accept();
  await client.whenConnected();
});

test("any frame counts as a sign of life", async () => {
  const client = newClient(server.url);
  const disconnects: unknown[] = [];
  client.on("disconnect", (d) => void disconnects.push(d));
  client.connect();
  const conn = await server.nextConn();
  conn.autoPong = false;
  await conn.accept({ ping_interval: 40, ping_timeout: 120 });
  for (let i = 0; i < 4; i++) {
    await conn.next("ping");
    conn.push({ target: "user", data: i }); // not a pong
  }
  assert.equal(client.state, "connected");
  assert.deepEqual(disconnects, []);
});

test("no hello within connectTimeout: the attempt is abandoned and retried", async () => {
  const client = newClient(server.url, { connectTimeout: 100 });
  client.connect();
  const conn = await server.nextConn();
  await conn.next("connect"); // and no hello
  const d = await nextEvent(client, "disconnect");
  assert.match(d.reason, /^connect_timeout/);
  await (await server.nextConn()).accept();
  await client.whenConnected();
});

test("a hello without a usable ping_interval schedules no pings (no busy loop)", async () => {
  const client = newClient(server.url);
  client.connect();
  const conn = await server.nextConn();
  await conn.accept({ ping_interval: 0, ping_timeout: "soon" });
  await client.whenConnected();
  assert.equal(activeTimers(), 0);
  assert.equal(client.state, "connected");
});
