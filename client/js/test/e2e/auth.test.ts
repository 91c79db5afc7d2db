// Tokens against a real pushd with --jwt-secret: the connect frame, refresh before exp,
// reconnect with a fresh token after 4001, stop after repeated 4003, join grants and join tokens.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { PushdClient, type ClientOptions } from "../../src/index.js";
import { E2E } from "../support/e2e.js";
import { nextEvent, record, within } from "../support/wait.js";
import { tokenFor } from "../support/jwt.js";

const secret = "e2e-secret";
const e2e = new E2E();

before(() => e2e.start(2, ["--jwt-secret", secret]));
after(() => e2e.stop());

function client(opts: Omit<ClientOptions, "url">): PushdClient {
  const c = new PushdClient({ url: e2e.node.url, WebSocket, window: null, backoff: { min: 50, max: 500 }, ...opts });
  e2e.clients.push(c);
  c.connect();
  return c;
}

test("a short-lived token is refreshed before it expires and the session lives on", async () => {
  const issued: number[] = [];
  let fourth!: () => void;
  const fourIssued = new Promise<void>((resolve) => (fourth = resolve));
  const c = client({
    getToken: () => {
      if (issued.push(Date.now()) === 4) fourth();
      return tokenFor("tok-alice", 2, secret);
    },
  });
  const disconnects = record(c, "disconnect");
  const hello = await c.whenConnected();
  // Every token lives at most 2 s and the node closes a session at exp (4001) unless refreshed:
  // four tokens in, the session is older than its first token.
  await within(10_000, "a fourth token", fourIssued);
  const got = nextEvent(c, "push");
  await e2e.backend.push("push.user.tok-alice", "still here");
  assert.equal((await got).data, "still here");
  assert.equal(c.session?.sid, hello.sid, "the same session");
  assert.deepEqual(disconnects, []);
  assert.ok(Date.now() - issued[0]! > 2000, "outlived the first token");
});

test("an expired token (4001) gets a fresh one and connects", async () => {
  let calls = 0;
  const c = client({ getToken: () => tokenFor("tok-bob", ++calls === 1 ? -10 : 3600, secret) });
  const first = await nextEvent(c, "disconnect");
  assert.equal(first.code, 4001);
  assert.equal(first.error, "token_expired");
  assert.ok(first.willReconnect);
  await c.whenConnected();
  assert.equal(calls, 2);
});

test("a token the node cannot verify (4003) stops after repeated failures", async () => {
  let calls = 0;
  const c = client({ getToken: () => (calls++, tokenFor("tok-eve", 3600, "wrong-secret")), maxAuthFailures: 3 });
  const stopped = await nextEvent(c, "state", (s) => s.state === "disconnected");
  assert.equal(stopped.code, 4003);
  assert.match(stopped.reason!, /^token_invalid: /);
  assert.equal(calls, 3);
});

test("joins need a grant in the token or a join token", async () => {
  const c = client({ getToken: () => tokenFor("tok-dan", 3600, secret, { docs: ["team-7/*"] }) });
  await c.whenConnected();
  await c.join("team-7/plan").ready;
  await assert.rejects(c.join("secret").ready, { code: "forbidden", doc: "secret" });
  const sub = c.join("secret-2", { token: () => tokenFor("tok-dan", 60, secret, { doc: "secret-2" }) });
  await sub.ready;
  const got = nextEvent(sub, "push");
  await e2e.backend.push("push.doc.secret-2", { ok: true });
  assert.deepEqual((await got).data, { ok: true });
});
