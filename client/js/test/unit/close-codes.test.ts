import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { FakeServer } from "../support/fake-server.js";
import { disconnectAll, fastBackoff, newClient } from "../support/client.js";
import { activeTimers, nextEvent } from "../support/wait.js";
import { signJWT } from "../support/jwt.js";

let a: FakeServer;
let b: FakeServer;
beforeEach(async () => {
  a = await FakeServer.start();
  b = await FakeServer.start();
});
afterEach(async () => {
  disconnectAll();
  await a.close();
  await b.close();
});

const token = () => signJWT({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 3600 });

test("1012 (drain) reconnects soon, to the next URL", async () => {
  const client = newClient([a.url, b.url]);
  client.connect();
  const first = await a.nextConn();
  await first.accept();
  await client.whenConnected();
  const gone = nextEvent(client, "disconnect");
  first.close(1012, "draining: node is draining (node 3; reconnect to another node)");
  const d = await gone;
  assert.equal(d.code, 1012);
  assert.equal(d.error, "draining");
  assert.ok(d.willReconnect);
  assert.ok(d.delay! >= 0 && d.delay! <= fastBackoff.restart, `delay ${d.delay} within the restart jitter`);
  const second = await b.nextConn();
  await second.accept({ node: 4 });
  assert.equal((await client.whenConnected()).node, 4);
  assert.equal(client.session?.url, b.url);
  second.close(1012, "draining: node is draining (node 4; reconnect to another node)");
  await (await a.nextConn()).accept(); // elsewhere again: back to the first URL
  assert.equal((await client.whenConnected()).url, a.url);
});

test("a url function is called with the attempt number", async () => {
  const attempts: number[] = [];
  const client = newClient(async (attempt) => (attempts.push(attempt), attempt % 2 ? b.url : a.url));
  client.connect();
  const first = await a.nextConn();
  await first.accept();
  await client.whenConnected();
  first.close(1012);
  await (await b.nextConn()).accept();
  await client.whenConnected();
  assert.deepEqual(attempts, [0, 1]);
});

for (const code of [1013, 4009, 4029]) {
  test(`${code} backs off longer`, async () => {
    const client = newClient(a.url);
    client.connect();
    const conn = await a.nextConn();
    await conn.next("connect");
    const gone = nextEvent(client, "disconnect");
    conn.close(code, "over_capacity: try later");
    const d = await gone;
    const floor = (8 * fastBackoff.min) / 2;
    assert.ok(d.willReconnect && d.delay! >= floor, `${code}: delay ${d.delay} below the slow floor ${floor}`);
    await (await a.nextConn()).accept();
    await client.whenConnected();
  });
}

for (const code of [4001, 4003]) {
  test(`${code} gets a new token, then stops after repeated auth failures`, async () => {
    let calls = 0;
    const client = newClient(a.url, { user: undefined, getToken: async () => (calls++, token()), maxAuthFailures: 3 } as never);
    client.connect();
    for (let i = 1; i <= 2; i++) {
      const conn = await a.nextConn();
      await conn.next("connect");
      assert.equal(calls, i, "a fresh token for every attempt");
      const gone = nextEvent(client, "disconnect");
      conn.close(code, "token_invalid: signature is invalid");
      assert.ok((await gone).willReconnect, `failure ${i} retries`);
    }
    const conn = await a.nextConn();
    await conn.next("connect");
    const stopped = nextEvent(client, "state", (s) => s.state === "disconnected");
    const error = nextEvent(client, "error");
    conn.close(code, "token_invalid: signature is invalid");
    const s = await stopped;
    assert.equal(s.code, code);
    assert.equal((await error).code, "token_invalid");
    assert.equal(calls, 3);
    await conn.closed; // the server side's own close timer is gone too
    assert.equal(activeTimers(), 0, "no retry scheduled");
  });
}

test("an auth failure between successes does not count towards the limit", async () => {
  const client = newClient(a.url, { user: undefined, getToken: async () => token(), maxAuthFailures: 2 } as never);
  client.connect();
  for (let i = 0; i < 3; i++) {
    const conn = await a.nextConn();
    await conn.accept();
    await client.whenConnected();
    const gone = nextEvent(client, "disconnect");
    conn.close(4001, "token_expired: token is expired");
    assert.ok((await gone).willReconnect, `round ${i}`);
  }
});

test("a dev user refused with 4003 stops at once (no token could change it)", async () => {
  const client = newClient(a.url, { user: "bad user" });
  client.connect();
  const conn = await a.nextConn();
  await conn.next("connect");
  const stopped = nextEvent(client, "state", (s) => s.state === "disconnected");
  conn.close(4003, "invalid_user: user id: pushd: invalid id");
  assert.equal((await stopped).code, 4003);
});

for (const code of [4004, 4010]) {
  test(`${code} stays disconnected`, async () => {
    const client = newClient(a.url);
    client.connect();
    const conn = await a.nextConn();
    await conn.accept();
    await client.whenConnected();
    const gone = nextEvent(client, "disconnect");
    const stopped = nextEvent(client, "state", (s) => s.state === "disconnected");
    conn.close(code, code === 4010 ? "kicked: by an admin" : "forbidden_origin: no");
    const d = await gone;
    assert.equal(d.willReconnect, false);
    assert.equal(d.delay, undefined);
    assert.equal((await stopped).reason, code === 4010 ? "kicked: by an admin" : "forbidden_origin: no");
    assert.equal(client.state, "disconnected");
    await conn.closed;
    assert.equal(activeTimers(), 0, "no retry scheduled");
  });
}

for (const code of [1000, 1006, 4000, 4002, 4008]) {
  test(`${code} reconnects with exponential backoff`, async () => {
    const client = newClient(a.url, { random: () => 0.999 });
    client.connect();
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const conn = await a.nextConn();
      await conn.next("connect");
      const gone = nextEvent(client, "disconnect");
      if (code === 1006) conn.ws.terminate();
      else conn.close(code, "x");
      const d = await gone;
      assert.equal(d.code, code);
      assert.ok(d.willReconnect);
      delays.push(Math.round(d.delay!));
    }
    assert.deepEqual(delays, [20, 40, 80], "doubling from min with random()≈1");
    await (await a.nextConn()).accept();
    await client.whenConnected();
  });
}

test("a connection that fails before opening is retried (nothing listens)", async () => {
  const port = new URL(a.url).port;
  await a.close();
  const client = newClient([`ws://127.0.0.1:${port}/ws`, b.url]);
  client.connect();
  const d = await nextEvent(client, "disconnect");
  assert.equal(d.code, 1006);
  await (await b.nextConn()).accept();
  await client.whenConnected();
  a = await FakeServer.start(); // for afterEach
});
