import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { FakeServer } from "../support/fake-server.js";
import { disconnectAll, newClient } from "../support/client.js";
import { nextEvent, record } from "../support/wait.js";
import { signJWT } from "../support/jwt.js";

let server: FakeServer;
beforeEach(async () => void (server = await FakeServer.start()));
afterEach(async () => {
  disconnectAll();
  await server.close();
});

test("the token travels in the first frame, never in the URL", async () => {
  const token = signJWT({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 3600 });
  const client = newClient(server.url, { user: undefined, getToken: async () => token } as never);
  const states = record(client, "state");
  client.connect();
  assert.equal(client.state, "connecting");
  const conn = await server.nextConn();
  assert.equal(conn.path, "/ws", "nothing but the path in the upgrade URL");
  const connect = await conn.next("connect");
  assert.equal(connect.token, token);
  assert.equal(connect.user, undefined);
  assert.equal(connect.since, undefined, "no cursor yet");
  assert.match(connect.id, /^c\d+$/);
  const hello = nextEvent(client, "hello");
  conn.send({ type: "hello", sid: "1794519372618698752", node: 3, user: "alice", ping_interval: 20000, ping_timeout: 30000, id: connect.id });
  const h = await hello;
  assert.deepEqual(
    { sid: h.sid, node: h.node, user: h.user, first: h.first, gap: h.gap, recovered: h.recovered },
    { sid: "1794519372618698752", node: 3, user: "alice", first: true, gap: false, recovered: undefined },
  );
  assert.equal(client.state, "connected");
  assert.equal(client.session?.sid, "1794519372618698752");
  assert.deepEqual(states.map((s) => s.state), ["connecting", "connected"]);
});

test("a dev client sends its user; whenConnected resolves on hello", async () => {
  const client = newClient(server.url, { user: "bob" });
  client.connect();
  const conn = await server.nextConn();
  const ready = client.whenConnected();
  const connect = await conn.accept();
  assert.equal(connect.user, "bob");
  assert.equal((await ready).user, "bob");
  assert.equal((await client.whenConnected()).sid, "1794519372618698752", "at once when connected");
});

test("pushes of every target reach the client's push listeners", async () => {
  const client = newClient(server.url);
  const pushes = record(client, "push");
  client.connect();
  const conn = await server.nextConn();
  await conn.accept();
  await client.whenConnected();
  conn.push({ target: "user", event: "greet", id: "m-1", data: { text: "hi" } });
  conn.push({ target: "all", event: "news", data: "everyone" });
  const last = nextEvent(client, "push", (p) => p.target === "session");
  conn.push({ target: "session", data: null });
  await last;
  assert.deepEqual(
    pushes.map((p) => [p.target, p.event, p.id, p.data, p.needsAck]),
    [
      ["user", "greet", "m-1", { text: "hi" }, false],
      ["all", "news", undefined, "everyone", false],
      ["session", "message", undefined, null, false],
    ],
  );
});

test("whenConnected rejects when the client stops instead", async () => {
  const client = newClient(server.url);
  client.connect();
  const ready = client.whenConnected();
  const conn = await server.nextConn();
  await conn.next("connect");
  conn.close(4004, "forbidden_origin: origin https://evil.example is not allowed");
  await assert.rejects(ready, (err: any) => err.code === "closed" && err.closeCode === 4004);
});

test("getToken failures are reported and retried with backoff", async () => {
  let calls = 0;
  const token = signJWT({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 3600 });
  const client = newClient(server.url, {
    user: undefined,
    getToken: async () => {
      if (++calls < 3) throw new Error("token service down");
      return token;
    },
  } as never);
  const errors = record(client, "error");
  client.connect();
  const conn = await server.nextConn();
  assert.equal((await conn.accept()).token, token);
  assert.equal(calls, 3);
  assert.deepEqual(errors.map((e) => e.code), ["token", "token"]);
});

test("a client needs getToken or a dev user", () => {
  assert.throws(() => newClient(server.url, { user: undefined } as never), /getToken/);
});
