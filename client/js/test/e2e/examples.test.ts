// The examples docs/SDK.md shows (client/js/examples/), run against a real pushd with tokens.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../../examples/connect.js";
import { followDoc } from "../../examples/join.js";
import { publishEdit, watchForGiveUp } from "../../examples/errors.js";
import { whoIsHere } from "../../examples/presence.js";
import { connectAnyhow } from "../../examples/transports.js";
import { E2E } from "../support/e2e.js";
import { tokenFor } from "../support/jwt.js";
import { within } from "../support/wait.js";

const secret = "examples-secret";
const e2e = new E2E();
const logged: unknown[][] = [];
const realLog = console.log;

before(async () => {
  await e2e.start(41, ["--jwt-secret", secret]);
  console.log = (...args: unknown[]) => void logged.push(args);
});
after(async () => {
  console.log = realLog;
  await e2e.stop();
});

const getToken = (user: string) => async () => tokenFor(user, 3600, secret, { docs: ["*"] });

/** Resolves when fn returns true, checked after each console.log of the example. */
function logs(match: (args: unknown[]) => boolean): Promise<unknown[]> {
  return within(5000, "the example's log line", new Promise((resolve) => {
    const orig = console.log;
    console.log = (...args: unknown[]) => {
      orig(...args);
      if (match(args)) {
        console.log = orig;
        resolve(args);
      }
    };
  }));
}

test("connect.ts: connects with a token and logs pushes", async () => {
  const connected = logs((a) => a[0] === "pushd connected");
  const client = connect(e2e.node.url, getToken("ex-alice"));
  e2e.clients.push(client);
  await connected;
  const pushed = logs((a) => a[0] === "pushd user push");
  await e2e.backend.push("push.user.ex-alice", { text: "hi" }, { event: "greet" });
  assert.deepEqual(await pushed, ["pushd user push", "greet", { text: "hi" }]);
});

test("join.ts: follows a doc's edits", async () => {
  const client = connect(e2e.node.url, getToken("ex-bob"));
  e2e.clients.push(client);
  let refetches = 0;
  const edits: unknown[] = [];
  let edited!: () => void;
  const gotEdit = new Promise<void>((r) => (edited = r));
  const sub = followDoc(client, "ex-doc", () => refetches++, (e) => {
    edits.push(e);
    edited();
  });
  await sub.ready;
  await e2e.backend.push("push.doc.ex-doc", { line: 1 }, { event: "edit" });
  await within(5000, "an edit", gotEdit);
  assert.deepEqual(edits, [{ line: 1 }]);
  assert.equal(refetches, 0, "no refetch on the first join");
});

test("errors.ts: publishEdit joins when needed; watchForGiveUp tells when the client stops", async () => {
  const client = connect(e2e.node.url, getToken("ex-carol"));
  e2e.clients.push(client);
  const upstream = await e2e.backend.subscribe("push.up.doc.ex-doc-2");
  await publishEdit(client, "ex-doc-2", { line: 2 });
  const m = await upstream.next;
  assert.equal(m.headers?.get("Push-User"), "ex-carol");
  assert.deepEqual(JSON.parse(new TextDecoder().decode(m.data)), { line: 2 });

  const bad = connect(e2e.node.url, async () => tokenFor("ex-eve", 3600, "not-the-secret"));
  e2e.clients.push(bad);
  const shown = await within(10_000, "the give-up message", new Promise<string>((resolve) => watchForGiveUp(bad, resolve)));
  assert.match(shown, /^Disconnected from push updates \(4003 token_invalid: /);
});

test("presence.ts: the member list follows joins and leaves", async () => {
  const a = connect(e2e.node.url, getToken("ex-pr-a"));
  e2e.clients.push(a);
  const lists: string[][] = [];
  let changed!: () => void;
  let next = new Promise<void>((r) => (changed = r));
  await whoIsHere(a, "ex-room", (ms) => {
    lists.push(ms.map((m) => m.user).sort());
    changed();
  });
  assert.deepEqual(lists.at(-1), ["ex-pr-a"]);
  next = new Promise<void>((r) => (changed = r));
  const b = connect(e2e.node.url, getToken("ex-pr-b"));
  e2e.clients.push(b);
  const bSub = b.join("ex-room");
  await within(5000, "b's join event", next);
  assert.deepEqual(lists.at(-1), ["ex-pr-a", "ex-pr-b"]);
  next = new Promise<void>((r) => (changed = r));
  await bSub.leave();
  await within(5000, "b's leave event", next);
  assert.deepEqual(lists.at(-1), ["ex-pr-a"]);
});

test("transports.ts: forced onto the HTTP transports, the client connects with SSE (fetch in Node)", async () => {
  const connected = logs((a) => typeof a[0] === "string" && a[0].startsWith("pushd on node"));
  const client = connectAnyhow(getToken("ex-tr"), true, [e2e.node.url]);
  e2e.clients.push(client);
  assert.deepEqual(await connected, ["pushd on node 41 over sse"]);
});
