// pushd interop client: Node's ws (the WebSocket client) and nats (as the
// backend) packages, both with their default options.
//
// Usage: node client.mjs WS_URL NATS_URL USER DOC
//
// Connects as USER, expects hello, joins DOC, then publishes a user, a doc and
// a broadcast push on NATS as a backend does (headers Push-Event and Push-Id,
// as a request whose reply is the node's delivery report) and expects each on
// the socket. ws has no client keepalive of its own, so the client then sends
// a WebSocket ping every KEEPALIVE_MS, for longer than the server's ping
// timeout, and each pong must echo its ping's payload; finally ping "abcd"
// must be answered by pong "abcd".
//
// Prints "OK: <summary>" and exits 0, or "FAIL: <reason>" and exits 1.
import { isDeepStrictEqual } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { connect, headers, JSONCodec } from "nats";

const KEEPALIVE_MS = 300; // between our WebSocket pings
const DEADLINE_MS = 5000; // to wait for any one expected frame, pong or reply

const [wsURL, natsURL, user, doc] = process.argv.slice(2);
let finished = false;

function fail(reason) {
  console.log(`FAIL: ${reason}`);
  process.exit(1);
}

function check(ok, reason) {
  if (!ok) fail(reason);
}

// within rejects when promise is not settled within ms.
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms}ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const ws = new WebSocket(wsURL);
ws.on("error", (err) => fail(`websocket error: ${err.message}`));
ws.on("close", (code, reason) => {
  if (!finished) fail(`server closed the connection: ${code} ${reason}`);
});

// Text frames, parsed, in arrival order.
const inbox = [];
const readers = [];
ws.on("message", (data, isBinary) => {
  check(!isBinary, "got a binary frame");
  const frame = JSON.parse(data);
  const read = readers.shift();
  if (read) read(frame);
  else inbox.push(frame);
});
const next = (what) =>
  within(DEADLINE_MS, what, inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => readers.push(r)));

// Pings in flight, oldest first; pongs come back in order.
const pings = [];
ws.on("pong", (payload) => {
  const p = pings.shift();
  check(p, `unsolicited pong ${JSON.stringify(String(payload))}`);
  check(payload.equals(p.payload),
    `pong payload ${JSON.stringify(String(payload))} does not echo ping payload ${JSON.stringify(String(p.payload))}`);
  p.resolve();
});
const ping = (text) =>
  within(DEADLINE_MS, `pong for ping ${JSON.stringify(text)}`, new Promise((resolve) => {
    const payload = Buffer.from(text);
    pings.push({ payload, resolve });
    ws.ping(payload);
  }));

// matches reports whether got has every field of want.
const matches = (got, want) => Object.entries(want).every(([k, v]) => isDeepStrictEqual(got[k], v));

async function run() {
  await within(DEADLINE_MS, "WebSocket open", new Promise((resolve) => ws.once("open", resolve)));
  const hello = await next("hello");
  check(hello.type === "hello", `first frame is not hello: ${JSON.stringify(hello)}`);
  ws.send(JSON.stringify({ type: "join", doc }));
  const joined = await next("joined");
  check(matches(joined, { type: "joined", doc }), `join answered ${JSON.stringify(joined)}`);

  const nc = await connect({ servers: natsURL });
  const jc = JSONCodec();
  const pushes = [
    { subject: `push.user.${user}`, want: { type: "push", target: "user", event: "greet", id: "js-1", data: { text: `hi ${user}` } } },
    { subject: `push.doc.${doc}`, want: { type: "push", target: "doc", doc, event: "edit", id: "js-2", data: [1, 2, 3] } },
    { subject: "push.all", want: { type: "push", target: "all", event: "news", id: "js-3", data: "hello everyone" } },
  ];
  for (const { subject, want } of pushes) {
    const h = headers();
    h.set("Push-Event", want.event);
    h.set("Push-Id", want.id);
    const reply = await nc.request(subject, jc.encode(want.data), { headers: h, timeout: DEADLINE_MS });
    const report = jc.decode(reply.data);
    check(report.delivered === 1, `delivery report for ${subject}: ${JSON.stringify(report)}, want delivered 1`);
    const got = await next(`${want.target} push`);
    check(matches(got, want), `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
  await nc.close();

  // Nothing but WebSocket pings, for longer than the server's ping timeout.
  check(KEEPALIVE_MS < hello.ping_timeout, `ping_timeout ${hello.ping_timeout}ms is below our ${KEEPALIVE_MS}ms`);
  const silentMs = Math.max(hello.ping_timeout + 500, 3 * KEEPALIVE_MS);
  const start = Date.now();
  let keepalives = 0;
  while (Date.now() - start < silentMs) {
    await sleep(KEEPALIVE_MS);
    await ping(`keepalive-${++keepalives}`);
  }
  check(inbox.length === 0, `unexpected frames while silent: ${JSON.stringify(inbox)}`);

  const t0 = performance.now();
  await ping("abcd");
  const rtt = performance.now() - t0;

  finished = true;
  const closed = new Promise((resolve) => ws.once("close", resolve));
  ws.close(1000);
  await within(DEADLINE_MS, "close handshake", closed);
  return `hello, joined ${doc}, ${pushes.length} pushes each reported delivered; ` +
    `${Date.now() - start}ms on ${keepalives} echoed pings alone (server ping_timeout ${hello.ping_timeout}ms); ` +
    `ping "abcd" ponged in ${rtt.toFixed(1)}ms`;
}

run().then(
  (summary) => {
    console.log(`OK: ${summary}`);
    process.exit(0);
  },
  (err) => fail(err.message),
);
