// The demo page in a real headless Chromium (Debian's, driven by playwright-core), served by a
// real pushd --dev on a real NATS server, with a backend publishing pushes on NATS.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { Cluster, type PushdNode } from "../support/cluster.js";
import { Backend } from "../support/backend.js";

const chromiumPath = "/usr/bin/chromium";
const cluster = new Cluster();
let node: PushdNode;
let backend: Backend;
let context: BrowserContext;
let page: Page;
let profile: string;
const sockets: { url: string; sent: string[]; received: string[] }[] = [];

before(async () => {
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: run .ci/install-debs (apt-get install -y chromium)`);
  await cluster.nats(true); // with JetStream: a pushd with durable delivery gives pushes a seq
  node = await cluster.pushd(21);
  backend = await Backend.connect(cluster.natsURL);
  profile = mkdtempSync(join(tmpdir(), "pushd-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (err) => console.log("page error:", err));
  page.on("websocket", (ws) => {
    const s = { url: ws.url(), sent: [] as string[], received: [] as string[] };
    sockets.push(s);
    ws.on("framesent", (f) => void s.sent.push(String(f.payload)));
    ws.on("framereceived", (f) => void s.received.push(String(f.payload)));
  });
});

after(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await backend?.close();
  const logs = await cluster.stop();
  if (process.exitCode) console.log(logs);
});

/** The push list items as the page shows them. */
const pushItems = (): Promise<Record<string, string | undefined>[]> =>
  page.$$eval("#pushes li.push", (lis) => lis.map((li) => ({ ...(li as HTMLElement).dataset, text: li.textContent ?? "" })));

test("the page connects with the browser's WebSocket, joins a doc and shows pushes live", async () => {
  await page.goto(`${node.http}/`);
  assert.equal(await page.title(), "pushd demo");
  await page.fill("#user", "web-alice");
  await page.click("#connect");
  await page.waitForSelector('#status[data-state="connected"]');
  assert.match((await page.textContent("#session")) ?? "", /as web-alice, session \d+ on node 21/);

  // The SDK ran on the page's own, native WebSocket: the browser itself opened the socket.
  assert.equal(await page.evaluate(() => /\[native code\]/.test(String(WebSocket))), true);
  assert.equal(sockets.length, 1);
  assert.equal(sockets[0]!.url, `${node.url}`, "no token or user in the URL");
  assert.deepEqual(JSON.parse(sockets[0]!.sent[0]!), { type: "connect", id: "c1", user: "web-alice" });

  await page.fill("#doc", "web/doc.1");
  await page.click("#join");
  await page.waitForSelector('#docs li[data-doc="web/doc.1"][data-state="joined"]');

  assert.deepEqual((await backend.push("push.user.web-alice", { text: "hi" }, { event: "greet" })).map((r) => r.delivered), [1]);
  await page.waitForSelector('#pushes li.push[data-target="user"][data-event="greet"]');
  await backend.push("push.doc.web/doc.1", [1, 2, 3], { event: "edit" });
  await page.waitForSelector('#pushes li.push[data-target="doc"][data-doc="web/doc.1"][data-event="edit"]');

  const items = await pushItems();
  assert.match(items.find((i) => i["event"] === "greet")!["text"]!, /user greet \{"text":"hi"\}/);
  assert.match(items.find((i) => i["event"] === "edit")!["text"]!, /doc web\/doc\.1 edit \[1,2,3\]/);
  // Each push shows its seq exactly when the server sent one (durable delivery).
  const frames = sockets[0]!.received.map((r) => JSON.parse(r)).filter((f) => f.type === "push");
  assert.equal(frames.length, 2);
  for (const f of frames) {
    const item = items.find((i) => i["event"] === f.event)!;
    assert.equal(item["seq"], f.seq);
    assert.equal(item["text"]!.includes(` seq ${f.seq}`), f.seq !== undefined);
  }
});

test("the page publishes through /dev/publish and sees its push arrive", async () => {
  await page.selectOption("#target", "doc");
  await page.fill("#key", "web/doc.1");
  await page.fill("#event", "from-page");
  await page.fill("#data", '{"n":1}');
  await page.click("#publish");
  await page.waitForSelector('#pushes li.push[data-event="from-page"]');
  // The report comes once the endpoint collected the nodes' delivery reports.
  await page.waitForFunction(() => document.querySelector("#report")?.textContent?.startsWith("published"));
  assert.equal(await page.textContent("#report"), "published on push.doc.web/doc.1: 1 of 1 sessions on 1 node(s)");
  await page.fill("#key", "a b");
  await page.click("#publish");
  await page.waitForFunction(() => document.querySelector("#report")?.textContent?.startsWith("refused: invalid_key"));
});

test("the page reconnects and rejoins when its node restarts", async () => {
  const exited = node.proc.term();
  await page.waitForSelector('#status[data-state="connecting"]');
  assert.equal(await exited, 0);
  node = await cluster.pushd(21, ["--dev", "--listen", node.listen]); // the same address
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 15_000 });
  await page.waitForSelector('#docs li[data-doc="web/doc.1"][data-state="joined"]');
  const events = (await page.$$eval("#events li", (lis) => lis.map((li) => li.textContent ?? ""))).reverse();
  assert.ok(events.some((e) => /closed 1012 draining: node 21; reconnect elsewhere; reconnecting/.test(e)), events.join("\n"));
  assert.equal(events.filter((e) => /joined web\/doc\.1/.test(e)).length, 2, events.join("\n"));
  const joins = events.filter((e) => /joined web\/doc\.1/.test(e));
  if (/ at seq \d+/.test(joins[0]!)) {
    // Durable delivery: the rejoin resumed from the doc's cursor and nothing was lost.
    assert.match(joins[1]!, /joined web\/doc\.1 at seq \d+, recovered true$/);
  } else {
    assert.match(joins[1]!, /joined web\/doc\.1; pushes may have been missed: refetch$/, "without durable delivery the rejoin reports the gap");
  }
  await backend.push("push.doc.web/doc.1", "after restart", { event: "back" });
  await page.waitForSelector('#pushes li.push[data-event="back"]');
});
