import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { FakeServer } from "../support/fake-server.js";
import { disconnectAll, newClient } from "../support/client.js";
import { nextEvent } from "../support/wait.js";
import { tokenFor } from "../support/jwt.js";
import { tokenExpiry } from "../../src/index.js";
import { refreshDelay } from "../../src/jwt.js";

let server: FakeServer;
beforeEach(async () => void (server = await FakeServer.start()));
afterEach(async () => {
  disconnectAll();
  await server.close();
});

test("the token is refreshed before exp, and again before the new one's exp", async () => {
  const tokens: string[] = [];
  const getToken = async () => {
    tokens.push(tokenFor("alice", 2));
    return tokens.at(-1)!;
  };
  const client = newClient(server.url, { user: undefined, getToken } as never);
  client.connect();
  const conn = await server.nextConn();
  let helloAt = Date.now();
  let current = (await conn.accept()).token as string;
  for (let round = 0; round < 2; round++) {
    const want = refreshDelay(tokenExpiry(current)! * 1000, helloAt, 60_000);
    const r = await conn.next("refresh", 5000);
    const waited = Date.now() - helloAt;
    assert.ok(waited >= want - 25 && waited <= want + 250, `round ${round}: refresh after ${waited}ms, want ${want}ms`);
    assert.equal(r.token, tokens.at(-1), "a new token from getToken");
    assert.notEqual(r.token, current);
    helloAt = Date.now();
    current = r.token as string;
    conn.send({ type: "refreshed", exp: tokenExpiry(current), id: r.id });
  }
  assert.equal(client.state, "connected");
});

test("a refused refresh is reported and tried again while the token lasts", async () => {
  const client = newClient(server.url, { user: undefined, getToken: async () => tokenFor("alice", 3) } as never);
  client.connect();
  const conn = await server.nextConn();
  await conn.accept();
  const error = nextEvent(client, "error");
  const r = await conn.next("refresh", 5000);
  conn.send({ type: "error", code: "token_invalid", message: "refresh: bad signature", id: r.id });
  assert.equal((await error).code, "token_invalid");
  const again = await conn.next("refresh", 5000);
  assert.notEqual(again.id, r.id);
});

test("dev clients (no token) never refresh", async () => {
  const client = newClient(server.url);
  client.connect();
  const conn = await server.nextConn();
  await conn.accept();
  await client.whenConnected();
  assert.equal((client as any).refreshTimer, undefined);
});
