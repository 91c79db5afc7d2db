// The SDK over the HTTP transports (SSE read with fetch, and long-polling) against real pushd
// nodes with durable delivery on a real JetStream NATS server: every kind of push, the frames
// that go up in POSTs (join, publish, leave, ack, refresh), no pings (the stream or the poll is
// the heartbeat), resume without gap after kill -9 and after a drain, a stream or poll cut on the
// way continued in the same session, and a session taken over by another reader (4011).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { PushdClient, tokenExpiry, type ClientOptions, type Push, type TransportName } from "../../src/index.js";
import { E2E } from "../support/e2e.js";
import { Proxy } from "../support/proxy.js";
import { tokenFor } from "../support/jwt.js";
import { nextEvent, record, within } from "../support/wait.js";

const secret = "http-secret";
// Short heartbeats, so that a session that lived a few intervals without pings proves the point.
const nodeArgs = ["--dev", "--jwt-secret", secret, "--ping-interval", "400ms", "--ping-grace", "400ms"];
const e2e = new E2E();

before(() => e2e.start(51, nodeArgs, true));
after(() => e2e.stop());

/** What the client sent: each request's method, path, query and body. */
type Sent = { method: string; path: string; query: string; body: string }[];

function client(transport: TransportName, opts: Partial<ClientOptions> & Pick<ClientOptions, "url">, sent: Sent = []): PushdClient {
  const c = new PushdClient({
    user: "x",
    transports: [transport],
    window: null,
    backoff: { min: 50, max: 300, restart: 100 },
    fetch: (input, init) => {
      const u = new URL(String(input));
      sent.push({ method: init?.method ?? "GET", path: u.pathname, query: u.search, body: typeof init?.body === "string" ? init.body : "" });
      return fetch(input, init);
    },
    ...opts,
  });
  e2e.clients.push(c);
  c.connect();
  return c;
}

/** Collects the data of user and doc pushes; count(n) resolves once n arrived. */
class Collector {
  readonly data: unknown[] = [];
  private waiters: [number, () => void][] = [];
  add(p: Push): void {
    if (p.target !== "user" && p.target !== "doc") return;
    this.data.push(p.data);
    for (const [n, resolve] of this.waiters) if (this.data.length >= n) resolve();
  }
  count(n: number): Promise<void> {
    if (this.data.length >= n) return Promise.resolve();
    return within(10_000, `${n} pushes (have ${JSON.stringify(this.data)})`, new Promise((resolve) => void this.waiters.push([n, resolve])));
  }
}

