// The HTTP transports (SSE and long-polling) against a scripted HTTP server, for what a real node
// cannot be made to do on demand: refusals of every kind, a POST's answer held back while the
// stream goes on, silence, an EventSource's errors, the page going away.
import { afterEach, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { FakeHttp, hello, type Req } from "../support/fake-http.js";
import { disconnectAll, newClient } from "../support/client.js";
import { activeTimers, nextEvent, record, within } from "../support/wait.js";
import type { ClientOptions, EventSourceLike, PushdClient } from "../../src/index.js";
import { signJWT } from "../support/jwt.js";

let server: FakeHttp;
beforeEach(async () => void (server = await FakeHttp.start()));
afterEach(async () => {
  disconnectAll();
  await server.close();
});

const token = () => signJWT({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 3600 });

function httpClient(transport: "sse" | "poll", opts: Partial<ClientOptions> = {}): PushdClient {
  const c = newClient(server.ws, { transports: [transport], ...opts });
  c.connect();
  return c;
}

/** An SSE client whose stream said hello; returns the stream's request. */
async function sseConnected(opts: Partial<ClientOptions> = {}, h = hello()): Promise<{ client: PushdClient; stream: Req }> {
  const client = httpClient("sse", opts);
  const { read } = await server.accept("/http/sse");
  read.stream();
  read.event(h, "1-5");
  await client.whenConnected();
  return { client, stream: read };
}

test("the connect frame is POST /http/connect's body; frames travel on the stream and in POSTs", async () => {
  const client = httpClient("sse", { user: undefined, getToken: async () => "the.token.x" } as never);
  const connect = await server.next("/http/connect");
  assert.equal(connect.req.url, "/http/connect", "no token or user in the URL");
  assert.deepEqual(connect.json, { transport: "sse", type: "connect", id: "c1", token: "the.token.x" });
  assert.equal(connect.req.headers["content-type"], "text/plain;charset=UTF-8", "a simple request: no CORS preflight");
  connect.reply(200, { sid: "1794519372618698752", secret: "s3/cret", node: 3, user: "alice", transport: "sse" });
  const stream = await server.next("/http/sse");
  assert.deepEqual([stream.query.get("sid"), stream.query.get("secret"), stream.query.get("last_event_id")], ["1794519372618698752", "s3/cret", null]);
  stream.stream();
  stream.event(hello(), "1-5");
  const h = await client.whenConnected();
  assert.deepEqual([h.transport, h.sid], ["sse", "1794519372618698752"]);

  const published = client.publish("d1", "e", { x: 1 });
  const send = await server.next("/http/send");
  assert.equal(send.req.url, "/http/send", "the secret stays out of the POST's URL");
  assert.deepEqual([send.req.headers["push-session"], send.req.headers["push-secret"]], ["1794519372618698752", "s3/cret"]);
  assert.deepEqual(send.json, { type: "publish", doc: "d1", event: "e", data: { x: 1 }, id: send.json["id"] });
  send.reply(200, [{ type: "published", doc: "d1", id: send.json["id"] }]);
  await published;
});

const refusals: [number, unknown, number, string][] = [
  [401, { error: "token_expired", message: "token is expired" }, 4001, "token_expired"],
  [401, { error: "token_invalid", message: "bad signature" }, 4003, "token_invalid"],
  [403, { error: "forbidden_origin", message: "origin https://x is not allowed" }, 4004, "forbidden_origin"],
  [429, { error: "too_many_sessions", message: "too many sessions" }, 4009, "too_many_sessions"],
  [429, { error: "rate_limited", message: "too many handshakes" }, 4029, "rate_limited"],
  [503, { error: "draining", message: "node is draining (node 3; reconnect to another node)" }, 1012, "draining"],
  [503, { error: "over_capacity", message: "node is at its connection limit" }, 1013, "over_capacity"],
  [403, "<h1>Forbidden by policy</h1>", 1006, "http_error"],
];
for (const [status, body, code, error] of refusals) {
  test(`a connect refused with ${status} ${error} closes like a WebSocket handshake would: ${code}`, async () => {
    const client = httpClient("poll", { user: undefined, getToken: async () => token() } as never);
    const gone = nextEvent(client, "disconnect");
    const connect = await server.next("/http/connect");
    if (typeof body === "string") connect.res.writeHead(status, { "Content-Type": "text/html" }).end(body);
    else connect.reply(status, body);
    const d = await gone;
    assert.deepEqual([d.code, d.error, d.transport], [code, error, "poll"]);
    if (typeof body !== "string") assert.equal(d.reason, `${error}: ${(body as { message: string }).message}`);
    else assert.equal(d.reason, "http_error: HTTP 403 from /http/connect");
  });
}

test("a connect refusal's avoid_node becomes the close reason's drain hint, as on a WebSocket", async () => {
  const client = httpClient("poll");
  const gone = nextEvent(client, "disconnect");
  (await server.next("/http/connect")).reply(503, { error: "draining", message: "node 3; draining, reconnect elsewhere", avoid_node: 3 });
  const d = await gone;
  assert.deepEqual([d.code, d.error, d.reason], [1012, "draining", "draining: node 3; draining, reconnect elsewhere"]);
  const again = nextEvent(client, "disconnect");
  (await server.next("/http/connect")).reply(503, { error: "not_leased", message: "nothing vouches for this node's number", avoid_node: 12 });
  assert.equal((await again).reason, "not_leased: node 12; nothing vouches for this node's number");
});

test("a frame HTTP refuses fails its request with the server's code; an unknown session ends the connection", async () => {
  const { client } = await sseConnected();
  const limited = client.publish("d1", "e", 1);
  (await server.next("/http/send")).reply(429, { error: "rate_limited", message: "too many frames: slow down" });
  await assert.rejects(limited, { code: "rate_limited", message: "too many frames: slow down", doc: "d1" });
  const unavailable = client.publish("d1", "e", 2);
  (await server.next("/http/send")).reply(503, { error: "unavailable", message: "the node did not answer" });
  await assert.rejects(unavailable, { code: "unavailable" });

  const lost = client.publish("d1", "e", 3);
  const gone = nextEvent(client, "disconnect");
  (await server.next("/http/send")).reply(404, { error: "session_not_found", message: "no session with this sid and secret" });
  await assert.rejects(lost, { code: "disconnected" });
  const d = await gone;
  assert.deepEqual([d.code, d.error, d.willReconnect], [1006, "session_not_found", true]);
  await server.next("/http/connect"); // a new session
  assert.deepEqual(server.all.filter((r) => r.path === "/http/close"), [], "nothing to close: the session is unknown");
});

test("upstream frames go one POST at a time, in the order they were sent", async () => {
  let inFlight = 0;
  let most = 0;
  const { client } = await sseConnected({
    fetch: async (input, init) => {
      const send = String(input).endsWith("/http/send");
      if (send) most = Math.max(most, ++inFlight);
      try {
        return await fetch(input, init);
      } finally {
        if (send) inFlight--;
      }
    },
  });
  const sub = client.join("d1");
  const published = [1, 2, 3].map((n) => client.publish("d1", "e", n));
  const order: unknown[] = [];
  for (let i = 0; i < 4; i++) {
    const send = await server.next("/http/send");
    const f = send.json;
    order.push(f["type"] === "join" ? "join" : f["data"]);
    send.reply(200, [f["type"] === "join" ? { type: "joined", doc: "d1", id: f["id"] } : { type: "published", doc: "d1", id: f["id"] }]);
  }
  await sub.ready;
  await Promise.all(published);
  assert.deepEqual(order, ["join", 1, 2, 3]);
  assert.equal(most, 1);
});

test("a join's replayed pushes that come down the stream before its POST's answer wait for it", async () => {
  const { client, stream } = await sseConnected();
  const sub = client.join("d1", { since: "10" });
  const events: string[] = [];
  sub.on("subscribed", (e) => void events.push(`subscribed ${e.seq} recovered ${e.recovered}`));
  sub.on("push", (p) => void events.push(`push ${p.seq}`));
  const join = await server.next("/http/send");
  assert.deepEqual([join.json["type"], join.json["since"]], ["join", "10"]);
  // The node replays 11 and 12 on the stream (and 9, which the client already has) before the
  // POST's answer comes back.
  stream.event({ type: "push", target: "doc", doc: "d1", seq: "9", event: "e", data: 9 }, "2-5");
  stream.event({ type: "push", target: "doc", doc: "d1", seq: "11", event: "e", data: 11 }, "3-5");
  stream.event({ type: "push", target: "doc", doc: "d1", seq: "12", event: "e", data: 12 }, "4-5");
  const marker = nextEvent(client, "push", (p) => p.target === "user");
  stream.event({ type: "push", target: "user", seq: "6", event: "e", data: "user" }, "5-6");
  await marker; // the doc pushes before it were read
  assert.deepEqual(events, []);
  const last = nextEvent(sub, "push", (p) => p.seq === "12");
  join.reply(200, [{ type: "joined", doc: "d1", id: join.json["id"], seq: "12", recovered: true }]);
  await last;
  assert.deepEqual(events, ["subscribed 12 recovered true", "push 11", "push 12"]);
  assert.equal(sub.cursor, "12");
});

test("sse: keep-alives keep the connection, no ping is sent; silence for ping_timeout ends it", async () => {
  const { client, stream } = await sseConnected({}, hello({ ping_interval: 80, ping_timeout: 250 }));
  const disconnects = record(client, "disconnect");
  // The node's keep-alives every ping_interval, for six intervals.
  let n = 0;
  await new Promise<void>((resolve) => {
    const t = setInterval(() => {
      stream.write(": keepalive\n\n");
      if (++n === 6) {
        clearInterval(t);
        resolve();
      }
    }, 60);
  });
  assert.deepEqual(disconnects, []);
  assert.deepEqual(server.all.filter((r) => r.path === "/http/send"), [], "no ping in a POST");
  const t0 = performance.now();
  const d = await nextEvent(client, "disconnect");
  const waited = performance.now() - t0;
  assert.equal(d.code, 1006);
  assert.match(d.reason, /^heartbeat_timeout: nothing from the server for \d+ms \(ping_timeout 250ms\)/);
  assert.ok(waited >= 150 && waited < 1000, `gave up after ${waited}ms`);
  await stream.closed; // the client let go of the stream
  const close = await server.next("/http/close");
  assert.deepEqual([close.req.method, close.query.get("sid"), close.query.get("secret")], ["POST", "1794519372618698752", "s3cret"]);
});

test("poll: a poll held past ping_timeout ends the connection", async () => {
  const client = httpClient("poll");
  const { read } = await server.accept("/http/poll");
  assert.equal(read.query.get("cursor"), "0");
  read.reply(200, { cursor: "1-5", frames: [hello({ ping_interval: 80, ping_timeout: 200 })] });
  await client.whenConnected();
  const held = await server.next("/http/poll");
  assert.equal(held.query.get("cursor"), "1-5", "the answer's cursor acknowledges it");
  const d = await nextEvent(client, "disconnect");
  assert.match(d.reason, /^heartbeat_timeout/);
  await held.closed;
});

/** A browser EventSource stand-in the test drives: open, messages, errors. */
class FakeEventSource implements EventSourceLike {
  static all: FakeEventSource[] = [];
  private static waiting: ((es: FakeEventSource) => void) | undefined;
  /** The EventSource the client makes next (or made already and the test has not taken). */
  static next(i: number): Promise<FakeEventSource> {
    const es = FakeEventSource.all[i];
    if (es) return Promise.resolve(es);
    return within(5000, "an EventSource", new Promise((resolve) => (FakeEventSource.waiting = resolve)));
  }
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string) {
    FakeEventSource.all.push(this);
    FakeEventSource.waiting?.(this);
    FakeEventSource.waiting = undefined;
  }
  close() {
    this.readyState = 2;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  message(f: unknown) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  error(readyState: 0 | 2) {
    this.readyState = readyState;
    this.onerror?.({});
  }
}

async function esConnected(h = hello()): Promise<{ client: PushdClient; es: FakeEventSource }> {
  FakeEventSource.all = [];
  const client = httpClient("sse", { EventSource: FakeEventSource });
  await server.next("/http/connect").then((c) => c.reply(200, { sid: "1794519372618698752", secret: "s3cret" }));
  const es = await FakeEventSource.next(0);
  assert.equal(es.url, `${server.ws.replace("ws:", "http:").replace(/\/ws$/, "/http")}/sse?sid=1794519372618698752&secret=s3cret`);
  es.open();
  es.message(h);
  await client.whenConnected();
  return { client, es };
}

test("EventSource: its keep-alives are invisible, so an interval without a frame costs one ping in a POST", async () => {
  const { client, es } = await esConnected(hello({ ping_interval: 80, ping_timeout: 300 }));
  const t0 = performance.now();
  const ping = await server.next("/http/send");
  assert.ok(performance.now() - t0 >= 60, "not before an interval");
  assert.deepEqual(ping.json, { type: "ping" });
  ping.reply(200, [{ type: "pong", ping_interval: 80, ping_timeout: 300 }]);
  // A frame within the interval: no ping for it.
  es.message({ type: "push", target: "all", event: "e", data: 1 });
  const next = await server.next("/http/send");
  assert.deepEqual(next.json, { type: "ping" });
  // No pong: the server is taken for dead after the grace.
  const d = await nextEvent(client, "disconnect");
  assert.match(d.reason, /^heartbeat_timeout: no frame from the server within 220ms of a ping/);
  assert.equal(es.readyState, 2, "the EventSource is closed: it does not reconnect by itself");
});

test("EventSource: one error while it reconnects by itself is borne; a second, or CLOSED, ends the connection", async () => {
  const { client, es } = await esConnected();
  const disconnects: { code: number; reason: string }[] = record(client, "disconnect");
  es.error(0); // CONNECTING: the browser reconnects with Last-Event-ID
  es.open();
  es.error(0);
  assert.equal(disconnects.length, 0);
  es.error(0);
  assert.deepEqual(disconnects.map((d) => [d.code, d.reason]), [[1006, "stream_failed: the event stream failed"]]);
  assert.equal(es.readyState, 2);
  await server.next("/http/close");

  await server.next("/http/connect").then((c) => c.reply(200, { sid: "1794519372618698753", secret: "s4" }));
  const again = await FakeEventSource.next(1);
  again.open();
  again.message(hello());
  await client.whenConnected();
  again.error(2); // CLOSED: the answer was no event stream
  assert.equal(disconnects.length, 2);
});

test("EventSource: an error before hello moves on to the next transport at once", async () => {
  FakeEventSource.all = [];
  const client = httpClient("sse", { EventSource: FakeEventSource, transports: ["sse", "poll"] });
  await server.next("/http/connect").then((c) => c.reply(200, { sid: "1794519372618698752", secret: "s3cret" }));
  const es = await FakeEventSource.next(0);
  const gone = nextEvent(client, "disconnect");
  es.error(0);
  const d = await gone;
  assert.deepEqual([d.transport, d.code, d.delay], ["sse", 1006, 0]);
  assert.equal((await server.next("/http/connect")).json["transport"], "poll");
});

test("the page going away closes the session with sendBeacon", async () => {
  const beacons: string[] = [];
  const win = Object.assign(new EventTarget(), { navigator: { onLine: true, sendBeacon: (u: string) => (beacons.push(u), true) } });
  const { client } = await sseConnected({ window: win });
  const gone = nextEvent(client, "disconnect");
  win.dispatchEvent(new Event("pagehide"));
  const d = await gone;
  assert.deepEqual([d.code, d.error, d.willReconnect], [1001, "going_away", true]);
  assert.deepEqual(beacons, [`${server.ws.replace("ws:", "http:").replace(/\/ws$/, "/http")}/close?sid=1794519372618698752&secret=s3cret`]);
  assert.deepEqual(server.unread("/http/close"), [], "the beacon closed it");
});

test("disconnect() closes the session and leaves no timer behind", async () => {
  const before = activeTimers();
  const { client, stream } = await sseConnected({ user: undefined, getToken: async () => token() } as never);
  const pub = client.publish("d1", "e", 1);
  await server.next("/http/send");
  client.disconnect();
  await assert.rejects(pub, { code: "closed" });
  await stream.closed;
  const close = await server.next("/http/close");
  assert.equal(close.query.get("secret"), "s3cret");
  assert.equal(activeTimers(), before);
});