for (const transport of ["sse", "poll"] as const) {
  test(`${transport}: pushes of every kind; join, publish, ack and leave go up in POSTs; no pings`, async () => {
    const sent: Sent = [];
    const user = `${transport}-alice`;
    const c = client(transport, { url: e2e.node.url, user, ack: "manual" }, sent);
    const hello = await c.whenConnected();
    assert.deepEqual([hello.transport, hello.user, hello.node], [transport, user, 51]);
    assert.ok(hello.seq !== undefined, "durable delivery: hello has the user's position");
    const connect = sent.find((s) => s.path === "/http/connect")!;
    assert.deepEqual(JSON.parse(connect.body), { transport, type: "connect", id: "c1", user });

    const pushes = record(c, "push");
    const sub = c.join(`${transport}/doc`);
    assert.equal((await sub.ready).first, true);
    const receipts = await e2e.backend.subscribe(`receipts.${transport}`);
    await e2e.backend.push(`push.user.${user}`, { n: 1 }, { event: "greet", id: "m-1", receipt: `receipts.${transport}` });
    await e2e.backend.push(`push.doc.${transport}/doc`, [1, 2], { event: "edit" });
    await e2e.backend.push("push.all", "everyone", { event: "news" });
    await e2e.backend.push(`push.session.${hello.node}.${hello.sid}`, null, { event: "just-you" });
    await within(5000, "four pushes", (async () => {
      while (pushes.length < 4) await nextEvent(c, "push");
    })());
    const byTarget = Object.fromEntries(pushes.map((p) => [p.target, p]));
    assert.deepEqual([byTarget["user"]!.event, byTarget["user"]!.id, byTarget["user"]!.data, byTarget["user"]!.needsAck], ["greet", "m-1", { n: 1 }, true]);
    assert.deepEqual([byTarget["doc"]!.doc, byTarget["doc"]!.data], [`${transport}/doc`, [1, 2]]);
    assert.deepEqual([byTarget["all"]!.data, byTarget["session"]!.event], ["everyone", "just-you"]);
    assert.ok(byTarget["user"]!.seq && byTarget["doc"]!.seq, "user and doc pushes carry their seq");

    // The receipt goes up in a POST and reaches the backend.
    byTarget["user"]!.ack();
    const r = JSON.parse(new TextDecoder().decode((await receipts.next).data));
    assert.deepEqual([r.seq, r.sid, r.id], [byTarget["user"]!.seq, hello.sid, "m-1"]);
    assert.equal(c.cursor, byTarget["user"]!.seq, "the cursor passed the acknowledged push");

    // publish: its reply comes back in the POST's answer; a refusal is the server's error.
    const upstream = await e2e.backend.subscribe(`push.up.doc.${transport}/doc`);
    await c.publish(`${transport}/doc`, "cursor", { x: 1 });
    const m = await upstream.next;
    assert.deepEqual([m.headers?.get("Push-User"), m.headers?.get("Push-Session")], [user, hello.sid]);
    await assert.rejects(c.publish("not-joined", "e", 1), { code: "not_joined", doc: "not-joined" });

    // Three heartbeat intervals (400 ms) with nothing to say: the session lives on, no ping sent.
    const before = pushes.length;
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(c.session?.sid, hello.sid);
    await sub.leave();
    assert.deepEqual(await e2e.backend.push(`push.doc.${transport}/doc`, "after leave", { want: 0 }), []);
    const up = sent.filter((s) => s.path === "/http/send").map((s) => JSON.parse(s.body).type);
    assert.deepEqual(up, ["join", "ack", "publish", "publish", "leave"], "every upstream frame went in a POST, and no ping");
    assert.equal(pushes.length, before);
  });

  const read = transport === "sse" ? "/http/sse" : "/http/poll";

  test(`${transport}: a read cut on the way continues in the same session: nothing lost, nothing twice`, async () => {
    const proxy = await Proxy.start(e2e.node.http);
    try {
      const user = `${transport}-cut`;
      const c = client(transport, { url: proxy.ws, user });
      const hello = await c.whenConnected();
      const disconnects = record(c, "disconnect");
      await c.join(`${transport}/cut`).ready;
      const got = new Collector();
      c.on("push", (p) => got.add(p));
      await e2e.backend.push(`push.user.${user}`, 1);
      await got.count(1);
      await proxy.opened(read);
      assert.equal(proxy.cut(read), 1);
      await e2e.backend.push(`push.user.${user}`, 2);
      await e2e.backend.push(`push.doc.${transport}/cut`, 3);
      await got.count(3);
      await e2e.backend.push(`push.user.${user}`, 4);
      await got.count(4);
      assert.deepEqual(got.data, [1, 2, 3, 4]);
      assert.equal(c.session?.sid, hello.sid, "the same session");
      assert.deepEqual(disconnects, []);
      if (transport === "sse") {
        const streams = proxy.seen.filter((s) => s.startsWith("GET /http/sse")).map((s) => new URL(s.split(" ")[1]!, proxy.url).searchParams.get("last_event_id"));
        assert.equal(streams.length, 2);
        assert.equal(streams[0], null);
        assert.match(streams[1]!, /^\d+-\d+$/, "the stream continued after its last event");
      }
    } finally {
      await proxy.close();
    }
  });

  test(`${transport}: a session another reader takes over (4011) stops the client, which does not fight for it`, async () => {
    const proxy = await Proxy.start(e2e.node.http);
    const ctl = new AbortController();
    try {
      const sent: Sent = [];
      const c = client(transport, { url: proxy.ws, user: `${transport}-taken` }, sent);
      await c.whenConnected();
      // The stream, or the poll held after hello's (whose cursor the takeover repeats).
      const held = await proxy.opened(read, (u) => transport === "sse" || !u.endsWith("cursor=0"));
      const stopped = nextEvent(c, "state", (s) => s.state === "disconnected");
      // Someone with the session's sid and secret reads it.
      let other = await fetch(e2e.node.http + held, { signal: ctl.signal });
      // Polls are held at most ping_interval (400 ms here): the client's next poll may have
      // replaced this one first (409 replaced); the next read takes the session over.
      for (let i = 0; other.status === 409 && i < 3; i++) other = await fetch(e2e.node.http + held, { signal: ctl.signal });
      if (other.status !== 200) assert.fail(`the other reader got ${other.status}: ${await other.text()}`);
      const s = await stopped;
      assert.equal(s.code, 4011);
      assert.match(s.reason!, /^replaced: /);
      assert.equal(sent.filter((r) => r.path === "/http/close").length, 0, "the session is the other reader's now: not closed");
    } finally {
      ctl.abort();
      await proxy.close();
    }
  });
}

test("sse and poll at once: a short-lived token is refreshed with a POST and the session lives on", async () => {
  await Promise.all(
    (["sse", "poll"] as const).map(async (transport) => {
      const sent: Sent = [];
      let tokens = 0;
      const issued: string[] = [];
      let third!: () => void;
      const thirdIssued = new Promise<void>((resolve) => (third = resolve));
      const user = `${transport}-tok`;
      const c = client(transport, {
        url: e2e.node.url,
        user: undefined,
        getToken: () => {
          if (++tokens === 3) third();
          const t = tokenFor(user, 2, secret);
          issued.push(t);
          return t;
        },
      }, sent);
      const hello = await c.whenConnected();
      const disconnects = record(c, "disconnect");
      const firstExp = tokenExpiry(JSON.parse(sent[0]!.body).token)! * 1000;
      // Each token lives at most 2 s and the node closes the session at exp (4001) unless refreshed.
      await within(10_000, "a third token", thirdIssued);
      // Past the first token's exp, and the node's sweep (100 ms) that would close the session.
      await new Promise((r) => setTimeout(r, Math.max(0, firstExp + 300 - Date.now())));
      const got = nextEvent(c, "push");
      await e2e.backend.push(`push.user.${user}`, "still here");
      assert.equal((await got).data, "still here");
      assert.equal(c.session?.sid, hello.sid, "the same session");
      assert.deepEqual(disconnects, []);
      assert.equal(sent.filter((s) => s.path === "/http/send" && JSON.parse(s.body).type === "refresh").length, 2);
      const carries = (s: Sent[number]) => issued.some((t) => s.body.includes(t));
      assert.ok(!sent.some((s) => issued.some((t) => s.query.includes(t))), "no token in a URL");
      assert.ok(
        sent.filter(carries).every((s) => s.path === "/http/connect" || (s.path === "/http/send" && JSON.parse(s.body).type === "refresh")),
        "the token went in the connect body and refresh frames only",
      );
    }),
  );
});
